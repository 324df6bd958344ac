"""Run a W&B sweep file offline: `python -m medqa.sweep sweeps/X.yaml [--count N] [--out DIR] [-- overrides]`.

The file is the one `wandb sweep` + `wandb agent` run online (medqa.sweep_spec reads and checks it). Here
W&B's own open-source engine (`sweeps.next_run`) proposes each run; the run trains in a subprocess, as under
the agent, with W&B offline, in its own run dir; its metric (`metric.name`) is read back from the run's
offline W&B summary and fed to the engine for the next proposal. One folder per invocation, never reused:
`<out>/<stamp>/` holds `sweep.json` (the file, and per run: parameters, overrides, command, state, return
code, metric) and the run dirs `00/`, `01/`, … The runs share the W&B group = the sweep's name.
A failed run is recorded (state, return code, last stderr lines) and the sweep goes on.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from medqa.core.atomic import write_text
from medqa.sweep.spec import (
    SweepSpec,
    grid_size,
    installation_env,
    offline_command,
    propose,
    run_overrides,
    sets_group,
    sweep_run,
)
from medqa.tracking.metrics import summary_value

STDERR_TAIL = 15  # lines of a failed run's stderr kept in sweep.json


def read_summary(run_dir: Path) -> dict:
    """The W&B summary of the run in `run_dir`, from its offline files ({} when it wrote none)."""
    from medqa.tracking.runs import read_offline_run  # lazy: keeps wandb's import off the checks before run 1

    found = sorted((run_dir / "wandb").glob("offline-run-*"))
    if not found:
        return {}
    try:
        return read_offline_run(found[-1])["summary"]
    except (subprocess.CalledProcessError, OSError, ValueError):  # a run killed mid-write
        return {}


def _tail(path: Path, n: int) -> list[str]:
    """The last `n` lines of a log, progress-bar redraws split apart, blank lines dropped."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()]
    return [line for line in lines if line][-n:]


def run_one(spec: SweepSpec, params: dict, run_dir: Path, extra: list[str], group: bool) -> tuple[dict, dict]:
    """Train one proposal in a subprocess (stdout, stderr to `run_dir`/sweep_*.log): (its record, its W&B
    summary). On Ctrl-C the run gets the same signal, is given time to close its W&B files, and is `killed`."""
    command = offline_command(spec, params, run_dir, extra, group)
    run_dir.mkdir(parents=True)  # fresh: the stamp folder is new, and so is each index in it
    env = installation_env({**os.environ, "WANDB_MODE": "offline"})  # this installation's medqa.train runs
    started, interrupted = time.time(), False
    with (run_dir / "sweep_stdout.log").open("w") as out, (run_dir / "sweep_stderr.log").open("w") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            interrupted = True
            try:
                rc = proc.wait(timeout=30)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                proc.kill()
                rc = proc.wait()
    summary = read_summary(run_dir)
    metric = summary_value(summary, spec.metric, spec.goal) if spec.metric else None  # best of a defined metric
    metric = float(metric) if isinstance(metric, (int, float)) and not isinstance(metric, bool) else None
    record = {
        "index": int(run_dir.name),
        "run_dir": str(run_dir),
        "params": params,
        "overrides": run_overrides(command),
        "command": command,
        "state": "killed" if interrupted else "finished" if rc == 0 else "failed",
        "returncode": rc,
        "seconds": round(time.time() - started, 1),
        "metric": metric,
        "wandb_dir": str(next(iter(sorted((run_dir / "wandb").glob("offline-run-*"))), "")),
    }
    if rc != 0 or interrupted:
        record["stderr_tail"] = _tail(run_dir / "sweep_stderr.log", STDERR_TAIL)
    elif spec.metric and metric is None:
        record["note"] = f"finished without a number under {spec.metric!r} in its W&B summary"
    return record, summary


def _write(path: Path, record: dict, fresh: bool = False) -> None:
    """sweep.json: created exclusively the first time, then replaced whole after every run."""
    text = json.dumps(record, indent=2, default=str)
    if fresh:
        with path.open("x", encoding="utf-8") as f:
            f.write(text)
        return
    write_text(path, text)


def best_run(spec: SweepSpec, runs: list[dict]) -> dict | None:
    scored = [r for r in runs if r["state"] == "finished" and isinstance(r["metric"], (int, float))]
    if not scored:
        return None
    return (max if spec.goal == "maximize" else min)(scored, key=lambda r: r["metric"])


def run_sweep(spec: SweepSpec, out_root: Path, count: int | None, extra: list[str]) -> Path:
    """Propose, run and feed back until the grid is exhausted or `count` runs are done; returns the sweep folder."""
    from tqdm import tqdm

    folder = out_root.resolve() / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    folder.mkdir(parents=True, exist_ok=False)
    group = not sets_group(spec, extra)
    size = grid_size(spec)
    total = min(n for n in (size, count) if n is not None)  # for the progress bar; the engine says when to stop
    record = {
        "sweep_file": str(spec.path),
        "name": spec.name,
        "method": spec.method,
        "metric": spec.filled.get("metric"),
        "group": spec.name if group else None,  # None: the user's tracking.group
        "extra_overrides": extra,
        "config": spec.config,
        "started": datetime.now().isoformat(timespec="seconds"),
        "runs": [],
    }
    sweep_json = folder / "sweep.json"
    _write(sweep_json, record, fresh=True)
    engine_runs = []
    width = max(2, len(str(total - 1)))
    bar = tqdm(total=total, desc=f"sweep {spec.name}", unit="run", file=sys.stderr)
    try:
        for index in itertools.count():
            proposal = propose(spec, engine_runs) if count is None or index < count else None
            if proposal is None:
                break
            params, info = proposal
            run_dir = folder / f"{index:0{width}d}"
            bar.set_postfix_str(" ".join(f"{k}={v}" for k, v in params.items() if k in _swept(spec)))
            entry, summary = run_one(spec, params, run_dir, extra, group)
            if info:
                entry["search_info"] = info  # bayes: what the engine expected of this proposal
            record["runs"].append(entry)
            engine_runs.append(sweep_run(params, entry["state"], summary, name=run_dir.name))
            _write(sweep_json, record)
            bar.update(1)
            shown = f"{entry['state']} (rc {entry['returncode']})" if entry["state"] != "finished" else None
            bar.write(f"{run_dir.name}: {spec.metric} {shown or _fmt(entry['metric'])} ({entry['seconds']} s)")
            if entry["state"] == "killed":
                record["interrupted"] = True
                break
    finally:
        bar.close()
        record["finished"] = datetime.now().isoformat(timespec="seconds")
        best = best_run(spec, record["runs"])
        record["best"] = {k: best[k] for k in ("index", "run_dir", "params", "metric")} if best else None
        _write(sweep_json, record)
    return folder


def _swept(spec: SweepSpec) -> list[str]:
    """Parameters that vary (constant ones are fixed settings)."""
    return [k for k, c in spec.filled["parameters"].items() if "value" not in c]


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "—" if value is None else str(value)


def format_table(spec: SweepSpec, runs: list[dict]) -> str:
    """One row per run: the swept parameters, the metric, the state and the run dir."""
    keys = _swept(spec)
    header = ["#", *keys, spec.metric or "metric", "state", "run dir"]
    rows = [
        [
            Path(r["run_dir"]).name,
            *[str(r["params"].get(k)) for k in keys],
            _fmt(r["metric"]),
            r["state"] if r["state"] == "finished" else f"{r['state']} (rc {r['returncode']})",
            r["run_dir"],
        ]
        for r in runs
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)
