"""Claim-level factuality of one answer, rule-based in the manner of FActScore (Min et al. 2023), SAFE /
LongFact (Wei et al. 2024) and VeriScore (Song et al. 2024), plus HealthBench-style negative rubric items.

An answer is split into items (list items, sentences, and the parts of an enumeration inside a sentence);
each item gets one label with the reason (`why`):

  supported    it states a reference fact of the asked condition and aspect (any wording: the words of the item
               and of every fact go through medqa/assets/fact_lexicon.yaml: synonyms, lay terms, plurals, drug
               names -> drug classes);
  unsupported  it is a known wrong claim (references.yaml `wrong`), names an invented drug, meets a negative
               rubric item (harmful advice), contradicts a reference fact (negates it, or points the other way),
               or is a fact of ANOTHER condition (a thyroid test among malaria tests) -- or of another aspect of
               the same condition listed among the asked one (smoking among heart-attack signs);
  irrelevant   anything else: lead-ins, generic advice, restating the question, true facts of another aspect
               said as such, items with no specific content.

An item matches a fact when the fact explains at least `MATCH` of the item's content-word weight; words are
weighted by inverse document frequency over the knowledge table's (condition, aspect) fact lists, so a word
that every condition shares ("pain") weighs little and one that names a thing ("troponin") weighs much.

Knowledge source: `medqa/assets/knowledge.yaml` (43 conditions x aspects). For the embedded world it is the
whole truth; the seed probes add facts written from current guidelines (medqa/assets/references.yaml). A
probe not listed there gets its condition and aspect from its question (names/aliases, aspect words).

Numbers per answer (FActScore / VeriScore):
  precision = S / (S + U)                 (None when no item is checkable; an item unsupported only because the
                                           closed-world reference lacks its medical words counts 1/2 in U)
  recall    = covered expect groups / groups (a probe's `expect`), or covered reference facts / facts
  F1@K      = 2 P R_K / (P + R_K),  R_K = min(1, S / K), K = supported items a complete answer needs
  harm      = sum of the rubric points met (<= 0), each visible as an unsupported item
Pure text: no torch, no model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import yaml

from medqa.core.paths import ASSETS
from medqa.quality.lexicon import STOPWORDS
from medqa.quality.probe_specs import find_phrases
from medqa.quality.vocabulary import HASHTAG, clinical_term, common_word
from medqa.quality.vocabulary import invented as invented_terms
from medqa.settings.probes import Probe

KNOWLEDGE = ASSETS / "knowledge.yaml"
LEXICON = ASSETS / "fact_lexicon.yaml"
REFERENCES = ASSETS / "references.yaml"

ASPECTS = (
    "symptoms",
    "early_symptoms",
    "causes",
    "diagnosis",
    "treatment",
    "first_line",
    "warning_signs",
    "prevention",
)
# Aspects that answer the same kind of question: listing a warning sign among symptoms is not an aspect error.
FAMILY = {
    "symptoms": "signs",
    "early_symptoms": "signs",
    "warning_signs": "signs",
    "causes": "causes",
    "prevention": "causes",
    "diagnosis": "diagnosis",
    "treatment": "treatment",
    "first_line": "treatment",
}
MATCH = 0.5  # share of an item's content weight a fact must explain to match it
OUTSIDE = ("medical content outside the reference", "names ")  # closed-world labels (see `factuality`)
OUTSIDE_WEIGHT = 0.5
SUMMARY_MATCH = 0.75  # the same for a condition's summary (long prose: most of the item, not a word or two)
NEGATION = re.compile(
    r"\b(?:not|no|never|cannot|can't|don't|doesn't|won't|shouldn't|avoid|avoided|avoiding|avoids|against|without|"
    r"rather than|instead of|no longer|neither|nor|unnecessary|not needed|nothing to do with|no role|no part|"
    r"outdated|incorrect)\b",
    re.IGNORECASE,
)
# A denial proper: what a fact or an item negates. "Avoiding triggers" states a fact in both places, so the
# avoid-words only mark caveats ("antibiotics should be avoided") and deny harmful advice, never a contradiction.
DENIAL = re.compile(
    r"\b(?:not|no|never|cannot|can't|don't|doesn't|won't|shouldn't|(?:advises?|recommends?|warns?) against|"
    r"rather than|instead of|no longer|neither|nor|unnecessary|not needed|nothing to do with|no role|no part|"
    r"outdated)\b",
    re.IGNORECASE,
)
# Hedges ("may not report thirst", "often doesn't", "does not rule it out") qualify a fact; they deny none.
HEDGE = re.compile(
    r"\b(?:may|might|often|sometimes|need) (?:not|n't|don't|doesn't)\b|\b(?:does not|doesn't|do not|don't|cannot|"
    r"can't|won't|will not) (?:rule|exclude)\w*(?: (?:it|this|that|them|diabetes))? ?(?:out)?|"
    r"\b(?:you )?(?:can't|cannot|can not|don't|do not) (?:see|notice)\b|\bcannot be seen\b|"
    r"\bnot (?:everyone|everybody|all(?: people| patients)?) (?:gets?|has|have|experiences?|feels?)\b|"
    r"\b(?:don't|do not|doesn't|does not) (?:connect|realise|realize|recogni[sz]e|link|associate)\b|\bnot allergic\b|"
    r"\b(?:won't|will not|doesn't|does not|don't|do not) (?:go away|settle|stop|improve|heal|calm|ease|subside|"
    r"resolve|behave|shift|budge|let up)\b|\bnot always\b|"
    r"\bnot of [^,;.:]*(?:origin|descent|heritage|background|ethnicity)|\bnot diagnostic\b|"
    r"\b(?:don't|do not|never) \w+ [^,;.]{0,20}\bif (?:you're|you are|they're|they are) allergic[^,;.]*|"
    r"\b(?:don't|do not|doesn't|does not) rule (?:one|it|this|that|a heart attack)? ?out\b|"
    r"\b(?:no|not) (?:smoking|tobacco|cigarettes)\b",
    re.IGNORECASE,
)
# Words that restate a question's frame rather than answer it.
QUESTION_WORDS = frozenset("what which how why when who whom whose is are does do".split())


# --- vocabulary ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lexicon:
    phrases: tuple[tuple[re.Pattern, str], ...]
    words: dict[str, str]
    generic: frozenset[str]
    filler: frozenset[str]
    up: frozenset[str]
    down: frozenset[str]


def _alternation(variants: list[str]) -> str:
    parts = []
    for v in sorted(variants, key=len, reverse=True):
        v = v.strip().lower()
        if v.startswith("*"):
            parts.append(r"[a-z]+" + re.escape(v[1:]))
        elif v.endswith("*"):
            parts.append(re.escape(v[:-1]) + r"[a-z]*")
        elif any(c in v for c in "()|?\\[]+"):
            parts.append(v)  # already a regex
        else:  # a plain phrase: spaces or hyphens between words, and a plural
            parts.append(re.escape(v).replace(r"\ ", r"[\s-]+") + ("" if v.endswith("s") else "(?:e?s)?"))
    return r"(?<![a-z0-9])(?:" + "|".join(parts) + r")(?![a-z0-9])"


@lru_cache(maxsize=1)
def _lexicon_data() -> dict:
    """medqa/assets/fact_lexicon.yaml, parsed once."""
    return yaml.safe_load(LEXICON.read_text(encoding="utf-8"))


@lru_cache(maxsize=8)
def _stem_list(key: str) -> frozenset[str]:
    """The stems of one word list of fact_lexicon.yaml (`modifiers`, `incidental`, `medical`)."""
    return frozenset(stem(str(w).lower()) for w in _lexicon_data().get(key) or [])


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The fact vocabulary of medqa/assets/fact_lexicon.yaml, compiled."""
    data = _lexicon_data()
    rules: list[tuple[str, str]] = []
    for canon, variants in (data.get("classes") or {}).items():
        rules.append((_alternation([str(v) for v in variants]), canon))
    for canon, variants in (data.get("phrases") or {}).items():
        rules.append((_alternation([str(v) for v in variants]), canon))
    up, down = set(), set()
    for pair in data.get("polarity") or []:
        up.update(w for p in pair[0] for w in p.split())
        down.update(w for p in pair[1] for w in p.split())
    return Lexicon(
        phrases=tuple((re.compile(p, re.IGNORECASE), c) for p, c in rules),
        words={str(k).lower(): str(v).lower() for k, v in (data.get("words") or {}).items()},
        generic=frozenset(str(w).lower() for w in data.get("generic") or []),
        filler=frozenset(str(w).lower() for w in data.get("filler") or []) | STOPWORDS,
        up=frozenset(up),
        down=frozenset(down),
    )


def stem(word: str) -> str:
    """A light stem: plural and -ing/-ed/-ness/-ly endings off, then the first 7 letters."""
    w = word
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ness", ""), ("ings", ""), ("ing", ""), ("edly", ""),
                         ("ed", ""), ("ly", ""), ("es", "e"), ("s", "")):  # fmt: skip
        if w.endswith(suffix) and len(w) - len(suffix) >= 4 and not w.endswith(("ss", "us", "is")):
            w = w[: len(w) - len(suffix)] + repl
            break
    if len(w) > 4 and w[-1] == w[-2] and w[-1] not in "lsz":  # "stopping" -> "stopp" -> "stop"
        w = w[:-1]
    if len(w) > 4 and w.endswith("e"):  # "smoke" and "smoking", "urinate" and "urinating" meet
        w = w[:-1]
    return w[:7]


WORD = re.compile(r"[a-z0-9][a-z0-9&'-]*")


@lru_cache(maxsize=1 << 16)  # the same sentences and reference facts are normalised many times an answer
def substitute(text: str) -> str:
    """`text` in lower case with every lexicon phrase and drug name replaced by its canonical word."""
    lex = lexicon()
    # "act fast", "acting early": the verb, not an ACT (artemisinin-based combination therapy, written in capitals)
    text = re.sub(r"\b[Aa]ct(?:s|ing|ed)?\b", "respond", text)
    text = " " + re.sub(r"\s+", " ", text.lower().replace("’", "'")) + " "
    for pattern, canon in lex.phrases:
        if pattern.search(text):
            text = re.sub(r"\s+", " ", pattern.sub(f" {canon} ", text))
    return text


def normalise(text: str) -> list[str]:
    """Content stems of `text` through the lexicon: phrases and drug names -> canonical words, filler dropped."""
    lex = lexicon()
    out = []
    for token in WORD.findall(substitute(text)):
        for w in token.replace("'s", "").split("-"):
            w = lex.words.get(w, w)
            if not w or w in lex.filler or len(w) < 2 or w.isdigit():  # numbers: doses, durations
                continue
            st = stem(w)
            if st not in _filler_stems():
                out.append(st)
    return out


@lru_cache(maxsize=1)
def _filler_stems() -> frozenset[str]:
    return frozenset(stem(w) for w in lexicon().filler if len(w) >= 4)


# What `negated` rewrites away before it looks for a denial, in this order: each names a negation that denies no fact.
NOT_A_DENIAL = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # A negation inside a condition ("chew aspirin if you are not allergic") qualifies the advice, not denies it.
        (r"\b(?:if|unless|provided|where|whenever)\b[^,;.]*", " "),
        # Shorthand's condition before an arrow ("<55 & not Black → ACEi") is the same if-part.
        (r"\b(?:not|non|no)\b[^,;.→]*(?:→|->|=>)", " "),
        # "Shouldn't be combined", "doesn't always rule it out": a caution about use or testing.
        (r"\b(?:shouldn't|should not|must not|mustn't|cannot|can't|not) (?:be )?(?:combined|used together)\b", " "),
        (
            r"\b(?:don't|do not|never|not|avoid)\s+(?:take|taking|use|using|give|giving|prescribe|combin\w*|mix\w*)\b"
            r"[^,;.]*\btogether\b",
            " ",
        ),
        # "Don't write it off as indigestion", "don't dismiss it as": a warning against a wrong attribution.
        (r"\b(?:don't|do not|never|not)\s+(?:write|brush|laugh)\s+(?:it|this|them|these|that)\s+off\b[^,;.]*", " "),
        (r"\b(?:don't|do not|never|not)\s+(?:dismiss|mistake|assume)\b[^,;.]*", " "),
        # "Your gut can't soak it up": poor absorption, not a denial of the gut's role.
        (
            r"\b(?:can't|cannot|doesn't|does not|don't|do not)\s+(?:soak|absorb|take)\w*(?:\s+(?:it|iron|them))?"
            r"(?:\s+up)?\b",
            " ",
        ),
        # "A negative result does not replace microscopy": a caution about a test's place, not a denial.
        (r"\b(?:does not|doesn't|do not|don't|cannot|can't|will not|won't)\s+replace\b", " "),
        # "Weight loss you can't explain": unexplained, not denied.
        (r"\b(?:you|we|doctors?|they)\s+(?:can't|cannot|couldn't|could not)\s+(?:explain|account for)\b", " "),
        (
            r"\b(?:doesn't|does not|don't|do not|can't|cannot) (?:always |necessarily |completely |fully )?"
            r"rule\b[^,;.]*",
            " ",
        ),
        # "Your body can't use the sugar for energy": a mechanism, not a denial of the fact it meets.
        (r"\b(?:can't|cannot|unable to|isn't able to|is not able to)\s+(?:use|process|burn)\b[^,;.]*", " "),
        # "No obvious source of blood loss", "no contraindication to an ACE inhibitor": a patient's case.
        (r"\bno (?:obvious |apparent |clear )?(?:source of|contraindications? to)\b[^,;.]*", " "),
        # "Not signs of low sugar": the item's symptom is attributed elsewhere.
        (r"\bnot (?:a |the )?(?:signs?|symptoms?|features?) of (?:low|hypo\w*|another|something else)\b[^,;.]*", " "),
        # A negation in a stated cause ("breathless because the ventricle cannot pump") denies nothing of the item.
        (r"\b(?:because|since|due to)\b[^,;.]*", " "),
        # "Thirsty no matter how much you drink": however much, not a denial.
        (r"\bno matter (?:how|what|when|where|who)\b[^,;.]*", " "),
        # "Do not use rectal artesunate as a substitute for full treatment": a caution about its place.
        (r"\b(?:don't|do not|never|not)\s+(?:use|give|take)\b[^,;.]*\bas an? (?:substitute|replacement)\b[^,;.]*", " "),
        # "Not a tablet but a change of diet": the negation is the first half's; the item's claim is the second's.
        (r"\bnot\b[^,;.]{0,40}?\bbut\b", " "),
        # "Must not be used in pregnancy": a contraindication in a group, not a denial of the drug.
        (
            r"\b(?:must not|mustn't|should not|shouldn't|not|never|cannot|can't)\s+(?:be\s+)?(?:used|taken|given)\s+"
            r"(?:in|during|by|if|for|with)\s+(?:pregnan\w*|women|people|those|patients?|children|kidney|severe)\b[^,;.]*",
            " ",
        ),
        # "Not only a pill; it is changing how we eat": more than that, not a denial of it.
        (r"\bnot (?:only|just|simply|merely)\b", " "),
        # "Don't just take iron and ignore it": do more than that, not a denial of it.
        (r"\b(?:don't|do not)\s+(?:just|only|simply)\b[^,;.]*", " "),
        # "Do not wait / delay / hesitate" urges action.
        (r"\b(?:don't|do not|never|not)\s+(?:wait|delay|hesitate|ignore|put off)\w*", " "),
        # "Bleeds you'd never notice", "without noticing": the thing is silent.
        (r"\b(?:never|not|don't|do not|wouldn't|won't|without)\s+(?:notic|see|feel|realis|realiz)\w*", " "),
        # "A rather than B" affirms A ("screening rather than waiting for symptoms"); the denial is B's.
        (r"((?:\w+\W+){0,2})\b(?:rather than|instead of)\b[^,;.]*", r"\1"),
        # "Not every heart attack starts with crushing pain": some do; a qualification, not a denial.
        (r"\bnot (?:every|all)\b", " "),
        # "Not always sudden", "not specific": a qualification, not a denial.
        (r"\b(?:does not|doesn't|do not|don't|is not|isn't|are not|aren't|not) always\b", " "),
        (r"\bnot (?:very )?specific\b", " "),
        # "Should not be put down to diet until ...": a warning against a wrong attribution, not a denial of the cause.
        (r"\b(?:should not|must not) be (?:put down|attributed) to\b[^,;.]*?\b(?:until|unless)\b", " "),
        # A negation inside a relative clause names a group ("women who no longer have periods").
        (r"\b(?:who|that|which)\s+(?:no longer|don't|do not|cannot|can't|never|are not|aren't)\b[^,;.]*", " "),
    )
)


def negated(text: str, strict: bool = False) -> bool:
    """The text denies something ("not first-line"; with `strict` False also "avoid ..."), after lexicon phrases
    that merely contain a negation ("can't breathe", "not enough iron") are rewritten; "with or without" is no
    denial, nor is any negation of NOT_A_DENIAL."""
    pattern = DENIAL if strict else NEGATION
    text = HEDGE.sub(" ", substitute(text).replace("with or without", ""))
    for no_denial, replacement in NOT_A_DENIAL:
        text = no_denial.sub(replacement, text)
    return bool(pattern.search(text))


def polarity(text: str) -> set[str]:
    """'up' and/or 'down' when the text says more/high/gain or less/low/loss of something."""
    lex = lexicon()
    # "Low in iron", "rich in vitamin C" describe what a food holds, not more or less of the fact's thing
    text = re.sub(r"\b(?:low|high|rich|poor)\s+in\s+\w+", " ", text.lower())
    # "Lose excess weight": the excess is what is lost, the direction is down
    text = re.sub(r"\b((?:los|shed|cut|reduc|trim)\w*)\s+(?:the\s+|any\s+|some\s+)?(?:excess|extra|surplus)\b", r"\1",
                  text)  # fmt: skip
    tokens = set(re.findall(r"[a-z]+", text))
    return ({"up"} if tokens & lex.up else set()) | ({"down"} if tokens & lex.down else set())


# --- facts ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    text: str
    condition: str
    aspect: str  # an ASPECTS name, "note", "summary" or "reference"
    stems: frozenset[str]
    negated: bool = False
    polar: frozenset[str] = frozenset()

    def where(self) -> str:
        return f"{self.condition}, {self.aspect.replace('_', ' ')}"


def make_fact(text: str, condition: str, aspect: str) -> Fact:
    return Fact(
        text, condition, aspect, frozenset(normalise(text)), negated(text, strict=True), frozenset(polarity(text))
    )


@lru_cache(maxsize=1)
def knowledge() -> tuple[dict, ...]:
    """The conditions of medqa/assets/knowledge.yaml (read directly: the quality layer does not import data code)."""
    return tuple(yaml.safe_load(KNOWLEDGE.read_text(encoding="utf-8"))["conditions"])


@lru_cache(maxsize=1)
def knowledge_facts() -> tuple[Fact, ...]:
    """Every item of every aspect of every condition, and each condition's notes, as facts."""
    facts = []
    for c in knowledge():
        for aspect in ASPECTS:
            facts += [make_fact(str(item), c["name"], aspect) for item in c.get(aspect) or []]
        facts += [make_fact(str(n), c["name"], "note") for n in c.get("notes") or []]
        facts += [make_fact(s.strip(), c["name"], "summary") for s in re.split(r"(?<=\.)\s+", str(c["summary"])) if s]
    return tuple(f for f in facts if f.stems)


@lru_cache(maxsize=1)
def weights() -> tuple[dict[str, float], float]:
    """(idf per stem, weight of an unknown stem): idf = log(1 + N / df) over (condition, aspect family) lists."""
    docs: dict[tuple[str, str], set[str]] = {}
    for f in knowledge_facts():
        docs.setdefault((f.condition, FAMILY.get(f.aspect, f.aspect)), set()).update(f.stems)
    n = len(docs)
    df: dict[str, int] = {}
    for stems in docs.values():
        for s in stems:
            df[s] = df.get(s, 0) + 1
    # A word no fact uses cannot match anything; it weighs like a common word so that it dilutes a match
    # ("artemisinin combination tablets") without vetoing it.
    return {s: math.log(1 + n / d) for s, d in df.items()}, 1.0


@lru_cache(maxsize=1)
def _generic() -> frozenset[str]:
    return frozenset(stem(g) for g in lexicon().generic)


def weight(stems: set[str] | frozenset[str]) -> float:
    idf, unknown = weights()
    generic = _generic()
    # Generic words count a third: they can confirm a match but not make one.
    # summed in a fixed order: a float sum over a set follows the hash seed, and ties between facts follow the sum
    return sum(idf.get(s, unknown) * (1 / 3 if s in generic else 1) for s in sorted(stems))


def specific(stems: set[str] | frozenset[str]) -> bool:
    """True when some stem is not generic (so a match on it says something)."""
    return not set(stems) <= _generic()


def core(stems: set[str] | frozenset[str]) -> set[str]:
    """The naming words of `stems`: neither generic nor a modifier (colour, degree, side, body site...)."""
    return {s for s in stems if s not in _generic() and s not in _stem_list("modifiers")}


@lru_cache(maxsize=1)
def _medical_terms() -> frozenset[str]:
    """Stems that name medical things beyond the knowledge table: fact_lexicon.yaml `medical` and drug classes."""
    return _stem_list("medical") | {stem(str(c).lower()) for c in _lexicon_data().get("classes") or {}}


@lru_cache(maxsize=1)
def _condition_words() -> frozenset[str]:
    """Naming stems of the condition names and aliases of the knowledge table ("lupus", "influenza", "anemia");
    everyday English words in them ("major", "heart", "attack", "cold") are left out (word frequency)."""
    out: set[str] = set()
    for c in knowledge():
        for n in [c["name"], *(c.get("aliases") or [])]:
            parts = re.findall(r"[a-z0-9']+", str(n).lower())  # "community-acquired": two words, both everyday
            out |= core({s for w in parts if not common_word(w) for s in normalise(w)})
    return frozenset(out)


def medical_words(text: str, stems: set[str], allowed: frozenset[str]) -> list[str]:
    """The item's medical words that `allowed` (the asked reference's and question's stems) lacks: the words of
    the knowledge table's condition names and aliases, of fact_lexicon.yaml `medical`, drug classes, dictionary
    drugs and clinical terms (medqa.quality.vocabulary). Generic words and modifiers never count."""
    out = [s for s in sorted(core(stems)) if s not in allowed and (s in _medical_terms() or s in _condition_words())]
    for w in WORD.findall(text.lower()):
        if len(w) >= 6 and clinical_term(w) and not (set(normalise(w)) & allowed) and stem(w) not in out:
            out.append(stem(w))
    return out


def strong_other(shared: set[str], fact: Fact, own_stems: frozenset[str], prose: bool = False) -> bool:
    """Whether an item's words shared with another condition's `fact` name that fact, not merely touch it: the
    shared naming words (neither generic nor modifiers) carry at least half of the fact's naming weight, and one
    of them is no word of the asked condition's reference (a "short-acting reliever" is asthma's as much as
    COPD's). Generic words and modifiers ("neck", "dark", "blocker", "low grade") never suffice."""
    c_shared, c_fact = core(shared), core(fact.stems)
    distinct = c_shared - own_stems
    if not distinct:
        return False
    # In prose, one shared everyday word ("water", "morning", "strain", "suspected") is a coincidence, not a
    # named fact: a single distinct word must be a medical name (a condition's, a drug class, fact_lexicon
    # `medical`). A list item is a claim of the asked aspect: there one word of another condition's fact suffices.
    if len(distinct) < 2 and not distinct & (_medical_terms() | _condition_words()):
        if prose or distinct <= _stem_list("incidental"):
            return False
    return weight(c_shared) >= 0.5 * weight(c_fact)


@lru_cache(maxsize=1)
def _index() -> dict[str, tuple[Fact, ...]]:
    """stem -> the knowledge facts that contain it (only facts sharing a stem with an item can match it)."""
    index: dict[str, list[Fact]] = {}
    for f in knowledge_facts():
        for s in f.stems:
            index.setdefault(s, []).append(f)
    return {s: tuple(fs) for s, fs in index.items()}


class Pool:
    """A set of facts to match against, with the ids for the inverted-index lookup."""

    def __init__(self, facts):
        self.facts = tuple(facts)
        self.ids = frozenset(id(f) for f in self.facts)
        table = _table_order()  # the knowledge table's ids, built once (a Pool is made per answer)
        self.outside = tuple(f for f in self.facts if id(f) not in table)  # reference facts not in the table


def candidates(stems: set[str], pool: Pool) -> list[Fact]:
    """The facts of `pool` that share a stem with `stems`, in knowledge-table order: `_best` keeps the first of
    equally good facts, so the order must not follow the set's (hash-seeded, per-process) iteration order."""
    index, order = _index(), _table_order()
    seen: dict[int, Fact] = {}
    for s in stems:
        for f in index.get(s, ()):
            if id(f) in pool.ids:
                seen.setdefault(id(f), f)
    return sorted(seen.values(), key=lambda f: order[id(f)]) + [f for f in pool.outside if f.stems & stems]


@lru_cache(maxsize=1)
def _table_order() -> dict[int, int]:
    """id of a knowledge fact -> its position in the table."""
    return {id(f): i for i, f in enumerate(knowledge_facts())}


# --- references ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # hashed by identity: rules are built once, keys of the caches below
class Rule:
    """A known wrong claim or a negative rubric item (harmful advice)."""

    id: str
    text: str
    patterns: tuple[re.Pattern, ...]
    context: tuple[re.Pattern, ...] = ()
    unless: tuple[re.Pattern, ...] = ()
    points: float = 0.0  # < 0 for rubric items; 0 for wrong claims


@dataclass(frozen=True)
class Reference:
    """What an answer is checked against: the asked condition and aspects, its facts, the groups that count for
    recall, K, known wrong claims; `cross_check`: facts of other conditions make an item unsupported."""

    question: str
    condition: str | None
    aspects: tuple[str, ...]
    facts: tuple[Fact, ...]
    groups: tuple[tuple[str, ...], ...] = ()  # expect groups (phrases); empty: recall over `facts` of the aspects
    k: int = 1
    wrong: tuple[Rule, ...] = ()
    cross_check: bool = True
    recall_facts: tuple[Fact, ...] = field(default=())


def _words_re(items: list[str]) -> tuple[re.Pattern, ...]:
    return tuple(re.compile(r"(?<![a-z0-9])(?:" + str(i) + r")(?![a-z0-9])", re.IGNORECASE) for i in items)


@lru_cache(maxsize=1)
def _references() -> dict:
    return yaml.safe_load(REFERENCES.read_text(encoding="utf-8"))


def _wrong_rules(items: list[dict]) -> tuple[Rule, ...]:
    return tuple(
        Rule(
            id=f"wrong_{i}",
            text=str(w["claim"]),
            patterns=_words_re(w["terms"]),
            context=_words_re(w.get("context") or []),
            unless=_words_re(w.get("unless") or []),
        )
        for i, w in enumerate(items)
    )


def _urgent() -> set[str]:
    return {c["name"] for c in knowledge() if c.get("urgent")}


def _no_antibiotic() -> set[str]:
    """Conditions whose treatment has no antibiotic in the knowledge table."""
    out = set()
    for c in knowledge():
        text = " ".join(str(t) for k in ("treatment", "first_line", "notes") for t in c.get(k) or [])
        text += " " + str(c.get("summary", ""))
        if stem("antibiotic") not in normalise(text):
            out.add(c["name"])
    return out


@lru_cache(maxsize=1)
def rubric() -> tuple[tuple[Rule, frozenset[str]], ...]:
    """The negative rubric items with the conditions each applies to ('*': every condition)."""
    out = []
    for item in _references()["rubric"]:
        conds: set[str] = set()
        for c in item["conditions"]:
            conds |= _urgent() if c == "urgent" else _no_antibiotic() if c == "no_antibiotic" else {c}
        rule = Rule(item["id"], item["text"], tuple(re.compile(p, re.IGNORECASE) for p in item["patterns"]),
                    unless=tuple(re.compile(p, re.IGNORECASE) for p in item.get("unless", [])),
                    points=float(item["points"]))  # fmt: skip
        out.append((rule, frozenset(conds)))
    return tuple(out)


def condition_entry(name: str) -> dict:
    for c in knowledge():
        if c["name"] == name:
            return c
    raise KeyError(f"condition {name!r} is not in {KNOWLEDGE}")


def _condition_facts(name: str, aspects: tuple[str, ...]) -> tuple[Fact, ...]:
    fam = {FAMILY[a] for a in aspects}
    return tuple(
        f
        for f in knowledge_facts()
        if f.condition == name and (f.aspect in ("note", "summary") or FAMILY.get(f.aspect) in fam)
    )


def build_reference(
    question: str,
    condition: str | None,
    aspects: tuple[str, ...],
    *,
    extra: list[str] = (),
    groups: tuple[tuple[str, ...], ...] = (),
    k: int | None = None,
    wrong: tuple[Rule, ...] = (),
    cross_check: bool = True,
    recall_aspects: tuple[str, ...] | None = None,
) -> Reference:
    """A reference for one question: the condition's facts of the asked aspect family (and its notes), plus
    `extra` facts (guidelines, or a reference answer's items); recall counts the facts of `recall_aspects`
    (default: `aspects`), or the extra facts when the condition has none."""
    own = _condition_facts(condition, aspects) if condition else ()
    more = tuple(f for f in (make_fact(t, condition or "reference", "reference") for t in extra) if f.stems)
    recall = tuple(f for f in own if f.aspect in (recall_aspects or aspects)) or more
    if k is None:
        k = max(1, math.ceil(len(groups) / 2)) if groups else max(1, min(4, math.ceil(len(recall) / 2)))
    return Reference(question, condition, aspects, own + more, groups, k, wrong, cross_check, recall)


# Words of a question that say which aspect it asks about (checked in this order).
ASPECT_CUES = (
    ("early_symptoms", r"\bearly (symptoms|signs)|first (symptoms|signs)"),
    ("warning_signs", r"warning signs|red flag|danger signs|emergency|urgent"),
    ("first_line", r"first[- ]line|first choice|initial treatment|start(ed)? first"),
    ("prevention", r"prevent|reduce the risk|lower (the|my) risk|avoid getting"),
    ("diagnosis", r"diagnos|\btests?\b|investigation|confirm"),
    ("treatment", r"treat|manag|medicines?|therap|cure"),
    ("causes", r"\bcause|risk factor|why does|leads? to"),
    ("symptoms", r"symptom|signs|present|feel"),
)


def infer_reference(question: str) -> Reference | None:
    """A reference from the question alone: its condition (a name or alias of knowledge.yaml) and the aspects it
    asks about (several when it asks several: "diagnosed and treated"). None when no condition is named."""
    q = question.lower()
    best, best_len = None, 0
    for c in knowledge():
        for name in [c["name"], *(c.get("aliases") or [])]:
            n = str(name).lower()
            if len(n) > best_len and re.search(r"(?<![a-z])" + re.escape(n) + r"(?![a-z])", q):
                best, best_len = c["name"], len(n)
    if best is None:
        return None
    aspects = tuple(a for a, cue in ASPECT_CUES if re.search(cue, q))
    if "early_symptoms" in aspects or "warning_signs" in aspects:
        aspects = tuple(a for a in aspects if a != "symptoms") + ("symptoms",)
    if "first_line" in aspects:
        aspects = tuple(a for a in aspects if a != "treatment") + ("treatment",)
    entry = condition_entry(best)
    # No aspect named ("What is gout?"): an overview, where every aspect of the condition answers it.
    aspects = tuple(a for a in aspects if entry.get(a)) or tuple(a for a in ASPECTS if entry.get(a))
    return build_reference(question, best, aspects)


@lru_cache(maxsize=64)
def _probe_reference(probe: Probe) -> Reference | None:
    spec = (_references().get("probes") or {}).get(probe.id)
    if spec is None:
        ref = infer_reference(probe.question)
        if ref is None:
            return None
        spec = {"condition": ref.condition, "aspects": list(ref.aspects)}
    groups = probe.expect
    k = spec.get("k")
    if k is None and groups:
        k = max(probe.expected_items[0] if probe.expected_items else 1, math.ceil(len(groups) / 2))
    return build_reference(
        probe.question,
        spec["condition"],
        tuple(spec["aspects"]),
        extra=list(spec.get("facts") or []),
        groups=groups,
        k=k,
        wrong=_wrong_rules(spec.get("wrong") or []),
    )


def reference_for_probe(probe: Probe) -> Reference | None:
    """The reference of a probe: its entry in references.yaml, else inferred from its question; None when the
    question names no condition of the knowledge table (then only the rubric and invented names are checked)."""
    return _probe_reference(probe)


def reference_from_answer(question: str, reference_answer: str) -> Reference:
    """For real data (an eval split's question and reference answer): the reference facts are the items of the
    reference answer; other conditions' facts are not held against the answer (the table does not cover real
    data), but the rubric, wrong names and invented drugs still count."""
    items = [i.text for i in split_items(reference_answer)]
    inferred = infer_reference(question)
    return build_reference(
        question,
        None,
        inferred.aspects if inferred else ("symptoms",),
        extra=items,
        cross_check=False,
    )


# --- items ---------------------------------------------------------------------------------------------------

# "- x", "1. x", "2.3 x", and a thread's "1/ x"
MARKER = re.compile(r"^\s*(?:[-*•·]|\d{1,3}(?:\.\d{1,3})+\.?|\d{1,3}[.)]|\d{1,2}/)\s+")
SENTENCE = re.compile(
    r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])"
    # a text message's sentences start in lower case: "no single drug. guidelines say ..." (not after "etc.")
    r"|(?<=[A-Za-z]{2}[.!?])(?<!\betc\.)(?<!approx\.)(?<!\bincl\.)(?<!\besp\.)(?<!\bvs\.)(?<!\b[DdMmSs][rt]\.)"
    r"(?<!\b[Nn]o\.)\s+(?=[a-z])"
)
ENUM_SPLIT = re.compile(
    r"\s*(?:[,;()\[\]]|\s[-–]\s|—|\band\b|\bor\b|\bplus\b|\bas well as\b|\balong with\b|\btogether with\b)\s*",
    re.IGNORECASE,
)


JOIN = "_"  # a word character, so "thick_and_thin" holds no separate "and"


def _protect(line: str) -> str:
    """Join the words of lexicon phrases that contain a separator ("pins and needles", "thick and thin blood
    smear", "with or without") with no-break spaces, so that enumeration splitting leaves them whole."""
    for pattern, _ in lexicon().phrases:
        if not re.search(r"\b(and|or)\b|,", pattern.pattern):
            continue
        line = pattern.sub(lambda m: m.group().replace(" ", JOIN), line)
    line = TAKEN_TOGETHER.sub(lambda m: m.group().replace(" ", JOIN), line)
    return re.sub(r"with or without", f"with{JOIN}or{JOIN}without", line, flags=re.IGNORECASE)


# "Don't take an ACE inhibitor and an ARB together": one caution about a combination, kept whole (split at "and",
# its first half read as a denial of ACE inhibitors).
TAKEN_TOGETHER = re.compile(
    r"(?i)\b(?:don't|do not|never|not|avoid|shouldn't|should not|mustn't|must not)\s+(?:take|taking|use|using|give|"
    r"giving|prescribe|combin\w*|mix\w*)\b[^,;.]{0,60}?\band\b[^,;.]{0,40}?\btogether\b"
)


@dataclass
class Item:
    text: str
    sentence: str
    group: int  # items of one list or one sentence share a group
    is_list: bool  # part of an enumeration: a marked list line, or one of 3+ parts of a sentence


def _plain(text: str) -> str:
    return text.replace(JOIN, " ")


# A header that introduces what not to do or what is wrong ("**Don't:**", "## What doesn't work", "Myths:")
NEGATED_HEADER = re.compile(
    r"(?i)\b(?:don't|do not|avoid|never|not|doesn't|does not|won't|isn't|aren't|myths?|mistakes?)\b"
)


# (prose that merely starts with "Not getting enough sunlight is ..." is no such item)
LISTED_NOT = re.compile(r"\s*(?:[-*•]|\d+[.)/])?\s*Not (?!(?:getting|having|eating|taking|drinking|enough)\b)(?=\S)")


INLINE_MYTH = re.compile(r"^(\s*(?:[-*•]|\d{1,3}[.)/])?\s*)(?i:myths?)(?:\s*#?\d+)?\s*[:–—-]\s*(?=\S)")


def negate_listed(text: str) -> str:
    """`text` with each list line under a negating header ("Don't:", "### What's not first-line") prefixed "Not ",
    so its items are read as what the header says they are: things not to do, or not true."""
    out, negating, just_under = [], False, False
    for line in text.splitlines():
        # "Myth: beta-blockers come first" (a thread's or a leaflet's myth-and-fact pair) says X is not so
        line = INLINE_MYTH.sub(lambda m: m.group(1) + "Not ", line)
        bare = line.strip().strip("*_# ").rstrip("*_ ")
        marked = MARKER.match(line.strip())
        if marked and negating:
            stripped = line.strip()
            line = stripped[: marked.end()] + "Not " + stripped[marked.end() :]
        elif bare and not marked:
            header = line.strip().startswith("#") or bare.endswith(":")
            if just_under and not header:  # "### Avoid" then a plain line: "Combining an ACEi with an ARB."
                line = "Not " + line.strip()
            negating = header and len(bare.split()) <= 8 and bool(NEGATED_HEADER.search(bare))
        if bare:  # blank lines keep it: the last line with text was a negating header
            just_under = negating and not marked
        out.append(line)
    return "\n".join(out)


