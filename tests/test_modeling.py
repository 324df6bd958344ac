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


@pytest.mark.parametrize("fp32_layers", [True, False])
def test_a_4bit_base_upcasts_its_other_layers_only_when_asked(base_dir, fp32_layers):
    """QLoRA's preparation: with quant.fp32_layers (the seed's recipe) every unquantized weight goes to fp32, as
    PEFT's prepare_model_for_kbit_training does; without it they keep model.dtype (train=gpu). Both freeze."""
    import torch

    from medqa.model.loading import _prepare_4bit

    model, _, _ = load_base(ModelSettings(source="hub", name_or_path=str(base_dir), dtype="bfloat16"), QuantSettings())
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    _prepare_4bit(model, fp32_layers)
    assert {p.dtype for p in model.parameters()} == {torch.float32 if fp32_layers else torch.bfloat16}
    assert not any(p.requires_grad for p in model.parameters())


def test_gpu_preset_keeps_a_4bit_base_in_bf16_and_the_seed_recipe_does_not(compose):
    from medqa.config.build import settings_from_cfg

    assert settings_from_cfg(compose(["quant=nf4"])).quant.fp32_layers is True
    assert settings_from_cfg(compose(["train=gpu", "quant=nf4"])).quant.fp32_layers is False
    assert settings_from_cfg(compose(["experiment=week4"])).quant.fp32_layers is True  # the seed's QLoRA
    assert settings_from_cfg(compose(["train=gpu", "quant=nf4", "quant.fp32_layers=true"])).quant.fp32_layers is True
