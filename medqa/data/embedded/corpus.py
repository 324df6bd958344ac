"""Deterministic generator of the embedded offline medical QA corpus.

Builds stand-ins for ``lavita/ChatDoctor-HealthCareMagic-100k`` and ``medalpaca/medical_meadow_wikidoc``
(rows ``{"instruction", "input", "output"}``) from ``assets/knowledge.yaml`` so the harness runs offline.
The output is a pure function of the knowledge table and the seed: ``python -m medqa.embedded_corpus``.
"""

import json
import random
from pathlib import Path

from medqa.core.paths import EMBEDDED_DIR
from medqa.data.embedded.phrasing import (  # noqa: F401  (load_knowledge: re-exported for the builder and tests)
    FIELD,
    GROUP,
    cap,
    decap,
    join_items,
    load_knowledge,
    name_of,
    phrase,
    pick,
    template,
    templates,
)

CHATDOCTOR_INSTRUCTION = "If you are a doctor, please answer the medical questions based on the patient's description."
WIKIDOC_INSTRUCTION = "Answer this question truthfully"
DEFAULT_OUT_DIR = EMBEDDED_DIR
# Probe conditions get extra rows of the intent the evaluation asks about.
FOCUS = {
    "type 2 diabetes": "early",
    "hypertension": "first_line",
    "iron deficiency anemia": "causes",
    "malaria": "dx_tx",
    "heart attack": "warning",
}
CHAT_PER_CONDITION, CHAT_FOCUS_EXTRA, WIKI_FOCUS_EXTRA = 20, 16, 8
# Very short replies exist in the real data; only for intents where a one-liner is still safe.
SHORT = {
    "what_is": "short_dx",
    "tests": "short_dx",
    "dx_tx": "short_dx",
    "report": "short_dx",
    "treatment": "short_tx",
    "first_line": "short_tx",
}


def _tests(c: dict) -> list[str]:
    # Chat answers say "go for X", which only reads well for actual tests, not "clinical history".
    skip = ("history", "diagnosis from", "no routine", "assessment", "examination", "criteria", "diary")
    return [d for d in c["diagnosis"] if not any(s in d for s in skip)]


def _doctor_body(c: dict, intent: str, rng: random.Random, report: str) -> list[str]:
    """Compose 3-7 sentences of advice for one patient intent, drawing every fact from the table."""
    out: list[str] = []
    used: set[str] = set()

    def say(kind: str, items: list[str] | None = None, **kw: object) -> None:
        used.add(kind)
        if kind == "warn" and c.get("warning_level") == "prompt":
            kind = "warn_prompt"  # red flags that need tests soon, not an ambulance
        out.append(phrase(kind, c, rng, items, **kw))

    def note() -> None:
        fresh = [n for n in c.get("notes", []) if n not in out]
        if fresh:
            out.append(rng.choice(fresh))

    def tests(lo: int, hi: int) -> None:
        found = _tests(c)
        say("tests", pick(found, rng, lo, hi)) if found else say("no_tests")

    has, p, urgent, first = c.get, rng.random, bool(c.get("urgent")), c.get("first_line")
    if urgent and intent in ("what_is", "tests", "dx_tx"):
        say("urgent")
    if intent in ("what_is", "tests", "dx_tx"):
        say("likely")
    elif intent == "report":
        say("report", q=report)
    elif p() < 0.6:
        say("ack")
    if p() < (0.5 if intent == "what_is" else 0.3):
        prefix = rng.choice(template("summ")) if p() < 0.7 else ""
        out.append(f"{prefix} {decap(c['summary'])}" if prefix else c["summary"])
    if intent in ("what_is", "tests", "report", "dx_tx"):
        tests(2, 4)
        if first and (intent == "dx_tx" or p() < 0.5):
            say("first", first)
        if not first or intent == "dx_tx" or p() < 0.4:
            say("treat", pick(c["treatment"], rng, 2, 4))
        if intent == "dx_tx":
            note()
    elif intent in ("treatment", "first_line"):
        if intent == "first_line" and first:
            say("first", first)
            out.extend(c.get("notes", [])[:1])
        if intent == "treatment" or not first or p() < 0.4:
            say("treat", pick(c["treatment"], rng, 2, 5))
        if p() < 0.4:
            note()
        if p() < 0.5:
            say("safety")
    elif intent == "causes":
        say("causes", pick(c["causes"], rng, 3, 6))
        if p() < 0.5:
            tests(1, 3)
        if has("prevention") and p() < 0.5:
            say("prevent", pick(c["prevention"], rng, 2, 4))
    elif intent == "warning":
        say("warn", pick(c["warning_signs"], rng, 3, 7))
        if urgent:
            say("urgent_if")
            say("first", first)
    elif intent == "prevention":
        say("prevent", pick(c["prevention"], rng, 2, 5))
        if p() < 0.5:
            say("causes", pick(c["causes"], rng, 2, 4))
    elif intent == "early":
        say("early", pick(c["early_symptoms"], rng, 5, 8))
        tests(1, 3)
        if has("prevention") and p() < 0.5:
            say("prevent", pick(c["prevention"], rng, 2, 4))
    if has("warning_signs") and "warn" not in used and p() < 0.45:
        say("warn", pick(c["warning_signs"], rng, 2, 4))
    fillers = [k for k in ("spec", "safety") if k not in used]
    while fillers and (len(out) < 3 or (len(out) < 5 and p() < 0.25)):
        say(fillers.pop(0))
    # Cap at 6 parts: a summary may add a second sentence, keeping answers within 3-7 sentences.
    return out[:6]


