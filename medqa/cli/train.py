"""Hydra entrypoint: `python -m medqa.train [overrides]`. Checks every input once, before Hydra makes a run
folder (medqa.config.validate), hands plain settings to medqa.training.run.finetune, prints the per-eval
summary and where the run lives. `train.resume=runs/<date>/<time>` (or `auto`) continues an interrupted run
(medqa.config.resume picks it, medqa.training.resume continues it)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from medqa.analysis.run_report import print_run_summary
from medqa.cli.common import run_checked
from medqa.config.build import settings_from_cfg
from medqa.config.compose import register_resolvers
from medqa.config.resume import resolve_resume
from medqa.config.validate import checked_settings, settings_checked
from medqa.core.atomic import write_text
from medqa.core.distributed import is_main_process
from medqa.core.errors import ConfigError, exit_on_error
from medqa.core.interrupts import Interrupted, install, raise_pending, taken
from medqa.core.paths import CONF_DIR
from medqa.core.run_folder import (
    RUN_MARKERS,
    acquire,
    check_fresh_run_dir,
    check_not_live,
    check_run_dir_writable,
    checkpoints,
    created_here,
    held,
    release,
    wandb_segments,
)

HYDRA_FILES = {".hydra": {"config.yaml", "hydra.yaml", "overrides.yaml"}, "train.log": None}
_PREFLIGHT_CHECKED = False  # set when the command line was validated before Hydra started


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")  # absolute: works installed
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        # The full check ran in preflight; a --multirun job skipped it, so it runs here instead (never twice).
        settings = settings_from_cfg(cfg) if _PREFLIGHT_CHECKED else settings_checked(cfg)
    except ConfigError as err:
        discard_hydra_only_dir(run_dir)
        print(f"medqa.train: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets

    from medqa.training.run import finetune  # lazy: a rejected command line fails before torch loads

    datasets.disable_progress_bars()  # loading a source is not progress worth a bar; errors stay one line
    raise_pending()  # an interrupt whose first raise was dropped (inside a __del__) while starting
    if is_main_process():  # an explicit hydra.run.dir was locked in preflight; a stamped one is new
        exit_on_error("medqa.train", lambda: acquire(run_dir))
    logged = OmegaConf.to_container(cfg, resolve=True)  # finetune redacts credentials before logging it
    resumed = bool(settings.train.resume)
    try:
        summary = exit_on_error("medqa.train", lambda: finetune(settings, run_dir, logged), (FileExistsError,))
    except SystemExit as err:
        if err.code == 2:  # refused before training (bad data, changed data): nothing of this attempt is kept
            forget_attempt(run_dir, resumed)
        raise
    except Interrupted as err:
        record_interruption(run_dir, taken(err), resumed)
        raise SystemExit(err.exit_code) from None
    finally:
        release(run_dir)
    if is_main_process():
        print_run_summary(summary)
    return summary["final_eval_loss"]  # what a Hydra sweeper would minimise


def _task_overrides() -> list[str]:
    """This job's own overrides, without how it was continued (train.resume)."""
    return [o for o in HydraConfig.get().overrides.task if not o.startswith(("train.resume=", "hydra."))]


def forget_attempt(run_dir: Path, resumed: bool) -> None:
    """Remove what Hydra wrote for a refused attempt: a fresh run's folder (only if it holds nothing but
    Hydra's files), or a resumed run's `.hydra/resume-<time>/`."""
    release(run_dir)
    if resumed:
        subdir = run_dir / HydraConfig.get().output_subdir
        if subdir != run_dir and subdir.is_dir() and {p.name for p in subdir.iterdir()} <= HYDRA_FILES[".hydra"]:
            for p in subdir.iterdir():
                p.unlink()
            subdir.rmdir()
        return
    discard_hydra_only_dir(run_dir)


