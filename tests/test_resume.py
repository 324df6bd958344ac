"""An interrupted run loses nothing: a real run is killed with SIGKILL after a checkpoint, resumed from the
command line, and compared with an uninterrupted run of the same seed; secrets planted in its environment
are looked for in every file it wrote and in its console output; a write failure mid-run leaves the earlier
checkpoints intact."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import early
import pytest
from early import TEST_OVERRIDES
from omegaconf import OmegaConf
from transformers import TrainerCallback

from medqa.config.build import settings_from_cfg
from medqa.core.errors import RunWriteError
from medqa.core.run_folder import checkpoints, wandb_segments
from medqa.tracking.runs import read_offline_run
from medqa.training.run import finetune

ROOT = Path(__file__).resolve().parent.parent
# 8 steps, eval (and probes) every 2, checkpoint every 4: the kill comes at step 7, after checkpoint-4 and
# after the step-6 eval, so the resumed run must set aside step 5-6 records and redo them.
RUN = [
    "train=smoke",
    "train.max_steps=8",
    "train.eval_steps=2",
    "train.save_steps=4",
    "data.total=80",
    "decoding.max_new_tokens=16",
]
KILL_AT_STEP = 7
SECRETS = {  # planted in the environment of both commands
    "HF_TOKEN": "hf_PLANTEDhfTOKENvalue0001",
    "WANDB_API_KEY": "PLANTEDwandbAPIkeyVALUE00000000000000002",
    "MEDQA_SECRET": "PLANTEDmedqaSECRETvalue0003",
    "OPENAI_API_KEY": "sk-PLANTEDopenaiKEY0004",
}

# Run in a child process: the real command line, with one extra callback that stops at KILL_AT_STEP and
# waits to be killed (the only way to kill at a known step; the trainer and model are the real ones).
CHILD = f"""
import os, sys, time
from transformers import TrainerCallback
import medqa.training.run

class WaitForKill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == {KILL_AT_STEP}:
            open(os.environ["KILL_ME"], "w").close()
            time.sleep(600)

