"""Hydra entrypoint: `python -m medqa.train [overrides]`. Checks every input first (medqa.checks), then
composes conf/ with Hydra, hands plain settings to medqa.finetune, prints the per-eval summary and where
the run lives. `train.resume=runs/<date>/<time>` (or `auto`) continues an interrupted run (medqa.resume)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from medqa.checks import (
    ConfigError,
    check_run_dir_writable,
    checked_settings,
    exit_on_error,
    run_checked,
    settings_checked,
)
from medqa.distributed import is_main_process
from medqa.interrupts import Interrupted, install
from medqa.report import print_run_summary
from medqa.run_folder import acquire, check_fresh_run_dir, check_not_live, created_here, held, release

HYDRA_FILES = {".hydra": {"config.yaml", "hydra.yaml", "overrides.yaml"}, "train.log": None}


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        settings = settings_checked(cfg)  # again here for --multirun jobs, which skip the pre-Hydra check
    except ConfigError as err:
        release(run_dir)
        discard_hydra_only_dir(run_dir)
        print(f"medqa.train: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets

    from medqa.finetune import finetune

    datasets.disable_progress_bars()  # loading a source is not progress worth a bar; errors stay one line

    if is_main_process():  # an explicit hydra.run.dir was locked in preflight; a stamped one is new
        exit_on_error("medqa.train", lambda: acquire(run_dir))
    logged = OmegaConf.to_container(cfg, resolve=True)  # finetune redacts credentials before logging it
    try:
        summary = exit_on_error("medqa.train", lambda: finetune(settings, run_dir, logged), (FileExistsError,))
    except SystemExit as err:
        if err.code == 2:  # refused before training (bad data, changed data): nothing of this attempt is kept
            forget_attempt(run_dir, resumed=bool(settings.train.resume))
        raise
    except Interrupted as err:
        record_interruption(run_dir, err, resumed=bool(settings.train.resume))
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
        if subdir.is_dir() and {p.name for p in subdir.iterdir()} <= HYDRA_FILES[".hydra"] and subdir != run_dir:
            for p in subdir.iterdir():
                p.unlink()
            subdir.rmdir()
        return
    discard_hydra_only_dir(run_dir)


def record_interruption(run_dir: Path, err: Interrupted, resumed: bool) -> None:
    """After SIGINT/SIGTERM/SIGUSR1 (W&B already closed by finetune): write what happened into run.json and
    print how to continue, on one line. A run interrupted before it wrote anything leaves no folder."""
    from medqa.atomic import write_text
    from medqa.resume import checkpoints, wandb_segments
    from medqa.run_folder import RUN_MARKERS

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
    if any(a.startswith("-") for a in argv):
        return argv
    cfg, settings = checked_settings(argv)
    from medqa.resume import resolve_resume

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
    return argv


def discard_hydra_only_dir(run_dir: Path) -> None:
    """Remove the folder Hydra just made for a rejected job, only if it holds nothing but Hydra's own files."""
    release(run_dir)
    entries = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
    if run_dir.is_dir() and not entries and created_here(run_dir):  # made by preflight's lock, nothing in it
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
    try:
        run_checked("medqa.train", preflight, main, argv)
    except Interrupted as err:  # before or after the job itself (checking, Hydra's start)
        for run_dir in held():
            discard_hydra_only_dir(run_dir)
        print(f"medqa.train: interrupted by {err.name} before the run started; nothing was kept", file=sys.stderr)
        raise SystemExit(err.exit_code) from None


if __name__ == "__main__":
    cli()
