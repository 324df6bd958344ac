"""`train.resume=auto|<run dir>` resolved on the command line, before Hydra makes a folder: which unfinished
run to continue, refused when its saved config differs from this command's (medqa.training.resume continues it)."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import OmegaConf

from medqa.core.errors import ConfigError
from medqa.core.run_folder import check_not_live, check_resumable, checkpoints, live_holder, run_finished

RUNS_ROOT = Path("runs")  # where hydra.run.dir puts runs by default (conf/config.yaml)
RESUME_KEYS = ("resume", "resume_accept_data_change")  # how to continue, not what the run is: not compared


def config_differences(run_dir: Path, cfg) -> list[str]:
    """Keys whose value differs from the run's saved config (train.resume aside): resuming with another
    config would not continue the same run."""
    saved_file = Path(run_dir) / ".hydra" / "config.yaml"
    if not saved_file.exists():
        return []
    saved = OmegaConf.to_container(OmegaConf.load(saved_file), resolve=False)
    now = OmegaConf.to_container(cfg, resolve=False)
    now.pop("hydra", None)
    for c in (saved, now):
        for k in RESUME_KEYS:
            c.get("train", {}).pop(k, None)
    return _diff(saved, now)


def _diff(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if a != b else []


def find_resumable(cfg, root: Path = RUNS_ROOT) -> Path | None:
    """The latest unfinished run under `root` (runs/<date>/<time>) with a checkpoint and the same config."""
    candidates = sorted((p for p in Path(root).glob("*/*") if p.is_dir()), reverse=True)
    for run_dir in candidates:
        if run_finished(run_dir) or not (run_dir / ".hydra" / "config.yaml").exists() or live_holder(run_dir):
            continue  # finished, not a run, or being trained by a live process
        if checkpoints(run_dir) and not config_differences(run_dir, cfg):
            return run_dir
    return None


def resolve_resume(argv: list[str], cfg, resume: str | None) -> list[str]:
    """Command-line overrides for Hydra: a resumed run reuses its run folder (hydra.run.dir) and keeps this
    command's config in .hydra/resume-<time>/. `auto` becomes the run it found, or null."""
    if not resume:
        return argv
    explicit = next((a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("hydra.run.dir=")), None)
    if resume == "auto":
        if explicit and checkpoints(Path(explicit)):
            run_dir = Path(explicit)
        else:
            run_dir = None if explicit else find_resumable(cfg)
        if run_dir is None:
            print("train.resume=auto: no unfinished run of this config with a checkpoint; starting a fresh run")
            return [a for a in argv if not a.startswith("train.resume=")] + ["train.resume=null"]
    else:
        run_dir = Path(resume)
    check_not_live(run_dir, "train.resume")  # never join a run another process is training
    check = check_resumable(run_dir)
    if resume != "auto" and explicit and Path(explicit).resolve() != run_dir.resolve():
        raise ConfigError(
            f"train.resume={resume} and hydra.run.dir={explicit}: a resumed run writes into its own folder"
        )
    differ = config_differences(run_dir, cfg)
    if differ:
        raise ConfigError(
            f"train.resume={run_dir}: the config differs from that run's .hydra/config.yaml in {', '.join(differ)}; "
            "resume with the same overrides"
        )
    print(f"resuming {run_dir} from {check.name}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = [a for a in argv if not a.startswith("train.resume=") and not a.lstrip("+").startswith("hydra.run.dir=")]
    return [
        *kept,
        f"train.resume={run_dir.absolute()}",
        f"hydra.run.dir={run_dir.absolute()}",
        f"hydra.output_subdir=.hydra/resume-{stamp}",
    ]
