"""Shared fixtures: the real conf/ composed with Hydra's compose API, shrunk for tests, and an embedded
base model built by the real builder into a fresh cache (so every test session exercises the build)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from transformers import TrainerCallback

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub here: fail at once instead of retrying
# A cache of this session's own; subprocesses (the CLI test) inherit it.
os.environ["MEDQA_CACHE"] = tempfile.mkdtemp(prefix="medqa-test-cache-")

ROOT = Path(__file__).resolve().parent.parent

# The same recipe with a short pretraining: the build path is the real one, in ~20 s instead of ~2 min.
TEST_OVERRIDES = ["model.recipe.pretrain_steps=40"]


@pytest.fixture(scope="session")
def shrink_overrides():
    return list(TEST_OVERRIDES)


@pytest.fixture(scope="session")
def compose():
    """conf/config.yaml composed as a user's command line would, plus `overrides`."""
    from medqa.config import compose_config

    return lambda overrides=(): compose_config(list(overrides))


@pytest.fixture(scope="session")
def compose_small():
    """The same, with the embedded model's pretraining shortened: for tests that build or train."""
    from medqa.config import compose_config

    return lambda overrides=(): compose_config([*TEST_OVERRIDES, *overrides])


@pytest.fixture(scope="session")
def base_dir(compose_small):
    from medqa.build_base import ensure_base
    from medqa.config import tiny_recipe

    return ensure_base(tiny_recipe(compose_small().model))


@pytest.fixture(scope="session")
def tokenizer(base_dir):
    from medqa.modeling import ModelSettings, load_tokenizer

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

    from medqa.config import settings_from_cfg
    from medqa.finetune import finetune

    cfg = compose_small(["train=smoke", "data.total=160", "decoding.max_new_tokens=48"])
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    watcher = WeightWatcher()
    summary = finetune(settings_from_cfg(cfg), run_dir, OmegaConf.to_container(cfg, resolve=True), [watcher])
    return summary, run_dir, watcher


@pytest.fixture(scope="session")
def run_module():
    """`python -m MODULE ARGS` from the repository root, as a user types it, output captured as text.
    `env` replaces the environment (default: this one, with the checkout on PYTHONPATH)."""

    def run(module: str, *args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
        env = env if env is not None else {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", module, *args]
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def compare_runs(smoke_run, compose_small, base_dir, tmp_path_factory):
    """A folder of two tiny real runs with different settings, for the compare report: the smoke run (copied:
    wikidoc 0.15, attn_mlp, greedy, adapter kept by quality) and one more (wikidoc 0.5, attn, greedy_rp13,
    the last weights kept, in a W&B group with tags)."""
    import shutil

    from omegaconf import OmegaConf

    from medqa.config import settings_from_cfg
    from medqa.finetune import finetune

    folder = tmp_path_factory.mktemp("compare") / "runs"
    shutil.copytree(smoke_run[1], folder / "a_smoke", ignore=shutil.ignore_patterns("checkpoints"))
    overrides = ["train=smoke", "data.total=160", "decoding.max_new_tokens=48", "lora=attn", "data.mix.wikidoc=0.5"]
    overrides += [
        "decoding=greedy_rp13",
        "train.select_by=last",
        "tracking.group=compare-test",
        "tracking.tags=[mix50,attn]",
    ]
    cfg = compose_small(overrides)
    finetune(settings_from_cfg(cfg), folder / "b_attn_rp13", OmegaConf.to_container(cfg, resolve=True))
    return folder
