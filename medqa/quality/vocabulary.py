"""Is a word a real word? The vocabulary behind the invented-name check for names of any shape.

`invented_terms` (medqa.quality.lexicon) catches confabulated names that imitate a drug stem ("artuzofloxacin").
Invented names need not do that ("glucotrexane", "nebivantan", "thrombevase"). A word counts as invented here
when it is long (>= MIN_NAME letters), not English, not a drug or synonym of the offline drug dictionary, not
in the shipped corpus, the reference files or the caller's known words, not built from medical word parts
(hyper-, -aemia, -uria, -itis, -osis, ...: real clinical terms are, invented brand-like names are not), not a
compound of two English words ("monotherapy"), and not capitalised inside a sentence (an eponym: "Hashimoto").

English: the word list of `pyspellchecker` (MIT, pure python, ~160k words from OpenSubtitles/Wiktionary, read
offline from its wheel), tried with British spellings mapped to American ones ("haematuria" -> "hematuria").
Pure text: no torch, no model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from medqa.core.paths import ASSETS, CONF_DIR
from medqa.quality.lexicon import NAME_RE, invented_terms, known_drug, shipped_words, words

MIN_NAME = 7
# Greek/Latin word parts of real clinical terms (an invented drug name is built from none of them).
MEDICAL_PREFIXES = (
    "hyper", "hypo", "micro", "macro", "normo", "tachy", "brady", "dys", "poly", "haem", "hem", "neuro", "cardio",
    "gastro", "entero", "nephro", "hepat", "derm", "osteo", "arthr", "myo", "angio", "thrombo", "immuno", "pneumo",
    "broncho", "endo", "peri", "intra", "trans", "sub", "supra", "anti", "non", "pre", "post", "over", "under",
    "self", "multi", "inter", "uro", "cysto", "pyelo", "glyc", "lipo", "retino", "mono", "co", "re", "un", "bi", "tri",
)  # fmt: skip
MEDICAL_SUFFIXES = (
    "aemia", "emia", "aemic", "emic", "uria", "itis", "osis", "otic", "ectomy", "ostomy", "otomy", "plasty",
    "scopy", "scope", "graphy", "gram", "lysis", "lytic", "algia", "pathy", "pathic", "penia", "plegia", "rrhoea",
    "rrhea", "rrhagia", "genic", "ology", "ologist", "ism", "cytic", "cyte", "trophy", "oma", "ectasia", "iasis",
    "aemia", "ised", "ized", "isation", "ization", "ically", "ness", "less", "ment", "able", "ible",
)  # fmt: skip
# Endings that only clinical terms have (a subset of MEDICAL_SUFFIXES).
CLINICAL_SUFFIXES = ("aemia", "emia", "uria", "itis", "osis", "ectomy", "ostomy", "otomy", "scopy", "lysis", "algia",
                     "pathy", "penia", "plegia", "rrhoea", "rrhea", "rrhagia", "iasis")  # fmt: skip
_BRITISH = ((r"ae", "e"), (r"oe", "e"), (r"isation", "ization"), (r"ise", "ize"), (r"our", "or"), (r"tre$", "ter"))


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The pyspellchecker English word list (lower case)."""
    try:
        import spellchecker  # noqa: F401  (fails here when missing)
    except ModuleNotFoundError as e:  # one clear line, not a traceback from deep inside scoring
        raise ModuleNotFoundError("pyspellchecker is not installed (the English word list): "
                                  "pip install pyspellchecker==0.9.1") from e  # fmt: skip
    return frozenset(_checker().word_frequency.dictionary)


@lru_cache(maxsize=1)
def asset_words() -> frozenset[str]:
    """Every word of the reference files (references.yaml, fact_lexicon.yaml) and the shipped probe sets."""
    texts = [(ASSETS / n).read_text(encoding="utf-8") for n in ("references.yaml", "fact_lexicon.yaml")]
    texts += [p.read_text(encoding="utf-8") for p in sorted((CONF_DIR / "probes").glob("*.yaml"))]
    return frozenset(w for t in texts for w in words(t))


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    """English, the shipped corpus and the reference files in one set (built once: the union of ~160k words
    cost ~10 ms, and it was rebuilt for every word checked)."""
    return english_words() | shipped_words() | asset_words()