def _dress(body: str, rng: random.Random) -> str:
    """Wrap an answer in the platform filler of the real data (greetings, sign-offs, OCR glitches)."""
    r = rng.random()
    text = (
        f"{rng.choice(template('glitch'))} {body}"
        if r < 0.038
        else (f"{rng.choice(template('greet'))} {body}" if r < 0.82 else body)
    )
    if rng.random() < 0.6:
        # Stacked sign-offs pair a closing line with a farewell so they never repeat each other.
        signs = [rng.choice(template("sign_close"))] if rng.random() < 0.5 else []
        if not signs or rng.random() < 0.35:
            signs.append(rng.choice(template("sign_bye")))
        text += " " + " ".join(s.format(g=f"Dr. {rng.choice(template('doc'))}") for s in signs)
    return text


def _typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) > 5 and w.isalpha()]
    if idx:  # swap two adjacent letters of one longer word, as hurried patients do
        w, j = words[i := rng.choice(idx)], rng.randrange(1, len(words[i]) - 2)
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def _patient(c: dict, intent: str, rng: random.Random, report: str) -> str:
    """Write a first-person patient message for one intent, in varied wording."""
    lo, hi = c.get("ages", [25, 65])
    age = rng.randint(lo, hi)
    other = intent not in ("early", "prevention") and (age < 16 or rng.random() < 0.25)
    rel = rng.choice(
        ["son", "daughter"]
        if age < 18
        else ["husband", "wife", "brother", "sister"]
        if age < 50
        else ["father", "mother", "husband", "wife"]
    )
    male = rel in ("son", "husband", "brother", "father") if other else rng.random() < 0.5
    sex = "male" if male else "female"
    kw = {
        "a": age,
        "s": sex,
        "m": sex[0].upper(),
        "r": rel if other else rng.choice(["father", "mother"]),
        "p": "He" if male else "She",
        "n": name_of(c, rng, 0.4),
        "q": report,
        "k": rng.randint(2, 6),
    }
    course = c.get("course", "chronic")
    kw["d"] = rng.choice(template(f"d_{course}")).format(**kw)
    kw["o"] = rng.choice(template("ago_acute" if course == "acute" else "ago")).format(**kw)
    sx = [s for s in c["symptoms"] if not (male and ("period" in s or "menstrual" in s))]
    sx = rng.sample(sx, rng.randint(min(2, len(sx)), min(4, len(sx))))
    if c.get("urgent") and c["symptoms"][0] not in sx:
        sx[0] = c["symptoms"][0]  # an emergency reply must rest on the cardinal symptom
    kw["x"] = join_items(sx, rng)
    parts = [rng.choice(template("open"))] if rng.random() < 0.75 else []
    if rng.random() < 0.02:
        parts.append(rng.choice(template("platform")))
    if not other and intent != "early" and rng.random() < 0.7:
        parts.append(rng.choice(template("intro")))
    if intent in ("what_is", "tests", "dx_tx"):
        ctx = "sx_other" if other else "sx_self"
    elif intent in ("early", "prevention"):
        # "runs in my family" only fits heritable conditions and reads wrong with "a heart attack".
        familial = any("family" in x or "genetic" in x or "familial" in x for x in c["causes"])
        ctx = "worry" if familial and not c.get("article") else "worry_a"
    elif intent == "report":
        ctx = "rep"
    else:  # emergencies are past events ("I had a stroke"), not ongoing diagnoses
        ctx = "had" if c.get("urgent") else "dx_other" if other else "dx_self"
    parts.append(rng.choice(template(ctx)))
    parts.append(rng.choice(template(f"q_{intent}")))
    if rng.random() < 0.4:
        parts.append(rng.choice(template("close")))
    text = " ".join(cap(s.format(**kw)) for s in parts)
    return _typo(text, rng) if rng.random() < 0.03 else text


