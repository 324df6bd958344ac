"""Data sources (hub datasets or local files, loaded through `datasets`), mixing by ratio, and the
train/eval split in TRL's conversational prompt/completion format (so loss falls on the answer only)."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class SourceSettings:
    path: str | None = None  # a local .jsonl/.json/.parquet/.csv file; wins over hub_id
    hub_id: str | None = None
    split: str = "train"
    style: str = "conversational"  # conversational | encyclopedic
    columns: dict[str, str] = field(default_factory=lambda: {"question": "input", "answer": "output"})


@dataclass(frozen=True)
class DataSettings:
    sources: dict[str, SourceSettings]
    mix: dict[str, float]
    total: int = 800
    eval_fraction: float = 0.1
    seed: int = 42
    system_prompt: str = ""


def validate_mix(settings: DataSettings) -> None:
    """Shares are non-negative, name known sources and sum to 1; checked before anything loads."""
    for name, share in settings.mix.items():
        if name not in settings.sources:
            raise ValueError(f"data.mix.{name}: no such source (known: {sorted(settings.sources)})")
        if share < 0:
            raise ValueError(f"data.mix.{name}={share}: a share must be >= 0")
    if abs(sum(settings.mix.values()) - 1.0) > 1e-6:
        raise ValueError(f"data.mix shares sum to {sum(settings.mix.values()):.6f}, not 1: {dict(settings.mix)}")
    if not 0 < settings.eval_fraction < 1:
        raise ValueError(f"data.eval_fraction={settings.eval_fraction}: must be in (0, 1)")


def load_source(name: str, source: SourceSettings) -> Dataset:
    """Load one source through `datasets.load_dataset` with a clear error when it cannot be reached."""
    from datasets import load_dataset

    if source.path:
        path = Path(source.path)
        if not path.is_file():
            raise FileNotFoundError(f"data.sources.{name}.path={source.path}: no such file")
        if path.suffix not in LOCAL_FORMATS:
            raise ValueError(f"data.sources.{name}.path={source.path}: unknown format (use {sorted(LOCAL_FORMATS)})")
        ds = load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split="train")
    elif source.hub_id:
        try:
            ds = load_dataset(source.hub_id, split=source.split)
        except Exception as err:  # datasets raises several types for "offline / not found"
            raise ConnectionError(
                f"data.sources.{name}: could not load hub dataset {source.hub_id!r} ({type(err).__name__}). "
                f"Without network, download it elsewhere and set data.sources.{name}.path=/path/to/file"
                ".parquet (or .jsonl/.csv) with the same columns."
            ) from err
    else:
        raise ValueError(f"data.sources.{name}: set either path or hub_id")
    missing = [c for c in source.columns.values() if c not in ds.column_names]
    if missing:
        raise ValueError(f"data.sources.{name}: columns {missing} not in {ds.column_names}")
    return ds


def to_example(question: str, answer: str, system_prompt: str, source: str) -> dict:
    """One row in TRL's conversational prompt/completion format."""
    prompt = [{"role": "user", "content": question}]
    if system_prompt:
        prompt.insert(0, {"role": "system", "content": system_prompt})
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}], "source": source}


def build_datasets(settings: DataSettings) -> tuple[Dataset, Dataset, dict]:
    """Draw the mix, split it into train/eval per source, and return (train, eval, counts)."""
    validate_mix(settings)
    train_rows: list[dict] = []
    eval_rows: list[dict] = []
    counts: dict[str, dict] = {}
    for name, share in settings.mix.items():
        want = round(settings.total * share)
        if want == 0:
            continue
        source = settings.sources[name]
        ds = load_source(name, source)
        if want > len(ds):
            raise ValueError(f"data.mix.{name}={share} asks for {want} rows, source has {len(ds)}")
        # A fixed permutation per source: a larger share takes a superset of a smaller one's rows.
        order = list(range(len(ds)))
        random.Random(f"{settings.seed}:{name}").shuffle(order)
        picked = ds.select(order[:want])
        q, a = source.columns["question"], source.columns["answer"]
        rows = [to_example(r[q], r[a], settings.system_prompt, name) for r in picked]
        n_eval = max(1, round(want * settings.eval_fraction))  # stratified: every source is in eval
        eval_rows += rows[:n_eval]
        train_rows += rows[n_eval:]
        counts[name] = {"loaded": len(ds), "sampled": want, "train": want - n_eval, "eval": n_eval}
    random.Random(settings.seed).shuffle(train_rows)
    train, evaluation = Dataset.from_list(train_rows), Dataset.from_list(eval_rows)
    counts["fingerprint"] = {"train": _fingerprint(train_rows), "eval": _fingerprint(eval_rows)}
    return train, evaluation, counts


def _fingerprint(rows: list[dict]) -> str:
    return hashlib.sha256("\n".join(json.dumps(r, sort_keys=True) for r in rows).encode()).hexdigest()[:16]
