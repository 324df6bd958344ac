"""Where medqa's shipped files live inside the package (so an installed wheel finds them), and its cache."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
ASSETS = PACKAGE / "assets"
CONF_DIR = PACKAGE / "conf"
PROBES_DIR = CONF_DIR / "probes"
QUALITY_DIR = CONF_DIR / "quality"
KNOWLEDGE_FILE = ASSETS / "knowledge.yaml"
EMBEDDED_DIR = ASSETS / "embedded"
QA_FILES = (EMBEDDED_DIR / "chatdoctor.jsonl", EMBEDDED_DIR / "wikidoc.jsonl")


def cache_root() -> Path:
    """Where built base models live: $MEDQA_CACHE, else ~/.cache/medqa."""
    return Path(os.environ.get("MEDQA_CACHE", Path.home() / ".cache" / "medqa"))
