"""The recorder with the real tiny model: scored rows, W&B scalars and tables, the divergence alarm as a W&B
alert, and the determinism check."""

from __future__ import annotations

import json

import pytest

from medqa.config.build import settings_from_cfg
from medqa.model.generation import generation_config
from medqa.model.loading import load_base
from medqa.probing.recorder import ProbeRecorder
from medqa.settings.quality import QualitySettings
from medqa.settings.tracking import TrackingSettings
from medqa.tracking.runs import read_offline_run, start_run, wandb_run_dir
from medqa.training.run import finetune


def test_recorder_scores_alarms_and_checks_determinism(compose_small, base_dir, tmp_path, capsys):
    settings = settings_from_cfg(compose_small(["decoding.max_new_tokens=24"]))
    model, tokenizer, _ = load_base(settings.model, settings.quant)
    run = start_run(TrackingSettings(), tmp_path, {})
    # margin -1: any loss improvement raises the alarm, so the same answers with a lower loss must fire it
    recorder = ProbeRecorder(
        settings.probes,
        settings.data.system_prompt,
        generation_config(settings.decoding, tokenizer),
        tmp_path / "probes.jsonl",
        run,
        quality=QualitySettings(divergence_margin=-1.0),
    )
    rows = recorder.record(model, tokenizer, 0, eval_loss=1.0)
    recorder.record(model, tokenizer, 5, eval_loss=1.1)  # loss worse: no alarm
    recorder.record(model, tokenizer, 10, eval_loss=0.9)
    determinism = recorder.check_determinism(model, tokenizer)
    run.finish()

    assert all(0 <= r["quality"] <= 1 and isinstance(r["flags"], list) and "rep_4" in r for r in rows)
    saved = [json.loads(line) for line in (tmp_path / "probes.jsonl").read_text().splitlines()]
    assert len(saved) == 15 and saved[0]["quality"] == rows[0]["quality"]
    assert [a["step"] for a in recorder.alarms] == [10]
    assert "[medqa] DIVERGENCE step 10" in capsys.readouterr().out
    assert recorder.quality_at(0) == pytest.approx(sum(r["quality"] for r in rows) / 5)
    assert determinism["greedy"] and determinism["identical"], determinism  # greedy on CPU, fp32

    offline = read_offline_run(wandb_run_dir(run))
    assert len(offline["alerts"]) == 1 and "step 10" in offline["alerts"][0]["text"]
    scalars = [h for h in offline["history"] if "probes/quality" in h]
    assert [h["train/global_step"] for h in scalars] == [0, 5, 10]
    assert [h.get("probes/divergence") for h in scalars] == [None, 0.0, 1.0]
    for key in ("probes/eos_rate", "probes/rep_4", "probes/distinct_2", "probes/fact_recall", "probes/flag_no_eos"):
        assert key in scalars[0], key
    assert all(f"probe_quality/{p.id}" in scalars[0] for p in settings.probes)
    assert offline["summary"]["probes/deterministic_repeat"] is True


def test_seeded_sampling_passes_the_determinism_check(compose_small, base_dir, tmp_path):
    """Sampling draws other numbers for a batch of one than for a batch of five, so only the repeat must be
    identical; a run decoded with `decoding=sample` is not flagged nondeterministic for that."""
    settings = settings_from_cfg(compose_small(["decoding=sample", "decoding.max_new_tokens=24"]))
    model, tokenizer, _ = load_base(settings.model, settings.quant)
    run = start_run(TrackingSettings(mode="disabled"), tmp_path, {})
    config = generation_config(settings.decoding, tokenizer)
    recorder = ProbeRecorder(settings.probes, settings.data.system_prompt, config, tmp_path / "p.jsonl", run, seed=7)
    determinism = recorder.check_determinism(model, tokenizer)
    assert not determinism["greedy"] and determinism["repeat_identical"]
    assert not determinism["batched_vs_single_identical"]  # what used to raise the flag
    assert determinism["identical"] and determinism["mismatched_probes"] == [], determinism


def test_bad_select_by_fails_before_anything_loads(compose, tmp_path):
    settings = settings_from_cfg(compose(["train.select_by=best", "tracking=none"]))
    with pytest.raises(ValueError, match=r"train.select_by='best'"):
        finetune(settings, tmp_path / "run", {})
    assert not (tmp_path / "run").exists()


def test_table_columns_carry_the_metrics():
    from medqa.tracking.runs import probe_tables

    row = {"step": 0, "probe_id": "p", "question": "Q?", "answer": "A.", "stopped_eos": True, "n_tokens": 2}
    long, wide = probe_tables([row | {"quality": 0.5, "flags": ["no_eos", "empty"], "rep_4": 0.0}])
    assert long.columns[-3:] == ["quality", "flags", "rep_4"] and long.data[0][-2] == "no_eos, empty"
    assert wide.data[0][2].endswith("[quality 0.50; no_eos; empty]")
