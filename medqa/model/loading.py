"""The base model, its tokenizer's pad token, quantization, and the LoRA configuration built from settings."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from medqa.core.distributed import local_rank
from medqa.model.tiny.build import ensure_base
from medqa.model.tokenizer import EOT
from medqa.settings.model import LoraSettings, ModelSettings, QuantSettings


def resolve_model_path(settings: ModelSettings) -> str:
    """Folder or hub id the weights load from; builds the embedded model on first use."""
    if settings.source == "embedded":
        if settings.recipe is None:
            raise ValueError("model.source=embedded needs model.recipe (see conf/model/tiny.yaml)")
        return str(ensure_base(settings.recipe))
    if settings.source == "hub":
        return settings.name_or_path
    raise ValueError(f"model.source={settings.source!r}: expected 'embedded' or 'hub'")


def load_tokenizer(path: str, settings: ModelSettings) -> PreTrainedTokenizerBase:
    """The model's tokenizer with the configured existing pad token (never a new token: no embedding resize)."""
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=settings.trust_remote_code)
    pad_id = tokenizer.convert_tokens_to_ids(settings.pad_token)
    if pad_id is None or pad_id == tokenizer.unk_token_id:
        raise ValueError(
            f"model.pad_token={settings.pad_token!r} is not a token of {path}; pick one the tokenizer has "
            "(Llama 3.2: <|finetune_right_pad_id|>)"
        )
    tokenizer.pad_token = settings.pad_token
    tokenizer.padding_side = "right"
    if tokenizer.pad_token_id == tokenizer.convert_tokens_to_ids(EOT):
        raise ValueError("pad token equals <|eot_id|>: the model could never learn to stop")
    return tokenizer


def quantization_config(quant: QuantSettings):
    """A bitsandbytes 4-bit config for QLoRA, or None."""
    if not quant.load_in_4bit:
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant.quant_type,
        bnb_4bit_use_double_quant=quant.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, quant.compute_dtype),
    )


def load_base(
    settings: ModelSettings, quant: QuantSettings, attn_implementation: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Load (model, tokenizer, path) the same way for the embedded model and for hub models;
    `attn_implementation` overrides the model setting (the training preset picks the kernel)."""
    path = resolve_model_path(settings)
    try:
        tokenizer = load_tokenizer(path, settings)
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=getattr(torch, settings.dtype),
            attn_implementation=attn_implementation or settings.attn_implementation,
            quantization_config=quantization_config(quant),
            # 4-bit weights are placed at load time: on this process's own GPU (else every rank takes cuda:0).
            device_map={"": local_rank()} if quant.load_in_4bit and torch.cuda.is_available() else None,
            trust_remote_code=settings.trust_remote_code,
            use_safetensors=True,  # never unpickle weights
        )
    except OSError as err:
        if settings.source == "hub" and not Path(path).exists():
            raise OSError(
                f"could not load model.name_or_path={path!r} (no network or no access?). Download it where "
                f"the hub is reachable and point model.name_or_path at the local folder. Cause: {err}"
            ) from err
        raise
    if quant.load_in_4bit:
        _prepare_4bit(model, quant.fp32_layers)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, path


def _prepare_4bit(model: PreTrainedModel, fp32_layers: bool) -> None:
    """QLoRA's preparation of a 4-bit base: every base weight frozen; with `fp32_layers` (the seed's recipe, PEFT's
    prepare_model_for_kbit_training) the unquantized layers are upcast to fp32, so the residual stream runs in fp32
    and every bf16 GEMM casts its input and the LM head's weight: half of QLoRA's extra time on an H200
    (benchmarks/RESULTS.md s7). Without it they stay in model.dtype, as in the unquantized model."""
    if fp32_layers:
        from peft import prepare_model_for_kbit_training

        prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        return
    for param in model.parameters():
        param.requires_grad_(False)


def load_adapter(model: PreTrainedModel, adapter_dir: Path):
    """A saved LoRA adapter (a run's adapter/ or any checkpoint) on its base model, for inference.
    Only safetensors weights are read: a pickled adapter_model.bin is refused, never unpickled."""
    from peft import PeftModel

    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"{weights} not found: only safetensors adapters are loaded, never a pickled .bin")
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False, use_safetensors=True)


def lora_config(settings: LoraSettings):
    """PEFT LoraConfig for a causal LM from plain settings."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def lora_b_movement(model: torch.nn.Module) -> float:
    """Sum of |LoRA B| over the model: PEFT starts every B at zero, so 0.0 after training means no gradient
    ever reached the adapter."""
    return sum(p.detach().abs().sum().item() for name, p in model.named_parameters() if "lora_B" in name)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def adapter_report(adapter_dir: Path) -> dict:
    """Size and tensor names of a saved adapter; fails if it holds embeddings or an LM head."""
    from safetensors import safe_open

    weights = adapter_dir / "adapter_model.safetensors"
    with safe_open(weights, framework="pt") as f:
        keys = list(f.keys())
    offending = [k for k in keys if "embed_tokens" in k or "lm_head" in k]
    if offending:
        raise RuntimeError(f"{weights} holds {len(offending)} embedding/lm_head tensors, e.g. {offending[0]}")
    return {"adapter_bytes": weights.stat().st_size, "adapter_tensors": len(keys)}


def data_tokenizer(model_settings):
    """The run's tokenizer for the token-length filter, without loading weights (the embedded base is
    built and cached on first use, as training would)."""
    return load_tokenizer(resolve_model_path(model_settings), model_settings)
