"""Re-decoding saved weights without retraining: a run's adapter or any of its checkpoints (or the base
model alone) answers the probes under another decoding, logged as a new W&B run grouped with the training
run, in a fresh folder of its own. Takes plain settings; the Hydra entrypoint is medqa.probe."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from medqa.core.atomic import write_text
from medqa.core.run_folder import (
    ADAPTER_FILES,
    check_fresh_run_dir,
    checkpoints,
    is_adapter_dir,
    is_run_dir,
    previous_wandb_id,
)
from medqa.model.generation import generation_config
from medqa.model.loading import load_adapter, load_base, load_tokenizer, resolve_model_path
from medqa.probing.recorder import ProbeRecorder
from medqa.quality.lexicon import shipped_words
from medqa.settings.decoding import DecodingSettings
from medqa.settings.model import ModelSettings, QuantSettings
from medqa.settings.probes import Probe
from medqa.settings.quality import QualitySettings
from medqa.settings.tracking import TrackingSettings
from medqa.tracking.artifacts import use_adapter
from medqa.tracking.metrics import define_metrics
from medqa.tracking.runs import start_run, wandb_run_dir

CHECKPOINT = re.compile(r"checkpoint-(\d+)")


@dataclass(frozen=True)
class WeightsSource:
    """Which weights answer: a training run's adapter or checkpoint, or (all None) the base model alone."""

    run_dir: Path | None = None
    adapter_dir: Path | None = None
    step: int = 0  # the training step of those weights: a checkpoint's number, the final step for adapter/

    @property
    def label(self) -> str:
        if self.run_dir is None or self.adapter_dir is None:
            return "base"
        return f"{self.run_dir.name}/{self.adapter_dir.name}"


def _final_step(run_dir: Path) -> int:
    """The step whose weights the run's adapter/ holds: the selected eval (train.select_by), else the last."""
    if (run_dir / "run.json").exists():
        summary = json.loads((run_dir / "run.json").read_text())
        selected = summary.get("selected") or {}
        return int(selected.get("step", summary.get("global_step", 0)))
    if (run_dir / "trainer_state.json").exists():
        return int(json.loads((run_dir / "trainer_state.json").read_text()).get("global_step", 0))
    return 0


def find_weights(run: str | None) -> WeightsSource:
    """`run`: a run dir (its adapter/, else its latest checkpoint), an adapter dir, a checkpoint dir, or
    "none" (the base model). Checked on disk before anything loads; a bad path is a clear error."""
    if run is None or str(run).strip().lower() in {"", "none", "null"}:
        return WeightsSource()
    path = Path(run).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"run={run}: no such file or directory (a run dir, adapter dir or checkpoint dir)")
    if is_adapter_dir(path):
        adapter_dir = path
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    elif is_run_dir(path):
        run_dir = path
        saved = checkpoints(path)  # complete ones only: a checkpoint cut short by a kill is never decoded
        adapter_dir = path / "adapter" if is_adapter_dir(path / "adapter") else (saved or [None])[-1]
        if adapter_dir is None:
            raise FileNotFoundError(f"run={run}: the run holds no saved adapter (adapter/ or checkpoints/checkpoint-N)")
    else:
        raise ValueError(
            f"run={run}: not a run dir (run.json or .hydra/config.yaml), an adapter dir or a checkpoint dir "
            "(adapter_config.json)"
        )
    missing = [f for f in ADAPTER_FILES if not (adapter_dir / f).exists()]
    if missing:
        raise FileNotFoundError(f"{adapter_dir}: missing {missing} (only safetensors adapters are loaded)")
    if not is_run_dir(run_dir):
        raise FileNotFoundError(
            f"{adapter_dir}: its run folder {run_dir} has no run.json or .hydra/config.yaml, so the base model and "
            "system prompt it was trained with are unknown"
        )
    match = CHECKPOINT.fullmatch(adapter_dir.name)
    step = int(match.group(1)) if match else _final_step(run_dir)
    return WeightsSource(run_dir=run_dir, adapter_dir=adapter_dir, step=step)


def redecode_tracking(tracking: TrackingSettings, source: WeightsSource, trained_group: str | None) -> TrackingSettings:
    """`tracking` in the W&B group that puts re-decodings beside their training run, unless the user named a
    group: the training run's own group, else its W&B run id (`wandb/offline-run-<time>-<id>`), else its
    folder name; "base" for the base model alone."""
    if tracking.group:
        return tracking
    if source.run_dir is None:
        group = "base"
    elif trained_group:
        group = trained_group
    else:
        runs = sorted((source.run_dir / "wandb").glob("*run-*-*"))
        group = runs[-1].name.rsplit("-", 1)[-1] if runs else source.run_dir.name
    return replace(tracking, group=group)


def redecode(
    source: WeightsSource,
    model: ModelSettings,
    quant: QuantSettings,
    system_prompt: str,
    probes: list[Probe],
    decoding: DecodingSettings,
    tracking: TrackingSettings,
    out_dir: Path,
    logged_config: dict,
    name: str | None = None,
    quality: QualitySettings | None = None,
) -> dict:
    """Answer the probes with `source`'s weights under `decoding`, into the fresh `out_dir` and a new W&B run
    (job_type "redecode", `tracking.group`); returns the summary also written to redecode.json."""
    started = time.time()
    out_dir = out_dir.resolve()
    if source.run_dir is not None and out_dir.is_relative_to(source.run_dir):
        raise ValueError(f"output dir {out_dir} is inside the training run {source.run_dir}: it is never written to")
    check_fresh_run_dir(out_dir)
    # The decoding is checked against the tokenizer before the weights load.
    gen_config = generation_config(decoding, load_tokenizer(resolve_model_path(model), model))
    out_dir.mkdir(parents=True, exist_ok=True)

    base, tokenizer, base_path = load_base(model, quant)
    weights = base if source.adapter_dir is None else load_adapter(base, source.adapter_dir)
    run = start_run(tracking, out_dir, logged_config, name=name, job_type="redecode")
    finished = False
    try:
        define_metrics(run)
        # Lineage: the training run's adapter artifact is this run's input (a checkpoint is not an artifact).
        trained_id = previous_wandb_id(source.run_dir) if source.run_dir else None
        used = None
        if trained_id and source.adapter_dir == source.run_dir / "adapter":
            used = use_adapter(run, source.adapter_dir, trained_id)
        recorder = ProbeRecorder(
            probes,
            system_prompt,
            gen_config,
            out_dir / "probes.jsonl",
            run,
            seed=decoding.seed,
            quality=quality,
            known_words=shipped_words(),  # the embedded corpus' words; a hub run's own rows are not at hand here
            merge_adapter=decoding.merge_adapter,
        )
        rows = recorder.record(weights, tokenizer, source.step)
        summary = {
            "out_dir": str(out_dir),
            "wandb_dir": str(wandb_run_dir(run) or ""),
            "group": tracking.group,
            "source_run_dir": str(source.run_dir or ""),
            "adapter_dir": str(source.adapter_dir or ""),
            "adapter_artifact": used.name if used else None,
            "step": source.step,
            "base_model": base_path,
            "generation_config": recorder.decoding,
            "eos_rate": recorder.eos_rate(source.step),
            "quality": recorder.quality_at(source.step),
            "answers": rows,
            "seconds": round(time.time() - started, 1),
        }
        write_text(out_dir / "redecode.json", json.dumps(summary, indent=2, ensure_ascii=False))
        finished = True
        return summary
    finally:
        run.finish(exit_code=0 if finished else 1)
