"""Secrets never reach a log: which config keys and environment variables count as credentials, and the one
function that masks them in anything written out (the W&B config, run.json).

The rule, by key name: split the name into words (at `.`, `_`, `-` and camelCase); it is a credential when
one word is token, key, secret, password, passwd, apikey, credential(s) or auth, unless the whole name is a
tokenizer setting (pad_token, bos_token, eos_token, unk_token, ...). Plural words (eos_tokens,
max_new_tokens) are not credential words. By value: any string that contains the value of a credential-named
environment variable (8 characters or more) is masked too, wherever it appears.
"""

from __future__ import annotations

import os
import re
from typing import Any

MASK = "***"
CREDENTIAL_WORDS = {"token", "key", "secret", "password", "passwd", "apikey", "credential", "credentials", "auth"}
# Tokenizer settings that name a token, not a credential.
NOT_SECRET = {"pad_token", "bos_token", "eos_token", "unk_token", "sep_token", "cls_token", "mask_token"}
MIN_SECRET_CHARS = 8  # shorter env values (e.g. "1") would mask ordinary text


def _words(name: str) -> list[str]:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def is_secret_key(name: str) -> bool:
    """True when a config key or environment variable name is credential-like (see the module doc)."""
    leaf = str(name).rsplit(".", 1)[-1]
    if leaf.lower() in NOT_SECRET:
        return False
    return any(w in CREDENTIAL_WORDS for w in _words(leaf))


def secret_env_values(environ: dict | None = None) -> list[str]:
    """Values of credential-named environment variables (HF_TOKEN, WANDB_API_KEY, ...), longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_key(k) and len(v) >= MIN_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)


def redact(obj: Any, environ: dict | None = None) -> Any:
    """A copy of `obj` (dicts, lists, scalars) with credential-named keys and env secret values masked."""
    values = secret_env_values(environ)

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: (MASK if is_secret_key(k) and x[k] is not None else walk(v)) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return type(x)(walk(v) for v in x)
        if isinstance(x, str):
            for v in values:
                x = x.replace(v, MASK)
        return x

    return walk(obj)


def secret_keys(obj: Any, prefix: str = "") -> list[str]:
    """Dotted paths of credential-named keys holding a value in a nested config."""
    found = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}{k}"
            if is_secret_key(str(k)) and v is not None:
                found.append(path)
            else:
                found += secret_keys(v, path + ".")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += secret_keys(v, f"{prefix}{i}.")
    return found
