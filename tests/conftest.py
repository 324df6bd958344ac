"""Shared fixtures: the real conf/ composed with Hydra's compose API, shrunk for tests, and the shipped
embedded base model (medqa/assets/base/tiny; tests/test_build_base.py runs the real builder at a toy size)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# isort: off
import medqa  # noqa: F401  (first: sets how torch's OpenMP threads wait, before transformers loads torch)
from transformers import TrainerCallback
# isort: on

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail at once instead of retrying
# A cache of this session's own (only non-default recipes build into it); subprocesses inherit it.
os.environ["MEDQA_CACHE"] = tempfile.mkdtemp(prefix="medqa-test-cache-")
# torch.compile's kernel cache of this session only: inductor's cache key ignores ATEN_CPU_CAPABILITY, so kernels
# compiled natively (AVX-512) were reused by a run forced to AVX2 and crashed it (segfault in test_fused_lora).
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="medqa-test-inductor-"))

ROOT = Path(__file__).resolve().parent.parent

# Overrides every test run adds. The held-out eval answers 14 of the 86 questions (2 for each of the 7 aspects):
# it is still scored, logged and used for the alarm and the selection, at a sixth of the generation cost.
# Tests about the eval itself set their own size (test_heldout_eval: 16; test_train_e2e's CLI run: all 86).
TEST_OVERRIDES: list[str] = ["quality.heldout_questions=14"]


@pytest.fixture(scope="session")
def shrink_overrides():
    return list(TEST_OVERRIDES)


@pytest.fixture(scope="session")
def compose():
    """conf/config.yaml composed as a user's command line would, plus `overrides`."""
    from medqa.config.compose import compose_config

    return lambda overrides=(): compose_config(list(overrides))


@pytest.fixture(scope="session")
def compose_small():
    """The same, with the embedded model's pretraining shortened: for tests that build or train."""
    from medqa.config.compose import compose_config

    return lambda overrides=(): compose_config([*TEST_OVERRIDES, *overrides])


@pytest.fixture(scope="session")
def base_dir(compose_small):
    """The default recipe's model: the shipped copy, never a build."""
    from medqa.config.build import tiny_recipe
    from medqa.model.tiny.build import SHIPPED_DIR, ensure_base

    path = ensure_base(tiny_recipe(compose_small().model))
    assert path == SHIPPED_DIR, f"{path}: the default recipe no longer matches the shipped model"
    return path


@pytest.fixture(scope="session")
def tokenizer(base_dir):
    from medqa.model.loading import load_tokenizer
    from medqa.settings.model import ModelSettings

    return load_tokenizer(str(base_dir), ModelSettings())


class WeightWatcher(TrainerCallback):
    """Snapshots every parameter at the start and end of training, and the first training batch."""

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.batch = next(iter(train_dataloader))

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.fixture(scope="session")
def smoke_run(compose_small, base_dir, tmp_path_factory):
    """One tiny training run (6 steps, probes at 0/3/6, W&B offline) shared by the test files that need one."""
    from omegaconf import OmegaConf

    from medqa.config.build import settings_from_cfg
    from medqa.training.run import finetune

    # 16 held-out questions keep the fixture quick; the default set (86) is checked in tests/test_heldout.py.
    cfg = compose_small(["train=smoke", "data.total=160", "decoding.max_new_tokens=48", "quality.heldout_questions=16"])
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    watcher = WeightWatcher()
    summary = finetune(settings_from_cfg(cfg), run_dir, OmegaConf.to_container(cfg, resolve=True), [watcher])
    return summary, run_dir, watcher


def _checkout_env() -> dict[str, str]:
    """This environment with the checkout on PYTHONPATH: what a subprocess of the tests runs medqa from."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="session")
def run_module():
    """`python -m MODULE ARGS` from the repository root, as a user types it, output captured as text.
    `env` replaces the environment (default: this one, with the checkout on PYTHONPATH)."""

    def run(module: str, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
        env = env if env is not None else _checkout_env()
        cmd = [sys.executable, "-m", module, *args]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

    return run


_SWEEP_GRID: dict = {}  # the grid's command, started while tests are collected (pytest_collection_modifyitems)


def _start_sweep_grid() -> tuple[Path, subprocess.Popen]:
    """`python -m medqa.sweep sweeps/mix_x_targets_tiny.yaml` into a new folder, in the background; its output goes
    to cli_output.txt there."""
    out = Path(tempfile.mkdtemp(prefix="medqa-test-sweep-"))
    extra = ["--", *TEST_OVERRIDES] if TEST_OVERRIDES else []
    cmd = [sys.executable, "-m", "medqa.sweep", "sweeps/mix_x_targets_tiny.yaml", "--out", str(out), *extra]
    with open(out / "cli_output.txt", "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_checkout_env(), stdout=log, stderr=subprocess.STDOUT, text=True)
    return out, proc


@pytest.hookimpl(trylast=True)  # after `-m` and `-k` have deselected: only for a grid some selected test uses
def pytest_collection_modifyitems(session, config, items):
    """The 2x2 sweep grid (four real training runs, ~80 s) starts as soon as collection shows a test that needs it,
    so it runs beside the tests before that one instead of holding up the first of them."""
    if any("sweep_grid" in getattr(item, "fixturenames", ()) for item in items):
        _SWEEP_GRID["run"] = _start_sweep_grid()


def pytest_sessionfinish(session, exitstatus):
    """A grid started for tests that never ran (a failure with -x, an interrupt) is stopped with the session."""
    if "run" in _SWEEP_GRID:
        _SWEEP_GRID.pop("run")[1].kill()


@pytest.fixture(scope="session")
def sweep_grid(base_dir):
    """sweeps/mix_x_targets_tiny.yaml (2x2: WikiDoc share x LoRA targets) run once through `python -m
    medqa.sweep`: real training, W&B offline. Returns the sweep folder (sweep.json, run dirs 00..03); the
    command's output is beside it in cli_output.txt."""
    out, proc = _SWEEP_GRID.pop("run", None) or _start_sweep_grid()
    try:
        returncode = proc.wait(timeout=900)
    finally:
        proc.kill()  # no-op once it has exited; a timeout does not leave it running
    assert returncode == 0, (out / "cli_output.txt").read_text()[-5000:]
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder
