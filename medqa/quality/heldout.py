"""A held-out generation-eval question set, beside the five human-readable probes.

Embedded world: built deterministically from `medqa/assets/knowledge.yaml` -- every condition gets
`PER_CONDITION` aspects in rotation (so conditions and aspects are both stratified: 43 conditions x 2 = 86
questions, 10-11 per aspect), each asked in a wording the corpus generator never uses (QUESTION_WORDING; the
`training_overlap` check compares every question with the shipped embedded/*.jsonl rows and with every
phrasing the generator can produce). The reference facts of a question are its knowledge row (the condition's
items of that aspect); the rest of the table is the cross-condition knowledge that makes an item unsupported.

Real data (`data=hub`): `heldout_from_rows` turns eval-split rows (question, reference answer) into the same
structure; the reference facts are the items of the reference answer (medqa.factuality.split_items).

Scoring (`score_heldout`) reuses medqa.quality.score_answer with the question's reference, so every answer
gets quality, precision, recall, F1@K and its claim labels; medqa.quality_stats turns the per-question rows
into means with bootstrap CIs and the paired decision rules. Pure text: no torch.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass
from functools import lru_cache

import yaml

from medqa.core.paths import EMBEDDED_DIR
from medqa.quality.factuality import (
    ASPECTS,
    FAMILY,
    KNOWLEDGE,
    Reference,
    build_reference,
    knowledge,
    reference_from_answer,
    split_items,
)
from medqa.quality.lexicon import words
from medqa.quality.metrics import score_answer

PER_CONDITION = 2
# Held-out wordings, one per aspect; none is a wording of knowledge.yaml's `templates` (checked by
# training_overlap, and by tests/test_heldout.py).
QUESTION_WORDING = {
    "symptoms": "Which complaints would make a doctor suspect {n}?",
    "early_symptoms": "How might {n} first make itself noticed?",
    "causes": "What makes a person more likely to develop {n}?",
    "diagnosis": "Which examinations or tests establish {n}?",
    "treatment": "Which therapies are used to manage {n}?",
    "first_line": "Which treatment is normally tried first for {n}?",
    "warning_signs": "Which features in someone with {n} call for urgent help?",
    "prevention": "What habits lower the chance of getting {n}?",
}
# The probes' own (condition, aspect) pairs stay out of the held-out set: the probes already ask them.
PROBE_PAIRS = {
    ("type 2 diabetes", "early_symptoms"),
    ("hypertension", "first_line"),
    ("iron deficiency anemia", "causes"),
    ("malaria", "diagnosis"),
    ("malaria", "treatment"),
    ("heart attack", "warning_signs"),
    ("asthma", "first_line"),
    ("urinary tract infection", "symptoms"),
    ("hypothyroidism", "treatment"),
    ("gout", "causes"),
    ("stroke", "warning_signs"),
}


@dataclass(frozen=True)
class HeldoutQuestion:
    """One eval question: its id, text, the condition and aspect it asks about (None for real data) and the
    reference facts an answer is checked against."""

    id: str
    question: str
    condition: str | None
    aspect: str | None
    facts: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self) | {"facts": list(self.facts)}


def _name(c: dict) -> str:
    return f"{c['article']} {c['name']}" if c.get("article") else c["name"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@lru_cache(maxsize=1)
def _embedded() -> tuple[HeldoutQuestion, ...]:
    out = []
    count = dict.fromkeys(ASPECTS, 0)
    for c in knowledge():
        # Greedy stratification: each condition gets the aspects asked least so far (ties in ASPECTS order),
        # so both conditions and aspects are balanced and the set is a pure function of knowledge.yaml.
        available = [a for a in ASPECTS if c.get(a) and (c["name"], a) not in PROBE_PAIRS]
        chosen = sorted(available, key=lambda a: (count[a], ASPECTS.index(a)))[:PER_CONDITION]
        for aspect in sorted(chosen, key=ASPECTS.index):
            count[aspect] += 1
            question = QUESTION_WORDING[aspect].format(n=_name(c))
            question = question[:1].upper() + question[1:]
            facts = tuple(str(x) for x in c[aspect])
            out.append(HeldoutQuestion(f"{_slug(c['name'])}__{aspect}", question, c["name"], aspect, facts))
    return tuple(out)


def heldout_questions() -> list[HeldoutQuestion]:
    """The embedded world's held-out questions, in a fixed order (deterministic: a function of knowledge.yaml)."""
    return list(_embedded())


