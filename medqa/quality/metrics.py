"""Generation quality of one answer, as pure functions with documented formulas, and the run-level rules
built on them: aggregates per eval and the selection score (the paired divergence alarm: medqa.quality.stats).

Words are `medqa.lexicon.words` tokens (lower case, hyphenated words split), so scores do not depend on a
tokenizer and the scoring CLI needs no model. A *segment* is a line, or a sentence within a line.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from medqa.quality.factuality import (
    LISTED_NOT,
    NEGATION,
    NO_REFERENCE_FACT,
    REBUTTAL,
    Reference,
    factuality,
    is_question,
    negate_listed,
    normalise,
    numerals,
    reference_for_probe,
    reference_stems,
    shorthand,
)
from medqa.quality.lexicon import STOPWORDS, leaks, words
from medqa.quality.probe_specs import find_phrases, phrase_pattern
from medqa.quality.vocabulary import invented as invented_terms
from medqa.settings.probes import Probe
from medqa.settings.quality import QualitySettings

FLAGS = (
    "empty",
    "no_eos",
    "repetition_loop",
    "runaway_list",
    "invented_terms",
    "missing_facts",
    "forbidden_claim",
    "unsupported_claims",
    "harmful_advice",
    "unchecked_claims",
    "template_leak",
    "platform_filler",
)


# --- repetition --------------------------------------------------------------------------------------------


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def rep_n(tokens: list[str], n: int) -> float:
    """seq-rep-n (Welleck et al. 2019): 1 - |distinct n-grams| / |n-grams|; 0 when there are no n-grams."""
    grams = ngrams(tokens, n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def distinct_n(tokens: list[str], n: int = 2) -> float:
    """distinct-n (Li et al. 2016): |distinct n-grams| / |tokens|; 0 for an empty answer."""
    return len(set(ngrams(tokens, n))) / len(tokens) if tokens else 0.0


def segments(text: str) -> list[str]:
    """Non-empty lines, each split into sentences."""
    out = []
    for line in text.splitlines():
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+", line) if s.strip()]
    return out


def repeat_run(units: list[str]) -> int:
    """Longest run of consecutive identical units (compared as word sequences); 0 for none."""
    best = run = 0
    prev = None
    for unit in units:
        key = " ".join(words(unit))
        run = run + 1 if key and key == prev else 1
        prev = key
        best = max(best, run)
    return best


def _alike(a: str, b: str, similarity: float) -> bool:
    """difflib's ratio of `a` and `b` >= `similarity`, trying its cheap upper bounds first (most pairs fail them)."""
    matcher = SequenceMatcher(None, a, b)
    return (
        matcher.real_quick_ratio() >= similarity
        and matcher.quick_ratio() >= similarity
        and matcher.ratio() >= similarity
    )


def loop_run(units: list[str], similarity: float) -> int:
    """Longest run of consecutive units each at least `similarity` alike (difflib ratio of their word
    strings) to the one before: "Eye yawning / Eye yawns / Eye years / Eye yolks" is a run of 4."""
    best = run = 0
    prev = None
    for unit in units:
        key = " ".join(words(unit))
        alike = bool(key and prev and _alike(prev, key, similarity))
        run = run + 1 if alike else 1
        prev = key
        best = max(best, run)
    return best


# --- lists -------------------------------------------------------------------------------------------------

MARKER = re.compile(r"^\s*(?:[-*•·]|\d{1,3}[.)])\s+")


