"""Replaying a run's history into a new W&B segment (a resumed run): W&B offline cannot rewind a run."""

from __future__ import annotations

import json
from pathlib import Path

from medqa.core.run_folder import checkpoint_step

# HF's WandbCallback puts these in the run summary, not the history (transformers.integrations.WandbCallback)
SUMMARY_ONLY = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos"}


def replay_history(run, recorder, checkpoint: Path, probe_rows: list[dict]) -> int:
    """Log the run's history up to `checkpoint` into `run` (the new W&B segment), rebuilt from what is on
    disk for sure: the checkpoint's trainer_state.json log (as HF's WandbCallback logs it) and probes.jsonl
    (as the recorder logs it). The killed segment is not read: a SIGKILL loses whatever W&B had not yet
    written, so it may lack the last rows before the checkpoint. Returns the rows logged."""
    from transformers.integrations.integration_utils import rewrite_logs

    up_to = checkpoint_step(checkpoint)
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    n = 0
    for entry in state["log_history"]:
        step = entry["step"]
        if step > up_to:
            continue
        logs = {k: v for k, v in entry.items() if k != "step"}
        run.summary.update({k: v for k, v in logs.items() if k in SUMMARY_ONLY})
        run.log({**rewrite_logs({k: v for k, v in logs.items() if k not in SUMMARY_ONLY}), "train/global_step": step})
        n += 1
        if "eval_loss" in entry and any(r["step"] == step for r in probe_rows):
            recorder.rows = [r for r in probe_rows if r["step"] <= step]
            recorder.log(step)  # the probe tables follow each eval, as during training
            if recorder.heldout and recorder.heldout.at(step):
                recorder.heldout.log(step)
            n += 1
    recorder.rows = list(probe_rows)
    return n
