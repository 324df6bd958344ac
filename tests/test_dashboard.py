"""The saved workspace, built here without a server: every panel serialises, every key it reads is one a medqa
run logs (checked on the tiny end-to-end run's offline files), the sweep files optimise what the sweep panel
colours by, and saving without a server stops in one line."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from medqa.tracking.metrics import SELECTED_KEYS, STEP, SUMMARY_RULES
from medqa.tracking.runs import read_offline_run
from medqa.tracking.workspace import SWEEP_AXES, build_workspace, missing_keys, panel_keys

ROOT = Path(__file__).resolve().parent.parent


def test_workspace_builds_offline_with_every_panel():
    workspace = build_workspace("entity", "medqa")
    view = workspace._to_model()  # what Workspace.save would send
    assert (view.entity, view.project) == ("entity", "medqa")
    keys = panel_keys(workspace)
    assert {"eval/loss", "probes/quality", "eval/mean_token_accuracy", "probes/divergence", STEP} <= keys["history"]
    assert keys["tables"] == {"probes/answers", "probes/side_by_side"}
    assert keys["config"] == {"data.mix.wikidoc", "labels.lora", "train.epochs"}
    assert {"selected/probe_quality", "selected/eval_loss", "probes/divergence_count"} <= keys["summary"]
    # loss and quality share the step axis
    lines = [p for s in workspace.sections for p in s.panels if type(p).__name__ == "LinePlot"]
    assert lines and all(p.x == STEP for p in lines)


def test_panels_read_only_what_a_run_logs(smoke_run):
    summary, _, _ = smoke_run
    run = read_offline_run(Path(summary["wandb_dir"]))
    assert missing_keys(build_workspace("e", "p"), run) == {}
    # a run with the held-out eval off (quality.heldout_questions=0): its panels are what is missing, and optional
    run["history"] = [{k: v for k, v in h.items() if not k.startswith("heldout/")} for h in run["history"]]
    gaps = missing_keys(build_workspace("e", "p"), run)
    assert set(gaps) == {"history"} and all(k.startswith("heldout/") for k in gaps["history"])
    assert missing_keys(build_workspace("e", "p"), run, optional_prefixes=("heldout/",)) == {}
    assert missing_keys(build_workspace("e", "p", heldout=False), run) == {}


def test_sweep_files_optimise_what_the_dashboard_colours_by():
    colour = SWEEP_AXES[-1]
    for path in sorted((ROOT / "sweeps").glob("*.yaml")):
        metric = yaml.safe_load(path.read_text())["metric"]
        assert metric["name"] in SELECTED_KEYS or metric["name"] in SUMMARY_RULES, path.name
        assert (colour[0], colour[1]) == ("summary", metric["name"]), path.name


def test_cli_dry_run_checks_a_run_and_saving_offline_fails_in_one_line(smoke_run, run_module):
    summary, _, _ = smoke_run
    args = ("--entity", "e", "--project", "p")
    out = run_module("medqa.dashboard", *args, "--dry-run", "--check-run", summary["wandb_dir"])
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "ParallelCoordinatesPlot" in out.stdout and "every panel key is logged" in out.stdout
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    out = run_module("medqa.dashboard", *args, env=env)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("medqa.dashboard: error: saving a workspace needs a W&B server")
    assert len(out.stderr.strip().splitlines()) == 1
    out = run_module("medqa.dashboard", *args, "--check-run", "/no/such/run")
    assert out.returncode == 2 and "--check-run /no/such/run: no such run folder" in out.stderr


def test_sweep_metric_of_a_defined_metric_is_its_best():
    """A sweep on a metric with a summary rule reads its best value by the goal (the last when not kept)."""
    from medqa.tracking.metrics import summary_value

    summary = {"eval/loss": {"min": 0.5, "last": 0.7}, "selected/probe_quality": 0.4}
    assert summary_value(summary, "eval/loss", "minimize") == 0.5
    assert summary_value(summary, "eval/loss", "maximize") == 0.7
    assert summary_value(summary, "selected/probe_quality") == 0.4 and summary_value(summary, "nope") is None
