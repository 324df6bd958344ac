"""Nothing unsafe loads and no secret is logged: trust_remote_code is off unless set, weights load only from
safetensors, torch.load only with weights_only=True, and the redaction rule masks credentials but not
tokenizer settings."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from medqa.config.build import settings_from_cfg
from medqa.config.compose import CONF_DIR
from medqa.core.redact import MASK, is_secret_key, redact, secret_env_values

PACKAGE = Path(__file__).resolve().parent.parent / "medqa"


def _calls(pattern: str) -> list[tuple[str, str]]:
    """(file, call text up to the closing parenthesis) of every call matching `pattern` in medqa/."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(pattern, text):
            depth, i = 0, m.end() - 1
            while True:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                if depth == 0:
                    break
                i += 1
            found.append((path.name, text[m.start() : i + 1]))
    return found


def test_trust_remote_code_is_off_unless_set(compose):
    for option in sorted((CONF_DIR / "model").glob("*.yaml")):
        assert settings_from_cfg(compose([f"model={option.stem}"])).model.trust_remote_code is False
    assert settings_from_cfg(compose(["model.trust_remote_code=true"])).model.trust_remote_code is True
    loads = _calls(r"\w+\.from_pretrained\(")
    assert loads
    for name, call in loads:
        assert "trust_remote_code=True" not in call, (name, call)
        if "Tokenizer" not in call:  # model weights
            assert "use_safetensors=True" in call, (name, call)


def test_torch_load_only_with_weights_only():
    for name, call in _calls(r"torch\.load\("):
        assert "weights_only=True" in call, (name, call)


def test_pickled_weights_are_refused(base_dir, tmp_path):
    from safetensors.torch import load_file

    from medqa.model.loading import load_base
    from medqa.settings.model import ModelSettings, QuantSettings

    folder = tmp_path / "pickled"
    shutil.copytree(base_dir, folder)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        load_base(ModelSettings(source="hub", name_or_path=str(folder)), QuantSettings())


@pytest.mark.parametrize(
    "key",
    ["HF_TOKEN", "WANDB_API_KEY", "hf_token", "api_key", "apiKey", "client_secret", "db_password", "AUTH", "token"],
)
def test_credential_names(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    ["pad_token", "eos_tokens", "max_new_tokens", "bos_token", "n_tokens", "keywords", "monkey", "tokenizer", "seed"],
)
def test_tokenizer_and_ordinary_names_are_not_secrets(key):
    assert not is_secret_key(key)


def test_redact_masks_keys_and_env_values_only():
    env = {"HF_TOKEN": "hf_abcdefgh12345", "SHORT_KEY": "1", "PATH": "/usr/bin"}
    config = {
        "model": {"pad_token": "<|finetune_right_pad_id|>", "hf_token": "hf_other", "name_or_path": "x"},
        "decoding": {"eos_tokens": ["<|eot_id|>"], "max_new_tokens": 256},
        "tracking": {"tags": ["run with hf_abcdefgh12345 inside"], "api_key": None},
    }
    out = redact(config, env)
    assert out["model"] == {"pad_token": "<|finetune_right_pad_id|>", "hf_token": MASK, "name_or_path": "x"}
    assert out["decoding"] == config["decoding"]
    assert out["tracking"] == {"tags": [f"run with {MASK} inside"], "api_key": None}
    assert secret_env_values(env) == ["hf_abcdefgh12345"]  # too-short values are not masked everywhere
