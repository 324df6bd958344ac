"""Hydra entrypoint: `python -m medqa.probe run=<run dir | adapter dir | checkpoint dir | none> decoding=NAME`.
Re-decodes saved weights (medqa.redecode) and prints the answers. Sweep presets with `-m` first:
`python -m medqa.probe -m run=... decoding=a,b`."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from medqa.config import saved_run_settings, settings_from_cfg
from medqa.redecode import find_weights, redecode, redecode_tracking


@hydra.main(version_base="1.3", config_path="../conf", config_name="probe")
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


if __name__ == "__main__":
    main()
