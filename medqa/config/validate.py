"""Bad input is rejected before anything expensive happens: composing, building settings and checking every
value runs before data or models load and before a run directory or W&B run exists. One `ConfigError`
lists every problem found, each naming the key, the bad value and what is allowed.

Entry points call `checked_settings(overrides)` (or `validate_settings` on settings they built) and wrap
their body in `medqa.core.errors.exit_on_error`, which prints the message on one line and exits non-zero,
without a traceback. This is the one place a run's settings are validated.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

from medqa.config.build import settings_from_cfg, tiny_recipe
from medqa.config.compose import compose_config
from medqa.core.errors import ConfigError, one_line
from medqa.core.redact import is_secret_key, secret_keys
from medqa.data.mix import check_locations
from medqa.model.tokenizer import prompt_token_floor
from medqa.settings.model import TinyRecipe
from medqa.settings.training import RunSettings
from medqa.settings.validation import recipe_problems


def compose_checked(overrides: list[str]):
    """conf/ composed with `overrides`; a composition error (unknown option or key) becomes a ConfigError."""
    from hydra.errors import HydraException

    try:
        return compose_config(overrides)
    except HydraException as err:
        raise ConfigError(_composition_message(err, overrides)) from None


def _composition_message(err: Exception, overrides: list[str]) -> str:
    text = str(err)
    missing = re.search(r"Could not find '([^/']+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        available = re.findall(r"^\t(\S+)$", text.split("Config search path")[0], flags=re.M)
        return f"{group}={option}: no such option; available: {', '.join(available)}"
    key = re.search(r"Could not override '([^']+)'", text)
    if key and "not in struct" in str(err.__cause__):
        full = re.search(r"full_key: (\S+)", str(err.__cause__))
        dotted = full.group(1) if full else key.group(1)
        parent, _, leaf = dotted.rpartition(".")
        # Which keys exist depends only on the group choices (lora=attn, train=smoke): list them from those alone,
        # so another bad override does not empty the list.
        choices = [
            o for o in overrides if "." not in o.split("=", 1)[0] and not o.lstrip("+~").startswith(key.group(1))
        ]
        allowed = _keys_at(parent, choices)
        value = _override_value(overrides, dotted)
        shown = "" if value is None else "=<hidden>" if is_secret_key(leaf) else f"={value}"
        return f"{dotted}{shown}: no such key; {parent or 'the config'} has: {', '.join(allowed)}"
    return one_line(text.split("Config search path")[0])


def _override_value(overrides: list[str], key: str) -> str | None:
    for o in overrides:
        name, _, value = o.lstrip("+~").partition("=")
        if name == key:
            return value
    return None


def _keys_at(parent: str, overrides: list[str]) -> list[str]:
    from omegaconf import OmegaConf

    try:
        node = OmegaConf.select(compose_config(overrides), parent) if parent else compose_config(overrides)
        return sorted(node.keys())
    except Exception:  # the listing is a courtesy; the error itself is already known
        return []


def settings_checked(cfg) -> RunSettings:
    """RunSettings from a composed config, every value validated; raises ConfigError."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(cfg, resolve=False)
    secrets = secret_keys({k: v for k, v in raw.items() if k != "hydra"})
    if secrets:
        raise ConfigError(
            f"{', '.join(secrets)}: credentials are not read from the config (it is logged and saved); "
            "set them in the environment (HF_TOKEN, WANDB_API_KEY)"
        )
    try:
        settings = settings_from_cfg(cfg)
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(one_line(str(err))) from None
    validate_settings(settings)
    return settings


def checked_settings(overrides: list[str]) -> tuple[Any, Any]:
    """(cfg, settings) for command-line overrides: compose, build and validate. Raises ConfigError."""
    cfg = compose_checked(overrides)
    return cfg, settings_checked(cfg)


def validate_settings(settings: RunSettings) -> None:
    """Every value of a RunSettings checked once, before anything loads: each group's own fields
    (medqa.settings), then what needs more than one group or this machine (files, GPU, the prompt's
    length). Raises one ConfigError listing all problems."""
    typed = settings.type_problems()
    if typed:
        raise ConfigError("; ".join(typed))  # the checks below assume the types are right
    by_group = {g: getattr(settings, g).problems() for g in settings.GROUPS}
    problems = [p for found in by_group.values() for p in found] + _machine_problems(settings)
    if not by_group["data"]:  # the mix names known sources with sound settings: are they where it says?
        try:
            check_locations(settings.data)
        except (ValueError, OSError) as err:
            problems.append(str(err))
    t = settings.train
    if t.max_length >= 1:
        floor = prompt_token_floor(settings.data.system_prompt)
        if t.max_length <= floor:
            problems.append(
                f"train.max_length={t.max_length!r}: must be larger than the prompt (system prompt + chat headers "
                f">= {floor} tokens), or no answer token is trained"
            )
    if problems:
        raise ConfigError("; ".join(problems))


def _machine_problems(settings: RunSettings) -> list[str]:
    """Settings this machine cannot run: 4-bit or fp16 without a CUDA GPU, QLoRA without bitsandbytes."""
    problems = []
    if settings.quant.load_in_4bit:
        if not _cuda_available():
            problems.append(
                "quant.load_in_4bit=True: 4-bit QLoRA needs a CUDA GPU and none is visible; "
                "use quant=none on this machine"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            problems.append("quant.load_in_4bit=True: needs bitsandbytes (pip install -e '.[qlora]')")
    if settings.train.precision == "fp16" and not _cuda_available():
        problems.append("train.precision='fp16': fp16 needs a CUDA GPU")
    return problems


def checked_recipe(overrides: list[str]) -> TinyRecipe:
    """The embedded model's recipe for command-line overrides (python -m medqa.build_base); raises ConfigError."""
    cfg = compose_checked(overrides)
    try:
        recipe = tiny_recipe(cfg.model)
    except (ValueError, TypeError, AttributeError) as err:
        raise ConfigError(one_line(str(err))) from None
    problems = recipe_problems(recipe)
    if problems:
        raise ConfigError("; ".join(problems))
    return recipe


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
