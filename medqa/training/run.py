"""One fine-tuning run as named stages: run dir -> data -> base model -> tracking -> trainer -> train ->
the kept adapter and the summary, with the probes answered at every eval beside the loss. Takes plain,
validated settings (medqa.config.validate checks them once at the command line); the entrypoint is
medqa.cli.train."""

from __future__ import annotations

import copy
import json
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from medqa.analysis.run_report import plot_run
from medqa.core.atomic import write_text
from medqa.core.cpu_precision import precision_record
from medqa.core.distributed import generation_is_collective, is_main_process, rank, world_size
from medqa.core.errors import ConfigError
from medqa.core.interrupts import Interrupted, deferred, raise_pending
from medqa.core.labels import as_tags, science_labels
from medqa.core.redact import redact
from medqa.core.run_folder import check_fresh_run_dir, check_resumable, previous_wandb_id
from medqa.data.mix import build_datasets, check_hubs_reachable
from medqa.data.provenance import TABLE_COLUMNS, stage_rows, summary_keys, write_provenance
from medqa.model.generation import generation_config
from medqa.model.loading import (
    adapter_report,
    count_parameters,
    data_tokenizer,
    load_base,
    lora_b_movement,
)
from medqa.probing.heldout_eval import HELDOUT_FILE, HeldoutEval, eval_split_rows, select_questions
from medqa.probing.recorder import EvalAtEndCallback, ProbeCallback, ProbeRecorder
from medqa.quality.lexicon import corpus_words
from medqa.settings.training import RunSettings
from medqa.tracking.artifacts import use_mix, write_mix
from medqa.tracking.metrics import define_metrics
from medqa.tracking.runs import log_table_at_start, start_run, wandb_run_dir
from medqa.training.release import release_adapter
from medqa.training.resume import begin_resume, check_same_data, write_error
from medqa.training.trainer import build_trainer


@dataclass
class RunState:
    """What the stages of one run hand each other."""

    settings: RunSettings
    run_dir: Path
    started: float
    resume_from: Path | None = None
    train_ds: Any = None
    eval_ds: Any = None
    data_counts: dict = field(default_factory=dict)
    model: Any = None
    tokenizer: Any = None
    model_path: str = ""
    gen_config: Any = None
    labels: dict = field(default_factory=dict)
    run: Any = None
    recorder: ProbeRecorder | None = None
    trainer: Any = None
    train_seconds: float = 0.0


def finetune(settings: RunSettings, run_dir: Path, logged_config: dict, extra_callbacks: list | None = None) -> dict:
    """Train, probe at every eval, save the adapter; return the run summary (also written to run.json).
    `extra_callbacks` are more transformers TrainerCallbacks (tests use one to watch the weights)."""
    state = RunState(settings, run_dir, started=time.time())
    # ---- cheap checks, before anything loads ----
    prepare_run_dir(state)
    # ---- data: clean, mix, split, provenance ----
    load_data(state)
    # ---- base model, tokenizer, decoding ----
    load_model(state)
    raise_pending()  # an interrupt whose first raise was dropped (inside a __del__): before W&B opens
    # ---- tracking: one W&B run (a resumed run continues its id) ----
    state.run = open_tracking(state, logged_config)
    finished, exit_code = False, 1
    try:
        # ---- trainer: LoRA SFT with the probes answered at every eval ----
        build_run_trainer(state, extra_callbacks)
        # ---- train ----
        train(state)
        # ---- keep the selected adapter, write the summary ----
        summary = finish_run(state)
        finished = True
        return summary
    except Interrupted as err:  # SIGINT/SIGTERM/SIGUSR1: W&B is closed here, the CLI records it in run.json
        exit_code = err.exit_code
        raise
    finally:
        with deferred():  # a second signal does not cut W&B's closing short
            state.run.finish(exit_code=0 if finished else exit_code)  # a crashed run is marked failed


def prepare_run_dir(state: RunState) -> None:
    """Field checks (the CLI validated everything else once), then the run dir: a resumed run continues its own
    folder from its latest checkpoint, a fresh one never writes into a folder that holds a run. The other
    ranks share rank 0's folder (medqa.core.distributed.shared_stamp)."""
    problems = state.settings.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    state.resume_from = check_resumable(state.run_dir) if state.settings.train.resume else None
    if is_main_process():
        if state.resume_from is None:
            check_fresh_run_dir(state.run_dir)
        state.run_dir.mkdir(parents=True, exist_ok=True)


