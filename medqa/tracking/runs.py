"""Weights & Biases: starting a run inside the run directory, and the probe tables.

Offline mode writes real wandb files (`<run dir>/wandb/offline-run-*`), readable with `wandb leet` and
uploadable with `wandb sync`. Mode `disabled` gives wandb's own no-op run, so callers never branch on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import wandb

from medqa.core.distributed import is_main_process
from medqa.settings.tracking import TrackingSettings

PROBE_COLUMNS = ["step", "probe_id", "question", "answer", "stopped_eos", "n_tokens"]


def start_run(
    settings: TrackingSettings,
    run_dir: Path,
    config: dict,
    name: str | None = None,
    job_type: str | None = None,
    run_id: str | None = None,
):
    """Start a wandb run whose files live under `run_dir/wandb`; `job_type` tells train from redecode
    runs; with `run_id`, continue that run (resume); on ranks other than 0, wandb's no-op run."""
    if settings.mode not in {"offline", "online", "disabled"}:
        raise ValueError(f"tracking.mode={settings.mode!r}: expected offline, online or disabled")
    mode = settings.mode if is_main_process() else "disabled"  # one W&B run per training run, from rank 0
    return wandb.init(
        project=settings.project,
        entity=settings.entity,
        group=settings.group,
        tags=list(settings.tags),
        name=name or run_dir.name,
        job_type=job_type,
        config=config,
        dir=str(run_dir),
        mode=mode,
        id=run_id,
        resume="allow" if run_id else None,
    )


def wandb_run_dir(run) -> Path | None:
    """The run's own folder (`…/wandb/offline-run-<time>-<id>`), or None when tracking is disabled."""
    if run is None or run.disabled:
        return None
    return Path(run.dir).parent


def _cell(value):
    return ", ".join(map(str, value)) if isinstance(value, list) else value


def probe_tables(rows: list[dict]) -> tuple[wandb.Table, wandb.Table]:
    """(long, wide): one row per (step, probe) with its quality metrics as further columns, and one row per
    probe with a column of answers (and their quality and flags) per step."""
    columns = PROBE_COLUMNS + [c for c in rows[0] if c not in PROBE_COLUMNS]
    long = wandb.Table(columns=columns, data=[[_cell(r.get(c)) for c in columns] for r in rows])
    steps = sorted({r["step"] for r in rows})
    by_probe: dict[str, dict] = {}
    for r in rows:
        entry = by_probe.setdefault(r["probe_id"], {"question": r["question"]})
        entry[r["step"]] = r["answer"] + ("" if r["stopped_eos"] else " [no EOS: hit the token limit]")
        if "quality" in r:
            entry[r["step"]] += f"\n[quality {r['quality']:.2f}" + "".join(f"; {f}" for f in r["flags"]) + "]"
    wide = wandb.Table(
        columns=["probe_id", "question", *[f"step_{s}" for s in steps]],
        data=[[pid, e["question"], *[e.get(s, "") for s in steps]] for pid, e in by_probe.items()],
    )
    return long, wide


def read_offline_run(wandb_dir: Path) -> dict:
    """An offline run read back with wandb's own reader (`wandb leet inspect --json`):
    {"history": [row, ...], "config": {...}, "summary": {...}, "alerts": [{title, text, level}, ...], "group",
    "job_type", "name", "tags", "id": run id, "resumed": bool}; later config updates merged in."""
    out = subprocess.run(
        [str(Path(sys.executable).with_name("wandb")), "leet", "inspect", "--json", str(wandb_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    run: dict = {"history": [], "config": {}, "summary": {}, "alerts": []}
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("type") == "history":
            run["history"].append(record["history"]["item"])
        elif record.get("type") == "run":
            meta = record["run"]
            run["config"].update(meta.get("config", {}).get("update", {}))
            run.update(group=meta.get("run_group"), job_type=meta.get("job_type"), name=meta.get("display_name"))
            run["tags"] = list(meta.get("tags", []))
            run["id"], run["resumed"] = meta.get("run_id"), bool(meta.get("resume"))
        elif record.get("type") == "config":
            run["config"].update(record["config"].get("update", {}))
        elif record.get("type") == "summary":
            run["summary"].update(record["summary"].get("update", {}))
        elif record.get("type") == "alert":
            run["alerts"].append(record["alert"])
    return run


def warn(run, title: str, text: str) -> None:
    """A W&B alert at WARN level (kept in the offline run file; `wandb leet inspect` shows it)."""
    run.alert(title=title, text=text, level=wandb.AlertLevel.WARN)


def log_table_at_start(run, key: str, columns: list[str], rows: list[dict], summary: dict) -> None:
    """`rows` as a W&B table under `key` at step 0, plus flat summary keys (a no-op on wandb's disabled run)."""
    table = wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])
    run.log({key: table, "train/global_step": 0})
    run.summary.update(summary)
