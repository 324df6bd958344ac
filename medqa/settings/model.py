"""Settings of the base model, its quantization, the LoRA adapter and the embedded model's recipe."""

from __future__ import annotations

from dataclasses import dataclass, field

from medqa.settings.validation import DTYPES, MODEL_SOURCES, QUANT_TYPES, recipe_problems


@dataclass(frozen=True)
class ModelSettings:
    source: str = "embedded"  # embedded: built by medqa.build_base | hub: hub id or local folder
    name_or_path: str = "tiny"
    dtype: str = "float32"
    attn_implementation: str = "sdpa"
    pad_token: str = "<|finetune_right_pad_id|>"
    trust_remote_code: bool = False
    recipe: TinyRecipe | None = None

    def problems(self) -> list[str]:
        """What is wrong with these fields, one entry per key."""
        out = recipe_problems(self.recipe) if self.recipe is not None else []
        if self.source not in MODEL_SOURCES:
            out.append(f"model.source={self.source!r}: expected one of {sorted(MODEL_SOURCES)}")
        if self.dtype not in DTYPES:
            out.append(f"model.dtype={self.dtype!r}: expected one of {sorted(DTYPES)}")
        if self.source == "embedded" and self.recipe is None:
            out.append("model.recipe=None: model.source=embedded needs a recipe")
        if self.source == "hub" and not self.name_or_path:
            out.append(f"model.name_or_path={self.name_or_path!r}: a hub id or a folder")
        return out


@dataclass(frozen=True)
class QuantSettings:
    load_in_4bit: bool = False
    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"
    # The layers left unquantized (embeddings, norms, LM head) in fp32, as PEFT's prepare_model_for_kbit_training
    # (the seed's recipe); false keeps them in model.dtype, as without quantization (train=gpu: faster).
    fp32_layers: bool = True

    def problems(self) -> list[str]:
        """What is wrong with these fields (checked only when 4-bit loading is on)."""
        if not self.load_in_4bit:
            return []
        out = []
        if self.quant_type not in QUANT_TYPES:
            out.append(f"quant.quant_type={self.quant_type!r}: expected one of {sorted(QUANT_TYPES)}")
        if self.compute_dtype not in DTYPES:
            out.append(f"quant.compute_dtype={self.compute_dtype!r}: expected one of {sorted(DTYPES)}")
        return out


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def problems(self) -> list[str]:
        """What is wrong with these fields, one entry per key."""
        out = []
        if self.r <= 0:
            out.append(f"lora.r={self.r!r}: must be > 0")
        if self.alpha <= 0:
            out.append(f"lora.alpha={self.alpha!r}: must be > 0")
        if not 0 <= self.dropout < 1:
            out.append(f"lora.dropout={self.dropout!r}: must be in [0, 1)")
        if not self.target_modules:
            out.append(f"lora.target_modules={list(self.target_modules)!r}: name at least one module")
        return out


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines the embedded base model; its hash names the cache folder.
    The values live in conf/model/tiny.yaml (commented there)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    max_position_embeddings: int
    textbook_variants: int
    pretrain_steps: int
    seq_len: int
    batch_size: int
    lr: float
    warmup_steps: int
    precision: str  # fp32 | bf16 (autocast, only where the CPU has it natively: else fp32, medqa.core.cpu_precision)
    seed: int
