"""Field-level checks shared by the settings groups: allowed values, types, the embedded recipe's ranges.
Cross-group and file checks (data files, decoding, the prompt's token floor) are in medqa.config.validate."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from medqa.core.redact import is_secret_key

PRECISIONS = {"fp32", "bf16", "fp16"}
DTYPES = {"float32", "bfloat16", "float16"}
TRACKING_MODES = {"offline", "online", "disabled"}
MODEL_SOURCES = {"embedded", "hub"}
QUANT_TYPES = {"nf4", "fp4"}


def recipe_problems(recipe, key: str = "model.recipe") -> list[str]:
    """What is wrong with an embedded-model recipe (medqa.build_base.TinyRecipe), one entry per key."""
    problems = type_problems(recipe, key)
    if problems:
        return problems
    for f in dataclasses.fields(recipe):
        value = getattr(recipe, f.name)
        if isinstance(value, int) and not isinstance(value, bool) and f.name not in ("seed", "warmup_steps"):
            if value < 1:
                problems.append(f"{key}.{f.name}={value}: must be >= 1")
    if recipe.lr <= 0:
        problems.append(f"{key}.lr={recipe.lr}: must be > 0")
    if recipe.precision not in ("fp32", "bf16"):
        problems.append(f"{key}.precision={recipe.precision!r}: expected fp32 or bf16")
    if recipe.num_heads >= 1 and recipe.hidden_size % recipe.num_heads:
        problems.append(f"{key}.num_heads={recipe.num_heads}: must divide hidden_size={recipe.hidden_size}")
    if recipe.num_kv_heads >= 1 and recipe.num_heads % recipe.num_kv_heads:
        problems.append(f"{key}.num_kv_heads={recipe.num_kv_heads}: must divide num_heads={recipe.num_heads}")
    if recipe.seq_len > recipe.max_position_embeddings:
        problems.append(f"{key}.seq_len={recipe.seq_len}: must be <= max_position_embeddings")
    return problems


def type_problems(obj: Any, prefix: str) -> list[str]:
    """Values whose type does not match the settings field (e.g. train.lr=abc, lora.r=1.5)."""
    problems = []
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        key = f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(value):
            problems += type_problems(value, key)
            continue
        allowed = _allowed_types(hint)
        if allowed and not isinstance(value, allowed):
            shown = "<hidden>" if is_secret_key(f.name) else repr(value)
            names = " or ".join(sorted({a.__name__ for a in allowed}))
            problems.append(f"{key}={shown}: expected {names}")
        elif isinstance(value, bool) and allowed and bool not in allowed:  # True is an int to isinstance
            problems.append(f"{key}={value!r}: expected a number")
    return problems


def _allowed_types(hint: Any) -> tuple[type, ...] | None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        out: tuple[type, ...] = ()
        for arg in typing.get_args(hint):
            sub = _allowed_types(arg)
            if sub is None:
                return None
            out += sub
        return out
    if hint is type(None):
        return (type(None),)
    if hint is float:
        return (int, float)
    if hint in (int, str, bool):
        return (hint,)
    if origin in (list, tuple):
        return (list, tuple)
    if origin is dict:
        return (dict,)
    return None  # nested dataclasses and anything else are checked elsewhere