real = medqa.training.run.finetune
medqa.training.run.finetune = lambda *a: real(*a, [WaitForKill()])
import runpy
runpy.run_module("medqa.train", run_name="__main__")  # as `python -m medqa.train`
"""


def _env(extra: dict | None = None) -> dict:
    # Without WANDB_SERVICE: a test that ran wandb in this pytest process exported its service's address, and
    # a child joining that service would find the killed run's id still held by it ("run ID is in use").
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return {**env, "PYTHONPATH": str(ROOT), **SECRETS, **(extra or {})}


@early.starts("runs", background=False)  # the lane beside the first tests: slower on 2 cores
def _start_runs() -> early.Started:
    """The run to be killed, and the uninterrupted reference of the same seed (`python -m medqa.train` both),
    started at collection (tests/early.py): only the resumed run waits for the kill."""
    tmp = Path(tempfile.mkdtemp(prefix="medqa-test-resume-"))
    run_dir, marker, reference_dir = tmp / "interrupted", tmp / "kill_me", tmp / "uninterrupted"
    args = [*TEST_OVERRIDES, *RUN]
    child = [sys.executable, "-c", CHILD, *args, f"hydra.run.dir={run_dir}"]
    reference = early.python_module("medqa.train", *args, f"hydra.run.dir={reference_dir}")
    procs = {
        "child": early.launch(child, tmp / "child.log", env=_env({"KILL_ME": str(marker)})),
        "reference": early.launch(reference, tmp / "reference.log", env=_env()),
    }
    return early.Started(procs, {"run_dir": run_dir, "marker": marker, "reference_dir": reference_dir, "tmp": tmp})


@pytest.fixture(scope="module")
def runs(base_dir, run_module):
    work = early.take("runs")
    tmp, run_dir, marker = work.paths["tmp"], work.paths["run_dir"], work.paths["marker"]
    child = work.procs["child"]
    deadline = time.time() + 400
    while not marker.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    work.stop("child")  # SIGKILL at step 7 (it waits there), W&B's service process with it
    first_out = (tmp / "child.log").read_text()
    assert marker.exists(), first_out[-3000:]
    killed = {
        "checkpoints": [p.name for p in checkpoints(run_dir)],
        "probe_steps": sorted({json.loads(x)["step"] for x in (run_dir / "probes.jsonl").read_text().splitlines()}),
        "segment": _segment_files(wandb_segments(run_dir)[0]),
    }
    resumed = run_module("medqa.train", *TEST_OVERRIDES, *RUN, f"train.resume={run_dir}", env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference_dir = work.paths["reference_dir"]
    assert work.wait("reference", timeout=600) == 0, (tmp / "reference.log").read_text()[-3000:]
    return {
        "run_dir": run_dir,
        "killed": killed,
        "console": first_out + resumed.stdout + resumed.stderr,
        "resumed": json.loads((run_dir / "run.json").read_text()),
        "reference": json.loads((reference_dir / "run.json").read_text()),
        "reference_dir": reference_dir,
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _segment_files(segment: Path) -> dict[Path, str]:
    """The hash of each file a W&B segment holds. Not logs/debug-core.log: a link to W&B's own log under
    ~/.cache/wandb, named by the second its service started, which any W&B process started that second appends to."""
    return {p: _sha(p) for p in segment.rglob("*") if p.is_file() and not p.is_symlink()}


def _probes(run_dir: Path) -> list[dict]:
    """probes.jsonl's rows without the answering time (wall clock: the one field two identical runs differ in)."""
    rows = [json.loads(line) for line in (run_dir / "probes.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(r.pop("generate_seconds") > 0 for r in rows)
    return rows


def test_the_kill_came_after_a_checkpoint_and_a_later_eval(runs):
    assert runs["killed"]["checkpoints"] == ["checkpoint-4"]
    assert runs["killed"]["probe_steps"] == [0, 2, 4, 6]  # step 6 was recorded after the checkpoint


def test_resumed_run_equals_the_uninterrupted_one(runs):
    resumed, reference = runs["resumed"], runs["reference"]
    assert resumed["global_step"] == reference["global_step"] == 8
    assert [e["step"] for e in resumed["evals"]] == [e["step"] for e in reference["evals"]] == [0, 2, 4, 6, 8]
    for a, b in zip(resumed["evals"], reference["evals"], strict=True):
        assert abs(a["eval_loss"] - b["eval_loss"]) <= 1e-6, (a, b)
    assert abs(resumed["final_eval_loss"] - reference["final_eval_loss"]) <= 1e-6
    # greedy answers, byte for byte, at every step, and no duplicate rows
    assert _probes(runs["run_dir"]) == _probes(runs["reference_dir"])
    keys = [(r["step"], r["probe_id"]) for r in _probes(runs["run_dir"])]
    assert len(keys) == len(set(keys)) == 5 * 5


def test_superseded_probe_rows_are_kept_aside(runs):
    aside = list(runs["run_dir"].glob("probes.superseded-*.jsonl"))
    assert len(aside) == 1
    rows = [json.loads(line) for line in aside[0].read_text().splitlines()]
    assert {r["step"] for r in rows} == {6} and len(rows) == 5


def test_wandb_history_continues_the_same_run(runs):
    segments = wandb_segments(runs["run_dir"])
    assert len(segments) == 2
    first, last = (read_offline_run(s) for s in segments)
    reference = read_offline_run(Path(runs["reference"]["wandb_dir"]))
    assert first["id"] == last["id"] and last["resumed"] and not first["resumed"]
    assert Path(runs["resumed"]["wandb_dir"]) == segments[-1]

    def steps(run, key):
        return [h["train/global_step"] for h in run["history"] if key in h]

    for key in ("train/loss", "eval/loss", "probes/answers.path", "probes/eos_rate"):
        assert steps(last, key) == steps(reference, key), key  # no gap, no duplicate step
    assert steps(last, "eval/loss") == [0, 2, 4, 6, 8]

    def rows(run):  # every history row: its step and which keys it logged, in order
        return [(h["train/global_step"], sorted(k for k in h if not k.startswith("_"))) for h in run["history"]]

    assert rows(last) == rows(reference)
    assert steps(last, "train/loss") == list(range(1, 9))
    evals = [h["eval/loss"] for h in last["history"] if "eval/loss" in h]
    assert evals == pytest.approx([h["eval/loss"] for h in reference["history"] if "eval/loss" in h], abs=1e-6)
    # the killed segment is left exactly as it was
    assert _segment_files(segments[0]) == runs["killed"]["segment"]


def test_resumed_config_is_kept_beside_the_first(runs):
    hydra = runs["run_dir"] / ".hydra"
    assert (hydra / "config.yaml").exists() and len(list(hydra.glob("resume-*/config.yaml"))) == 1
    assert "train.resume" not in (hydra / "overrides.yaml").read_text()


def test_planted_secrets_appear_nowhere(runs):
    found = []
    for path in runs["run_dir"].rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{name} in {path}" for name, value in SECRETS.items() if value.encode() in data]
    found += [f"{name} on the console" for name, value in SECRETS.items() if value in runs["console"]]
    assert not found, found
    assert len(list(runs["run_dir"].rglob("*.wandb"))) == 2  # the binary W&B files were searched too


class FillTheDiskAfterFirstCheckpoint(TrainerCallback):
    """After checkpoint-2 is written, no file may grow past 1 KiB (RLIMIT_FSIZE): every later write of the
    run fails as it would on a full disk."""

    def __init__(self):
        self.limit = resource.getrlimit(resource.RLIMIT_FSIZE)

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 2:
            resource.setrlimit(resource.RLIMIT_FSIZE, (1024, self.limit[1]))


def test_write_failure_mid_run_is_clear_and_keeps_earlier_checkpoints(compose_small, base_dir, tmp_path):
    small = ["train.max_steps=4", "train.save_steps=2", "train.eval_steps=2", "decoding.max_new_tokens=8"]
    cfg = compose_small(["train=smoke", *small, "data.total=40", "tracking=none"])
    run_dir = tmp_path / "run"
    full = FillTheDiskAfterFirstCheckpoint()
    saved = {}

    class Snapshot(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 2:
                saved.update({p: _sha(p) for p in (run_dir / "checkpoints").rglob("*") if p.is_file()})

    try:
        with pytest.raises(RunWriteError) as err:
            finetune(settings_from_cfg(cfg), run_dir, {}, [Snapshot(), full])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, full.limit)
    message = str(err.value)
    assert "could not write" in message and "File too large" in message and "checkpoint-2" in message
    assert f"train.resume={run_dir}" in message
    assert saved and {p: _sha(p) for p in saved} == saved  # checkpoint-2 byte-identical
    assert [p.name for p in checkpoints(run_dir)] == ["checkpoint-2"]


def _saved_run(root: Path, name: str, cfg, finished: bool = False) -> Path:
    """A run folder as Hydra and the trainer leave it: .hydra/config.yaml and one complete checkpoint."""
    import torch
    from safetensors.torch import save_file

    from medqa.core.run_folder import CHECKPOINT_FILES

    run_dir = root / "runs" / "2026-11-27" / name
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    ckpt = run_dir / "checkpoints" / "checkpoint-4"
    ckpt.mkdir(parents=True)
    for f in CHECKPOINT_FILES:
        (ckpt / f).write_text("{}")
    (ckpt / "trainer_state.json").write_text('{"global_step": 4, "log_history": []}')
    save_file({"lora_A": torch.zeros(2, 2)}, str(ckpt / "adapter_model.safetensors"))
    if finished:
        (run_dir / "run.json").write_text("{}")
    return run_dir


def test_resume_auto_picks_the_latest_unfinished_run_of_the_same_config(compose, tmp_path, monkeypatch):
    from medqa.config.resume import resolve_resume
    from medqa.core.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    cfg = compose(["train=smoke"])
    assert resolve_resume(["train.resume=auto"], cfg, "auto") == ["train.resume=null"]  # nothing yet: fresh

    older = _saved_run(tmp_path, "05-00-00-000001", cfg)
    _saved_run(tmp_path, "05-10-00-000001", compose(["train=smoke", "train.lr=0.1"]))  # another config
    _saved_run(tmp_path, "05-20-00-000001", cfg, finished=True)  # finished: never resumed
    argv = resolve_resume(["train=smoke", "train.resume=auto"], cfg, "auto")
    assert f"hydra.run.dir={older.absolute()}" in argv and f"train.resume={older.absolute()}" in argv
    assert any(a.startswith("hydra.output_subdir=.hydra/resume-") for a in argv)

    with pytest.raises(ConfigError, match=r"config differs .* in train\.lr"):
        resolve_resume(["train.resume=x"], compose(["train=smoke", "train.lr=0.5"]), str(older))