def reference_for(q: HeldoutQuestion) -> Reference:
    """The reference an answer to `q` is checked against: the condition's facts of the asked aspect family and
    its notes, with recall over the asked aspect's items (embedded), or the reference answer's items (hub)."""
    if q.condition is None:
        return reference_from_answer(q.question, "\n".join(f"- {f}" for f in q.facts))
    aspects = (q.aspect,) + tuple(a for a in ASPECTS if a != q.aspect and _family(a) == _family(q.aspect))
    return build_reference(q.question, q.condition, aspects, recall_aspects=(q.aspect,))


def _family(aspect: str | None) -> str | None:
    return FAMILY.get(aspect or "")


def heldout_from_rows(
    rows: list[dict], question_key: str = "question", answer_key: str = "answer", n: int | None = None, seed: int = 0
) -> list[HeldoutQuestion]:
    """Held-out questions from an eval split (real data): each row's question with the items of its reference
    answer as facts; `n` rows drawn with `seed` (all when None). A row without both texts is an error naming it."""
    picked = list(enumerate(rows))
    if n is not None and n < len(picked):
        picked = sorted(random.Random(seed).sample(picked, n))
    out = []
    for i, row in picked:
        question, answer = row.get(question_key), row.get(answer_key)
        if not isinstance(question, str) or not question.strip() or not isinstance(answer, str) or not answer.strip():
            raise ValueError(f"eval row {i}: needs non-empty {question_key!r} and {answer_key!r} strings")
        facts = tuple(it.text for it in split_items(answer) if len(words(it.text)) >= 1)
        out.append(HeldoutQuestion(f"row_{i}", question.strip(), None, None, facts))
    return out


def score_heldout(
    questions: list[HeldoutQuestion],
    answers: dict[str, tuple[str, bool | None]],
    settings=None,
    known_words: frozenset[str] = frozenset(),
) -> list[dict]:
    """One row per question: {id, question, answer, stopped_eos, quality, precision, recall, f1_at_k, flags,
    claims}. `answers` maps question id -> (text, stopped at EOS); a question without an answer is an error."""
    missing = [q.id for q in questions if q.id not in answers]
    if missing:
        raise ValueError(f"score_heldout: no answer for {len(missing)} question(s), e.g. {missing[:3]}")
    rows = []
    for q in questions:
        text, stopped = answers[q.id]
        m = score_answer(
            text, stopped_eos=stopped, settings=settings, known_words=known_words, reference=reference_for(q)
        )
        keep = ("quality", "precision", "fact_recall", "f1_at_k", "n_supported", "n_unsupported", "flags", "claims")
        row = {"id": q.id, "question": q.question, "answer": text, "stopped_eos": stopped}
        rows.append(row | {k: m[k] for k in keep} | {"recall": m["fact_recall"]})
    return rows


# --- training overlap ----------------------------------------------------------------------------------------


def _key(text: str) -> str:
    return " ".join(words(text))


@lru_cache(maxsize=1)
def training_texts() -> tuple[frozenset[str], tuple[str, ...]]:
    """(every question wording the corpus generator can produce, every shipped fine-tuning row's input), both as
    lower-case word strings."""
    data = yaml.safe_load(KNOWLEDGE.read_text(encoding="utf-8"))
    templates = data["templates"]
    wordings = [w for ws in templates["wiki_questions"].values() for w in ws]
    wordings += [w for k, ws in templates["chat"].items() if k.startswith("q_") for w in ws]
    names = [n for c in data["conditions"] for n in (_name(c), c["name"], *(c.get("aliases") or []))]
    phrasings = {_key(w.format(n=n)) for w in wordings for n in names}
    inputs = []
    for path in sorted(EMBEDDED_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            inputs.append(_key(str(row.get("input", ""))))
    return frozenset(phrasings), tuple(inputs)


def training_overlap(questions: list[HeldoutQuestion]) -> list[str]:
    """Ids of the questions that occur in the training data: equal to a generator phrasing, or contained in a
    shipped row's input (case and punctuation ignored). Empty for a clean held-out set."""
    phrasings, inputs = training_texts()
    blob = "\n".join(inputs)
    return [q.id for q in questions if _key(q.question) in phrasings or _key(q.question) in blob]
