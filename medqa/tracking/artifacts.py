"""W&B artifacts with lineage: the drawn data mix (`dataset`), the kept adapter (`model`), and the adapter a
re-decode run answers with. W&B's lineage graph then reads data mix -> training run -> adapter -> re-decode run.

- The mix is named by its fingerprint (`mix-<hash of the train and eval fingerprints>`): every run drawing the same
  rows declares the same artifact as its input, and W&B keeps one version of it (same name, same digest).
- The adapter is `adapter-<training run id>`, aliased `best-<train.select_by>` (or only `latest` for select_by=last).
- A re-decode run declares the training run's adapter artifact as its input: the same name and files, so the same
  digest, which W&B resolves to the version the training run logged.

Inputs are declared the way `run.use_artifact(<draft artifact>)` does online (log it, marked use-after-commit).
wandb 0.31 refuses `use_artifact` offline outright, so offline the same record is written through the run's
`_log_artifact(..., use_after_commit=True)`: `wandb sync` then creates (or finds, by digest) the version and
records the use. Sync the training run before its re-decode runs, so the training run is the adapter's creator.

Files are added with policy="immutable": W&B records their path instead of copying them into its staging folder
(a run folder is never rewritten), so `wandb sync` reads them from the run folder, which must still exist.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import wandb

MIX_DIR = "data_mix"  # in the run folder: the rows the run trained and evaluated on
# Never in the adapter artifact: pickles (a pickled adapter_model.bin, training_args.bin) run code when loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
SELECT_ALIAS = {"quality": "best-quality", "loss": "best-loss", "loss_quality": "best-loss-quality"}


def mix_name(provenance: dict) -> str:
    """`mix-<12 hex>`: a hash of the mix's train and eval fingerprints (equal names mean identical rows)."""
    fp = provenance["fingerprint"]
    return "mix-" + hashlib.sha256(f"{fp['train']}:{fp['eval']}".encode()).hexdigest()[:12]


def write_mix(run_dir: Path, train_rows: list[dict], eval_rows: list[dict]) -> Path:
    """`<run dir>/data_mix/{train,eval}.jsonl`: the drawn rows, one JSON object a line (keys sorted, so the same
    rows give the same bytes). A resumed run finds them written and leaves them as they are."""
    folder = Path(run_dir) / MIX_DIR
    folder.mkdir(exist_ok=True)
    for split, rows in (("train", train_rows), ("eval", eval_rows)):
        path = folder / f"{split}.jsonl"
        if not path.exists():
            with path.open("x", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    return folder


def use_draft(run, artifact: wandb.Artifact) -> None:
    """Declare `artifact` (a draft built from local files) as the run's input: `run.use_artifact` online; offline,
    the record `use_artifact` writes for a draft (see the module docstring). A no-op on a disabled run."""
    if run is None or run.disabled:
        return
    if run.offline:
        run._log_artifact(artifact, aliases=[], is_user_created=True, use_after_commit=True)
    else:
        run.use_artifact(artifact)


def use_mix(run, run_dir: Path, provenance: dict) -> wandb.Artifact:
    """Declare the data mix (`data_mix/*.jsonl` written by write_mix, and data_provenance.json) as the training
    run's input `dataset` artifact, named by its fingerprint."""
    mix = provenance["mix"]
    artifact = wandb.Artifact(
        mix_name(provenance),
        type="dataset",
        description="medqa data mix: the cleaned, drawn train/eval rows and where each came from",
        metadata={
            "fingerprint": provenance["fingerprint"],
            "share": mix["share"],
            "train_rows": mix["train"],
            "eval_rows": mix["eval"],
            "list_share": mix["list_share"],
        },
    )
    for split in ("train", "eval"):
        artifact.add_file(str(Path(run_dir) / MIX_DIR / f"{split}.jsonl"), policy="immutable")
    artifact.add_file(str(Path(run_dir) / "data_provenance.json"), policy="immutable")
    use_draft(run, artifact)
    return artifact


def adapter_name(training_run_id: str) -> str:
    return f"adapter-{training_run_id}"


def adapter_artifact(adapter_dir: Path, training_run_id: str, metadata: dict | None = None) -> wandb.Artifact:
    """The `model` artifact of an adapter folder: every file in it (safetensors weights, adapter, generation and
    tokenizer configs, chat template, card) but a pickle."""
    files = sorted(p for p in Path(adapter_dir).iterdir() if p.is_file() and p.suffix not in PICKLE_SUFFIXES)
    if not any(p.suffix == ".safetensors" for p in files):
        raise FileNotFoundError(f"{adapter_dir}: no .safetensors weights to log as the adapter artifact")
    artifact = wandb.Artifact(
        adapter_name(training_run_id),
        type="model",
        description="medqa LoRA adapter (PEFT): weights, adapter and generation config, model card",
        metadata=metadata or {},
    )
    for path in files:
        artifact.add_file(str(path), policy="immutable")
    return artifact


def adapter_aliases(select_by: str) -> list[str]:
    """`best-quality` / `best-loss` / `best-loss-quality` by train.select_by, and `latest`."""
    return [SELECT_ALIAS[select_by], "latest"] if select_by in SELECT_ALIAS else ["latest"]


def log_adapter(run, adapter_dir: Path, select_by: str, metadata: dict | None = None) -> wandb.Artifact | None:
    """Log the kept adapter as the training run's output `model` artifact (None on a disabled run)."""
    if run is None or run.disabled:
        return None
    artifact = adapter_artifact(adapter_dir, run.id, metadata)
    run.log_artifact(artifact, aliases=adapter_aliases(select_by))
    return artifact


def use_adapter(run, adapter_dir: Path, training_run_id: str) -> wandb.Artifact | None:
    """Declare the training run's adapter artifact as this (re-decode) run's input; None on a disabled run."""
    if run is None or run.disabled:
        return None
    artifact = adapter_artifact(adapter_dir, training_run_id)
    use_draft(run, artifact)
    return artifact
