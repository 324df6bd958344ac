"""Hydra entrypoint: `python -m medqa.train [overrides]`. Checks every input once, before Hydra makes a run
folder (medqa.config.validate), hands plain settings to medqa.training.run.finetune, prints the per-eval
summary and where the run lives. `train.resume=runs/<date>/<time>` (or `auto`) continues an interrupted run
(medqa.config.resume picks it, medqa.training.resume continues it)."""

from __future__ import annotations

import os
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
from medqa.core.distributed import is_main_process
from medqa.core.errors import ConfigError, exit_on_error
from medqa.core.paths import CONF_DIR
from medqa.core.run_folder import check_run_dir_writable

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
    from medqa.training.run import finetune  # lazy: a rejected command line fails before torch loads

    logged = OmegaConf.to_container(cfg, resolve=True)  # finetune redacts credentials before logging it
    summary = exit_on_error("medqa.train", lambda: finetune(settings, run_dir, logged))
    if is_main_process():
        print_run_summary(summary)
    return summary["final_eval_loss"]  # what a Hydra sweeper would minimise


def preflight(argv: list[str]) -> list[str]:
    """Check the command line before Hydra creates a run folder; return the overrides Hydra gets (a resumed
    run reuses its folder). Flags (--multirun, --cfg, --help) go to Hydra unchecked: each job checks itself."""
    global _PREFLIGHT_CHECKED
    if any(a.startswith("-") for a in argv):
        return argv
    cfg, settings = checked_settings(argv)
    argv = resolve_resume(argv, cfg, settings.train.resume)
    run_dir = next((a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("hydra.run.dir=")), "runs")
    check_run_dir_writable(Path(run_dir))
    _PREFLIGHT_CHECKED = True
    return argv


def discard_hydra_only_dir(run_dir: Path) -> None:
    """Remove the folder Hydra just made for a rejected job, only if it holds nothing but Hydra's own files."""
    entries = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
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
    register_resolvers()  # Hydra resolves ${asset:...} and ${run_stamp:...} while composing
    run_checked("medqa.train", preflight, main, argv)


if __name__ == "__main__":
    cli()
