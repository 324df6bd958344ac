"""Hydra entrypoint: `python -m medqa.train [overrides]`. Composes conf/, hands plain settings to
medqa.finetune, prints the per-eval summary and where the run lives."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from medqa.config import settings_from_cfg
from medqa.distributed import is_main_process
from medqa.report import print_run_summary


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    settings = settings_from_cfg(cfg)  # every key checked before data or models load
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from medqa.finetune import finetune

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = finetune(settings, run_dir, OmegaConf.to_container(cfg, resolve=True))
    if is_main_process():
        print_run_summary(summary)
    return summary["final_eval_loss"]  # what a Hydra sweeper would minimise


if __name__ == "__main__":
    main()
