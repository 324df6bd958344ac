"""A base model name that travels with an adapter: a hub id as is, or `medqa-tiny@<recipe hash>` for the embedded
model (whose local folder is a cache path that means nothing on another machine).

A saved adapter's `adapter_config.json` carries the portable name (`base_model_name_or_path`), and for the
embedded model `base_model.json` beside it carries the recipe, so medqa can rebuild the very same base on a clean
cache. `resolve_base` turns the name back into a folder: a shipped or cached build of that hash, else a build
from the recipe (the hash is checked: the recipe and the shipped text must still give that hash).
Plain PEFT needs no resolving: `PEFT loading the adapter dir onto the base loaded from its folder`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from medqa.core.paths import ASSETS, cache_root
from medqa.model.loading import load_adapter, load_base
from medqa.model.tiny.build import ensure_base, recipe_key
from medqa.settings.model import ModelSettings, QuantSettings, TinyRecipe

TINY_PREFIX = "medqa-tiny@"
SIDECAR = "base_model.json"


def portable_name(source: str, name_or_path: str, recipe: TinyRecipe | None) -> str:
    """`medqa-tiny@<hash>` for the embedded model, else the configured hub id or folder as given."""
    if source == "embedded":
        if recipe is None:
            raise ValueError("model.source=embedded needs model.recipe (see conf/model/tiny.yaml)")
        return TINY_PREFIX + recipe_key(recipe)
    return name_or_path


def make_portable(adapter_dir: Path, name: str, recipe: TinyRecipe | None = None) -> None:
    """Point the adapter's `adapter_config.json` at the portable base name; for the embedded model, write
    `base_model.json` (name and recipe) beside it. Only files of the adapter just saved are touched."""
    config_file = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = name
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if name.startswith(TINY_PREFIX):
        if recipe is None:
            raise ValueError(f"{name}: the embedded base needs its recipe to travel with the adapter")
        sidecar = {"name": name, "recipe": dataclasses.asdict(recipe)}
        (Path(adapter_dir) / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")


def adapter_base_name(adapter_dir: Path) -> str:
    """The base model an adapter folder names in its adapter_config.json."""
    config_file = Path(adapter_dir) / "adapter_config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{adapter_dir}: no adapter_config.json (not a PEFT adapter folder)")
    name = json.loads(config_file.read_text()).get("base_model_name_or_path")
    if not name:
        raise ValueError(f"{config_file}: base_model_name_or_path is empty; set it to the base model's hub id")
    return name


def shipped_bases() -> list[Path]:
    """Built embedded bases shipped inside the package (folders with a build_info.json under medqa/assets)."""
    return sorted(p.parent for p in ASSETS.glob("**/build_info.json"))


def _key_of(folder: Path) -> str | None:
    """The recipe hash a complete build was made from (its build_info.json), None for anything else."""
    info = folder / "build_info.json"
    return json.loads(info.read_text()).get("key") if info.exists() else None


def resolve_base(name: str, adapter_dir: Path | None = None) -> str:
    """The folder (or hub id) to load the base model `name` from. `medqa-tiny@<hash>`: a shipped build of that
    hash, else the cache's `base/tiny-<hash>`, else built now from the recipe in `adapter_dir/base_model.json`."""
    if not name.startswith(TINY_PREFIX):
        return name
    key = name.removeprefix(TINY_PREFIX)
    for folder in [*shipped_bases(), cache_root() / "base" / f"tiny-{key}"]:
        if _key_of(folder) == key:
            return str(folder)
    sidecar = Path(adapter_dir) / SIDECAR if adapter_dir else None
    if sidecar is None or not sidecar.exists():
        raise FileNotFoundError(
            f"base model {name}: not shipped, not in the cache ({cache_root() / 'base'}), and no {SIDECAR} with its "
            "recipe beside the adapter to build it from"
        )
    recipe = TinyRecipe(**json.loads(sidecar.read_text())["recipe"])
    if recipe_key(recipe) != key:
        raise ValueError(
            f"{sidecar}: its recipe hashes to {recipe_key(recipe)}, not {key}: this checkout's shipped text or "
            "builder differs from the one that trained the adapter, so the same base cannot be rebuilt"
        )
    return str(ensure_base(recipe))


def load_portable_adapter(adapter_dir: Path, dtype: str = "float32"):
    """(PeftModel, tokenizer) from an adapter folder alone: its base model resolved from the portable name in its
    adapter_config.json (built first on a clean cache, for the embedded model), its weights from safetensors."""
    base = resolve_base(adapter_base_name(adapter_dir), adapter_dir)
    model, tokenizer, _ = load_base(ModelSettings(source="hub", name_or_path=base, dtype=dtype), QuantSettings())
    return load_adapter(model, Path(adapter_dir)), tokenizer
