"""Word lists behind the quality metrics: drug-like name shapes, the offline drug dictionary, the training
corpus vocabulary, and the chat-template / platform text that must not leak into an answer.

Known drugs come from the `drug-named-entity-recognition` package (MIT; a DrugBank/MeSH/NHS-derived
dictionary of ~107k lower-case names and synonyms shipped in its wheel). Its `find_drugs` matches a token
exactly by looking it up in that dictionary's `drug_variant_to_canonical`; we do the same lookup on the
dictionary file itself, offline, without importing the package (its import also builds a fuzzy-match index:
1.5-8 s here instead of ~1.5 s).
"""

from __future__ import annotations

import bz2
import importlib.util
import json
import pickle
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from medqa.core.paths import KNOWLEDGE_FILE, QA_FILES

# The text the embedded base model and its fine-tuning data are made of: every word a model trained on it
# can have seen.
SHIPPED_TEXT = (KNOWLEDGE_FILE, *QA_FILES)

# Endings of generic drug names (WHO INN stems) that a confabulated name imitates ("artuzofloxacin").
DRUG_SUFFIXES = (
    "floxacin", "oxacin", "cillin", "mycin", "micin", "cycline", "penem", "pril", "sartan", "olol",
    "alol", "ilol", "dipine", "azole", "vir", "mab", "tinib", "statin", "parin", "xaban", "gatran", "gliptin",
    "gliflozin", "glutide", "formin", "glitazone", "prazole", "tidine", "triptan", "setron", "dronate", "lukast",
    "semide", "thiazide", "zepam", "zolam", "oxetine", "triptyline", "caine", "profen", "fenac", "afil",
    "quine", "sone", "olone", "zosin", "buterol", "meterol", "moterol", "platin", "trexate",
)  # fmt: skip
MIN_DRUG_WORD = 7  # shorter words with these endings are ordinary English ("april", "solve", "azole")

# Chat-template text in an answer: special tokens, a role header on its own line, an instruction header.
TEMPLATE_PATTERNS = (
    r"<\|[a-z_]+\|>",
    r"(?<!<\|)(?:start|end)_header_id",
    r"(?m)^\s*(?:user|assistant|system)\s*:?\s*$",
    r"(?m)^\s*(?:user|assistant|system|patient|human)\s*:",
    r"(?im)^\s*#+\s*(?:instruction|response|input)\b",
    r"(?i)if you are a doctor, please answer",
    r"(?i)answer this question truthfully",
)
# Forum / platform filler of the ChatDoctor kind (greetings, sign-offs, the site's name).
FILLER_PATTERNS = (
    r"(?i)\bwelcome to\b",
    r"(?i)\bhope (?:this|that|it) helps?\b",
    r"(?i)\bchat ?doctor\b",
    r"(?i)\bhealth ?care ?magic\b",
    r"(?i)\bthanks? (?:you )?for (?:the|your) (?:query|question)\b",
    r"(?i)\bthanks? (?:you )?for using\b",
    r"(?i)\btake care\b",
    r"(?i)\b(?:best |kind |warm )?regards\b",
    r"(?i)\bwish(?:ing)? you (?:good health|a speedy recovery)\b",
)

WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*")

STOPWORDS = frozenset(
    "a an and are as at be been being but by can could do does for from had has have how if in into is it its "
    "may might more most much not of on or other such than that the their them then there these they this those "
    "to too very was were what when which while who why will with would you your also often some any each "
    "include includes including like usually common commonly signs sign symptoms symptom early".split()
)


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters/digits, an inner apostrophe kept); hyphenated words split."""
    return WORD_RE.findall(text.lower().replace("’", "'"))


def corpus_words(texts: Iterable[str]) -> set[str]:
    """Vocabulary of a corpus: the set of its word tokens."""
    vocab: set[str] = set()
    for text in texts:
        vocab.update(words(text))
    return vocab


@lru_cache(maxsize=1)
def shipped_words() -> frozenset[str]:
    """Vocabulary of the shipped embedded corpus (knowledge table and both QA files)."""
    texts = []
    for path in SHIPPED_TEXT:
        if path.suffix == ".jsonl":
            for line in path.read_text(encoding="utf-8").splitlines():
                texts.extend(str(v) for v in json.loads(line).values())
        else:
            texts.append(path.read_text(encoding="utf-8"))
    return frozenset(corpus_words(texts))


def as_set(words_: Iterable[str]) -> set[str] | frozenset[str]:
    """`words_` itself when it is a set already (a run's known words: no copy per word or item checked)."""
    return words_ if isinstance(words_, set | frozenset) else set(words_)


def drug_like(word: str) -> bool:
    """A word shaped like a generic drug name: at least MIN_DRUG_WORD letters, ending in a drug stem
    (a plural s is ignored)."""
    w = word.lower()
    stem = w[:-1] if w.endswith("s") and not w.endswith("ss") else w
    return len(stem) >= MIN_DRUG_WORD and stem.isalpha() and stem.endswith(DRUG_SUFFIXES)


@lru_cache(maxsize=1)
def drug_names() -> frozenset[str]:
    """Every drug name and synonym (lower case) of the drug-named-entity-recognition dictionary."""
    spec = importlib.util.find_spec("drug_named_entity_recognition")  # locates the package, does not import it
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "drug-named-entity-recognition is not installed (it ships the drug dictionary): "
            "pip install drug-named-entity-recognition==2.0.9"
        )
    with bz2.open(Path(spec.origin).parent / "drug_ner_dictionary.pkl.bz2", "rb") as f:
        return frozenset(pickle.load(f)["drug_variant_to_canonical"])


def known_drug(word: str) -> bool:
    """True when the offline drug dictionary knows `word` (or its singular) as a drug name or synonym."""
    w = word.lower()
    return w in drug_names() or (w.endswith("s") and w[:-1] in drug_names())


def invented_terms(text: str, known_words: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(drug-like words, invented ones): drug-shaped words of `text`, and those that are neither in the drug
    dictionary nor in the shipped corpus nor in `known_words` (e.g. a run's training text). Lower case,
    each word once, in order of appearance."""
    known = shipped_words()
    extra = as_set(known_words)
    seen, candidates, invented = set(), [], []
    for match in NAME_RE.finditer(text):
        w = match.group().lower()
        if w in seen or not drug_like(w):
            continue
        seen.add(w)
        candidates.append(w)
        singular = w[:-1] if w.endswith("s") else w
        if not ({w, singular} & known or {w, singular} & extra or known_drug(w)):
            invented.append(w)
    return candidates, invented


def leaks(text: str) -> tuple[list[str], list[str]]:
    """(template leaks, platform filler): the matched snippets of each kind, each once."""
    template = sorted({m.group().strip() for p in TEMPLATE_PATTERNS for m in re.finditer(p, text)})
    filler = sorted({m.group().strip().lower() for p in FILLER_PATTERNS for m in re.finditer(p, text)})
    return template, filler