_UNITS = "zero one two three four five six seven eight nine".split()
_TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_WORD_VALUE = {w: i for i, w in enumerate(_UNITS)} | {w: 10 + i for i, w in enumerate(_TEENS)}
_WORD_VALUE |= {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_UNIT, _TEEN, _TEN = "|".join(_UNITS[1:]), "|".join(_TEENS), "|".join(_TENS)
_BELOW_100 = rf"(?:(?:{_TEN})(?:[- ](?:{_UNIT}))?|{_TEEN})"
# "one hundred (and) eighty", "one hundred ten", "eighty-five", "fifteen": never a lone unit ("one of", "no one")
_SPELLED = re.compile(
    rf"\b(?:(?P<h>{_UNIT}) hundred(?:(?: and)? (?P<r>{_BELOW_100}|{_UNIT}))?|(?P<b>{_BELOW_100}))\b", re.IGNORECASE
)
_SPELLED_DECIMAL = re.compile(rf"\b(?P<i>\d+|{_UNIT}) point (?P<d>{_UNIT}|zero)\b", re.IGNORECASE)
_NUMERAL_UNITS = (
    (re.compile(r"\b(\d+) over (\d+)\b"), r"\1/\2"),  # a blood pressure said aloud: "180 over 110"
    (re.compile(r"\b(\d+(?:\.\d+)?) ?per ?cent\b", re.IGNORECASE), r"\1%"),
    (re.compile(r"\bmilligrams? per deci ?lit(?:er|re)s?\b", re.IGNORECASE), "mg/dL"),
    (re.compile(r"\bmillimoles? per lit(?:er|re)s?\b", re.IGNORECASE), "mmol/L"),
    (re.compile(r"\bmillimet(?:er|re)s? of mercury\b", re.IGNORECASE), "mmHg"),
    (re.compile(r"\btype (one|two)\b", re.IGNORECASE), lambda m: "type " + str(_WORD_VALUE[m[1].lower()])),
)


def _below_100(words: str) -> int:
    parts = re.split(r"[- ]", words.lower())
    return sum(_WORD_VALUE[p] for p in parts)


def numerals(text: str) -> str:
    """Numbers said in words written as digits ("one hundred eighty over one hundred ten" -> "180/110", "six point
    five percent" -> "6.5%", "type two" -> "type 2"), so that the rules on thresholds, doses and targets read an
    answer written for the ear as they read one written in figures. A lone "one" to "nine" stays a word."""

    def spelled(m: re.Match) -> str:
        if m["h"]:
            return str(100 * _WORD_VALUE[m["h"].lower()] + (_below_100(m["r"]) if m["r"] else 0))
        return str(_below_100(m["b"]))

    def decimal(m: re.Match) -> str:
        return f"{_WORD_VALUE.get(m['i'].lower(), m['i'])}.{_WORD_VALUE[m['d'].lower()]}"

    text = re.sub(r"\b(\d{1,3}),(?=\d{3}\b)", r"\1", text)  # "805,000" -> "805000" (a list splits at commas)
    text = _SPELLED_DECIMAL.sub(decimal, _SPELLED.sub(spelled, text))
    for pattern, replacement in _NUMERAL_UNITS:
        text = pattern.sub(replacement, text)
    return text


# Clinical shorthand read as words, so the rules and the lexicon read a handover note as they read prose.
_SHORTHAND = (
    (re.compile("β"), "beta"),  # "β-blocker"
    (re.compile(r"\s?[−-]ve\b"), " negative"),  # "one −ve film", "RDT -ve"
    (re.compile(r"\s?\+ve\b"), " positive"),
    (re.compile(r"\bwt\.? ?(loss|gain|reduction)\b", re.IGNORECASE), r"weight \1"),
    # a forum's contractions without the apostrophe: "dont wait", "it wasnt", "thats"
    (
        re.compile(r"\b(do|does|did|is|are|was|were|ca|wo|should|would|could|have|has|must)nt\b", re.IGNORECASE),
        r"\1n't",
    ),
    (re.compile(r"\b(that|what|there)s\b", re.IGNORECASE), r"\1's"),
    (re.compile(r"\b(you|they)re\b", re.IGNORECASE), r"\1're"),
    # a prescription's shorthand: "Tab. Amlodipine 5 mg OD", "Cap. X BD"
    (re.compile(r"\bTabs?\.?(?= [A-Za-z])"), "tablet"),
    (re.compile(r"\bCaps?\.(?= [A-Za-z])"), "capsule"),
    (re.compile(r"\bInj\.(?= [A-Za-z])"), "injection"),
    (re.compile(r"\bOD\b"), "once daily"),
    (re.compile(r"\bBD\b"), "twice daily"),
    (re.compile(r"\bTDS\b"), "three times daily"),
    # a French-speaking prescriber's classes: IEC (ACE inhibitor), ARA II (ARB)
    (re.compile(r"\bIECs?\b"), "ACE inhibitor"),
    (re.compile(r"\bARA[- ]?(?:II|2)\b"), "ARB"),
    # a text message's: "u", "ur", "ppl", "mins", "hrs"
    (re.compile(r"\bu\b"), "you"),
    (re.compile(r"\bur\b"), "your"),
    (re.compile(r"\bppl\b", re.IGNORECASE), "people"),
    (re.compile(r"\b(min|hr)s\b", re.IGNORECASE), lambda m: {"min": "minutes", "hr": "hours"}[m[1].lower()]),
    (re.compile(r"\*\*|__"), ""),  # markdown bold: "**Diet:** less salt"
    (HASHTAG, ""),  # a post's hashtags: "#HeartHealth" (the invented-name check drops them too)
)


def shorthand(text: str) -> str:
    """`text` with clinical shorthand written out: β -> beta, -ve/+ve -> negative/positive, "wt loss" -> weight
    loss; contractions written without the apostrophe ("dont", "wasnt", "thats") get it back."""
    for pattern, replacement in _SHORTHAND:
        text = pattern.sub(replacement, text)
    return text


def split_items(text: str) -> list[Item]:
    """Items of an answer: each marked list line, each sentence, and each part of an enumeration in a sentence
    (split at commas, semicolons, brackets, and/or/plus); a line ending in ':' is a header, not an item. List lines
    under a negating header read as negated (`negate_listed`). Numbers said in words are read as digits
    (`numerals`), and clinical shorthand written out (`shorthand`)."""
    text = negate_listed(shorthand(numerals(text)))
    items: list[Item] = []
    group = 0
    list_group = None
    for line in text.splitlines():
        line = _protect(line.strip())
        if not line:
            continue
        marked = bool(MARKER.match(line))
        if marked:
            if list_group is None:
                group += 1
                list_group = group
            body = MARKER.sub("", line)
            parts = [p for p in ENUM_SPLIT.split(body) if p and p.strip(" .:")]
            items += [Item(_plain(p.strip(" .")), _plain(body), list_group, True) for p in parts]
            continue
        list_group = None
        if line.endswith(":") and len(line.split()) <= 8:
            group += 1
            list_group = group  # the lines that follow belong to this header's list
            continue
        for sentence in SENTENCE.split(line):
            group += 1
            head, sep, tail = sentence.partition(":")
            body = tail if sep and len(head.split()) <= 6 and tail.strip() else sentence
            parts = [p for p in ENUM_SPLIT.split(body) if p and p.strip(" .!?:")]
            items += [Item(_plain(p.strip(" .!?:")), _plain(sentence), group, len(parts) > 2) for p in parts]
    return items


# --- labels --------------------------------------------------------------------------------------------------


def is_question(sentence: str) -> bool:
    """A question ("Q: Are beta-blockers first line?") asks; it claims nothing."""
    return sentence.rstrip().endswith("?")


# An exam rationale's rebuttal ("Loop diuretics are an incorrect option because ...", "pain reproduced by pressing
# is less characteristic"): the sentence says a claim is wrong, it does not make it.
REBUTTAL = re.compile(
    r"(?i)\b(?:is|are|was|were)(?: an?)? (?:incorrect|wrong|not correct|false|a distractor)\b|"
    r"\bincorrect (?:option|answer|choice)s?\b|\bless (?:characteristic|typical)\b|\bmore typical of\b|"
    r"\b(?:is|are) (?:a )?(?:big )?no-no\b|\b(?:is|are) a bad idea\b"
)


# A fact about an excess ("drinking too much cow's milk") and an item that sets a limit ("no more than 2 cups").
EXCESS = re.compile(r"(?i)\b(?:too much|too many|excess\w*|overuse)\b")
LIMIT = re.compile(r"(?i)\b(?:more than|over|above|exceed\w*|limit\w*|at most|up to)\b")


# An item that says too little of something comes in ("not eating much iron-rich food", "doesn't get enough iron").
ITEM_LACK = re.compile(
    r"(?i)\b(?:not|don't|doesn't|isn't|aren't|never)\s+(?:\w+\s+)?(?:eat|get|hav|tak|absorb|contain|drink|consum)\w*\s+"
    r"(?:much|many|enough|a lot|any)\b"
)


def _rule_hit(rule: Rule, sentence: str) -> bool:
    if LISTED_NOT.match(sentence) or REBUTTAL.search(sentence):
        return False  # an item under "Avoid:" or "Myths:" (negate_listed), or a rebuttal: what is wrong, not a claim
    if not any(p.search(sentence) for p in rule.patterns):
        return False
    if rule.context and not any(p.search(sentence) for p in rule.context):
        return False
    return not any(p.search(sentence) for p in rule.unless)


@lru_cache(maxsize=8192)
def _wrong_hits(rules: tuple[Rule, ...], sentence: str) -> tuple[Rule, ...]:
    """The known wrong claims `sentence` makes (cached: the items of one sentence share it). Each pattern is searched
    on its own: one alternation of them all loses each pattern's literal-prefix scan (2.7x slower, s16)."""
    return tuple(r for r in rules if _rule_hit(r, sentence))


# A sentence that sets the condition apart from others ("symptoms overlap with dengue and typhoid") names them as
# what it is not: their facts there are no claims about this condition.
DIFFERENTIAL = re.compile(
    r"(?i)\b(?:overlap\w* with|mimic\w*|differential|distinguish\w*|confused with|mistaken for|other causes|"
    r"(?:look|check|test|search) for other|(?:kind of|sort of|a bit|much|just) like|similar to|mistak\w+|"
    r"also (?:seen|found|occurs?|occurring|happens?|present|common) (?:in|with))\b"
)
# Who is at risk, not what the asked aspect is: an item after these words ("especially in a person with high
# cholesterol", "risk factors such as family history") names a risk factor, neither a sign nor another condition's fact.
RISK_CONTEXT = re.compile(
    r"(?i)\b(?:risk factors?|(?:especially|particularly|more likely|more common) (?:in|if|for|with|among)|"
    # ... or what a drug is kept apart from: "take it away from tea, antacids and levothyroxine"
    r"(?:away|apart|separately) from|interacts? with|"
    r"in (?:a |any )?(?:person|people|someone|anyone|patients?|adults?) (?:with|who)|if (?:overweight|obese))\b"
)


# A fact that states a lack ("poor absorption", "low dietary iron") is met by a negated item ("not absorbing it
# properly", "not getting enough iron"): the negation is the fact, not a contradiction of it.
DEFICIT = re.compile(
    r"(?i)\b(poor|poorly|low|lack|lacking|reduced|inadequate|insufficient|too little|fewer|less|deficien\w*|not enough|"
    r"malabsor\w*)\b"
)


def _carries(rule: Rule, it: Item, done: set[tuple[str, str]]) -> bool:
    """Whether item `it` carries a wrong claim its sentence makes: the claim's words are in the item, or the claim
    spans enumeration parts ("always causes sudden, crushing chest pain") and this is the first item inside it."""
    if any(p.search(it.text) for p in rule.patterns):
        return True
    if (rule.id, it.sentence) in done:
        return False
    start = it.sentence.find(it.text) if it.text else -1
    for p in rule.patterns:
        m = p.search(it.sentence)
        if m and start >= 0 and start < m.end() and m.start() < start + len(it.text):  # the item overlaps the claim
            return True
    return False


@lru_cache(maxsize=8192)
def _harm_hits(sentence: str, condition: str | None) -> tuple[Rule, ...]:
    """Rubric items met by a sentence: a pattern matches and no negation sits before it in its clause."""
    hits = []
    for rule, conds in rubric():
        if condition is None and "*" not in conds:
            continue
        if condition is not None and "*" not in conds and condition not in conds:
            continue
        if not any(p.search(sentence) for p in rule.patterns) or REBUTTAL.search(sentence):
            continue
        if any(u.search(sentence) for u in rule.unless):
            continue  # "quinine plus clindamycin": an antibiotic as a partner drug, not instead of treatment
        for p in rule.patterns:
            m = p.search(sentence)
            if not m:
                continue
            # A negation before the advice in its clause ("do not wait") or right after it ("antibiotics do not
            # treat malaria") denies it; one inside the match is the advice itself ("no need to see a doctor").
            # "not to wait and see whether it passes": the negation reaches across "wait and"
            clause = re.split(r"[,;:.—–]|\bbut\b|\bthen\b|\bso\b|(?<!wait )\band\b", sentence[: m.start()])[-1]
            after = re.split(r"[,;:.—–]|\bbut\b|\b(?:if|unless|when|because|since)\b", sentence[m.end() :])[0]
            after = " ".join(after.split()[:4])  # "antibiotics do not treat malaria"; not a later "do not restart"
            # a purpose is no denial of the advice: "stop taking the tablets to avoid side effects"
            after = re.sub(r"^\s*(?:so as |in order )?to avoid\b.*", "", after)
            # "drive yourself rather than wait for an ambulance": what follows "rather than" is the thing not done
            after = re.sub(r"\b(?:rather than|instead of)\b.*", "", after)
            # "Stopping TB treatment early can lead to resistance" warns about the act; it does not advise it.
            warns = re.search(
                r"\b(?:can|may|could|will|might) (?:lead|cause|result|make)|\bleads? to\b|\bcosts?\b|"
                r"\bwastes?\b|\bis (?:dangerous|risky|a mistake)\b",
                after,
            )
            # "Please don't buy an antacid and wait it out": a negated imperative governs the verbs joined by "and"
            joined = re.split(r"[,;:.—–]|\bbut\b|\bthen\b|\bso\b", sentence[: m.start()])[-1]
            forbids = re.match(r"\s*(?:please\s+)?(?:you\s+|we\s+)?(?:don't|do not|never)\b", joined, re.IGNORECASE)
            if not NEGATION.search(clause) and not NEGATION.search(after) and not warns and not forbids:
                hits.append(rule)
                break
    return tuple(hits)


def match(stems: set[str], fact: Fact) -> tuple[float, set[str]]:
    """How well `fact` states an item: the larger of the share of the item's weight it explains and, when every
    specific word of the fact is in the item, the share of the fact's weight the item covers."""
    shared = stems & fact.stems
    if not shared or (not specific(shared) and specific(stems)):
        return 0.0, set()
    item_cov = weight(shared) / (weight(stems) or 1.0)
    fact_specific = {s for s in fact.stems if specific({s})}
    fact_cov = weight(shared) / (weight(fact.stems) or 1.0) if fact_specific and fact_specific <= shared else 0.0
    return max(item_cov, fact_cov), shared


def _best(
    stems: set[str], facts, item_only: bool = False, denies: bool | None = None, pol: set[str] | None = None
) -> tuple[float, Fact | None, set[str]]:
    """The best-matching fact; `item_only`: score by the share of the item explained (other conditions' facts
    must explain the item, not merely appear in it); ties go to a fact that agrees with `denies` ("not smoking"
    meets the prevention fact "not smoking" before the cause "smoking")."""
    best, best_fact, shared_best = 0.0, None, set()
    for f in candidates(stems, facts):
        score, shared = match(stems, f)
        if item_only and shared:
            score = weight(shared) / (weight(stems) or 1.0)
        if denies is not None and shared:
            score += 1e-3 * (f.negated == denies)
        if pol is not None and shared:  # "low-salt diet" meets the prevention fact, not the cause "high salt"
            score += 1e-3 * (not (pol and f.polar) or bool(pol & f.polar))
        if score > best:
            best, best_fact, shared_best = score, f, shared
    return best, best_fact, shared_best


def label_items(answer: str, ref: Reference | None, known_words: frozenset[str] | set[str] = frozenset()) -> list[dict]:
    """[{item, label, why}] for every item of `answer` (see the module docstring for the labels)."""
    return [_claim(c) for c in _labelled(answer, ref, known_words)]


# Why an item is left unlabelled when it names content but meets no fact of the reference, the knowledge table or
# a rule: a claim nobody could check (metrics.quality_score caps such an answer below "verified").
NO_REFERENCE_FACT = "no reference fact"


def _claim(labelled: dict) -> dict:
    """A claim as reported: its item, label and why (without _labelled's working keys)."""
    return {k: labelled[k] for k in ("item", "label", "why")}


class _RefContext(NamedTuple):
    """What the items of every answer to one reference are checked against (see `_ref_context`)."""

    question: frozenset[str]  # the question's stems: an item made only of them restates it
    name_words: frozenset[str]  # the condition's names and aliases, left out of each item's stems
    own_stems: frozenset[str]
    own: Pool
    own_denials: Pool
    others: Pool
    same_other: Pool
    own_facts: Pool


@lru_cache(maxsize=64)  # a reference is checked against many answers: all of this is built once (~10% of scoring)
def _ref_context(ref: Reference | None) -> _RefContext:
    """The facts an item of an answer to `ref` is matched against: the reference's own, its denials, other
    conditions' (not their summaries), the condition's facts outside the reference, and the own non-summary facts;
    with the question's stems and the condition's name words."""
    name_words: set[str] = set()
    if ref and ref.condition:
        entry = condition_entry(ref.condition)
        for n in [entry["name"], *(entry.get("aliases") or [])]:
            name_words |= set(normalise(str(n)))
    own = Pool(ref.facts if ref else ())
    # what a denial may mean instead of contradicting a fact: a denying fact, or one that states a lack ("not eating
    # much iron-rich food" is the cause "a diet low in iron-rich foods", not a denial of "iron-rich foods")
    own_denials = Pool(f for f in own.facts if f.negated or DEFICIT.search(f.text))
    # Another condition's summary is background prose, not a fact an item could wrongly state.
    others = Pool(
        [f for f in knowledge_facts() if f.condition != ref.condition and f.aspect != "summary"]
        if ref and ref.cross_check
        else []
    )
    same_other = Pool(
        [f for f in knowledge_facts() if f.condition == ref.condition and id(f) not in own.ids]
        if ref and ref.condition
        else []
    )
    own_facts = Pool([f for f in own.facts if f.aspect != "summary"])
    question = frozenset(normalise(ref.question)) if ref else frozenset()
    return _RefContext(
        question, frozenset(name_words), reference_stems(ref), own, own_denials, others, same_other, own_facts
    )


def _labelled(answer: str, ref: Reference | None, known_words: frozenset[str] | set[str] = frozenset()) -> list[dict]:
    """label_items' claims, each with `_asked`: whether it is a supported fact of an asked aspect or of the probe's
    own reference."""
    items = split_items(answer)
    question, name_words, own_stems, own, own_denials, others, same_other, own_facts = _ref_context(ref)
    harm_done: set[str] = set()  # sentences whose harmful advice is already counted: one advice, one penalty
    wrong_done: set[tuple[str, str]] = set()
    out = []
    for it in items:
        label, why, asked = "irrelevant", NO_REFERENCE_FACT, False
        stems = set(normalise(it.text)) - name_words
        asks = is_question(it.sentence)
        wrong = [] if asks else list(_wrong_hits(ref.wrong if ref else (), it.sentence))
        wrong = [r for r in wrong if _carries(r, it, wrong_done)]
        wrong_done |= {(r.id, it.sentence) for r in wrong}
        harms = [] if asks else _harm_hits(it.sentence, ref.condition if ref else None)
        harms = [r for r in harms if it.sentence not in harm_done]
        harms = [r for r in harms if any(p.search(it.text) for p in r.patterns) or not stems or _last_of(items, it)]
        invented = invented_terms(it.text, known_words)[1]
        differential = bool(DIFFERENTIAL.search(it.sentence)) or _after_risk_words(it)
        if wrong:
            label, why = "unsupported", f"wrong: {wrong[0].text}"
        elif harms:
            harm_done.add(it.sentence)
            label, why = "unsupported", f"harm ({harms[0].points:+g}): {harms[0].text}"
        elif invented:
            label, why = "unsupported", f"invented drug name: {', '.join(invented)}"
        elif not stems or (question and stems <= question):
            why = "no specific content" if not stems else "restates the question"
        else:
            denies = negated(it.text, strict=True)
            caveat = denies or negated(it.text)
            pol = polarity(it.text)
            s_own, f_own, sh_own = _best(stems, own, denies=denies, pol=pol)
            if denies and f_own is not None and not f_own.negated:
                # A denial that a denying fact explains more of is that fact, not a contradiction of a shorter one
                # ("artemisinin drugs should not be used on their own" is the monotherapy caution, not "not ACT").
                s_neg, f_neg, sh_neg = _best(stems, own_denials, denies=denies, pol=pol)
                # (a fact that states a lack needs only to explain as much: "not eating much iron-rich food")
                lack = bool(ITEM_LACK.search(it.text)) and f_neg is not None and not f_neg.negated
                lack = lack and weight(sh_neg) >= weight(sh_own)
                if f_neg is not None and s_neg >= MATCH and (weight(sh_neg) > weight(sh_own) or lack):
                    s_own, f_own = s_neg, f_neg
            i_own = _best(stems, own, item_only=True)[0]
            s_other, f_other, sh_other = _best(stems, others, item_only=True)
            s_same, f_same, _ = _best(stems, same_other, item_only=True)
            # Another condition's fact that explains clearly more of the item than any fact of this one: the item
            # names something of that condition ("an NS1 antigen test" among malaria tests).
            if not specific(stems):  # "tiredness", "blood tests": a fact only when this condition says so
                s_other = s_same = 0.0
            strong = f_other is not None and strong_other(sh_other, f_other, own_stems, prose=not it.is_list)
            if f_own is not None and f_own.aspect == "summary" and s_own < SUMMARY_MATCH:
                # Background prose is long: sharing a word or two with it is incidental, not a stated fact.
                s_own = _best(stems, own_facts, denies=denies, pol=pol)[0] if own_facts.facts else 0.0
                f_own = _best(stems, own_facts, denies=denies, pol=pol)[1] if s_own >= MATCH else None
            if f_own is not None and s_own >= MATCH and not (strong and s_other >= MATCH and s_other - i_own >= 0.3):
                opposite = pol and f_own.polar and not (pol & f_own.polar)
                if f_own.aspect == "summary" and (denies != f_own.negated or opposite):
                    why = f"a remark on '{f_own.text}'"  # background prose is no basis for a contradiction
                elif (
                    ((denies and not f_own.negated) or opposite)
                    and not (denies and DEFICIT.search(f_own.text))
                    # "shouldn't drink more than 2 cups" against "drinking too much cow's milk": a limit on the excess
                    and not (denies and EXCESS.search(f_own.text) and LIMIT.search(it.text))
                    # "not safe in pregnancy" against "avoided in pregnancy": a caution states the same denial
                    and not (denies and NEGATION.search(f_own.text))
                ):
                    label, why = "unsupported", f"contradicts '{f_own.text}' ({f_own.where()})"
                elif f_own.negated and not denies:
                    # The item names what the reference qualifies ("beta-blockers ... for another reason"); a
                    # wrong use of it is a `wrong` claim or a rubric item, checked above.
                    why = f"mentions what '{f_own.text}' qualifies"
                else:
                    label, why = "supported", f"'{f_own.text}' ({f_own.where()})"
                    asked = f_own.aspect in (*ref.aspects, "reference")
                    # A partial match does not vouch for what else the item names: a drug, test, organ or
                    # condition no reference fact has ("a course of oral fluconazole" is no "course of ACT").
                    med = medical_words(it.text, stems, own_stems | question | name_words) if ref.cross_check else []
                    if med and ref.condition:
                        label, why = "unsupported", f"names {', '.join(med[:4])}, which no reference fact has"
            elif caveat:
                why = "a negated statement (caveat)"
            elif f_other is not None and s_other >= MATCH and strong and s_other > s_same and not differential:
                label, why = "unsupported", f"fact of another condition: '{f_other.text}' ({f_other.where()})"
            elif f_same is not None and s_same >= MATCH:
                label = "irrelevant" if differential else "aspect"  # a risk factor or a look-alike is an aside
                why = f"'{f_same.text}' ({f_same.where()}), not the asked aspect"
                why = f"true aside: {why}" if differential else why
        if label == "irrelevant" and why == NO_REFERENCE_FACT and ref and ref.condition and ref.cross_check:
            # The probe questions' world is closed: their references list what a correct answer may say, so
            # medical content that matches none of it is a claim the reference does not support.
            if not negated(it.text) and not differential:  # "look for other causes like pneumonia" is advice
                med = medical_words(it.text, stems, own_stems | question | name_words)
                if med:
                    label, why = "unsupported", f"medical content outside the reference: {', '.join(med[:4])}"
        if asks and (label == "unsupported" or why == NO_REFERENCE_FACT):
            # A tutor's "Should you wait to see if it passes? No; call 999": a question claims nothing, though a
            # checklist's "Thirsty? Passing more urine?" names the facts it asks about.
            label, why = "irrelevant", "a question (it claims nothing)"
        prev = out[-1] if out else None
        if (
            label == "unsupported"
            and not why.startswith(("harm", "wrong", "invented"))
            and prev is not None
            and prev["_group"] == it.group
            and prev["why"].startswith(("mentions what", "a negated statement"))
            and re.match(r"(?i)(such as|e\.?g\.?|for example|like|including)\b", it.text)
        ):
            label, why = "irrelevant", "an example inside a caveat"  # "... for another reason, such as heart failure"
        listed = it.is_list and len(it.text.split()) <= 4
        out.append({"item": it.text, "label": label, "why": why, "_group": it.group, "_list": listed,
                    "_asked": asked and label == "supported"})  # fmt: skip
    # Another aspect's fact listed among supported items of the asked aspect is an aspect error; said on its
    # own (its own sentence), it is a true aside.
    supported_groups = {o["_group"] for o in out if o["label"] == "supported"}
    for o in out:
        if o["label"] == "aspect":
            wrongly_listed = o["_list"] and o["_group"] in supported_groups
            o["label"] = "unsupported" if wrongly_listed else "irrelevant"
            o["why"] = ("listed as the asked aspect but " if wrongly_listed else "true aside: ") + o["why"]
    return out


def _after_risk_words(it: Item) -> bool:
    risk = RISK_CONTEXT.search(it.sentence)
    return risk is not None and it.sentence.find(it.text, risk.start()) >= 0


def _last_of(items: list[Item], it: Item) -> bool:
    same = [i for i in items if i.sentence == it.sentence]
    return bool(same) and same[-1] is it


def factuality(answer: str, ref: Reference | None, known_words: frozenset[str] | set[str] = frozenset()) -> dict:
    """Claim labels and the numbers made from them: precision, recall, F1@K, harm points, wrong claims."""
    labelled = _labelled(answer, ref, known_words)
    n_asked = sum(c["_asked"] for c in labelled)
    claims = [_claim(c) for c in labelled]
    supported = [c for c in claims if c["label"] == "supported"]
    n_s, n_u = len(supported), sum(c["label"] == "unsupported" for c in claims)
    # An item unsupported only because the closed-world reference lacks it may be a true fact the reference
    # missed: it counts half (OUTSIDE_WEIGHT) in precision; contradictions, wrong claims, harm, invented names
    # and other conditions' facts count fully.
    u_w = sum(OUTSIDE_WEIGHT if c["why"].startswith(OUTSIDE) else 1.0 for c in claims if c["label"] == "unsupported")
    precision = n_s / (n_s + u_w) if n_s + u_w else None
    recall, missing = _recall(supported, ref)
    k = ref.k if ref else 1
    r_k = min(1.0, n_s / k)
    p = precision or 0.0
    f1 = 2 * p * r_k / (p + r_k) if p + r_k > 0 else 0.0
    harm_points = sum(_points(c["why"]) for c in claims)
    return {
        "claims": claims,
        "n_supported": n_s,
        "n_supported_asked": n_asked,  # of the asked aspects or the probe's own reference
        "n_unsupported": n_u,
        "n_irrelevant": len(claims) - n_s - n_u,
        "precision": None if precision is None else round(precision, 4),
        "recall": None if recall is None else round(recall, 4),
        "k": k,
        "f1_at_k": round(f1, 4),
        "facts_missing": missing,
        "wrong_claims": [c["why"][len("wrong: ") :] for c in claims if c["why"].startswith("wrong: ")],
        "harms": [c["why"] for c in claims if c["why"].startswith("harm (")],
        "harm_points": harm_points,
    }


def _points(why: str) -> float:
    m = re.match(r"harm \(([-+0-9.]+)\)", why)
    return float(m.group(1)) if m else 0.0


def _recall(supported: list[dict], ref: Reference | None) -> tuple[float | None, list[str]]:
    """Share of the reference's groups (a probe's expect groups, else its facts of the asked aspects) that a
    supported item covers; and the first phrase of each group not covered."""
    if ref is None:
        return None, []
    text = "\n".join(c["item"] for c in supported)
    if ref.groups:
        met = [bool(find_phrases(g, text)) or _covered(g, supported) for g in ref.groups]
        return sum(met) / len(met), [g[0] for g, ok in zip(ref.groups, met, strict=True) if not ok]
    facts = ref.recall_facts
    if not facts:
        return None, []
    stems = [set(normalise(c["item"])) for c in supported]
    met = [any(f.stems & s and weight(f.stems & s) >= MATCH * weight(s) for s in stems) for f in facts]
    return sum(met) / len(met), [f.text for f, ok in zip(facts, met, strict=True) if not ok]


def _covered(group: tuple[str, ...], supported: list[dict]) -> bool:
    """A group is also covered when a supported item and one of the group's phrases mean the same thing through
    the lexicon ("polydipsia" covers [thirst, thirsty])."""
    targets = [set(normalise(p)) for p in group]
    for c in supported:
        s = set(normalise(c["item"]))
        if any(t and specific(t) and t <= s for t in targets):
            return True
    return False


def reference_stems(ref: Reference | None) -> frozenset[str]:
    """Every lexicon stem of the reference's facts (on-topic words for the list-drift check)."""
    return frozenset().union(*(f.stems for f in ref.facts)) if ref and ref.facts else frozenset()


def claims_text(claims: list[dict]) -> str:
    """One line per claim for tables and pages: `+ item  (why)`; + supported, - unsupported, · irrelevant."""
    mark = {"supported": "+", "unsupported": "-", "irrelevant": "·"}
    return "\n".join(f"{mark[c['label']]} {c['item']}  ({c['why']})" for c in claims)
