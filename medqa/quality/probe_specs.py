"""Probe questions and what a good answer to each must (`expect`) and must not (`forbid`) say.

Light on purpose (no torch): the scoring CLI loads probe sets without a model. A probe set is a YAML file
in conf/probes/ with a `questions` list; each item:

    id: hypertension_first_line
    question: What is the first-line treatment for hypertension in adults?
    expect:                       # synonym groups; a group is met when any of its phrases occurs
      - [thiazide, chlorthalidone, hydrochlorothiazide]
      - [ACE inhibitor, "*pril"]  # `*` matches letters: "*pril" = lisinopril, ramipril, ...
    forbid:                       # claims a good answer must not make
      - claim: a beta-blocker named as first-line
        terms: [beta-blocker, atenolol, "*olol"]
        context: [first-line, first choice]   # optional: only when these occur in the same sentence
        unless: [not, reserved]               # optional: sentences with these are not the claim
    expected_items: [1, 6]        # a sensible list length for this question
    topic: [blood pressure]       # extra on-topic words, for the list-drift check
"""

from __future__ import annotations

import re
from pathlib import Path

from medqa.core.errors import read_utf8
from medqa.core.paths import PROBES_DIR
from medqa.settings.probes import Probe, load_probes


def load_probe_set(name: str) -> list[Probe]:
    """A probe set by name (conf/probes/NAME.yaml) or by path to such a YAML file."""
    import yaml

    path = Path(name) if name.endswith((".yaml", ".yml")) else PROBES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROBES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"probe set {name!r}: no file {path} (known sets: {known})")
    try:
        data = yaml.safe_load(read_utf8(path)) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise ValueError(f"{path}: expected a `questions:` list")
    return load_probes(data["questions"])


def phrase_pattern(phrase: str) -> re.Pattern:
    """Case-insensitive, whole-word regex for a spec phrase: spaces and hyphens match each other, `*` matches
    letters, and a trailing plural s/es is allowed ("ACE inhibitor" matches "ACE-inhibitors")."""
    words = [re.escape(w).replace(r"\*", "[a-z]*") for w in re.split(r"[\s\-]+", phrase.strip().lower())]
    return re.compile(r"(?<![a-z0-9])" + r"[\s\-]+".join(words) + r"(?:e?s)?(?![a-z0-9])", re.IGNORECASE)


def find_phrases(phrases: tuple[str, ...], text: str) -> list[str]:
    """The phrases of `phrases` that occur in `text` (see phrase_pattern)."""
    return [p for p in phrases if phrase_pattern(p).search(text)]
