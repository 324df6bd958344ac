"""Every config group option and every experiment preset composes into valid settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from medqa.config import CONF_DIR, settings_from_cfg

GROUPS = ["model", "data", "lora", "train", "decoding", "quant", "tracking", "probes", "quality"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF_DIR / g).glob("*.yaml"))]
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def test_every_group_has_options():
    for group in GROUPS:
        assert any(g == group for g, _ in OPTIONS), f"conf/{group}/ has no option"


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_group_option_composes(compose, group, option):
    cfg = compose([f"{group}={option}"])
    settings = settings_from_cfg(cfg)
    assert getattr(settings, group) is not None


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_preset_composes(compose, name):
    cfg = compose([f"experiment={name}"])
    settings_from_cfg(cfg)
    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("#"), "a preset starts with a comment: what it reproduces and its command"


def test_experiments_live_in_experiments_folder():
    assert EXPERIMENTS, "no presets"
    assert (CONF_DIR / "experiment").resolve() == (Path(CONF_DIR).parent / "experiments").resolve()


def test_defaults_are_the_embedded_setup(compose):
    s = settings_from_cfg(compose())
    assert s.model.source == "embedded" and s.quant.load_in_4bit is False
    assert s.tracking.mode == "offline" and not s.decoding.do_sample
    assert [p.id for p in s.probes] == [
        "diabetes_early",
        "hypertension_first_line",
        "iron_anemia_causes",
        "malaria_dx_tx",
        "heart_attack_signs",
    ]
    assert set(s.lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_unknown_option_is_rejected(compose):
    with pytest.raises(ConfigCompositionException, match="mlp_only"):
        compose(["lora=mlp_only"])


def test_misspelled_key_is_rejected(compose):
    with pytest.raises(ConfigCompositionException, match="epoch"):
        compose(["train.epoch=2"])


def test_added_unknown_key_names_it(compose):
    with pytest.raises(ValueError, match=r"train: unknown key\(s\) \['epoch'\]"):
        settings_from_cfg(compose(["+train.epoch=2"]))
