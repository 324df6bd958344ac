"""What the tiny end-to-end run (and a re-decode of it) leave in their offline W&B files, read back with W&B's own
reader (`wandb leet inspect --json`): the data mix and the adapter as artifacts with aliases, the re-decode run's
use of the adapter (the lineage edge), the metric definitions, and the probe answers as one incremental table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medqa.config.build import saved_run_settings
from medqa.probing.redecode import find_weights, redecode
from medqa.settings.decoding import DecodingSettings
from medqa.settings.tracking import TrackingSettings
from medqa.tracking.artifacts import MIX_DIR, mix_name
from medqa.tracking.records import artifact_records, incremental_table, metric_definitions, read_records
from medqa.tracking.runs import read_offline_run

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle")


@pytest.fixture(scope="module")
def training(smoke_run):
    """(run summary, run dir, the training run's offline records)."""
    summary, run_dir, _ = smoke_run
    return summary, run_dir, read_records(Path(summary["wandb_dir"]))


@pytest.fixture(scope="module")
def redecoded(smoke_run, tmp_path_factory):
    """The run's adapter re-decoded under another preset, W&B offline: (redecode summary, its offline records)."""
    _, run_dir, _ = smoke_run
    trained = saved_run_settings(run_dir)
    out = tmp_path_factory.mktemp("redecode") / "out"
    summary = redecode(
        find_weights(str(run_dir)),
        trained.model,
        trained.quant,
        trained.data.system_prompt,
        trained.probes,
        DecodingSettings(max_new_tokens=16, repetition_penalty=1.3),
        TrackingSettings(mode="offline", project=trained.tracking.project),
        out,
        {},
    )
    return summary, read_records(Path(summary["wandb_dir"]))


def test_training_run_uses_the_mix_named_by_its_fingerprint(training):
    summary, run_dir, records = training
    (mix,) = [a for a in artifact_records(records) if a["type"] == "dataset"]
    provenance = json.loads((run_dir / "data_provenance.json").read_text())
    assert mix["used"] and mix["name"] == mix_name(provenance)
    assert mix["metadata"]["fingerprint"] == provenance["fingerprint"]
    assert set(mix["files"]) == {"train.jsonl", "eval.jsonl", "data_provenance.json"}
    # The files are referenced where they lie (never copied, never moved): the run folder's own copy of the rows.
    assert mix["local_paths"]["train.jsonl"] == str(run_dir / MIX_DIR / "train.jsonl")
    train_rows = (run_dir / MIX_DIR / "train.jsonl").read_text().splitlines()
    assert len(train_rows) == provenance["mix"]["train"] == mix["metadata"]["train_rows"]


def test_training_run_logs_the_kept_adapter_with_aliases(training):
    summary, run_dir, records = training
    models = [a for a in artifact_records(records) if a["type"] == "model"]
    assert len(models) == 1
    (adapter,) = models
    run_id = Path(summary["wandb_dir"]).name.rsplit("-", 1)[-1]
    assert not adapter["used"] and adapter["name"] == f"adapter-{run_id}" and adapter["run_id"] == run_id
    assert set(adapter["aliases"]) == {"best-quality", "latest"}  # train.select_by=quality
    assert {"adapter_model.safetensors", "adapter_config.json", "generation_config.json", "README.md"} <= set(
        adapter["files"]
    )
    assert not [f for f in adapter["files"] if f.endswith(PICKLE_SUFFIXES)]
    assert adapter["metadata"]["step"] == summary["selected"]["step"]
    assert adapter["metadata"]["probe_quality"] == summary["selected"]["probe_quality"]
    assert adapter["files"]["adapter_model.safetensors"] == summary["adapter_bytes"]


def test_redecode_run_uses_the_training_runs_adapter(training, redecoded):
    """The lineage edge: the re-decode run declares as its input the very artifact the training run logged (same
    name, same digest), so W&B reads data mix -> training run -> adapter -> re-decode run."""
    summary, _, train_records = training
    redecode_summary, records = redecoded
    (logged,) = [a for a in artifact_records(train_records) if a["type"] == "model"]
    (used,) = artifact_records(records)
    assert used["used"] and (used["name"], used["type"], used["digest"]) == (logged["name"], "model", logged["digest"])
    assert used["run_id"] != logged["run_id"] and redecode_summary["adapter_artifact"] == logged["name"]
    (mix,) = [a for a in artifact_records(train_records) if a["type"] == "dataset"]
    assert mix["used"] and mix["run_id"] == logged["run_id"]  # the same training run used the mix


def test_metric_definitions_put_eval_and_probes_on_the_step_axis(training):
    summary, _, records = training
    defined = metric_definitions(records)
    for glob in ("eval/*", "probes/*", "probe_quality/*", "heldout/*"):
        assert defined[glob]["step_metric"] == "train/global_step", glob
    assert defined["eval/loss"] == {"step_metric": "train/global_step", "summary": ["last", "min"]}
    assert defined["probes/quality"] == {"step_metric": "train/global_step", "summary": ["last", "max"]}
    assert defined["heldout/quality"]["summary"] == ["last", "max"]
    # The summary holds the best eval, not only the last; the kept adapter's values stay plain keys.
    run = read_offline_run(Path(summary["wandb_dir"]))
    evals = summary["evals"]
    assert run["summary"]["eval/loss"]["min"] == pytest.approx(min(e["eval_loss"] for e in evals))
    assert run["summary"]["eval/loss"]["last"] == pytest.approx(evals[-1]["eval_loss"])
    assert run["summary"]["probes/quality"]["max"] == pytest.approx(max(e["probe_quality"] for e in evals))
    assert run["summary"]["selected/probe_quality"] == summary["selected"]["probe_quality"]


def test_probe_answers_are_one_incremental_table(training):
    summary, run_dir, records = training
    table = incremental_table(records, Path(summary["wandb_dir"]), "probes/answers")
    assert table["increments"] == [5, 5, 5]  # each eval logged only its own five rows
    rows = [json.loads(line) for line in (run_dir / "probes.jsonl").read_text().splitlines()]
    step, probe, answer = (table["columns"].index(c) for c in ("step", "probe_id", "answer"))
    assert [(r[step], r[probe], r[answer]) for r in table["data"]] == [
        (r["step"], r["probe_id"], r["answer"]) for r in rows
    ]
    assert {"quality", "flags", "rep_4"} <= set(table["columns"])
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    logged = [h for h in history if "probes/answers._type" in h]
    assert [h["train/global_step"] for h in logged] == [0, 3, 6]
    assert all(h["probes/answers._type"] == "incremental-table-file" for h in logged)
