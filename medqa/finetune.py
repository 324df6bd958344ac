"""One fine-tuning run: data -> base model -> LoRA SFT with TRL -> adapter, with the probes answered at
every eval beside the loss. Takes plain settings; the Hydra entrypoint is medqa.train."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from medqa.atomic import write_text
from medqa.checks import ConfigError, validate_settings
from medqa.data import DataSettings, build_datasets, check_data, data_tokenizer
from medqa.distributed import generation_is_collective, is_main_process, processes_without_gpu, rank, world_size
from medqa.generation import DecodingSettings, generation_config
from medqa.interrupts import Interrupted
from medqa.labels import as_tags, science_labels
from medqa.lexicon import corpus_words
from medqa.modeling import (
    LoraSettings,
    ModelSettings,
    QuantSettings,
    adapter_report,
    compile_decoder_layers,
    count_parameters,
    load_base,
    lora_b_movement,
    lora_config,
)
from medqa.probes import SELECT_METRIC, EvalAtEndCallback, Probe, ProbeCallback, ProbeRecorder
from medqa.provenance import log_provenance, write_provenance
from medqa.quality import SELECT_RULES, QualitySettings
from medqa.redact import redact
from medqa.report import plot_run
from medqa.resume import begin_resume, check_resumable, check_same_data, previous_wandb_id, write_error
from medqa.run_folder import check_fresh_run_dir
from medqa.tracking import TrackingSettings, start_run, wandb_run_dir


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
    torch_compile: bool = False
    compile_layers: bool = False  # torch.compile each decoder layer in place (dynamic shapes); 32% slower on an H100
    seed: int = 42
    select_by: str = "quality"  # the adapter kept: last | loss | quality | loss_quality (best eval by that rule)
    resume: str | None = None  # null | auto | a run folder: continue its latest checkpoint (medqa.resume)
    resume_accept_data_change: bool = False  # resume onto data whose fingerprint differs from the run's


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


def sft_config(train: TrainSettings, output_dir: Path, report_to: str, evaluate: bool = True):
    """TRL SFTConfig from plain training settings (`evaluate=False`: no evals and no checkpoints, for benchmarks)."""
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
        bf16=train.precision == "bf16",  # TRL defaults to bf16=True, which fails on CPU
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
    if train.fused_lora:
        from medqa.fused_lora import fuse_lora_layers

        fuse_lora_layers(trainer.model)
    if train.compile_layers:
        compile_decoder_layers(trainer.model)
    return trainer


def finetune(settings: RunSettings, run_dir: Path, logged_config: dict, extra_callbacks: list | None = None) -> dict:
    """Train, probe at every eval, save the adapter; return the run summary (also written to run.json).
    `extra_callbacks` are more transformers TrainerCallbacks (tests use one to watch the weights)."""
    started = time.time()
    # Cheap checks first, before anything loads: every setting (medqa.checks), then the run dir: a resumed
    # run continues its own folder from the latest checkpoint (medqa.resume), a fresh one never writes into
    # a folder that holds a run. The other ranks share rank 0's folder (medqa.distributed.shared_stamp).
    validate_settings(settings)
    resume_from = check_resumable(run_dir) if settings.train.resume else None
    if is_main_process():
        if resume_from is None:
            check_fresh_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)

    check_data(settings.data)  # the mix and the sources' files, before the base model is built
    # The token-length filter counts the model's own tokens (tokenizer only; weights load below).
    tokenizer_for_data = data_tokenizer(settings.model)
    try:
        train_ds, eval_ds, data_counts = build_datasets(settings.data, tokenizer_for_data)
    except (ValueError, ConnectionError) as err:  # a bad row, file or source: one line, before anything is written
        raise ConfigError(str(err)) from None
    if resume_from is not None:  # the same rows as before the interruption, or a clear refusal
        check_same_data(run_dir, data_counts, settings.train.resume_accept_data_change)
    if is_main_process() and resume_from is None:  # a resumed run keeps the provenance it wrote first
        write_provenance(data_counts, run_dir)
    model, tokenizer, model_path = load_base(settings.model, settings.quant, settings.train.attn_implementation)
    gen_config = generation_config(settings.decoding, tokenizer)

    run_id = previous_wandb_id(run_dir) if resume_from else None  # the same W&B run continues
    # Runs of one sweep or experiment share a group (tracking.group) and tags from their scientific settings.
    labels = science_labels(asdict(settings))
    tracking = replace(settings.tracking, tags=[*settings.tracking.tags, *as_tags(labels)])
    run = start_run(tracking, run_dir, redact(logged_config), job_type="train", run_id=run_id)
    finished, exit_code = False, 1
    try:
        log_provenance(run, data_counts)
        recorder = ProbeRecorder(
            settings.probes,
            settings.data.system_prompt,
            gen_config,
            run_dir / "probes.jsonl",
            run,
            seed=settings.decoding.seed,
            quality=settings.quality,
            known_words=frozenset(corpus_words(_texts(train_ds))),  # words seen in training are not invented
            merge_adapter=settings.decoding.merge_adapter,
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
            callbacks=[
                ProbeCallback(recorder, settings.train.select_by),
                EvalAtEndCallback(),
                *(extra_callbacks or []),
            ],
        )
        trainable, total = count_parameters(trainer.model)
        world = world_size()
        global_batch = settings.train.per_device_batch * settings.train.grad_accum * world
        run.summary.update(
            {"params/trainable": trainable, "params/total": total, "world_size": world, "global_batch": global_batch}
        )
        if resume_from:
            trainer.args.eval_on_start = False  # step 0 was evaluated and probed before the interruption
        train_started = time.time()
        try:
            trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        except OSError as err:
            raise write_error(err, run_dir) from err
        train_seconds = time.time() - train_started

        selected = _selected(trainer.state, settings.train.select_by, recorder)
        # On the weights that are kept; generating is rank 0's job unless the weights are sharded (FSDP).
        determinism = None
        if is_main_process() or generation_is_collective(trainer.model):
            determinism = recorder.check_determinism(trainer.model, tokenizer)
        adapter_dir = run_dir / "adapter"
        trainer.save_model(str(adapter_dir))  # on every rank: FSDP gathers the shards; only rank 0 writes
        if not is_main_process():
            evals = eval_table(trainer.state.log_history, recorder)  # eval metrics are gathered: same on all ranks
            finished = True
            return {"rank": rank(), "world_size": world, "evals": evals, "final_eval_loss": evals[-1]["eval_loss"]}
        gen_config.save_pretrained(adapter_dir)  # serving defaults: the adapter decodes the way the probes did
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
            "selected": selected,
            "divergence": recorder.alarms,
            "determinism": determinism,
            "flags": run_flags(determinism, trainer.model),
            "global_step": trainer.state.global_step,
            "world_size": world,
            "global_batch": global_batch,  # per_device_batch x grad_accum x world_size
            "train_seconds": round(train_seconds, 1),  # training with its evals and probes
            "seconds": round(time.time() - started, 1),  # the whole run, base model build included
            "labels": labels,
            "settings": redact(asdict(settings)),
            "versions": _versions(),
        }
        summary["plot"] = str(plot_run(trainer.state.log_history, summary["evals"], run_dir / "curves.png"))
        final = summary["evals"][-1]
        summary["final_eval_loss"] = final["eval_loss"]
        summary["final_mean_token_accuracy"] = final["mean_token_accuracy"]
        run.summary.update({"selected/step": selected["step"], "probes/divergence_count": len(recorder.alarms)})
        # The kept adapter's eval, under one key: what sweeps optimise (sweeps/*.yaml metric), online and offline.
        kept = {"selected/probe_quality": selected["probe_quality"], "selected/eval_loss": selected["eval_loss"]}
        run.summary.update(kept)
        run.summary.update({"adapter/bytes": adapter["adapter_bytes"], "adapter/tensors": adapter["adapter_tensors"]})
        write_text(run_dir / "run.json", json.dumps(summary, indent=2, default=str))
        finished = True
        return summary
    except Interrupted as err:
        exit_code = err.exit_code  # the caller records the interruption in run.json
        raise
    finally:
        run.finish(exit_code=0 if finished else exit_code)  # a crashed run is marked failed, a multirun goes on


def run_flags(determinism: dict, model) -> list[str]:
    """What a reader must know before trusting the run: probes that differ batched vs one by one, and an
    adapter that learned nothing (every LoRA B still at its zero start: no gradient reached it)."""
    flags = [] if determinism["identical"] else ["nondeterministic_probes"]
    if lora_b_movement(model) == 0:
        flags.append("adapter_unchanged")
    return flags


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
                    "probe_quality": recorder.quality_at(step),
                    "divergence": any(a["step"] == step for a in recorder.alarms),
                }
            )
    return rows


def _selected(state, select_by: str, recorder: ProbeRecorder) -> dict:
    """Which eval's weights became the run's adapter, and why (written to run.json)."""
    best = select_by != "last" and state.best_model_checkpoint is not None  # else: the last weights were kept
    step = state.best_global_step if best else state.global_step
    return {
        "rule": select_by,
        "step": step,
        "checkpoint": state.best_model_checkpoint if best else None,
        "score": state.best_metric if best else None,
        "probe_quality": recorder.quality_at(step),
        "eval_loss": next((e["eval_loss"] for e in recorder.evals if e["step"] == step), None),
    }


def _texts(ds) -> list[str]:
    """Every message text of a prompt/completion dataset."""
    return [m["content"] for column in ("prompt", "completion") for chat in ds[column] for m in chat]


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
