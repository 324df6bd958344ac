"""Every config group option and every experiment preset composes into valid settings."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from medqa.config.build import settings_from_cfg
from medqa.config.compose import CONF_DIR

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


@pytest.mark.parametrize("week", ["week3", "week4", "week4_fix"])
def test_tiny_preset_keeps_its_weeks_science_on_the_embedded_default(compose, week):
    from medqa.core.labels import science_labels

    real, tiny = (settings_from_cfg(compose([f"experiment={name}"])) for name in (week, f"{week}_tiny"))
    real_labels, tiny_labels = science_labels(asdict(real)), science_labels(asdict(tiny))
    for key in ("mix", "lora", "length", "decoding"):  # what the week changed, kept at tiny size
        assert tiny_labels[key] == real_labels[key], key
    assert tiny.model.source == "embedded" and not tiny.quant.load_in_4bit and tiny.train.select_by == "loss"
    assert compose([f"experiment={week}_tiny"]).tracking.group == f"{week}_tiny"


def test_experiments_folder_shows_every_shipped_preset():
    # The presets ship inside the package (conf/experiment/, so an installed wheel has them); experiments/ at the
    # repository root links to each one, next to RESULTS.md.
    assert EXPERIMENTS, "no presets"
    top = Path(CONF_DIR).parent.parent / "experiments"
    shown = {p.name: p.resolve() for p in top.glob("*.yaml")}
    assert shown == {p.name: p.resolve() for p in (CONF_DIR / "experiment").glob("*.yaml")}


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


def test_science_labels_name_what_changes_results_and_ignore_speed_levers(compose):
    from medqa.core.labels import science_labels

    def labels(*overrides):
        return science_labels(asdict(settings_from_cfg(compose(list(overrides)))))

    week4 = labels("experiment=week4")
    assert week4["mix"] == "chatdoctor:0.666667,wikidoc:0.333333" and week4["lora"] == "attn-r16"
    assert week4["length"] == "2ep" and week4["decoding"] == "greedy_ngram3"
    assert week4["model"] == "Llama-3.2-3B-Instruct-nf4"
    assert labels("experiment=week4_fix")["decoding"] == "greedy_rp1.3"
    # How a run is computed is not science: the GPU speed levers leave the labels alone.
    speed = ["train.padding_free=true", "train.attn_implementation=sdpa", "decoding.cache_implementation=static"]
    assert labels(*speed, "decoding.merge_adapter=true") == labels()
    assert labels("data.mix.wikidoc=0.5")["mix"] == "chatdoctor:0.5,wikidoc:0.5" != labels()["mix"]