def load_data(state: RunState) -> None:
    """The mix, cleaned and split, with its provenance; the token filter counts the model's own tokens
    (tokenizer only; weights load later). A bad data file is a ConfigError (one line, exit 2). A resumed run
    keeps the provenance it wrote first, and must draw the same rows (check_same_data)."""
    data = state.settings.data
    check_hubs_reachable(data)  # seconds, before any model is built
    tokenizer = data_tokenizer(state.settings.model)
    try:
        state.train_ds, state.eval_ds, state.data_counts = build_datasets(data, tokenizer)
    except (ValueError, ConnectionError) as err:  # a bad row, file or source: one line, before anything is written
        raise ConfigError(str(err)) from None
    if state.resume_from is not None:  # the rows the run started with, or a clear refusal before W&B opens
        check_same_data(state.run_dir, state.data_counts, state.settings.train.resume_accept_data_change)
    if is_main_process() and state.resume_from is None:
        write_provenance(state.data_counts, state.run_dir)


def load_model(state: RunState) -> None:
    """The base model and tokenizer (the reserved pad token, no resize) and the probes' GenerationConfig."""
    s = state.settings
    state.model, state.tokenizer, state.model_path = load_base(s.model, s.quant, s.train.attn_implementation)
    state.gen_config = generation_config(s.decoding, state.tokenizer)


def open_tracking(state: RunState, logged_config: dict):
    """The W&B run, in the run's group with tags from its scientific settings; logs the data provenance."""
    s = state.settings
    run_id = previous_wandb_id(state.run_dir) if state.resume_from else None  # the same W&B run continues
    state.labels = science_labels(asdict(s))
    tracking = replace(s.tracking, tags=[*s.tracking.tags, *as_tags(state.labels)])
    run = start_run(tracking, state.run_dir, redact(logged_config), job_type="train", run_id=run_id)
    define_metrics(run)  # eval/probe metrics on the train/global_step axis; best-of summaries
    run.config.update({"labels": state.labels})  # the science labels as config keys too (dashboard axes)
    counts = state.data_counts
    log_table_at_start(run, "data/provenance", TABLE_COLUMNS, stage_rows(counts), summary_keys(counts))
    if is_main_process():  # the drawn rows, declared as the run's input dataset (named by fingerprint)
        write_mix(state.run_dir, state.train_ds.to_list(), state.eval_ds.to_list())
        use_mix(run, state.run_dir, counts)
    return run


def build_run_trainer(state: RunState, extra_callbacks: list | None) -> None:
    """The probe recorder (scores and logs the answers at every eval) and the SFTTrainer that calls it."""
    s = state.settings
    known_words = frozenset(corpus_words(_texts(state.train_ds)))  # words seen in training are not invented
    questions = select_questions(s.data, eval_split_rows(state.eval_ds), s.quality.heldout_questions)
    heldout = None
    if questions:
        heldout_config = copy.deepcopy(state.gen_config)
        heldout_config.max_new_tokens = min(s.quality.heldout_max_new_tokens, heldout_config.max_new_tokens)
        heldout = HeldoutEval(
            questions,
            s.data.system_prompt,
            heldout_config,
            state.run_dir / HELDOUT_FILE,
            state.run,
            s.quality,
            known_words=known_words,
            seed=s.decoding.seed,
            merge_adapter=s.decoding.merge_adapter,
        )
    state.recorder = ProbeRecorder(
        s.probes,
        s.data.system_prompt,
        state.gen_config,
        state.run_dir / "probes.jsonl",
        state.run,
        seed=s.decoding.seed,
        quality=s.quality,
        known_words=known_words,
        merge_adapter=s.decoding.merge_adapter,
        heldout=heldout,
    )
    if state.resume_from:
        begin_resume(state.run_dir, state.resume_from, state.run, state.recorder)
    state.trainer = build_trainer(
        state.model,
        state.tokenizer,
        state.train_ds,
        state.eval_ds,
        s.train,
        s.lora,
        state.run_dir / "checkpoints",
        "none" if s.tracking.mode == "disabled" else "wandb",
        callbacks=[ProbeCallback(state.recorder, s.train.select_by), EvalAtEndCallback(), *(extra_callbacks or [])],
    )
    trainable, total = count_parameters(state.trainer.model)
    state.run.summary.update(
        {"params/trainable": trainable, "params/total": total, "world_size": world_size(), "global_batch": _batch(s)}
    )
    if state.resume_from:
        state.trainer.args.eval_on_start = False  # step 0 was evaluated and probed before the interruption


def train(state: RunState) -> None:
    """trainer.train (from the checkpoint when resuming); a failed write names what is intact."""
    began = time.time()
    try:
        state.trainer.train(resume_from_checkpoint=str(state.resume_from) if state.resume_from else None)
    except OSError as err:
        raise write_error(err, state.run_dir) from err
    state.train_seconds = time.time() - began