def _intents(c: dict) -> list[str]:
    # Weights mirror the real data: most patients describe symptoms and ask what is going on.
    silent, has = bool(c.get("silent")), lambda k: bool(c.get(k))
    weights = {
        "what_is": 0 if silent else 4,
        "tests": 0 if silent else 1,
        "treatment": 2,
        "causes": 2,
        "first_line": 2 * has("first_line"),
        "warning": has("warning_signs"),
        "prevention": has("prevention"),
        "early": has("early_symptoms"),
        "report": 3 * has("report"),
        "dx_tx": 0 if silent else 1,
    }
    return [k for k, w in weights.items() for _ in range(w)]


def chatdoctor_rows(knowledge: list[dict], rng: random.Random) -> list[dict]:
    """Build ChatDoctor-HealthCareMagic-style rows (patient message -> doctor answer with filler)."""
    rows, seen = [], set()
    for c in knowledge:
        pool = _intents(c)
        plan = [pool[i % len(pool)] for i in range(CHAT_PER_CONDITION)]
        plan += [FOCUS[c["name"]]] * CHAT_FOCUS_EXTRA if c["name"] in FOCUS else []
        rng.shuffle(plan)
        for intent in plan:
            for _ in range(20):
                report = rng.choice(c["report"]) if c.get("report") else ""
                question = _patient(c, intent, rng, report)
                kind = SHORT.get(intent, "")
                if c.get("urgent"):  # the only safe one-liner for an emergency is "call an ambulance"
                    kind = "short_urgent" if kind == "short_dx" and intent != "report" else ""
                if kind and rng.random() < 0.045:
                    f = (c.get("first_line") or c["treatment"])[0]
                    t = (_tests(c) or ["a check-up"])[0].split(" if ")[0].split(" for ")[0]
                    body = phrase(kind, c, rng, t=t, f=f)
                    answer = f"{rng.choice(template('greet'))} {body}" if rng.random() < 0.5 else body
                else:
                    answer = _dress(" ".join(_doctor_body(c, intent, rng, report)), rng)
                if (question, answer) not in seen:
                    seen.add((question, answer))
                    rows.append({"instruction": CHATDOCTOR_INSTRUCTION, "input": question, "output": answer})
                    break
    rng.shuffle(rows)
    return rows


def _wprose(c: dict, g: str, n: str, items: list[str], rng: random.Random) -> str:
    mild = g == "warning" and c.get("warning_level") == "prompt"
    # Prompt-review red flags must not be phrased as emergencies.
    tpl = rng.choice(template("prose", "wiki") + ([] if mild else template(g, "wiki")))
    topics = template(g, "wiki_topics")[: 2 if mild else None]
    return cap(tpl.format(t=rng.choice(topics), x=join_items(items, rng), n=n))


