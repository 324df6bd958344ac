"""Shared fixtures: the real conf/ composed with Hydra's compose API, shrunk for tests, and the shipped
embedded base model (medqa/assets/base/tiny; tests/test_build_base.py runs the real builder at a toy size)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# The tests run training processes side by side on two cores (the sweep grid in the background, CLI subprocesses):
# there, an OpenMP worker that spins at all takes the core its sibling process needs (medqa.core.threads: 20 smoke
# steps 37.8 s with medqa's short spin against 25.2 s fully passive). Fully passive here, for this process and every
# subprocess, unless the user set either variable: the suite took 16 min 22 s with medqa's short spin and 11 min 45 s
# fully passive in a clean clone (2026-12-01, session 12, same machine).
if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ):
    os.environ.update(OMP_WAIT_POLICY="PASSIVE", GOMP_SPINCOUNT="0")

# isort: off
import medqa  # noqa: F401  (first: sets how torch's OpenMP threads wait, before transformers loads torch)
from transformers import TrainerCallback
# isort: on

import early
from early import TEST_OVERRIDES, checkout_env, launch, python_module

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail at once instead of retrying
# A cache of this session's own (only non-default recipes build into it); subprocesses inherit it.
os.environ["MEDQA_CACHE"] = tempfile.mkdtemp(prefix="medqa-test-cache-")
# torch.compile's kernel cache of this session only: inductor's cache key ignores ATEN_CPU_CAPABILITY, so kernels
# compiled natively (AVX-512) were reused by a run forced to AVX2 and crashed it (segfault in test_fused_lora).
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="medqa-test-inductor-"))

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.fixture(scope="session")
def run_module():
    """`python -m MODULE ARGS` from the repository root, as a user types it, output captured as text.
    `env` replaces the environment (default: this one, with the checkout on PYTHONPATH)."""

    def run(module: str, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
        env = env if env is not None else checkout_env()
        cmd = [sys.executable, "-m", module, *args]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

    return run


@early.starts("sweep_grid")
def _start_sweep_grid() -> early.Started:
    """`python -m medqa.sweep sweeps/mix_x_targets_tiny.yaml` into a new folder; its output goes to cli_output.txt
    there. Four real training runs (~80 s): started at collection (tests/early.py)."""
    out = Path(tempfile.mkdtemp(prefix="medqa-test-sweep-"))
    extra = ["--", *TEST_OVERRIDES] if TEST_OVERRIDES else []
    cmd = python_module("medqa.sweep", "sweeps/mix_x_targets_tiny.yaml", "--out", str(out), *extra)
    return early.Started({"grid": launch(cmd, out / "cli_output.txt")}, {"out": out})


@pytest.hookimpl(trylast=True)  # after `-m` and `-k` have deselected: only work some selected test uses
def pytest_collection_modifyitems(session, config, items):
    """Fixtures made of whole subprocesses are queued as soon as collection shows a test that needs them, so they run
    beside the tests before that one, one at a time, instead of holding up the first of them (tests/early.py).
    Not under pytest-xdist: each worker collects every test, so each would start all of them."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        early.start_used([name for item in items for name in getattr(item, "fixturenames", ())])


# Session fixtures made of training runs, and the files that share one: under pytest-xdist (`make test` runs two
# workers, `--dist loadgroup`) each such family of files runs on one worker, and every other file on one worker
# whole, so no run or module fixture is made twice.
SHARED_RUNS = ("sweep_grid", "smoke_run")


class _WorkerGroups:
    @pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks into the node ids
    def pytest_collection_modifyitems(self, items):
        by_file: dict[str, set[str]] = {}
        for item in items:
            by_file.setdefault(item.path.name, set()).update(getattr(item, "fixturenames", ()))
        for item in items:
            shared = [name for name in SHARED_RUNS if name in by_file[item.path.name]]
            item.add_marker(pytest.mark.xdist_group(shared[0] if shared else item.path.stem))


class _GroupsReachTheScheduler:
    @pytest.hookimpl(trylast=True)  # after xdist's hook: the group must be in the node id the scheduler reads
    def pytest_collection_modifyitems(self, config, items):
        if config.getvalue("loadgroup") and items and "@" not in items[0].nodeid:
            # pytest 9.2 reads node ids from Node._id; xdist 3.8 writes its group suffix to Node._nodeid, so the
            # groups never reached the scheduler and each worker made the sweep grid (~95 s) again (session 17).
            raise pytest.UsageError(
                f"pytest-xdist's loadgroup did not reach the node ids (pytest {pytest.__version__}): the shared "
                "training fixtures would run once per worker; pyproject.toml pins a pytest whose node ids it sets"
            )


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        config.pluginmanager.register(_WorkerGroups(), "medqa-worker-groups")
        config.pluginmanager.register(_GroupsReachTheScheduler(), "medqa-worker-groups-check")


def pytest_sessionfinish(session, exitstatus):
    early.kill_untaken()


@pytest.fixture(scope="session")
def sweep_grid(base_dir):
    """sweeps/mix_x_targets_tiny.yaml (2x2: WikiDoc share x LoRA targets) run once through `python -m
    medqa.sweep`: real training, W&B offline. Returns the sweep folder (sweep.json, run dirs 00..03); the
    command's output is beside it in cli_output.txt."""
    work = early.take("sweep_grid")
    out = work.paths["out"]
    assert work.wait("grid") == 0, (out / "cli_output.txt").read_text()[-5000:]
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder
