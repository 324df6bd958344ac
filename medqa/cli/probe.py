"""Hydra entrypoint: `python -m medqa.probe run=<run dir | adapter dir | checkpoint dir | none> decoding=NAME`.
Re-decodes saved weights (medqa.probing.redecode) and prints the answers. Sweep presets with `-m` first:
`python -m medqa.probe -m run=... decoding=a,b`."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from medqa.cli.common import run_checked
from medqa.config.build import saved_run_settings, settings_from_cfg
from medqa.config.compose import register_resolvers
from medqa.config.validate import checked_settings
from medqa.core.errors import ConfigError
from medqa.core.paths import CONF_DIR
from medqa.core.run_folder import check_adapter_dir, check_run_dir_writable
from medqa.probing.redecode import find_weights, redecode, redecode_tracking


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="probe")  # absolute: works installed
def main(cfg: DictConfig) -> float:
    settings = settings_from_cfg(cfg)  # decoding, probes, tracking (and the base model for run=none)
    source = find_weights(cfg.run)  # a wrong path fails here, before any model loads
    trained = saved_run_settings(source.run_dir) if source.run_dir else settings
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    hydra_cfg = HydraConfig.get()
    preset = hydra_cfg.runtime.choices.get("decoding")
    logged = OmegaConf.to_container(cfg, resolve=True)
    logged["redecode"] = {
        "decoding_preset": preset,
        "source": source.label,
        "run_dir": str(source.run_dir or ""),
        "adapter_dir": str(source.adapter_dir or ""),
        "step": source.step,
    }
    summary = redecode(
        source,
        trained.model,
        trained.quant,
        trained.data.system_prompt,
        settings.probes,
        settings.decoding,
        redecode_tracking(settings.tracking, source, trained.tracking.group),
        Path(hydra_cfg.runtime.output_dir),
        logged,
        name=f"{source.label} · {preset}",
        quality=settings.quality,
    )
    print(f"\n{source.label} (step {source.step}) decoded with {preset}: {summary['generation_config']}")
    print(f"probe quality {summary['quality']:.3f}, EOS rate {summary['eos_rate']:.0%}")
    for row in summary["answers"]:
        stop = "EOS" if row["stopped_eos"] else "no EOS"
        flags = ", ".join(row["flags"]) or "no flags"
        head = f"[{row['probe_id']}] ({row['n_tokens']} tokens, {stop}; quality {row['quality']:.2f}: {flags})"
        print(f"\n{head}\n{row['answer']}")
    print(f"\nout dir:      {summary['out_dir']}  (probes.jsonl, redecode.json)")
    if summary["wandb_dir"]:
        print(f"W&B offline:  {summary['wandb_dir']}  (group {summary['group']})")
    return summary["eos_rate"]


def preflight(argv: list[str]) -> list[str]:
    """Check the weights path and the overrides before Hydra creates an output folder (as medqa.train does):
    a missing run, an adapter that is not safetensors or is corrupt, a bad decoding key -> one line, exit 2."""
    runs = [a.split("=", 1)[1] for a in argv if a.startswith("run=")]
    if not runs:
        raise ConfigError("run=...: required (a run dir, adapter dir, checkpoint dir, or none for the base model)")
    for run in runs[-1].split(","):  # a -m sweep may list several
        try:
            source = find_weights(run)
        except (FileNotFoundError, ValueError) as err:
            raise ConfigError(str(err)) from None
        if source.adapter_dir is not None:
            check_adapter_dir(source.adapter_dir, key="run")
    if not any(a.startswith("-") for a in argv):  # flags (-m, --cfg): each job checks its own settings
        checked_settings([a for a in argv if not a.startswith("run=")])
        out = next((a.split("=", 1)[1] for a in argv if a.lstrip("+").startswith("hydra.run.dir=")), None)
        if out:
            check_run_dir_writable(Path(out))
    return argv


def cli(argv: list[str] | None = None) -> None:
    register_resolvers()  # Hydra resolves ${asset:...} and ${run_stamp:...} while composing
    run_checked("medqa.probe", preflight, main, argv)


if __name__ == "__main__":
    cli()
