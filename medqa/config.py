"""Where the Hydra config stops: composing conf/ and turning each group's node into the plain settings
object of the one module that uses it. Only entrypoints (and tests) import this module."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from medqa.build_base import ASSETS, TinyRecipe
from medqa.cleaning import CleaningSettings
from medqa.data import DataSettings, SourceSettings
from medqa.distributed import shared_stamp
from medqa.finetune import RunSettings, TrainSettings
from medqa.generation import DecodingSettings
from medqa.modeling import LoraSettings, ModelSettings, QuantSettings
from medqa.probe_specs import load_probes
from medqa.quality import QualitySettings
from medqa.tracking import TrackingSettings

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

# ${asset:embedded/chatdoctor.jsonl} -> an absolute path into the package's shipped files, from any cwd.
if not OmegaConf.has_resolver("asset"):
    OmegaConf.register_new_resolver("asset", lambda rel: str(ASSETS / rel))
# ${run_stamp:%Y-%m-%d/%H-%M-%S-%f} -> the time rank 0 started, the same on every rank of a torchrun job.
if not OmegaConf.has_resolver("run_stamp"):
    OmegaConf.register_new_resolver("run_stamp", shared_stamp, use_cache=True)


def _remainder(*shares: float) -> float:
    """1 - sum(shares): `chatdoctor: ${remainder:${.wikidoc}}` lets a sweep set one share of a two-way mix."""
    try:
        left = 1.0 - sum(float(s) for s in shares)
    except (TypeError, ValueError) as err:
        raise ValueError(f"${{remainder:...}} takes numbers, got {list(shares)}") from err
    return round(left, 10)  # 1 - 0.15 is 0.8500000000000001


if not OmegaConf.has_resolver("remainder"):
    OmegaConf.register_new_resolver("remainder", _remainder)


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """Compose conf/config.yaml with overrides, outside a Hydra app (CLIs, tests)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides or []), return_hydra_config=False)


def _build(cls: type, node: Any, key: str, **nested: Any):
    """Dataclass `cls` from a config node; an unknown key is an error that names it."""
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{key}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    values.update(nested)
    return cls(**values)


def tiny_recipe(model_node: Any) -> TinyRecipe:
    """The embedded model's recipe from the model group."""
    return _build(TinyRecipe, model_node.recipe, "model.recipe")


def settings_from_cfg(cfg: DictConfig) -> RunSettings:
    """Every group's node -> its settings object."""
    model_recipe = tiny_recipe(cfg.model) if cfg.model.get("recipe") is not None else None
    sources = {name: _source(node, f"data.sources.{name}") for name, node in cfg.data.sources.items()}
    return RunSettings(
        model=_build(ModelSettings, cfg.model, "model", recipe=model_recipe),
        quant=_build(QuantSettings, cfg.quant, "quant"),
        lora=_build(LoraSettings, cfg.lora, "lora"),
        data=_build(DataSettings, cfg.data, "data", sources=sources),
        train=_build(TrainSettings, cfg.train, "train"),
        decoding=_build(DecodingSettings, cfg.decoding, "decoding"),
        tracking=_build(TrackingSettings, cfg.tracking, "tracking"),
        probes=load_probes(OmegaConf.to_container(cfg.probes.questions, resolve=True)),
        quality=_build(QualitySettings, cfg.quality, "quality"),
    )


def _source(node: Any, key: str) -> SourceSettings:
    """A data source with its cleaning rules (absent: the structural checks only)."""
    cleaning = node.get("cleaning")
    rules = _build(CleaningSettings, cleaning, f"{key}.cleaning") if cleaning is not None else CleaningSettings()
    return _build(SourceSettings, node, key, cleaning=rules)


def saved_run_settings(run_dir: Path) -> RunSettings:
    """The settings a run was trained with: its saved Hydra config (`.hydra/config.yaml`, there even for a
    crashed run), else the "settings" of its run.json (runs started from Python)."""
    saved = run_dir / ".hydra" / "config.yaml"
    if saved.exists():
        return settings_from_cfg(OmegaConf.load(saved))
    run_json = run_dir / "run.json"
    if run_json.exists():
        values = json.loads(run_json.read_text())["settings"]
        values["probes"] = {"questions": values["probes"]}  # asdict gives the probe list; the group holds it
        return settings_from_cfg(OmegaConf.create(values))
    raise FileNotFoundError(f"{run_dir}: neither .hydra/config.yaml nor run.json, so its base model is unknown")