def finish_run(state: RunState) -> dict:
    """Save the kept adapter with its decoding, check determinism, write run.json, the plot and W&B summary."""
    s, trainer, recorder, run = state.settings, state.trainer, state.recorder, state.run
    selected = _selected(trainer.state, s.train.select_by, recorder)
    # On the weights that are kept; generating is rank 0's job unless the weights are sharded (FSDP).
    determinism = None
    if is_main_process() or generation_is_collective(trainer.model):
        determinism = recorder.check_determinism(trainer.model, state.tokenizer, selected["step"])
    adapter_dir = state.run_dir / "adapter"
    trainer.save_model(str(adapter_dir))  # on every rank: FSDP gathers the shards; only rank 0 writes
    evals = eval_table(trainer.state.log_history, recorder)  # eval metrics are gathered: same on all ranks
    if not is_main_process():
        return {"rank": rank(), "world_size": world_size(), "evals": evals, "final_eval_loss": evals[-1]["eval_loss"]}
    state.gen_config.save_pretrained(adapter_dir)  # serving defaults: the adapter decodes the way the probes did
    trainer.state.save_to_json(str(state.run_dir / "trainer_state.json"))
    adapter = adapter_report(adapter_dir)
    trainable, total = count_parameters(trainer.model)
    summary = {
        "run_dir": str(state.run_dir),
        "wandb_dir": str(wandb_run_dir(run) or ""),
        "base_model": state.model_path,
        "adapter_dir": str(adapter_dir),
        **adapter,
        "params_trainable": trainable,
        "params_total": total,
        "data": state.data_counts,
        "evals": evals,
        "selected": selected,
        "divergence": recorder.alarms,
        "determinism": determinism,
        "flags": run_flags(determinism, trainer.model),
        "global_step": trainer.state.global_step,
        "world_size": world_size(),
        "global_batch": _batch(s),  # per_device_batch x grad_accum x world_size
        "train_seconds": round(state.train_seconds, 1),  # training with its evals and probes
        "seconds": round(time.time() - state.started, 1),  # the whole run, base model build included
        "labels": state.labels,
        "settings": redact(asdict(s)),
        "versions": _versions(),
        # How the numbers were computed: the precision actually used and the CPU's kernel level.
        "compute": precision_record(
            s.train.precision, "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32"
        ),
    }
    summary["plot"] = str(plot_run(trainer.state.log_history, evals, state.run_dir / "curves.png"))
    summary["final_eval_loss"] = evals[-1]["eval_loss"]
    summary["final_mean_token_accuracy"] = evals[-1]["mean_token_accuracy"]
    # No pickle, the portable base name, medqa's card, and the W&B `model` artifact (medqa.training.release).
    summary["adapter"] = release_adapter(run, adapter_dir, s, summary, recorder.rows, recorder.decoding)
    run.summary.update({"selected/step": selected["step"], "probes/divergence_count": len(recorder.alarms)})
    if selected["heldout_quality"] is not None:
        run.summary.update({"selected/heldout_quality": selected["heldout_quality"]})
    # The kept adapter's eval, under one key: what sweeps optimise (sweeps/*.yaml metric), online and offline.
    kept = {"selected/probe_quality": selected["probe_quality"], "selected/eval_loss": selected["eval_loss"]}
    run.summary.update(kept)
    run.summary.update({"adapter/bytes": adapter["adapter_bytes"], "adapter/tensors": adapter["adapter_tensors"]})
    write_text(state.run_dir / "run.json", json.dumps(summary, indent=2, default=str))
    return summary


def _batch(settings: RunSettings) -> int:
    return settings.train.per_device_batch * settings.train.grad_accum * world_size()


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
                    **_heldout_columns(recorder, step),
                    "divergence": any(a["step"] == step for a in recorder.alarms),
                    "generate_seconds": recorder.generate_seconds(step),
                }
            )
    return rows


def _selected(state, select_by: str, recorder: ProbeRecorder) -> dict:
    """Which eval's weights became the run's adapter, and why (written to run.json), with the held-out quality
    at that step and whether the best eval is distinguishable from the runner-up (paired 95% CI)."""
    best = select_by != "last" and state.best_model_checkpoint is not None  # else: the last weights were kept
    step = state.best_global_step if best else state.global_step
    heldout = recorder.heldout.at(step) if recorder.heldout else None
    return {
        "heldout_quality": heldout and heldout.get("quality"),
        "heldout_quality_ci": heldout and [heldout.get("quality_lo"), heldout.get("quality_hi")],
        "report": recorder.selection_report(),
        "rule": select_by,
        "step": step,
        "checkpoint": state.best_model_checkpoint if best else None,
        "score": state.best_metric if best else None,
        "probe_quality": recorder.quality_at(step),
        "eval_loss": next((e["eval_loss"] for e in recorder.evals if e["step"] == step), None),
    }


def _heldout_columns(recorder: ProbeRecorder, step: int) -> dict:
    """The held-out eval's quality, precision and recall at `step`, each with its 95% CI (empty when off)."""
    now = recorder.heldout.at(step) if recorder.heldout else None
    if now is None:
        return {}
    out = {}
    for metric in ("quality", "precision", "recall"):
        out[f"heldout_{metric}"] = now.get(metric)
        out[f"heldout_{metric}_ci"] = [now.get(f"{metric}_lo"), now.get(f"{metric}_hi")]
    return out


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
