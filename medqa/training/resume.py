"""Continuing an interrupted run in its own folder: finding its latest complete checkpoint, setting aside
what was recorded after it, and continuing the same W&B run.

`train.resume` is null (a fresh run), `auto` (the latest unfinished run under runs/ with the same config,
else a fresh run) or a run folder (`runs/<date>/<time>`). The resumed run writes into that folder; its
command's config is kept beside the first one in `.hydra/resume-<time>/`.

What happened after the checkpoint is redone, so what was recorded after it is set aside, never deleted:
probes.jsonl rows of later steps move to `probes.superseded-<time>.jsonl`; W&B offline cannot rewind a run
(wandb 0.31 `resume_from` needs the server), so the resumed run starts a new offline segment with the same
run id (`wandb/offline-run-<time>-<id>`, marked resumed) and first replays the history up to the checkpoint
step from the checkpoint's trainer_state.json and probes.jsonl (a killed segment may lack its last rows).
The newest segment alone is then the whole run without gaps or duplicate steps: `wandb sync` that one.
Earlier segments stay on disk untouched.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from medqa.core.atomic import write_text
from medqa.core.errors import ConfigError, RunWriteError, json_lines
from medqa.core.run_folder import checkpoint_step, checkpoints
from medqa.probing.heldout_eval import HELDOUT_FILE
from medqa.tracking.history import replay_history


def check_same_data(run_dir: Path, provenance: dict, accept_change: bool = False) -> None:
    """A resumed run trains on the rows it started with: the drawn mix's fingerprint must equal the one in the
    run's data_provenance.json (a source file edited in place changes it). ConfigError naming both, unless
    `accept_change` (train.resume_accept_data_change=true), which keeps the new provenance beside the first."""
    path = Path(run_dir) / "data_provenance.json"
    try:
        before = json.loads(path.read_text(encoding="utf-8"))["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        before = None
    now = provenance["fingerprint"]
    if before == now:
        return
    shown = "none readable" if before is None else f"train {before.get('train')}, eval {before.get('eval')}"
    if not accept_change:
        raise ConfigError(
            f"train.resume={run_dir}: the data drawn now (fingerprint train {now['train']}, eval {now['eval']}) is not "
            f"the run's ({shown}, in {path}): a source file or the data settings changed. Restore them, or set "
            "train.resume_accept_data_change=true to continue on the new data"
        )
    aside = path.with_name(f"data_provenance.resume-{time.strftime('%Y%m%d-%H%M%S')}.json")
    aside.write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    print(f"train.resume_accept_data_change=true: continuing on changed data ({shown} -> {now}); see {aside.name}")


def set_aside_probe_rows(probes_file: Path, step: int) -> list[dict]:
    """Keep the rows of a per-eval JSONL file (probes.jsonl, heldout.jsonl) up to `step`; later rows (redone
    after resuming) move to a new <name>.superseded-<time>.jsonl beside it. Returns the kept rows."""
    if not probes_file.exists():
        return []
    rows = [row for _, row in json_lines(probes_file)]
    kept = [r for r in rows if r["step"] <= step]
    later = [r for r in rows if r["step"] > step]
    if later:
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside = probes_file.with_name(f"{probes_file.stem}.superseded-{stamp}.jsonl")
        with aside.open("x", encoding="utf-8") as f:  # "x": never overwrite
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in later)
        write_text(probes_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    return kept


def begin_resume(run_dir: Path, checkpoint: Path, run, recorder) -> None:
    """Set aside what was recorded after `checkpoint`, give the recorder the rows kept, and replay the W&B
    history up to the checkpoint into `run` (the new segment)."""
    kept = set_aside_probe_rows(Path(run_dir) / "probes.jsonl", checkpoint_step(checkpoint))
    heldout = set_aside_probe_rows(Path(run_dir) / HELDOUT_FILE, checkpoint_step(checkpoint))
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    eval_losses = {e["step"]: e["eval_loss"] for e in state["log_history"] if "eval_loss" in e}
    recorder.restore(kept, eval_losses, heldout)  # aggregates and alarms of the kept evals: selection goes on
    if run is not None and not run.disabled:
        replay_history(run, recorder, checkpoint, kept)


def write_error(err: OSError, run_dir: Path) -> RunWriteError:
    """A failed write during training (disk full, unwritable folder) as one clear error naming what is kept."""
    kept = ", ".join(p.name for p in checkpoints(run_dir)) or "none"
    where = err.filename or run_dir
    return RunWriteError(
        f"could not write {where}: {err.strerror or err}. Earlier checkpoints are intact ({kept}); "
        f"free space or fix the folder, then continue with train.resume={run_dir}"
    )
