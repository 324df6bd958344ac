"""Bad input is rejected before anything expensive happens: composing, building settings and checking every
value runs before data or models load and before a run directory or W&B run exists. One `ConfigError`
lists every problem found, each naming the key, the bad value and what is allowed.

Entry points call `checked_settings(overrides)` (or `validate_settings` on settings they built) and wrap
their body in `exit_on_error`, which prints the message on one line and exits non-zero, without a traceback.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from medqa.redact import is_secret_key, secret_keys

PRECISIONS = {"fp32", "bf16", "fp16"}
DTYPES = {"float32", "bfloat16", "float16"}
TRACKING_MODES = {"offline", "online", "disabled"}
MODEL_SOURCES = {"embedded", "hub"}
QUANT_TYPES = {"nf4", "fp4"}


class ConfigError(ValueError):
    """A bad input; the message names the key, the bad value and what is allowed."""


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of a UTF-8 text file; bytes that are not UTF-8 are a ConfigError
    naming the file, the line and the byte."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                byte = raw[err.start : err.start + 1].hex()
                raise ConfigError(f"{path}:{n}: not UTF-8 (byte 0x{byte} at column {err.start + 1})") from None


def read_utf8(path: Path) -> str:
    """A text file's content; bytes that are not UTF-8 are a ConfigError naming the file and the line."""
    return "".join(line for _, line in text_lines(path))


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSON-lines file; a line that is not UTF-8, not JSON or
    holds a lone surrogate (not writable as UTF-8) is a ConfigError naming the file and the line."""
    for n, line in text_lines(path):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{n}: not a JSON line ({err.msg})") from None
        bad = _lone_surrogate(value)
        if bad is not None:
            raise ConfigError(f"{path}:{n}: lone surrogate {bad!r} in a string (not valid Unicode)")
        yield n, value


def _lone_surrogate(value: Any) -> str | None:
    """The first string (key or value) in a parsed JSON value that cannot be encoded as UTF-8, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            return value[err.start : err.end]
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _lone_surrogate(k) if isinstance(k, str) else None
        if found is None:
            found = _lone_surrogate(v)
        if found is not None:
            return found
    return None


class RunWriteError(OSError):
    """The run could not write its files (disk full, unwritable folder); earlier checkpoints are intact."""


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def compose_checked(overrides: list[str]):
    """conf/ composed with `overrides`; a composition error (unknown option or key) becomes a ConfigError."""
    from hydra.errors import HydraException

    from medqa.config import compose_config

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
    return _one_line(text.split("Config search path")[0])


def _override_value(overrides: list[str], key: str) -> str | None:
    for o in overrides:
        name, _, value = o.lstrip("+~").partition("=")
        if name == key:
            return value
    return None


def _keys_at(parent: str, overrides: list[str]) -> list[str]:
    from omegaconf import OmegaConf

    from medqa.config import compose_config

    try:
        node = OmegaConf.select(compose_config(overrides), parent) if parent else compose_config(overrides)
        return sorted(node.keys())
    except Exception:  # the listing is a courtesy; the error itself is already known
        return []


def settings_checked(cfg) -> Any:
    """RunSettings from a composed config, every value validated; raises ConfigError."""
    from omegaconf import OmegaConf

    from medqa.config import settings_from_cfg

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
        raise ConfigError(_one_line(str(err))) from None
    validate_settings(settings)
    return settings


def checked_settings(overrides: list[str]) -> tuple[Any, Any]:
    """(cfg, settings) for command-line overrides: compose, build and validate. Raises ConfigError."""
    cfg = compose_checked(overrides)
    return cfg, settings_checked(cfg)


def validate_settings(settings) -> None:
    """Every value of a RunSettings checked; raise one ConfigError listing all problems."""
    problems: list[str] = []
    for group in ("model", "quant", "lora", "data", "train", "decoding", "tracking"):
        problems += _type_problems(getattr(settings, group), group)
    if problems:  # range checks below assume the types are right
        raise ConfigError("; ".join(problems))

    def need(ok: bool, key: str, value: Any, allowed: str) -> None:
        if not ok:
            problems.append(f"{key}={value!r}: {allowed}")

    m, q, lo, d, t, dec, tr = (
        settings.model,
        settings.quant,
        settings.lora,
        settings.data,
        settings.train,
        settings.decoding,
        settings.tracking,
    )
    if m.recipe is not None:
        problems += recipe_problems(m.recipe)
    need(m.source in MODEL_SOURCES, "model.source", m.source, f"expected one of {sorted(MODEL_SOURCES)}")
    need(m.dtype in DTYPES, "model.dtype", m.dtype, f"expected one of {sorted(DTYPES)}")
    need(m.source != "embedded" or m.recipe is not None, "model.recipe", None, "model.source=embedded needs a recipe")
    need(m.source != "hub" or bool(m.name_or_path), "model.name_or_path", m.name_or_path, "a hub id or a folder")

    if q.load_in_4bit:
        need(q.quant_type in QUANT_TYPES, "quant.quant_type", q.quant_type, f"expected one of {sorted(QUANT_TYPES)}")
        need(q.compute_dtype in DTYPES, "quant.compute_dtype", q.compute_dtype, f"expected one of {sorted(DTYPES)}")
        need(
            _cuda_available(),
            "quant.load_in_4bit",
            True,
            "4-bit QLoRA needs a CUDA GPU and none is visible; use quant=none on this machine",
        )
        need(
            importlib.util.find_spec("bitsandbytes") is not None,
            "quant.load_in_4bit",
            True,
            "needs bitsandbytes (pip install -e '.[qlora]')",
        )

    need(lo.r > 0, "lora.r", lo.r, "must be > 0")
    need(lo.alpha > 0, "lora.alpha", lo.alpha, "must be > 0")
    need(0 <= lo.dropout < 1, "lora.dropout", lo.dropout, "must be in [0, 1)")
    need(len(lo.target_modules) > 0, "lora.target_modules", list(lo.target_modules), "name at least one module")

    from medqa.data import check_sources

    try:
        check_sources(d)  # the mix, and each used source's file, format, columns and cleaning
    except (ValueError, OSError) as err:
        problems.append(str(err))

    need(t.max_steps > 0 or t.epochs > 0, "train.epochs", t.epochs, "must be > 0 (or set train.max_steps > 0)")
    need(t.lr > 0, "train.lr", t.lr, "must be > 0")
    for key in ("per_device_batch", "grad_accum", "eval_steps", "logging_steps", "save_steps", "max_length"):
        need(getattr(t, key) >= 1, f"train.{key}", getattr(t, key), "must be >= 1")
    need(t.warmup_steps >= 0, "train.warmup_steps", t.warmup_steps, "must be >= 0")
    need(t.save_total_limit >= 1, "train.save_total_limit", t.save_total_limit, "must be >= 1")
    need(t.precision in PRECISIONS, "train.precision", t.precision, f"expected one of {sorted(PRECISIONS)}")
    need(t.precision != "fp16" or _cuda_available(), "train.precision", t.precision, "fp16 needs a CUDA GPU")
    if t.max_length >= 1:
        floor = prompt_token_floor(d.system_prompt)
        need(
            t.max_length > floor,
            "train.max_length",
            t.max_length,
            f"must be larger than the prompt (system prompt + chat headers >= {floor} tokens), "
            "or no answer token is trained",
        )

    from medqa.quality import SELECT_RULES

    need(t.select_by in SELECT_RULES, "train.select_by", t.select_by, f"expected one of {list(SELECT_RULES)}")
    need(
        t.select_by == "last" or t.save_steps % max(t.eval_steps, 1) == 0,
        "train.save_steps",
        t.save_steps,
        f"must be a multiple of train.eval_steps={t.eval_steps} when train.select_by={t.select_by} keeps the best "
        "eval's checkpoint",
    )
    from medqa.generation import decoding_problems

    problems += decoding_problems(dec)

    need(tr.mode in TRACKING_MODES, "tracking.mode", tr.mode, f"expected one of {sorted(TRACKING_MODES)}")
    if problems:
        raise ConfigError("; ".join(problems))


