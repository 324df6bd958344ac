"""Reading an offline W&B run back from its own transaction log, with W&B's own reader (`wandb leet inspect
--json`, one JSON record per line): the artifacts it logged or used, its metric definitions, and an incremental
table put back together from its increments. What `wandb sync` would upload is exactly what these records hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TABLE_TYPES = {"run_table"}  # wandb stores each logged table as an artifact of its own


def read_records(wandb_dir: Path) -> list[dict]:
    """Every record of the run's `.wandb` file as W&B's reader prints it ({"type": ..., <type>: {...}})."""
    out = subprocess.run(
        [str(Path(sys.executable).with_name("wandb")), "leet", "inspect", "--json", str(wandb_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def artifact_records(records: list[dict]) -> list[dict]:
    """The artifacts the run logged (outputs) or used (inputs: `use_after_commit`), without the ones wandb makes
    for every logged table (`run_table`, `wandb-run-incremental-table`, ...): [{name, type, aliases, digest,
    metadata, files: {path: size}, local_paths, used, run_id}, ...]."""
    found = []
    for r in records:
        if r.get("type") != "artifact":
            continue
        a = r["artifact"]
        if a.get("type") in TABLE_TYPES or a.get("type", "").startswith("wandb-"):
            continue
        contents = a.get("manifest", {}).get("contents", [])
        found.append(
            {
                "name": a["name"],
                "type": a["type"],
                "aliases": list(a.get("aliases", [])),
                "digest": a.get("digest"),
                "metadata": json.loads(a["metadata"]) if a.get("metadata") else {},
                "files": {c["path"]: int(c.get("size", 0)) for c in contents},
                "local_paths": {c["path"]: c.get("local_path") for c in contents},
                "used": bool(a.get("use_after_commit")),
                "run_id": a.get("run_id"),
            }
        )
    return found


def metric_definitions(records: list[dict]) -> dict[str, dict]:
    """define_metric records by name (or glob): {"eval/loss": {"step_metric": ..., "summary": ["last", "min"]}}."""
    out = {}
    for r in records:
        if r.get("type") != "metric":
            continue
        m = r["metric"]
        key = m.get("name") or m.get("glob_name")
        out[key] = {"step_metric": m.get("step_metric"), "summary": sorted(m.get("summary", {}))}
    return out


def incremental_table(records: list[dict], wandb_dir: Path, key: str) -> dict:
    """The table logged under `key` with log_mode="INCREMENTAL", put back together: {"columns", "data",
    "increments": [rows per increment]}, from the increment files in the run's files/ folder, in increment order."""
    rows = [r["history"]["item"] for r in records if r.get("type") == "history"]
    logged = [h for h in rows if h.get(f"{key}._type") == "incremental-table-file"]
    if not logged:
        raise KeyError(f"{wandb_dir}: no incremental table {key!r} in the history")
    logged.sort(key=lambda h: h[f"{key}.increment_num"])
    columns, data, increments = None, [], []
    for h in logged:
        part = json.loads((Path(wandb_dir) / "files" / h[f"{key}.path"]).read_text())
        columns = columns or part["columns"]
        if part["columns"] != columns:
            raise ValueError(f"{wandb_dir}: increment {h[f'{key}.increment_num']} of {key!r} changed its columns")
        data += part["data"]
        increments.append(len(part["data"]))
    return {"columns": columns, "data": data, "increments": increments}
