"""The one place a TRL SFTTrainer with a PEFT adapter is built from plain settings (the harness and the
benchmarks use it), and how the trainer keeps the best checkpoint by a rule."""

from __future__ import annotations

import warnings
from pathlib import Path

from medqa.core.cpu_precision import training_precision
from medqa.core.distributed import processes_without_gpu
from medqa.model.compiled_layers import compile_blocker, compile_decoder_layers
from medqa.model.compiled_norm_rope import compile_norm_rope
from medqa.model.fused_blocks import fuse_lora_blocks
from medqa.model.fused_lora import fuse_lora_layers
from medqa.model.loading import lora_config
from medqa.model.varlen_attention import use_flash_varlen
from medqa.probing.recorder import SELECT_METRIC
from medqa.settings.model import LoraSettings
from medqa.settings.quality import SELECT_RULES
from medqa.settings.training import TrainSettings
from medqa.training.static_step import install_static_step


def sft_config(train: TrainSettings, output_dir: Path, report_to: str, evaluate: bool = True):
    """TRL SFTConfig from plain training settings (`evaluate=False`: no evals and no checkpoints, for benchmarks)."""
    import torch
    from trl import SFTConfig

    if train.precision not in {"fp32", "bf16", "fp16"}:
        raise ValueError(f"train.precision={train.precision!r}: expected fp32, bf16 or fp16")
    precision = training_precision(train.precision, on_gpu=torch.cuda.is_available())  # no emulated CPU bf16
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        learning_rate=train.lr,
        per_device_train_batch_size=train.per_device_batch,
        per_device_eval_batch_size=train.per_device_batch,
        gradient_accumulation_steps=train.grad_accum,
        warmup_steps=train.warmup_steps,
        lr_scheduler_type=train.lr_scheduler,
        weight_decay=train.weight_decay,
        # Padding-free batches are not truncated by TRL (it refuses max_length there): the data's token-length
        # filter keeps every example within train.max_length instead.
        max_length=None if train.padding_free else train.max_length,
        padding_free=train.padding_free,
        use_liger_kernel=train.use_liger,
        torch_compile=train.torch_compile,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=train.eval_steps,
        eval_on_start=evaluate,  # eval loss and probe answers of the base model, at step 0
        logging_steps=train.logging_steps,
        save_strategy="steps" if evaluate else "no",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        optim=train.optim,
        gradient_checkpointing=train.gradient_checkpointing,
        bf16=precision == "bf16",  # TRL defaults to bf16=True, which fails on CPU
        fp16=train.precision == "fp16",
        seed=train.seed,
        data_seed=train.seed,
        report_to=report_to,
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning without a GPU only warns
        use_cpu=processes_without_gpu(),  # torchrun on CPU: gloo, not one lone run per process
        # Every LoRA weight is used in every step: DDP need not search for unused ones (slow, and it breaks
        # gradient checkpointing).
        ddp_find_unused_parameters=False,
        **selection_args(train.select_by),
    )


def selection_args(select_by: str) -> dict:
    """SFTConfig arguments that make the trainer keep (out of checkpoint rotation) and reload at the end the
    best checkpoint by `select_by`: eval loss (the seed's choice), or a probe-quality score that
    ProbeCallback puts into the eval metrics (medqa.quality.selection_score). `last` keeps the last weights."""
    if select_by not in SELECT_RULES:
        raise ValueError(f"train.select_by={select_by!r}: expected one of {list(SELECT_RULES)}")
    if select_by == "last":
        return {}
    metric, greater = ("loss", False) if select_by == "loss" else (SELECT_METRIC, True)
    return {"load_best_model_at_end": True, "metric_for_best_model": metric, "greater_is_better": greater}


def build_trainer(
    model,
    tokenizer,
    train_ds,
    eval_ds,
    train: TrainSettings,
    lora: LoraSettings,
    output_dir: Path,
    report_to: str,
    callbacks: list | None = None,
    **sft_overrides,
):
    """The one place a TRL SFTTrainer with a PEFT adapter is built (the harness and the benchmarks use it).
    With `eval_ds=None` nothing is evaluated or saved; `sft_overrides` set further SFTConfig fields."""
    import dataclasses

    from trl import SFTTrainer

    args = sft_config(train, output_dir, report_to, evaluate=eval_ds is not None)
    if sft_overrides:
        args = dataclasses.replace(args, **sft_overrides)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=lora_config(lora),
        callbacks=callbacks or [],
    )
    install_levers(trainer.model, train)
    if train.static_packs:
        install_static_step(trainer, train.static_packs, train.cuda_graphs)
    return trainer


def install_levers(model, train: TrainSettings) -> None:
    """Route the trainer's model through the speed levers `train` asks for (each the same function; measured in
    benchmarks/RESULTS.md). A model whose layers cannot be compiled whole (a 4-bit base) keeps them eager, with a
    warning. compile_norm_rope and compiled layers go together: inside the layers' graphs its functions step aside
    (the layer's compile fuses the same arithmetic)."""
    if train.fused_lora:
        fuse_lora_layers(model)
    if train.fused_blocks:  # after the Trainer moved the model: joint projections pack the weights where they stay
        fuse_lora_blocks(model, joint_projections=train.joint_projections)
    if train.flash_varlen:
        use_flash_varlen(model)
    if train.compile_norm_rope:
        compile_norm_rope(model)
    blocker = compile_blocker(model) if train.compile_layers else None
    if blocker:
        warnings.warn(f"train.compile_layers: the layers stay eager: {blocker}", stacklevel=2)
    if train.compile_layers and blocker is None:
        compile_decoder_layers(model)
