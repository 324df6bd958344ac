"""Settings of the fine-tuning run, and RunSettings: one object holding every group of a run."""

from __future__ import annotations

from dataclasses import dataclass, field

from medqa.settings.data import DataSettings
from medqa.settings.decoding import DecodingSettings
from medqa.settings.model import LoraSettings, ModelSettings, QuantSettings
from medqa.settings.probes import Probe
from medqa.settings.quality import SELECT_RULES, QualitySettings
from medqa.settings.tracking import TrackingSettings
from medqa.settings.validation import PRECISIONS, type_problems


@dataclass(frozen=True)
class TrainSettings:
    epochs: float = 1
    max_steps: int = -1
    lr: float = 1e-3
    per_device_batch: int = 8
    grad_accum: int = 1
    warmup_steps: int = 5
    lr_scheduler: str = "linear"
    weight_decay: float = 0.0
    max_length: int = 512
    eval_steps: int = 30
    logging_steps: int = 5
    save_steps: int = 30
    save_total_limit: int = 3
    optim: str = "adamw_torch"
    gradient_checkpointing: bool = False
    precision: str = "fp32"  # fp32 | bf16 | fp16
    # Speed levers (benchmarks/RESULTS.md says what each gave on an H100): they change how a batch is computed,
    # not which examples form it.
    padding_free: bool = False  # each batch flattened into one row with position ids: no pad tokens computed
    attn_implementation: str | None = None  # the attention kernel while training (e.g. flex_attention); None: model's
    use_liger: bool = False  # Liger's Triton kernels for RMSNorm, SwiGLU and RoPE (pip install liger-kernel)
    fused_lora: bool = False  # each LoRA projection as one autograd node in bf16 (medqa.fused_lora): same function
    fused_blocks: bool = False  # q/k/v as one node, the MLP as one node (medqa.model.fused_blocks): same function
    joint_projections: bool = False  # with fused_blocks: q/k/v (gate/up) base weights in one buffer, one GEMM each way
    flash_varlen: bool = False  # FlashAttention-2 varlen on padding-free packs while training (model.varlen_attention)
    compile_norm_rope: bool = False  # RMSNorm and RoPE as compiled kernels while training (model.compiled_norm_rope)
    static_packs: int = 0  # pad each pack to a multiple of this many tokens (training.static_step); 0: off
    cuda_graphs: bool = False  # capture each static pack's forward + backward once, replay it (training.static_step)
    torch_compile: bool = False
    compile_layers: bool = False  # torch.compile each decoder layer while training (model.compiled_layers)
    seed: int = 42
    select_by: str = "quality"  # the adapter kept: last | loss | quality | loss_quality (best eval by that rule)
    resume: str | None = None  # null | auto | a run folder: continue its latest checkpoint (medqa.training.resume)
    resume_accept_data_change: bool = False  # resume onto data whose fingerprint differs from the run's

    def problems(self) -> list[str]:
        """What is wrong with these fields, one entry per key."""
        out = []
        if not (self.max_steps > 0 or self.epochs > 0):
            out.append(f"train.epochs={self.epochs!r}: must be > 0 (or set train.max_steps > 0)")
        if self.lr <= 0:
            out.append(f"train.lr={self.lr!r}: must be > 0")
        for key in ("per_device_batch", "grad_accum", "eval_steps", "logging_steps", "save_steps", "max_length"):
            if getattr(self, key) < 1:
                out.append(f"train.{key}={getattr(self, key)!r}: must be >= 1")
        if self.warmup_steps < 0:
            out.append(f"train.warmup_steps={self.warmup_steps!r}: must be >= 0")
        if self.save_total_limit < 1:
            out.append(f"train.save_total_limit={self.save_total_limit!r}: must be >= 1")
        if self.precision not in PRECISIONS:
            out.append(f"train.precision={self.precision!r}: expected one of {sorted(PRECISIONS)}")
        if self.joint_projections and not self.fused_blocks:
            out.append("train.joint_projections=True: needs train.fused_blocks=true (its nodes run the packed GEMMs)")
        if self.flash_varlen and not self.padding_free:
            out.append("train.flash_varlen=True: needs train.padding_free=true")
        if self.static_packs < 0:
            out.append(f"train.static_packs={self.static_packs!r}: must be >= 0 (0: off)")
        if self.static_packs and not (self.padding_free and self.grad_accum == 1):
            out.append("train.static_packs: needs train.padding_free=true and train.grad_accum=1 (else set it to 0)")
        if self.cuda_graphs and not (self.static_packs and self.flash_varlen):
            out.append("train.cuda_graphs=True: needs train.static_packs > 0 and train.flash_varlen=true")
        if self.select_by not in SELECT_RULES:
            out.append(f"train.select_by={self.select_by!r}: expected one of {list(SELECT_RULES)}")
        if self.select_by != "last" and self.save_steps % max(self.eval_steps, 1):
            out.append(
                f"train.save_steps={self.save_steps!r}: must be a multiple of train.eval_steps={self.eval_steps} when "
                f"train.select_by={self.select_by} keeps the best eval's checkpoint"
            )
        return out


@dataclass(frozen=True)
class RunSettings:
    model: ModelSettings
    quant: QuantSettings
    lora: LoraSettings
    data: DataSettings
    train: TrainSettings
    decoding: DecodingSettings
    tracking: TrackingSettings
    probes: list[Probe]
    quality: QualitySettings = field(default_factory=QualitySettings)

    GROUPS = ("model", "quant", "lora", "data", "train", "decoding", "tracking")

    def type_problems(self) -> list[str]:
        """Values whose type does not match their field, in every group."""
        return [p for g in self.GROUPS for p in type_problems(getattr(self, g), g)]

    def problems(self) -> list[str]:
        """Every group's field problems (types first: range checks assume the types are right)."""
        return self.type_problems() or [p for g in self.GROUPS for p in getattr(self, g).problems()]