def _as_set(words_: Iterable[str]) -> set[str] | frozenset[str]:
    """`words_` itself when it is a set already (a run's known words: no copy per word checked)."""
    return words_ if isinstance(words_, set | frozenset) else set(words_)


def _variants(w: str) -> set[str]:
    out = {w}
    for pattern, repl in _BRITISH:
        out |= {re.sub(pattern, repl, v) for v in out}
    for suffix in ("s", "es", "ed", "ing", "ly", "al"):
        out |= {v[: -len(suffix)] for v in list(out) if v.endswith(suffix) and len(v) - len(suffix) >= 4}
    return out


def real_word(word: str, known_words: Iterable[str] = ()) -> bool:
    """English, a known drug, a word of the shipped corpus or reference files or `known_words`, or a clinical
    term built from medical word parts."""
    w = word.lower()
    known = _known()
    if _variants(w) & known or w in _as_set(known_words) or known_drug(w):
        return True
    if w.endswith(MEDICAL_SUFFIXES) or any(v in known for v in _strip_prefix(w)):
        return True
    # A compound of two English words ("monotherapy", "lifelong"): both parts of >= 4 letters.
    eng = english_words()
    return any(w[:i] in eng and _variants(w[i:]) & eng for i in range(4, len(w) - 3))


def _strip_prefix(w: str) -> set[str]:
    out = set()
    for p in MEDICAL_PREFIXES:
        if w.startswith(p) and len(w) - len(p) >= 4:
            out |= _variants(w[len(p) :])
    return out


def invented_names(text: str, known_words: Iterable[str] = ()) -> list[str]:
    """Long words of `text` that are no real word (see the module docstring), lower case, each once, in order."""
    extra = _as_set(known_words)
    seen, out = set(), []
    for match in NAME_RE.finditer(text):
        w = match.group().lower()
        if w in seen or len(w) < MIN_NAME or not w.isalpha():
            continue
        seen.add(w)
        # A capital inside a sentence marks a proper name (an eponym: Hashimoto, Giemsa, Crohn), not a drug.
        before = text[: match.start()].rstrip()
        if match.group()[0].isupper() and before and before[-1] not in ".!?:-*•\n" and not before[-1].isdigit():
            continue
        if not real_word(w, extra):
            out.append(w)
    return out


def invented(text: str, known_words: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(drug-like words, invented words): `invented_terms` (drug-shaped names) plus `invented_names` (names of
    any shape), each word once, in order of appearance."""
    candidates, shaped = invented_terms(text, known_words)
    names = [w for w in invented_names(text, known_words) if w not in shaped]
    return candidates + [w for w in names if w not in candidates], shaped + names


def clinical_term(word: str) -> bool:
    """A dictionary drug that is no everyday English word ("prednisolone", "fluconazole"), or a word built on a
    clinical ending ("hyperuricaemia", "nephropathy")."""
    w = word.lower()
    if w.endswith(CLINICAL_SUFFIXES) and len(w) >= 7 and _checker().word_frequency[w] < 2000:  # not "diagnosis"
        return True
    return known_drug(w) and not (_variants(w) & english_words())


COMMON = 6000  # pyspellchecker frequency above which a word is everyday English ("heart", "major", "attack")


@lru_cache(maxsize=4096)
def common_word(word: str) -> bool:
    """An everyday English word (frequent in the pyspellchecker list), not a medical name."""
    english_words()  # one clear error when the list is missing
    return _checker().word_frequency[word.lower()] > COMMON


@lru_cache(maxsize=1)
def _checker():
    from spellchecker import SpellChecker

    return SpellChecker()