def record_interruption(run_dir: Path, err: Interrupted, resumed: bool) -> None:
    """After SIGINT/SIGTERM/SIGUSR1 (W&B already closed by finetune): write what happened into run.json and
    print how to continue, on one line. A run interrupted before it wrote anything leaves no folder."""
    release(run_dir)
    command = ["python", "-m", "medqa.train", *map(shlex.quote, _task_overrides())]
    if not resumed and not any((run_dir / m).exists() for m in RUN_MARKERS):
        discard_hydra_only_dir(run_dir)
        print(f"medqa.train: interrupted by {err.name} before the run started; nothing was kept", file=sys.stderr)
        return
    kept = [p.name for p in checkpoints(run_dir)]
    resume = " ".join([*command, f"train.resume={shlex.quote(str(run_dir))}"]) if kept else None
    record = {
        "state": "interrupted",
        "signal": err.name,
        "run_dir": str(run_dir),
        "checkpoints": kept,
        "resume_command": resume,
        "wandb_dirs": [str(p) for p in wandb_segments(run_dir)],
    }
    write_text(run_dir / "run.json", json.dumps(record, indent=2))
    if resume:
        how = f"continue from {kept[-1]} with: {resume}"
    else:
        how = "no checkpoint was complete yet; start again with: " + " ".join(command)
    print(f"medqa.train: interrupted by {err.name}; W&B closed, {run_dir}/run.json says so; {how}", file=sys.stderr)


def preflight(argv: list[str]) -> list[str]:
    """Check the command line before Hydra creates a run folder; return the overrides Hydra gets (a resumed
    run reuses its folder). Flags (--multirun, --cfg, --help) go to Hydra unchecked: each job checks itself."""
    global _PREFLIGHT_CHECKED
    if any(a.startswith("-") for a in argv):
        return argv
    cfg, settings = checked_settings(argv)
    argv = resolve_resume(argv, cfg, settings.train.resume)
    explicit = next((a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("hydra.run.dir=")), None)
    check_run_dir_writable(Path(explicit or "runs"))
    if explicit and is_main_process():  # before Hydra writes .hydra/ into it: never into a live or finished run
        run_dir = Path(explicit)
        check_not_live(run_dir, "hydra.run.dir")
        if not any(a.startswith("train.resume=") and a != "train.resume=null" for a in argv):
            try:
                check_fresh_run_dir(run_dir)
            except FileExistsError as err:
                raise ConfigError(f"hydra.run.dir={run_dir}: {err}") from None
        acquire(run_dir)
    _PREFLIGHT_CHECKED = True
    return argv


def discard_hydra_only_dir(run_dir: Path) -> None:
    """Remove the folder Hydra just made for a rejected job, only if it holds nothing but Hydra's own files
    (or nothing at all, when this process made it to lock it)."""
    release(run_dir)
    entries = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
    if run_dir.is_dir() and not entries and created_here(run_dir):
        run_dir.rmdir()
        return
    if not entries <= set(HYDRA_FILES) or not (run_dir / ".hydra").is_dir():
        return
    hydra_dir = run_dir / ".hydra"
    if not {p.name for p in hydra_dir.iterdir()} <= HYDRA_FILES[".hydra"]:
        return
    for name in HYDRA_FILES[".hydra"]:
        (hydra_dir / name).unlink(missing_ok=True)
    hydra_dir.rmdir()
    (run_dir / "train.log").unlink(missing_ok=True)
    run_dir.rmdir()


def cli(argv: list[str] | None = None) -> None:
    install()  # SIGINT, SIGTERM, SIGUSR1 (SLURM) -> Interrupted: W&B is closed and the run says what happened
    register_resolvers()  # Hydra resolves ${asset:...} and ${run_stamp:...} while composing
    try:
        run_checked("medqa.train", preflight, main, argv)
    except Interrupted as err:  # before or after the job itself (checking, Hydra's start)
        taken(err)
        for run_dir in held():
            discard_hydra_only_dir(run_dir)
        print(f"medqa.train: interrupted by {err.name} before the run started; nothing was kept", file=sys.stderr)
        raise SystemExit(err.exit_code) from None


if __name__ == "__main__":
    cli()