def recipe_problems(recipe, key: str = "model.recipe") -> list[str]:
    """What is wrong with an embedded-model recipe (medqa.build_base.TinyRecipe), one entry per key."""
    problems = _type_problems(recipe, key)
    if problems:
        return problems
    for f in dataclasses.fields(recipe):
        value = getattr(recipe, f.name)
        if isinstance(value, int) and not isinstance(value, bool) and f.name not in ("seed", "warmup_steps"):
            if value < 1:
                problems.append(f"{key}.{f.name}={value}: must be >= 1")
    if recipe.lr <= 0:
        problems.append(f"{key}.lr={recipe.lr}: must be > 0")
    if recipe.num_heads >= 1 and recipe.hidden_size % recipe.num_heads:
        problems.append(f"{key}.num_heads={recipe.num_heads}: must divide hidden_size={recipe.hidden_size}")
    if recipe.num_kv_heads >= 1 and recipe.num_heads % recipe.num_kv_heads:
        problems.append(f"{key}.num_kv_heads={recipe.num_kv_heads}: must divide num_heads={recipe.num_heads}")
    if recipe.seq_len > recipe.max_position_embeddings:
        problems.append(f"{key}.seq_len={recipe.seq_len}: must be <= max_position_embeddings")
    return problems


def checked_recipe(overrides: list[str]):
    """The embedded model's recipe for command-line overrides (python -m medqa.build_base); raises ConfigError."""
    from medqa.config import tiny_recipe

    cfg = compose_checked(overrides)
    try:
        recipe = tiny_recipe(cfg.model)
    except (ValueError, TypeError, AttributeError) as err:
        raise ConfigError(_one_line(str(err))) from None
    problems = recipe_problems(recipe)
    if problems:
        raise ConfigError("; ".join(problems))
    return recipe


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _type_problems(obj: Any, prefix: str) -> list[str]:
    """Values whose type does not match the settings field (e.g. train.lr=abc, lora.r=1.5)."""
    problems = []
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        key = f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(value):
            problems += _type_problems(value, key)
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


def prompt_token_floor(system_prompt: str) -> int:
    """A lower bound on the tokens of the fixed part of every training prompt (system turn, an empty user
    turn, the assistant header) for a Llama-3 tokenizer: each special token is one token and every piece of
    Llama 3's pre-tokenizer split becomes at least one token."""
    from tokenizers import Regex, pre_tokenizers

    from medqa.tokenizer import LLAMA3_SPLIT

    split = pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated")
    turns = [("system", system_prompt.strip())] if system_prompt.strip() else []
    turns += [("user", ""), ("assistant", None)]
    specials, text = 1, []  # BOS
    for role, content in turns:  # <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
        specials += 2 + (content is not None)
        text += [role, "\n\n" + (content or "")]
    return specials + sum(len(split.pre_tokenize_str(piece)) for piece in text if piece)


def check_run_dir_writable(run_dir: Path) -> None:
    """The run dir can be created: its nearest existing ancestor is a writable folder."""
    probe = Path(run_dir).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"hydra.run.dir={run_dir}: cannot create it, {probe} is not a writable folder")


def check_adapter_dir(path: str | Path, key: str = "adapter") -> Path:
    """A PEFT adapter folder that will load: a parseable adapter_config.json and a readable safetensors file
    (never a pickled .bin)."""
    import json

    from safetensors import safe_open

    p = Path(path)
    config, weights = p / "adapter_config.json", p / "adapter_model.safetensors"
    if not weights.is_file():
        pickled = (p / "adapter_model.bin").exists()
        pickled = " (only a pickled adapter_model.bin, which is never loaded)" if pickled else ""
        raise ConfigError(f"{key}={p}: no adapter_model.safetensors{pickled}")
    try:
        json.loads(config.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}={p}: adapter_config.json unreadable ({_one_line(str(err))})") from None
    try:
        with safe_open(str(weights), framework="pt") as f:  # checks the header and that it covers the file
            if not list(f.keys()):
                raise ValueError("no tensors")
    except Exception as err:  # safetensors raises its own error types for a corrupt or truncated file
        raise ConfigError(f"{weights}: corrupt adapter file ({_one_line(str(err))[:200]})") from None
    return p


def exit_on_error(command: str, fn: Callable[[], Any], bad_input: tuple[type[Exception], ...] = ()) -> Any:
    """Run `fn`; a ConfigError (or one of `bad_input`, the errors a command raises for a bad file or value)
    or a RunWriteError becomes one line on stderr and a non-zero exit."""
    try:
        return fn()
    except (ConfigError, *bad_input) as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunWriteError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def run_checked(command: str, preflight: Callable[[list[str]], list[str]], main: Callable[[], Any], argv=None) -> None:
    """A Hydra app's command line: `preflight` checks (and may rewrite) the overrides before Hydra creates an
    output folder, then `main` runs; a bad input ends with one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0], *exit_on_error(command, lambda: preflight(args))]
    main()
