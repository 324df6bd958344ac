"""Everything medqa knows about a run folder, in one place: which files mark a run, which checkpoints are
complete, where its W&B segments are, and the checks that a run dir can be made and an adapter will load.

    runs/<date>/<time>/  .hydra/  data_provenance.json  checkpoints/checkpoint-N/  adapter/  probes.jsonl
                         run.json  trainer_state.json  curves.png  wandb/offline-run-<time>-<id>/"""

from __future__ import annotations

import os
from pathlib import Path

from medqa.core.errors import ConfigError, one_line


def check_run_dir_writable(run_dir: Path) -> None:
    """The run dir can be created: its nearest existing ancestor is a writable folder."""
    probe = Path(run_dir).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"hydra.run.dir={run_dir}: cannot create it, {probe} is not a writable folder")


def check_adapter_dir(path: str | Path, key: str = "adapter") -> Path:
    """A PEFT adapter folder that will load: a parseable adapter_config.json and a readable safetensors file
    (never a pickled .bin)."""
    import json

    from safetensors import safe_open

    p = Path(path)
    config, weights = p / "adapter_config.json", p / "adapter_model.safetensors"
    if not weights.is_file():
        pickled = (p / "adapter_model.bin").exists()
        pickled = " (only a pickled adapter_model.bin, which is never loaded)" if pickled else ""
        raise ConfigError(f"{key}={p}: no adapter_model.safetensors{pickled}")
    try:
        json.loads(config.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}={p}: adapter_config.json unreadable ({one_line(str(err))})") from None
    try:
        with safe_open(str(weights), framework="pt") as f:  # checks the header and that it covers the file
            if not list(f.keys()):
                raise ValueError("no tensors")
    except Exception as err:  # safetensors raises its own error types for a corrupt or truncated file
        raise ConfigError(f"{weights}: corrupt adapter file ({one_line(str(err))[:200]})") from None
    return p


# What HF Trainer writes into checkpoint-N; trainer_state.json comes last, so a checkpoint cut short by a kill
# lacks it and is skipped.
CHECKPOINT_FILES = (
    "adapter_model.safetensors",
    "adapter_config.json",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
    "trainer_state.json",
)


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints, oldest first."""
    root = Path(run_dir) / "checkpoints"
    found = [p for p in root.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()] if root.is_dir() else []
    complete = [p for p in found if all((p / f).is_file() for f in CHECKPOINT_FILES)]
    return sorted(complete, key=checkpoint_step)


def checkpoint_step(checkpoint: Path) -> int:
    return int(Path(checkpoint).name.split("-")[-1])


def wandb_segments(run_dir: Path) -> list[Path]:
    """The run's W&B run folders (offline-run-<time>-<id> / run-<time>-<id>), oldest first."""
    root = Path(run_dir) / "wandb"
    return sorted((p for p in root.glob("*run-*-*") if p.is_dir()), key=lambda p: p.name.split("run-", 1)[1])


def previous_wandb_id(run_dir: Path) -> str | None:
    segments = wandb_segments(run_dir)
    return segments[-1].name.rsplit("-", 1)[1] if segments else None


# Files that mean a folder already holds a run: never written into twice.
RUN_MARKERS = ("run.json", "adapter", "probes.jsonl", "checkpoints", "wandb", "data_provenance.json")


def check_fresh_run_dir(run_dir: Path) -> None:
    """Refuse a folder that already holds a run: nothing a user made is overwritten."""
    taken = [m for m in RUN_MARKERS if (run_dir / m).exists()]
    if taken:
        raise FileExistsError(f"{run_dir} already holds a run ({', '.join(taken)}); choose a new run dir")


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def is_run_dir(path: Path) -> bool:
    return (path / "run.json").exists() or (path / ".hydra" / "config.yaml").exists()


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").exists()


def check_resumable(run_dir: Path, key: str = "train.resume") -> Path:
    """The checkpoint to continue `run_dir` from; ConfigError when it is not an unfinished run with one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{key}={run_dir}: no such run folder")
    if (run_dir / "run.json").exists():
        raise ConfigError(f"{key}={run_dir}: that run finished (run.json exists); start a new run instead")
    found = checkpoints(run_dir)
    if not found:
        raise ConfigError(f"{key}={run_dir}: no complete checkpoint in {run_dir / 'checkpoints'}")
    return Path(check_adapter_dir(found[-1], key=f"{key} checkpoint"))
