"""Weights & Biases: starting a run inside the run directory, and the probe tables.

Offline mode writes real wandb files (`<run dir>/wandb/offline-run-*`), readable with `wandb leet` and
uploadable with `wandb sync`. Mode `disabled` gives wandb's own no-op run, so callers never branch on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import wandb

PROBE_COLUMNS = ["step", "probe_id", "question", "answer", "stopped_eos", "n_tokens"]


@dataclass(frozen=True)
class TrackingSettings:
    mode: str = "offline"  # offline | online | disabled
    project: str = "medqa"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


def start_run(
    settings: TrackingSettings, run_dir: Path, config: dict, name: str | None = None, run_id: str | None = None
):
    """Start a wandb run whose files live under `run_dir/wandb`; with `run_id`, continue that run (resume)."""
    if settings.mode not in {"offline", "online", "disabled"}:
        raise ValueError(f"tracking.mode={settings.mode!r}: expected offline, online or disabled")
    return wandb.init(
        project=settings.project,
        entity=settings.entity,
        group=settings.group,
        tags=list(settings.tags),
        name=name or run_dir.name,
        config=config,
        dir=str(run_dir),
        mode=settings.mode,
        id=run_id,
        resume="allow" if run_id else None,
    )


def wandb_run_dir(run) -> Path | None:
    """The run's own folder (`…/wandb/offline-run-<time>-<id>`), or None when tracking is disabled."""
    if run is None or run.disabled:
        return None
    return Path(run.dir).parent


def probe_tables(rows: list[dict]) -> tuple[wandb.Table, wandb.Table]:
    """(long, wide): one row per (step, probe), and one row per probe with a column of answers per step."""
    long = wandb.Table(columns=PROBE_COLUMNS, data=[[r[c] for c in PROBE_COLUMNS] for r in rows])
    steps = sorted({r["step"] for r in rows})
    by_probe: dict[str, dict] = {}
    for r in rows:
        entry = by_probe.setdefault(r["probe_id"], {"question": r["question"]})
        entry[r["step"]] = r["answer"] + ("" if r["stopped_eos"] else " [no EOS: hit the token limit]")
    wide = wandb.Table(
        columns=["probe_id", "question", *[f"step_{s}" for s in steps]],
        data=[[pid, e["question"], *[e.get(s, "") for s in steps]] for pid, e in by_probe.items()],
    )
    return long, wide


def read_offline_run(wandb_dir: Path) -> dict:
    """An offline run read back with wandb's own reader (`wandb leet inspect --json`):
    {"history": [row, ...], "config": {...}, "id": run id, "resumed": bool}."""
    out = subprocess.run(
        [str(Path(sys.executable).with_name("wandb")), "leet", "inspect", "--json", str(wandb_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    run: dict = {"history": [], "config": {}}
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("type") == "history":
            run["history"].append(record["history"]["item"])
        elif record.get("type") == "run":
            run["config"] = record["run"].get("config", {}).get("update", {})
            run["id"], run["resumed"] = record["run"].get("run_id"), bool(record["run"].get("resume"))
    return run
