"""Sweeps through Hydra's submitit launcher: the SLURM option composes for a sweep over the data mix and the
LoRA targets, and submitit's local executor runs a 2-point multirun to the end on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from medqa.config.build import settings_from_cfg
from medqa.config.compose import CONF_DIR

ROOT = Path(__file__).resolve().parent.parent


def _compose_with_hydra(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("launcher", ["submitit_slurm", "slurm"])
@pytest.mark.parametrize("wikidoc", [0, 0.15, 0.33])
@pytest.mark.parametrize("lora", ["attn", "attn_mlp"])
def test_every_sweep_point_composes_with_the_slurm_launcher(launcher, wikidoc, lora):
    cfg = _compose_with_hydra([f"hydra/launcher={launcher}", f"data.mix.wikidoc={wikidoc}", f"lora={lora}"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    settings = settings_from_cfg(cfg)  # the mix is checked here: the shares must sum to 1
    assert settings.data.mix == {"chatdoctor": pytest.approx(1 - wikidoc), "wikidoc": wikidoc}
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min == 180


def test_remainder_rejects_a_share_above_one(compose):
    with pytest.raises(ValueError, match=r"data.mix.chatdoctor=-0.5: a share must be >= 0"):
        from medqa.settings.data import validate_mix

        validate_mix(settings_from_cfg(compose(["data.mix.wikidoc=1.5"])).data)


@pytest.mark.slow  # ~20 s of two training runs through submitit's local executor (`make slow`); the config checks stay
def test_submitit_local_runs_a_two_point_multirun(base_dir, shrink_overrides, tmp_path, run_module):
    sweep_dir = tmp_path / "sweep"
    overrides = [
        *shrink_overrides,
        "hydra/launcher=submitit_local",
        "data.mix.wikidoc=0,0.15",
        "train=smoke",
        "train.max_steps=2",
        "train.eval_steps=2",
        "train.save_steps=2",  # the kept checkpoint (train.select_by) is one of the evaluated ones
        "data.total=40",
        "decoding.max_new_tokens=4",
        "tracking=none",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # jobs unpickle medqa.train.main
    out = run_module("medqa.train", "-m", *overrides, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    wikidoc_rows = {}
    for job in ("0", "1"):
        summary = json.loads((sweep_dir / job / "run.json").read_text())
        assert summary["global_step"] == 2
        wikidoc_rows[job] = summary["data"]["sources"].get("wikidoc", {}).get("sampled", 0)
    assert wikidoc_rows == {"0": 0, "1": 6}  # 0% and 15% of 40 rows
    assert list((sweep_dir / ".submitit").glob("*/*_result.pkl")), "submitit ran the jobs"
