"""Weights & Biases: starting a run inside the run directory, and reading an offline run back.

Offline mode writes real wandb files (`<run dir>/wandb/offline-run-*`), readable with `wandb leet` and
uploadable with `wandb sync`. Mode `disabled` gives wandb's own no-op run, so callers never branch on it.
"""

from __future__ import annotations

from pathlib import Path

import wandb

from medqa.core.distributed import is_main_process
from medqa.settings.tracking import TrackingSettings
from medqa.tracking.records import read_records


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


def read_offline_run(wandb_dir: Path) -> dict:
    """An offline run read back with wandb's own reader (`wandb leet inspect --json`):
    {"history": [row, ...], "config": {...}, "summary": {...}, "alerts": [{title, text, level}, ...], "group",
    "job_type", "name", "tags", "id": run id, "resumed": bool}; later config updates merged in."""
    run: dict = {"history": [], "config": {}, "summary": {}, "alerts": []}
    for record in read_records(wandb_dir):
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
