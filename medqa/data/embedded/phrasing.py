"""The phrasing layer of the embedded corpus: the knowledge table (`assets/knowledge.yaml`), its phrasing
templates, and the small text helpers that fill them (names, item picks, joined lists). medqa.embedded_corpus
builds the ChatDoctor- and WikiDoc-style rows from these."""

import functools
import random
from pathlib import Path  # noqa: F401

import yaml

from medqa.core.paths import KNOWLEDGE_FILE

KNOWLEDGE_PATH = KNOWLEDGE_FILE
REQUIRED = ("name", "summary", "symptoms", "causes", "diagnosis", "treatment")


@functools.cache
def templates() -> dict[str, dict[str, list[str]]]:
    # Phrasing lives in the `templates` section of knowledge.yaml so this module stays logic only.
    return yaml.safe_load(KNOWLEDGE_PATH.read_text(encoding="utf-8"))["templates"]


def template(kind: str, section: str = "chat") -> list[str]:
    return templates()[section][kind]


FIELD = {
    "symptoms": "symptoms",
    "early": "early_symptoms",
    "causes": "causes",
    "diagnosis": "diagnosis",
    "treatment": "treatment",
    "first_line": "first_line",
    "warning": "warning_signs",
    "prevention": "prevention",
}
GROUP = {
    "symptoms": "Symptoms",
    "causes": "Causes",
    "diagnosis": "Diagnosis",
    "treatment": "Treatment",
    "first_line": "First-line treatment",
    "warning": "Warning signs",
    "prevention": "Prevention",
}


def load_knowledge(path: Path | None = None) -> list[dict]:
    """Load and validate the condition table (default: the packaged ``assets/knowledge.yaml``)."""
    data = yaml.safe_load((path or KNOWLEDGE_PATH).read_text(encoding="utf-8"))
    conditions = data["conditions"] if isinstance(data, dict) else data
    for c in conditions:
        missing = [k for k in REQUIRED if not c.get(k)]
        if missing:
            raise ValueError(f"condition {c.get('name')!r} lacks {missing}")
    return conditions


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def decap(s: str) -> str:
    # Leave acronyms such as "COPD" intact when a sentence is spliced after a prefix.
    return s if s[1:2].isupper() else s[:1].lower() + s[1:]


def name_of(c: dict, rng: random.Random, alias_p: float = 0.0) -> str:
    if c.get("aliases") and rng.random() < alias_p:
        return rng.choice(c["aliases"])
    return f"{c['article']} {c['name']}" if c.get("article") else c["name"]


def pick(items: list[str], rng: random.Random, lo: int, hi: int) -> list[str]:
    # Keep table order: it lists the most important items (e.g. first-line drugs) first.
    k = rng.randint(min(lo, len(items)), min(hi, len(items)))
    return [items[i] for i in sorted(rng.sample(range(len(items)), k))]


def join_items(items: list[str], rng: random.Random) -> str:
    if len(items) == 1:
        return items[0]
    # Items with inner commas ("arm, jaw, neck or back") would blur the list, so use semicolons.
    sep = "; " if any("," in i for i in items) else ", "
    tail = ";" if sep == "; " else ("," if len(items) > 2 and rng.random() < 0.3 else "")
    return sep.join(items[:-1]) + f"{tail} and " + items[-1]


def phrase(kind: str, c: dict, rng: random.Random, items: list[str] | None = None, **kw: object) -> str:
    spec = c.get("specialist")
    slots = {
        "n": name_of(c, rng, 0.15),
        "x": join_items(items, rng) if items else "",
        "sp": f"an {spec}" if spec and spec[0] in "aeioAEIO" else f"a {spec}" if spec else "your doctor",
    }
    return cap(rng.choice(template(kind)).format(**{**slots, **kw}))