def list_items(text: str) -> tuple[list[str], bool]:
    """(items, ends_in_list). Items are marked lines ("- x", "1. x"), bare short lines (<= 6 words, no end
    punctuation) in runs of 3 or more, or, when longer, the parts of the longest inline list (a sentence with
    2 or more commas/semicolons, its last part split at "and"/"or"). `ends_in_list`: the text's last line or
    sentence is an item of the list, without end punctuation (the list was cut off)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line_items, bare, last_is_item = [], [], False
    for i, line in enumerate(lines + [""]):
        short = line and len(words(line)) <= 6 and not line.endswith((".", ":", "?", "!"))
        if short and not MARKER.match(line):
            bare.append(line)
            continue
        if len(bare) >= 3:
            line_items += bare
            last_is_item = last_is_item or i == len(lines)
        bare = []
        if line and MARKER.match(line):
            line_items.append(MARKER.sub("", line))
            last_is_item = i == len(lines) - 1
    inline: list[str] = []
    sentences = segments(text)
    for sentence in sentences:
        parts = [p.strip() for p in re.split(r"[,;]", sentence) if p.strip()]
        if len(parts) >= 3:
            parts = parts[:-1] + [p for p in re.split(r"\b(?:and|or)\b", parts[-1]) if p.strip()]
            if len(parts) > len(inline):
                inline = parts
    items = line_items if len(line_items) >= len(inline) else inline
    tail = sentences[-1] if sentences else ""
    open_tail = bool(tail) and not tail.endswith((".", "!", "?"))
    in_list = last_is_item if items is line_items else bool(inline) and tail.endswith(inline[-1].strip())
    return items, bool(items) and open_tail and in_list


def _stems(text: str) -> set[str]:
    return {w[:5] for w in words(text) if len(w) >= 4 and w not in STOPWORDS}


def _drift_checked(
    answer: str, items: list[str], stopped_eos: bool | None, probe: Probe | None, s: QualitySettings
) -> bool:
    """A list is checked for drift when it is long and either spans lines or was not ended: the seed's runaway
    lists. One stopped paragraph's inline run ("an Aboriginal, Torres Strait Islander, South Asian or Chinese
    background" among risk groups) is prose; its items are labelled like any other (blind sets 1-122: 3 good
    answers fewer under 0.7, no bad answer more at 0.9 or above)."""
    return probe is not None and len(items) >= s.drift_min_items and (stopped_eos is False or "\n" in answer.strip())


def drift(items: list[str], probe: Probe, facts: frozenset[str] = frozenset()) -> float:
    """Share of the last half of `items` with no content word (>= 4 letters, not a stop word; compared by
    5-letter prefix) in common with the probe's question, expected facts and topic words, nor a lexicon stem
    (medqa.quality.factuality.normalise) in common with the probe's reference facts (`facts`)."""
    topic = _stems(" ".join([probe.question, *(p for g in probe.expect for p in g), *probe.topic]))
    tail = items[len(items) // 2 :]
    off = [not (_stems(item) & topic) and not (facts and set(normalise(item)) & facts) for item in tail]
    return sum(off) / len(tail) if tail else 0.0


# --- facts -------------------------------------------------------------------------------------------------


def fact_check(text: str, probe: Probe) -> tuple[float | None, list[str], list[str]]:
    """(recall, missing, forbidden). recall = met expect groups / groups (None without expect; a group is met
    when any of its phrases occurs); missing = first phrase of each unmet group; forbidden = the claims made:
    a sentence with one of the claim's terms, one of its context phrases (when given) and none of its
    `unless` phrases."""
    met = [bool(find_phrases(group, text)) for group in probe.expect]
    recall = sum(met) / len(met) if met else None
    missing = [g[0] for g, ok in zip(probe.expect, met, strict=True) if not ok]
    forbidden = []
    for claim in probe.forbid:
        # read as the claim labels read it: shorthand written out ("dont wait", "Tab. Atenolol"), then sentences
        for sentence in segments(negate_listed(shorthand(numerals(text)))):  # "Don't:" then "- Drive yourself"
            if is_question(sentence) or REBUTTAL.search(sentence) or LISTED_NOT.match(sentence):
                continue
            if (
                find_phrases(claim.terms, sentence)
                and (not claim.context or find_phrases(claim.context, sentence))
                and not any(phrase_pattern(u).search(sentence) for u in claim.unless)
            ):
                forbidden.append(claim.claim)
                break
    return recall, missing, forbidden


# --- one answer --------------------------------------------------------------------------------------------


def score_answer(
    answer: str,
    *,
    stopped_eos: bool | None = None,
    n_tokens: int | None = None,
    probe: Probe | None = None,
    settings: QualitySettings | None = None,
    known_words: set[str] | frozenset[str] = frozenset(),
    reference: Reference | None = None,
) -> dict:
    """Every metric of one answer, its `quality` in [0, 1] and its `flags`. `stopped_eos` None: unknown (no
    EOS component, no no_eos flag). `probe` gives facts, the expected list length and topic; `known_words`
    are words (e.g. the run's training text) that are never counted as invented; `reference` (a held-out
    question's, medqa.quality.heldout) replaces the probe's reference for the claim labels."""
    s = settings or QualitySettings()
    tokens = words(answer)
    units = segments(answer)
    items, ends_in_list = list_items(answer)
    drugs, invented = invented_terms(answer, known_words)
    template, filler = leaks(answer)
    _, _, forbidden = fact_check(answer, probe) if probe else (None, [], [])
    ref = reference if reference is not None else reference_for_probe(probe) if probe else None
    fact = factuality(answer, ref, known_words)
    recall, missing = fact["recall"], fact["facts_missing"]
    forbidden = list(dict.fromkeys(forbidden + fact["wrong_claims"]))
    m = {
        "n_words": len(tokens),
        "n_tokens": n_tokens,
        "stopped_eos": stopped_eos,
        "rep_2": rep_n(tokens, 2),
        "rep_3": rep_n(tokens, 3),
        "rep_4": rep_n(tokens, 4),
        "distinct_2": distinct_n(tokens, 2),
        "repeat_run": max(repeat_run(units), repeat_run(items)),
        "loop_run": max(loop_run(units, s.loop_similarity), loop_run(items, s.loop_similarity)),
        "list_items": len(items),
        "list_drift": drift(items, probe, reference_stems(ref))
        if _drift_checked(answer, items, stopped_eos, probe, s)
        else 0.0,
        "drug_terms": drugs,
        "invented_terms": invented,
        "invented_rate": len(invented) / len(drugs) if drugs else 0.0,
        "fact_recall": recall,
        "facts_missing": missing,
        "forbidden_claims": forbidden if probe and (probe.forbid or fact["wrong_claims"]) else None,
        "template_leaks": template,
        "filler": filler,
        "precision": fact["precision"],
        "recall": recall,
        "f1_at_k": fact["f1_at_k"],
        "k": fact["k"],
        "n_supported": fact["n_supported"],
        "n_supported_asked": fact["n_supported_asked"],
        "n_unsupported": fact["n_unsupported"],
        "n_irrelevant": fact["n_irrelevant"],
        "unchecked": unchecked_claims(fact["claims"], s.unchecked_min_words) if ref is not None else [],
        "harm_points": fact["harm_points"],
        "harms": fact["harms"],
        "claims": fact["claims"],
    }
    max_items = probe.expected_items[1] * s.runaway_factor if probe and probe.expected_items else s.max_list_items
    runaway = (ends_in_list and stopped_eos is False and len(items) >= 3) or len(items) > max_items
    flags = {
        "empty": not tokens,
        "no_eos": stopped_eos is False,
        "repetition_loop": m["rep_4"] >= s.rep_4_max
        or m["repeat_run"] > s.max_repeat_run
        or m["loop_run"] >= s.loop_lines,
        "runaway_list": runaway or m["list_drift"] > 0.5,
        "invented_terms": bool(invented),
        "missing_facts": recall is not None and recall < s.min_fact_recall,
        "forbidden_claim": bool(forbidden),
        "unsupported_claims": bool(fact["n_unsupported"]),
        "harmful_advice": bool(fact["harms"]),
        "unchecked_claims": bool(m["unchecked"]) and s.unchecked_cap < 1,
        "template_leak": bool(template),
        "platform_filler": bool(filler),
    }
    m["flags"] = [f for f in FLAGS if flags[f]]
    m["quality"] = quality_score(m, s)
    return m


MIN_RECALL_FOR_RK = 0.2  # below it, supported items do not make an answer complete (see quality_score)
OFF_REFERENCE_CAP = 0.75  # ... but count up to this much: right content that misses what the reference expects,
OFF_REFERENCE_SHARE = 0.25  # when items of the asked aspect make this share of its items and 4-grams barely repeat:
# at most this share repeated. Parallel criteria repeat a few ("a 2-hour glucose of 200 mg/dL or more ... a random
# glucose of 200 mg/dL or more": 0.065); a loop repeats most (the seed's >= 0.3). Was 0 until session 19: on the
# 126 labelled sets, 3 good answers fewer under 0.7, no bad answer more at 0.9 or above.
ON_POINT_MAX_REP_4 = 0.1


CONTENT_WORD = re.compile(r"[A-Za-z]{3,}")


def unchecked_claims(claims: list[dict], min_words: int) -> list[str]:
    """Items that state something specific (at least `min_words` words of 3+ letters) which no reference fact,
    knowledge-table fact or rule could check: neither supported nor unsupported (factuality.NO_REFERENCE_FACT).
    A denial ("not: wait to see whether it passes") claims nothing and is left out."""
    unchecked = [c["item"] for c in claims if c["label"] == "irrelevant" and c["why"] == NO_REFERENCE_FACT]
    return [item for item in unchecked if len(CONTENT_WORD.findall(item)) >= min_words and not NEGATION.search(item)]


def quality_score(m: dict, s: QualitySettings) -> float:
    """quality = form x content, in [0, 1]; 0 for an empty answer.
    form    = sum_k w_k c_k / sum_k w_k  (weights: QualitySettings.weights; a component that is unknown is
              left out) over
                eos        = 1 if stopped at end of turn else 0 (unknown when not given)
                repetition = 0 on a repetition loop, else 1 - rep_4
                lists      = 0 on a runaway list, else 1
                template   = 0 when chat-template text leaks, else 1
                filler     = 0 with platform filler, else 1
    content = min(1, max(recall / min_fact_recall, S / K))   (1 when there is no reference; S / K: R@K, at most
                                                              OFF_REFERENCE_CAP while recall < MIN_RECALL_FOR_RK)
              x precision ** precision_power         (precision = S / (S + U) of the labelled claims,
                                                      medqa.quality.factuality; 1 when no claim is checkable)
              x (1 - forbidden_penalty if a forbidden or known wrong claim is made)
              x (1 - invented_penalty if an invented drug-like name appears)
              x max(0, 1 + harm_points / harm_scale)  (HealthBench-style negative rubric points, <= 0)
              x min(1, n_words / min_words)
    A product, so a fluent answer that says nothing right, or something wrong, cannot score high on form, and
    one wrong item among right ones costs (1 - P^2): 1 of 5 -> x0.64, 1 of 10 -> x0.81. Then capped: at most
    unchecked_cap with a specific claim nothing checks, at most unsupported_cap with a claim labelled unsupported."""
    if "empty" in m["flags"]:
        return 0.0
    c = {
        "eos": None if m["stopped_eos"] is None else float(m["stopped_eos"]),
        "repetition": 0.0 if "repetition_loop" in m["flags"] else 1.0 - m["rep_4"],
        "lists": 0.0 if "runaway_list" in m["flags"] else 1.0,
        "template": float(not m["template_leaks"]),
        "filler": float(not m["filler"]),
    }
    used = {k: v for k, v in c.items() if v is not None and s.weights[k] > 0}
    total = sum(s.weights[k] for k in used)
    form = sum(s.weights[k] * v for k, v in used.items()) / total if total else 1.0
    # Complete enough: half the expected facts, or K supported items (VeriScore's R@K), whichever is higher.
    r_k = min(1.0, m.get("n_supported", 0) / m["k"]) if m.get("k") else 0.0
    # R@K stands in for recall fully only once the answer meets some expected fact: K loosely matched items that
    # miss every expected group ("craving for sweets, a glucose above 200") are not a complete answer. They are
    # not nothing either: a right answer to a narrower point (infants' causes of anaemia; "often no symptoms, so
    # screen from 35") scored 0, below every wrong answer with one right fact. Capped below 0.9 it stays
    # "acceptable, not complete", and only for an answer whose items are largely of the asked aspect (or the
    # probe's own reference) and which does not repeat itself: the tiny model's word salad, whose fragments loosely
    # match a fact here and there ("causing recurrent" x3, "pain, pain, pain"), and true facts of another aspect
    # (risk groups given for "which therapies ...") keep 0; the main job's table is unchanged by this. On the 54
    # labelled sets, mean AUC 0.988 -> 0.992 and 13 fewer good answers below 0.7, no bad answer more at 0.9 or above;
    # on the four sets written after its first form (47-50) 0.961 -> 0.971 (README "How far to trust it").
    if m["fact_recall"] is not None and m["fact_recall"] < MIN_RECALL_FOR_RK:
        r_k = min(OFF_REFERENCE_CAP, m.get("n_supported_asked", 0) / m["k"]) if _on_point(m) else 0.0
    content = 1.0 if m["fact_recall"] is None else min(1.0, max(m["fact_recall"] / s.min_fact_recall, r_k))
    content *= 1.0 if m.get("precision") is None else m["precision"] ** s.precision_power
    content *= max(0.0, 1 + m.get("harm_points", 0.0) / s.harm_scale)
    content *= (1 - s.forbidden_penalty) if m["forbidden_claims"] else 1.0
    content *= (1 - s.invented_penalty) if m["invented_terms"] else 1.0
    content *= min(1.0, m["n_words"] / s.min_words)
    quality = form * content
    # "Verified" (>= 0.9) needs every specific claim checked: a claim no fact or rule covers may be the error
    # (a novel wrong claim is, by definition, in no reference). Such an answer scores at most unchecked_cap.
    if m.get("unchecked"):
        quality = min(quality, s.unchecked_cap)
    # Nor is an answer with a claim labelled unsupported: one wrong item among many right ones costs little in
    # precision (1 of 12 -> x0.85), yet it is the error the scorer exists to catch. At most unsupported_cap
    # (0.8), so "verified" means nothing checked came out wrong. On the 122 labelled sets: mean AUC 0.9851 ->
    # 0.9866, bad answers at 0.9 or more 26 -> 23, good answers under 0.7 unchanged (84).
    if m.get("precision") is not None and m["precision"] < 1:
        quality = min(quality, s.unsupported_cap)
    return round(quality, 4)


def _on_point(m: dict) -> bool:
    """Checkable right content of the asked aspect (or the probe's own reference), in an answer that barely repeats a
    4-gram (ON_POINT_MAX_REP_4) and has no repetition loop: such items make OFF_REFERENCE_SHARE of its items."""
    claims = m.get("claims") or []
    share = m.get("n_supported_asked", 0) / len(claims) if claims else 0.0
    looped = "repetition_loop" in m["flags"]  # "pain, pain, pain, pain", "causing recurrent" x3: few 4-grams, a loop
    return m["rep_4"] <= ON_POINT_MAX_REP_4 and not looped and share >= OFF_REFERENCE_SHARE


# --- run level ---------------------------------------------------------------------------------------------


def _mean(values: list) -> float | None:
    values = [float(v) for v in values if v is not None]
    return sum(values) / len(values) if values else None


def aggregate(rows: list[dict]) -> dict[str, float]:
    """Means over the probes of one eval (W&B scalars without the `probes/` prefix); flag_<name> is the
    share of probes with that flag. Keys whose metric applies to no probe are left out."""
    out = {
        "quality": _mean([r["quality"] for r in rows]),
        "eos_rate": _mean([r["stopped_eos"] for r in rows]),
        "mean_tokens": _mean([r.get("n_tokens") for r in rows]),
        "fact_recall": _mean([r["fact_recall"] for r in rows]),
        "forbidden_rate": _mean([None if r["forbidden_claims"] is None else bool(r["forbidden_claims"]) for r in rows]),
    }
    for key in ("rep_2", "rep_3", "rep_4", "distinct_2", "invented_rate", "list_items"):
        out[key] = _mean([r[key] for r in rows])
    for key in ("precision", "f1_at_k"):  # claim-level factuality (medqa.quality.factuality); older rows lack it
        out[key] = _mean([r.get(key) for r in rows])
    out["harm_rate"] = _mean([bool(r["harms"]) if "harms" in r else None for r in rows])
    for flag in FLAGS:
        out[f"flag_{flag}"] = _mean([flag in r["flags"] for r in rows])
    return {k: v for k, v in out.items() if v is not None}


def selection_score(rule: str, quality: float, eval_loss: float, first_eval_loss: float) -> float:
    """Higher is better. quality: probe quality; loss_quality: quality - eval_loss / first eval loss (a 10%
    lower loss is worth 0.1 quality)."""
    if rule == "quality":
        return quality
    if rule == "loss_quality":
        return quality - eval_loss / first_eval_loss
    raise ValueError(f"train.select_by={rule!r} has no score; expected quality or loss_quality")
