"""Where the Hydra config stops: each group's node of a composed config becomes its plain settings object
(medqa.settings); library code below never sees a DictConfig."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from medqa.config.compose import register_resolvers
from medqa.settings.data import CleaningSettings, DataSettings, SourceSettings
from medqa.settings.decoding import DecodingSettings
from medqa.settings.model import LoraSettings, ModelSettings, QuantSettings, TinyRecipe
from medqa.settings.probes import load_probes
from medqa.settings.quality import QualitySettings
from medqa.settings.tracking import TrackingSettings
from medqa.settings.training import RunSettings, TrainSettings


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
    register_resolvers()  # a saved config may still hold ${asset:...}
    saved = run_dir / ".hydra" / "config.yaml"
    if saved.exists():
        return settings_from_cfg(OmegaConf.load(saved))
    run_json = run_dir / "run.json"
    if run_json.exists():
        values = json.loads(run_json.read_text())["settings"]
        values["probes"] = {"questions": values["probes"]}  # asdict gives the probe list; the group holds it
        return settings_from_cfg(OmegaConf.create(values))
    raise FileNotFoundError(f"{run_dir}: neither .hydra/config.yaml nor run.json, so its base model is unknown")
