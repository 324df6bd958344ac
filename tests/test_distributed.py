"""Several processes, one run: torchrun starts two CPU processes (gloo) that train the tiny config end to end,
make one run folder written by rank 0 only, and reach the eval losses of one process with the same samples
per optimizer step (2 processes x batch 2 == 1 process x batch 2 x grad accum 2)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import early
import pytest
from early import TEST_OVERRIDES

from medqa.core.distributed import shared_stamp

# Same weights, same batches, same token-weighted gradients: the runs differ only in the order of float
# reductions (gloo all-reduce vs accumulation); measured identical here. Dropout off: each rank draws its own masks.
TOLERANCE = 1e-4
SMALL = ["train=smoke", "train.per_device_batch=2", "data.total=80", "decoding.max_new_tokens=8", "lora.dropout=0"]


@early.starts("two_and_one", background=False)  # the lane beside the first tests: slower on 2 cores
def _start_two_and_one() -> early.Started:
    """The torchrun job (2 ranks) and the one-process run, side by side, started at collection (tests/early.py)."""
    tmp = Path(tempfile.mkdtemp(prefix="medqa-test-ddp-"))
    ddp_cwd, one_dir = tmp / "ddp", tmp / "one" / "run"  # ddp: the default run dir (runs/<stamp>) lands there
    ddp_cwd.mkdir()
    env = early.checkout_env({"OMP_NUM_THREADS": "1"})  # the tests' MEDQA_CACHE is inherited
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    ddp = [*torchrun, "-m", "medqa.train", *TEST_OVERRIDES, *SMALL]
    one = [*TEST_OVERRIDES, *SMALL, "train.grad_accum=2", "tracking=none", f"hydra.run.dir={one_dir}"]
    procs = {
        "ddp": early.launch(ddp, tmp / "ddp.out", cwd=ddp_cwd, env=env, stderr=tmp / "ddp.err"),
        "one": early.launch(early.python_module("medqa.train", *one), tmp / "one.out", env=env, stderr=tmp / "one.err"),
    }
    return early.Started(procs, {"tmp": tmp, "ddp_cwd": ddp_cwd, "one_dir": one_dir})


def _finished(work: early.Started, name: str) -> SimpleNamespace:
    """Process `name`'s return code and output, once it has ended; it must have succeeded."""
    tmp = work.paths["tmp"]
    returncode = work.wait(name, timeout=600)
    out = SimpleNamespace(stdout=(tmp / f"{name}.out").read_text(), stderr=(tmp / f"{name}.err").read_text())
    assert returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def two_and_one(base_dir):
    work = early.take("two_and_one")
    ddp = _finished(work, "ddp")
    _finished(work, "one")
    return work.paths["ddp_cwd"], ddp, work.paths["one_dir"]


def test_two_processes_make_one_run_written_by_rank0(two_and_one):
    ddp_cwd, ddp, _ = two_and_one
    runs = list((ddp_cwd / "runs").glob("*/*"))
    assert len(runs) == 1, f"the ranks must share one run folder, got {runs}"
    run = runs[0]
    summary = json.loads((run / "run.json").read_text())
    assert summary["world_size"] == 2 and summary["global_batch"] == 2 * 1 * 2
    rows = (run / "probes.jsonl").read_text().splitlines()
    assert len(rows) == 5 * 3, "probes answered once per eval (steps 0, 3, 6), by rank 0 alone"
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    assert ddp.stdout.count("run dir:") == 1, "only rank 0 prints the summary"


def test_two_processes_match_one_process_with_the_same_global_batch(two_and_one):
    ddp_cwd, _, one_dir = two_and_one
    ddp = json.loads(next((ddp_cwd / "runs").glob("*/*/run.json")).read_text())
    one = json.loads((one_dir / "run.json").read_text())
    assert one["world_size"] == 1 and one["global_batch"] == 4
    assert [e["step"] for e in ddp["evals"]] == [e["step"] for e in one["evals"]] == [0, 3, 6]
    for a, b in zip(ddp["evals"], one["evals"], strict=True):
        assert abs(a["eval_loss"] - b["eval_loss"]) < TOLERANCE, (a, b)
        if a["train_loss"] is not None:  # the same samples in every optimizer step
            assert abs(a["train_loss"] - b["train_loss"]) < TOLERANCE, (a, b)
    assert ddp["evals"][-1]["eval_loss"] != ddp["evals"][0]["eval_loss"], "nothing trained"


def test_ranks_outside_a_launcher_cannot_share_a_stamp(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    with pytest.raises(RuntimeError, match="pass the same hydra.run.dir"):
        shared_stamp("%H-%M-%S-%f")
