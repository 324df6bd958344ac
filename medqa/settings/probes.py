"""Probe questions and what a good answer to each must (`expect`) and must not (`forbid`) say, parsed and
checked from the `probes` config group (medqa.quality.probe_specs loads probe sets from files)."""

from __future__ import annotations

from dataclasses import dataclass

# Sentences containing one of these are read as denying a forbidden claim, not making it.
NEGATIONS = (
    "not",
    "no",
    "never",
    "cannot",
    "avoid",
    "avoided",
    "rather than",
    "instead of",
    "no longer",
    "don't",
    "doesn't",
    "shouldn't",
    "mustn't",
    "won't",
)


@dataclass(frozen=True)
class Claim:
    """A forbidden claim: a sentence with one of `terms`, one of `context` (if any), and none of `unless`."""

    claim: str
    terms: tuple[str, ...]
    context: tuple[str, ...] = ()
    unless: tuple[str, ...] = NEGATIONS


@dataclass(frozen=True)
class Probe:
    id: str
    question: str
    expect: tuple[tuple[str, ...], ...] = ()
    forbid: tuple[Claim, ...] = ()
    expected_items: tuple[int, int] | None = None
    topic: tuple[str, ...] = ()


PROBE_KEYS = {"id", "question", "expect", "forbid", "expected_items", "topic"}


CLAIM_KEYS = {"claim", "terms", "context", "unless"}


def _strings(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where}: expected a list of non-empty strings, got {value!r}")
    return tuple(v.strip() for v in value)


def _probe(i: int, item: dict) -> Probe:
    where = f"probes.questions[{i}] ({item.get('id', '?')})"
    unknown = sorted(set(item) - PROBE_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(PROBE_KEYS)}")
    question = str(item.get("question") or "").strip()
    if not question:
        raise ValueError(f"{where}: empty question")
    expect = tuple(_strings(g, f"{where}.expect[{j}]") for j, g in enumerate(item.get("expect") or []))
    forbid = []
    for j, c in enumerate(item.get("forbid") or []):
        at = f"{where}.forbid[{j}]"
        if not isinstance(c, dict) or set(c) - CLAIM_KEYS or "terms" not in c:
            raise ValueError(f"{at}: expected a mapping with terms (and claim, context, unless), got {c!r}")
        forbid.append(
            Claim(
                claim=str(c.get("claim") or ", ".join(_strings(c["terms"], at))),
                terms=_strings(c["terms"], f"{at}.terms"),
                context=_strings(c["context"], f"{at}.context") if c.get("context") else (),
                unless=_strings(c["unless"], f"{at}.unless") if c.get("unless") else NEGATIONS,
            )
        )
    items = item.get("expected_items")
    if items is not None:
        if not (isinstance(items, list | tuple) and len(items) == 2 and 0 <= int(items[0]) <= int(items[1])):
            raise ValueError(f"{where}.expected_items: expected [min, max] with 0 <= min <= max, got {items!r}")
        items = (int(items[0]), int(items[1]))
    topic = _strings(item["topic"], f"{where}.topic") if item.get("topic") else ()
    return Probe(str(item.get("id") or f"probe_{i}"), question, expect, tuple(forbid), items, topic)


def load_probes(items: list[dict]) -> list[Probe]:
    """Probe list from config items ({id, question, and optionally expect/forbid/expected_items/topic})."""
    probes = [_probe(i, dict(item)) for i, item in enumerate(items)]
    ids = [p.id for p in probes]
    if not probes or len(set(ids)) != len(ids):
        raise ValueError(f"probes.questions: need at least one probe and unique ids, got {ids}")
    return probes
