"""What a finished training run does to its kept adapter before handing it out: no pickle beside the weights, the
portable base model name in its config, medqa's model card, and the adapter logged as a W&B `model` artifact
(the run's output in the lineage graph). Rank 0 only, after the adapter and its generation config are saved.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from medqa.model.portable import make_portable, portable_name
from medqa.tracking.artifacts import log_adapter
from medqa.training.card import render_card

# Written by Trainer.save_model into adapter/: a pickle of the training arguments. Checkpoints keep theirs
# (resume reads it); the released adapter does not need it and must not carry a pickle.
PICKLES = ("training_args.bin",)


def release_adapter(run, adapter_dir: Path, settings, summary: dict, rows: list[dict], decoding: dict) -> dict:
    """Clean, label, describe and log `adapter_dir`. `settings`: the run's RunSettings; `summary`: the run
    summary being built (evals, selected, data, labels, global_batch); `rows`: every probes.jsonl row of the run;
    `decoding`: the effective generation config the probes were answered with.
    Returns what run.json records about it: {"base_model_name", "card", "artifact"}."""
    for name in PICKLES:
        (Path(adapter_dir) / name).unlink(missing_ok=True)
    model = settings.model
    base_name = portable_name(model.source, model.name_or_path, model.recipe)
    make_portable(adapter_dir, base_name, model.recipe)
    selected = summary["selected"]
    card = render_card(
        base_model=base_name,
        provenance=summary["data"],
        lora=asdict(settings.lora),
        train=asdict(settings.train),
        evals=summary["evals"],
        selected=selected,
        answers=[r for r in rows if r["step"] == selected["step"]],
        decoding=decoding,
        tags=[f"{k}={v}" for k, v in (summary.get("labels") or {}).items()],
        global_batch=summary.get("global_batch"),
        wandb_run=None if run is None or run.disabled else f"{run.project}/{run.id}",
    )
    card_file = Path(adapter_dir) / "README.md"
    card_file.write_text(card, encoding="utf-8")
    metadata = {
        "base_model": base_name,
        "select_by": selected["rule"],
        "step": selected["step"],
        "probe_quality": selected.get("probe_quality"),
        "eval_loss": selected.get("eval_loss"),
        "data_fingerprint": summary["data"]["fingerprint"],
    }
    artifact = log_adapter(run, adapter_dir, settings.train.select_by, metadata)
    return {"base_model_name": base_name, "card": str(card_file), "artifact": artifact.name if artifact else None}
