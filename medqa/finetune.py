"""One fine-tuning run: data -> base model -> LoRA SFT with TRL -> adapter, with the probes answered at
every eval beside the loss. Takes plain settings; the Hydra entrypoint is medqa.train."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from medqa.checks import validate_settings
from medqa.data import DataSettings, build_datasets
from medqa.generation import DecodingSettings, generation_config
from medqa.modeling import (
    LoraSettings,
    ModelSettings,
    QuantSettings,
    adapter_report,
    count_parameters,
    load_base,
    lora_config,
)
from medqa.probes import EvalAtEndCallback, Probe, ProbeCallback, ProbeRecorder
from medqa.redact import redact
from medqa.report import plot_run
from medqa.resume import begin_resume, check_resumable, previous_wandb_id, write_error
from medqa.tracking import TrackingSettings, start_run, wandb_run_dir

# Files that mean a folder already holds a run: never written into twice.
RUN_MARKERS = ("run.json", "adapter", "probes.jsonl", "checkpoints", "wandb")


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
    seed: int = 42
    resume: str | None = None  # null | auto | a run folder: continue its latest checkpoint (medqa.resume)


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


def sft_config(train: TrainSettings, output_dir: Path, report_to: str):
    """TRL SFTConfig from plain training settings."""
    import torch
    from trl import SFTConfig

    if train.precision not in {"fp32", "bf16", "fp16"}:
        raise ValueError(f"train.precision={train.precision!r}: expected fp32, bf16 or fp16")
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
        max_length=train.max_length,
        eval_strategy="steps",
        eval_steps=train.eval_steps,
        eval_on_start=True,  # eval loss and probe answers of the base model, at step 0
        logging_steps=train.logging_steps,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        optim=train.optim,
        gradient_checkpointing=train.gradient_checkpointing,
        bf16=train.precision == "bf16",  # TRL defaults to bf16=True, which fails on CPU
        fp16=train.precision == "fp16",
        seed=train.seed,
        data_seed=train.seed,
        report_to=report_to,
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning without a GPU only warns
    )


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
):
    """The one place a TRL SFTTrainer with a PEFT adapter is built (the harness and the benchmarks use it)."""
    from trl import SFTTrainer

    return SFTTrainer(
        model=model,
        args=sft_config(train, output_dir, report_to),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=lora_config(lora),
        callbacks=callbacks or [],
    )


def check_fresh_run_dir(run_dir: Path) -> None:
    """Refuse a folder that already holds a run: nothing a user made is overwritten."""
    taken = [m for m in RUN_MARKERS if (run_dir / m).exists()]
    if taken:
        raise FileExistsError(f"{run_dir} already holds a run ({', '.join(taken)}); choose a new run dir")


def finetune(settings: RunSettings, run_dir: Path, logged_config: dict, extra_callbacks: list | None = None) -> dict:
    """Train, probe at every eval, save the adapter; return the run summary (also written to run.json).
    `extra_callbacks` are more transformers TrainerCallbacks (tests use one to watch the weights)."""
    started = time.time()
    # Cheap checks first, before anything loads: every setting (medqa.checks), then the run dir: a resumed
    # run continues its own folder from the latest checkpoint (medqa.resume), a fresh one never writes into
    # a folder that holds a run.
    validate_settings(settings)
    resume_from = check_resumable(run_dir) if settings.train.resume else None
    if resume_from is None:
        check_fresh_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    train_ds, eval_ds, data_counts = build_datasets(settings.data)
    model, tokenizer, model_path = load_base(settings.model, settings.quant)
    gen_config = generation_config(settings.decoding, tokenizer)

    run_id = previous_wandb_id(run_dir) if resume_from else None  # the same W&B run continues
    run = start_run(settings.tracking, run_dir, redact(logged_config), run_id=run_id)
    finished = False
    try:
        recorder = ProbeRecorder(
            settings.probes,
            settings.data.system_prompt,
            gen_config,
            run_dir / "probes.jsonl",
            run,
            seed=settings.decoding.seed,
        )
        if resume_from:
            begin_resume(run_dir, resume_from, run, recorder)
        report_to = "none" if settings.tracking.mode == "disabled" else "wandb"
        trainer = build_trainer(
            model,
            tokenizer,
            train_ds,
            eval_ds,
            settings.train,
            settings.lora,
            run_dir / "checkpoints",
            report_to,
            callbacks=[ProbeCallback(recorder), EvalAtEndCallback(), *(extra_callbacks or [])],
        )
        trainable, total = count_parameters(trainer.model)
        run.summary.update({"params/trainable": trainable, "params/total": total})
        if resume_from:
            trainer.args.eval_on_start = False  # step 0 was evaluated and probed before the interruption
        train_started = time.time()
        try:
            trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        except OSError as err:
            raise write_error(err, run_dir) from err
        train_seconds = time.time() - train_started

        adapter_dir = run_dir / "adapter"
        trainer.save_model(str(adapter_dir))
        trainer.state.save_to_json(str(run_dir / "trainer_state.json"))
        adapter = adapter_report(adapter_dir)
        summary = {
            "run_dir": str(run_dir),
            "wandb_dir": str(wandb_run_dir(run) or ""),
            "base_model": model_path,
            "adapter_dir": str(adapter_dir),
            **adapter,
            "params_trainable": trainable,
            "params_total": total,
            "data": data_counts,
            "evals": eval_table(trainer.state.log_history, recorder),
            "global_step": trainer.state.global_step,
            "train_seconds": round(train_seconds, 1),  # training with its evals and probes
            "seconds": round(time.time() - started, 1),  # the whole run, base model build included
            "settings": redact(asdict(settings)),
            "versions": _versions(),
        }
        summary["plot"] = str(plot_run(trainer.state.log_history, summary["evals"], run_dir / "curves.png"))
        final = summary["evals"][-1]
        summary["final_eval_loss"] = final["eval_loss"]
        summary["final_mean_token_accuracy"] = final["mean_token_accuracy"]
        run.summary.update({"adapter/bytes": adapter["adapter_bytes"], "adapter/tensors": adapter["adapter_tensors"]})
        (run_dir / "run.json").write_text(json.dumps(summary, indent=2, default=str))
        finished = True
        return summary
    finally:
        run.finish(exit_code=0 if finished else 1)  # a crashed run is marked failed, and a multirun goes on


def eval_table(log_history: list[dict], recorder: ProbeRecorder) -> list[dict]:
    """One row per eval: step, latest train loss, eval loss, token accuracy, probe EOS rate."""
    rows, train_loss = [], None
    for entry in log_history:
        if "loss" in entry:
            train_loss = entry["loss"]
        if "eval_loss" in entry:
            step = entry["step"]
            rows.append(
                {
                    "step": step,
                    "train_loss": train_loss if step > 0 else None,
                    "eval_loss": entry["eval_loss"],
                    "mean_token_accuracy": entry.get("eval_mean_token_accuracy"),
                    "probe_eos_rate": recorder.eos_rate(step),
                    "probe_quality": None,  # filled in by the quality metrics (issue "quality")
                }
            )
    return rows


def _versions() -> dict:
    import peft
    import torch
    import transformers
    import trl

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
    }
