"""A local data file read once for what `datasets` reports badly or not at all: bytes that are not UTF-8, a line
that is not JSON (or not a JSON object), a lone surrogate, an empty file. Each is one ConfigError naming the
source key, the file and the line, before `datasets.load_dataset` sees the file."""

from __future__ import annotations

from pathlib import Path

from medqa.core.errors import ConfigError, json_lines, text_lines


def check_local_file(path: str | Path, key: str) -> int:
    """Check a .jsonl/.json/.csv source file (parquet is binary: left to its reader); returns its row count
    (None-safe: 0 for parquet). Raises ConfigError naming `key`, the file and the bad line."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{key}.path={p}: a folder, not a data file")
    suffix = p.suffix
    try:
        if suffix == ".jsonl" or (suffix == ".json" and _first_char(p) != "["):
            rows = 0
            for n, row in json_lines(p):
                if not isinstance(row, dict):
                    raise ConfigError(f"{p}:{n}: not a JSON object (one row per line: {{column: value, ...}})")
                rows += 1
        elif suffix in (".json", ".csv"):
            rows = sum(1 for _, line in text_lines(p) if line.strip()) - (suffix == ".csv")  # the CSV header
        else:
            return 0
    except ConfigError as err:
        raise ConfigError(f"{key}.path={err}") from None
    if rows <= 0:
        raise ConfigError(f"{key}.path={p}: empty file (no rows)")
    return rows


def _first_char(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    return head[:1].decode("latin-1")