def _wiki_answer(c: dict, qtype: str, n: str, rng: random.Random) -> str:
    """Encyclopedic answer: ~60% list-formatted (flat or nested numbering), the rest prose."""
    as_list, numbered, silent = rng.random() < 0.6, rng.random() < 0.5, bool(c.get("silent"))
    pre = [c["summary"]] if qtype == "overview" or rng.random() < 0.3 else []
    if silent and qtype in ("symptoms", "overview"):
        # Never list symptoms of a usually silent condition without saying it is usually silent.
        pre.append(cap(rng.choice(template("silent", "wiki")).format(n=n)))
    post = []
    if qtype == "first_line" and c.get("notes"):
        post.append(c["notes"][0])
    elif c.get("notes") and qtype in ("treatment", "dx_tx", "diagnosis") and rng.random() < 0.5:
        post.append(rng.choice(c["notes"]))
    if qtype == "warning" and c.get("urgent"):
        post += [rng.choice(template("emergency", "wiki")), phrase("first", c, rng, c["first_line"])]
    if qtype in ("overview", "dx_tx"):
        groups = ["diagnosis"] + ["first_line"] * bool(c.get("first_line")) + ["treatment"]
        if qtype == "overview":
            groups = ["causes", "diagnosis", "treatment"] if silent else ["symptoms", "causes", "treatment"]
        if not as_list:
            body = [_wprose(c, g, n, pick(c[FIELD[g]], rng, 2, 5), rng) for g in groups]
            return " ".join(pre + body + post)
        lines = []
        for i, g in enumerate(groups, 1):
            items = pick(c[FIELD[g]], rng, 3, 6) if qtype == "overview" else c[FIELD[g]]
            label = GROUP[g]
            if g == "treatment" and "first_line" in groups:
                label, items = "Other options", [t for t in items if t not in c["first_line"]]
            if qtype == "overview" and rng.random() < 0.5:
                lines.append(f"{i}. {label}: {join_items(items, rng)}")
                continue
            lines.append(f"{i}. {label}:")
            lines += [f"   {f'{i}.{j}' if numbered else '-'} {cap(it)}" for j, it in enumerate(items, 1)]
        return "\n".join(pre + lines + post)
    full = qtype in ("first_line", "early", "warning")
    items = c[FIELD[qtype]] if full else pick(c[FIELD[qtype]], rng, 3, 7)
    if not as_list:
        return " ".join(pre + [_wprose(c, qtype, n, items, rng)] + post)
    if silent and qtype == "symptoms":
        intro = rng.choice(template("silent_intro", "wiki"))
    else:
        intro = cap(rng.choice(template("intro", "wiki")).format(t=rng.choice(template(qtype, "wiki_topics")), n=n))
    upper = rng.random() < 0.6
    lines = [f"{f'{i}.' if numbered else '-'} {cap(it) if upper else it}" for i, it in enumerate(items, 1)]
    return "\n".join(pre + [intro] + lines + post)


def wikidoc_rows(knowledge: list[dict], rng: random.Random) -> list[dict]:
    """Build medical_meadow_wikidoc-style rows (encyclopedic question -> answer)."""
    questions, rows, seen = templates()["wiki_questions"], [], set()
    for c in knowledge:
        jobs = [
            (q, i)
            for q, qs in questions.items()
            if q in ("overview", "dx_tx") or c.get(FIELD[q])
            for i in range(len(qs))
        ]
        if c["name"] in FOCUS:
            probe = FOCUS[c["name"]]
            jobs += [(probe, i % len(questions[probe])) for i in range(WIKI_FOCUS_EXTRA)]
        for qtype, i in jobs:
            for _ in range(20):
                # The canonical wording always uses the table name, paraphrases sometimes an alias.
                question = cap(questions[qtype][i].format(n=name_of(c, rng, 0.0 if i == 0 else 0.25)))
                answer = _wiki_answer(c, qtype, name_of(c, rng), rng)
                if (question, answer) not in seen:
                    seen.add((question, answer))
                    rows.append({"instruction": WIKIDOC_INSTRUCTION, "input": question, "output": answer})
                    break
    rng.shuffle(rows)
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    keys = ("instruction", "input", "output")
    lines = [json.dumps({k: r[k] for k in keys}, ensure_ascii=False) for r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def write_corpus(out_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Regenerate ``chatdoctor.jsonl`` and ``wikidoc.jsonl`` in ``out_dir``; returns their paths by name."""
    knowledge = load_knowledge()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Separate streams so editing one generator does not reshuffle the other file.
    paths = {"chatdoctor": out_dir / "chatdoctor.jsonl", "wikidoc": out_dir / "wikidoc.jsonl"}
    _write_jsonl(paths["chatdoctor"], chatdoctor_rows(knowledge, random.Random(seed)))
    _write_jsonl(paths["wikidoc"], wikidoc_rows(knowledge, random.Random(seed + 1_000_003)))
    return paths
