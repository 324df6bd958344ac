"""Hub models and the embedded one load through the same code: a local folder in hub layout works."""

from __future__ import annotations

import pytest

from medqa.model.loading import load_base, lora_config
from medqa.model.tokenizer import PAD
from medqa.settings.model import ModelSettings, QuantSettings


def test_local_folder_loads_like_a_hub_model(base_dir):
    model, tokenizer, path = load_base(ModelSettings(source="hub", name_or_path=str(base_dir)), QuantSettings())
    assert path == str(base_dir)
    assert tokenizer.pad_token == PAD and model.config.pad_token_id == tokenizer.pad_token_id
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)  # nothing added, nothing resized


def test_missing_pad_token_is_a_clear_error(base_dir):
    with pytest.raises(ValueError, match=r"model.pad_token='<\|nope\|>' is not a token"):
        load_base(ModelSettings(source="hub", name_or_path=str(base_dir), pad_token="<|nope|>"), QuantSettings())


def test_lora_targets_come_from_settings(compose):
    from medqa.config.build import settings_from_cfg

    attn = lora_config(settings_from_cfg(compose(["lora=attn"])).lora)
    assert set(attn.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert (attn.r, attn.lora_alpha, attn.lora_dropout, attn.bias) == (16, 32, 0.05, "none")
