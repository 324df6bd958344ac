"""Sweeps: every sweeps/*.yaml checked against W&B's engine and conf/, the engine's proposals, bad files
rejected before any run, and the 2x2 tiny grid run for real through `python -m medqa.sweep` (sweep_grid)."""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
from pathlib import Path

import pytest
import yaml

from medqa.cli.sweep import parse_args, prepare
from medqa.config.validate import checked_settings
from medqa.core.errors import ConfigError
from medqa.sweep.runner import run_sweep
from medqa.sweep.spec import (
    build_command,
    check_composes,
    grid_size,
    load_sweep,
    offline_command,
    propose,
    run_overrides,
    sweep_run,
)
from medqa.tracking.runs import read_offline_run

ROOT = Path(__file__).resolve().parent.parent
SWEEP_FILES = sorted((ROOT / "sweeps").glob("*.yaml"))
METRIC = "selected/probe_quality"


def _write(tmp_path: Path, base: str, **changes) -> Path:
    """A copy of sweeps/<base>.yaml with top-level keys replaced."""
    config = yaml.safe_load((ROOT / "sweeps" / f"{base}.yaml").read_text()) | changes
    path = tmp_path / f"{base}_changed.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.stem)
def test_every_sweep_file_passes_the_engine_schema_and_every_value_composes(path):
    text = path.read_text()
    assert text.startswith("#") and "wandb sweep sweeps/" in text and "python -m medqa.sweep sweeps/" in text
    assert "Expected" in text.split("\nname:")[0], "the header says what to expect"
    spec = load_sweep(path)  # the engine's JSON schema, the command, a first proposal
    assert spec.name == path.stem and spec.metric == METRIC and spec.goal == "maximize"
    assert "${args_no_hyphens}" in spec.config["command"]
    assert check_composes(spec, []) >= sum(len(p.get("values", [0])) for p in spec.config["parameters"].values())


def test_the_sweeps_cover_the_issue():
    specs = {p.stem: load_sweep(p) for p in SWEEP_FILES}
    grid = specs["mix_x_targets"].config["parameters"]
    assert grid == {"data.mix.wikidoc": {"values": [0, 0.15, 0.33, 0.5]}, "lora": {"values": ["attn", "attn_mlp"]}}
    bayes = [s for s in specs.values() if s.method == "bayes"]
    assert bayes and {"data.mix.wikidoc", "lora", "train.epochs", "decoding"} <= set(bayes[0].parameters)


def test_grid_proposals_are_the_cartesian_product_and_a_failed_run_is_not_repeated():
    spec = load_sweep(ROOT / "sweeps" / "mix_x_targets.yaml")
    runs, seen = [], []
    while (proposal := propose(spec, runs)) is not None:
        params, _ = proposal
        assert all(type(v) in (int, float, str) for v in params.values()), params  # no numpy scalars
        seen.append((params["data.mix.wikidoc"], params["lora"]))
        state = "failed" if len(seen) == 3 else "finished"
        runs.append(sweep_run(params, state, {METRIC: 0.1 * len(seen)} if state == "finished" else {}))
        assert len(seen) <= 8
    assert sorted(seen) == sorted(itertools.product([0, 0.15, 0.33, 0.5], ["attn", "attn_mlp"]))
    assert grid_size(spec) == 8
    assert runs[0].summary_metric(METRIC) == pytest.approx(0.1)  # the engine reads what was fed back


def test_bayes_proposes_from_the_fed_back_results():
    import sweeps

    spec = load_sweep(ROOT / "sweeps" / "quality_bayes.yaml")
    runs = []
    for i, (mix, lora) in enumerate(itertools.product([0.0, 0.25, 0.5], ["attn", "attn_mlp"])):
        params = {"data.mix.wikidoc": mix, "lora": lora, "train.epochs": 1 + i % 3, "decoding": "greedy"}
        runs.append(sweep_run(params, "finished", {METRIC: 0.2 + 0.5 * mix + 0.1 * (lora == "attn_mlp")}))
    runs.append(sweep_run({**params, "decoding": "sample"}, "failed"))
    info = sweeps.next_run(spec.filled, runs, validate=True).search_info
    assert "no valid samples" not in info.get("warnings", "")
    assert math.isfinite(info["predicted_value"]) and 0 <= info["success_probability"] <= 1
    params, info = propose(spec, runs)
    assert 0 <= params["data.mix.wikidoc"] <= 0.5 and isinstance(params["data.mix.wikidoc"], float)
    assert params["lora"] in {"attn", "attn_mlp"} and params["train.epochs"] in {1, 2, 3}
    assert isinstance(info["expected_improvement"], float)
    command = offline_command(spec, params, Path("runs/x"), [], group=True)
    _, settings = checked_settings([o for o in run_overrides(command) if not o.startswith("hydra.")])
    assert settings.data.mix["wikidoc"] == pytest.approx(params["data.mix.wikidoc"])
    assert settings.data.mix["chatdoctor"] == pytest.approx(1 - params["data.mix.wikidoc"])


def test_commands_are_built_like_the_agent_builds_them(monkeypatch):
    monkeypatch.setenv("MEDQA_SWEEP_TEST", "from-env")
    spec = load_sweep(ROOT / "sweeps" / "mix_x_targets.yaml")
    params = {"data.mix.wikidoc": 0.15, "lora": "attn_mlp"}
    assert build_command(spec, params) == [
        "/usr/bin/env",
        sys.executable,
        "-m",
        "medqa.train",
        "data.mix.wikidoc=0.15",
        "lora=attn_mlp",
        "tracking.mode=online",
    ]
    command = offline_command(spec, params, Path("/tmp/s/00"), ["data.total=80"], group=True)
    assert run_overrides(command) == [
        "data.mix.wikidoc=0.15",
        "lora=attn_mlp",
        "tracking.mode=offline",
        "hydra.run.dir=/tmp/s/00",
        "tracking.group=mix_x_targets",
        "data.total=80",
    ]
    spec.config["command"] = [
        "${env}",
        "${interpreter}",
        "${program}",
        "${args_override_hydra}",
        "x=${envvar:MEDQA_SWEEP_TEST}",
    ]
    assert build_command(spec, params)[2:] == [
        "medqa/train.py",
        "++data.mix.wikidoc=0.15",
        "++lora=attn_mlp",
        "x=from-env",
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"parameters": {"lora": {"values": ["attn", "foo"]}}}, "parameters.lora=foo: lora=foo: no such option"),
        ({"parameters": {"data.mix.wikidoc": {"values": [0, 1.5]}}}, "parameters.data.mix.wikidoc=1.5"),
        ({"parameters": {"lora.bogus": {"values": [1, 2]}}}, "lora.bogus=1: no such key"),
        ({"parameters": {"train.epochs": {"values": [1, 0]}}}, "train.epochs=0: must be > 0"),
        ({"method": "gridd"}, "method: 'gridd' is not one of"),
        ({"metric": {"name": METRIC, "goal": "up"}}, "metric.goal: 'up' is not one of"),
        ({"parameterz": {}}, "Additional properties are not allowed ('parameterz'"),
        ({"command": ["${env}", "${interpreter}", "-m", "medqa.train", "${args}"]}, "${args} is not Hydra's"),
        ({"command": ["${env}", "${interpreter}", "-m", "medqa.train"]}, "needs ${args_no_hyphens}"),
        ({"command": ["python", "-m", "other.app", "${args_no_hyphens}"]}, "must run the training app"),
        ({"parameters": {"data.mix.wikidoc": {"min": 0.0, "max": 0.5}}}, "disallowed type with grid search"),
        ({"parameters": {"hydra.run.dir": {"values": ["a", "b"]}}}, "parameters.hydra.run.dir: not sweepable"),
    ],
)
def test_a_bad_sweep_file_is_an_error_naming_the_file_and_key(tmp_path, changes, expected):
    path = _write(tmp_path, "mix_x_targets", **changes)
    with pytest.raises(ConfigError) as err:
        check_composes(load_sweep(path), [])
    assert str(err.value).startswith(f"{path}: ") and expected in str(err.value), str(err.value)


def test_bad_input_stops_the_cli_before_any_run(tmp_path, run_module):
    path = _write(tmp_path, "mix_x_targets", parameters={"lora": {"values": ["attn", "foo"]}})
    out = tmp_path / "out"
    proc = run_module("medqa.sweep", str(path), "--out", str(out))
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"medqa.sweep: error: {path}: parameters.lora=foo: lora=foo: no such option; available: attn, attn_mlp"
    ]
    assert not out.exists()  # nothing ran, no folder made


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sweeps/quality_bayes.yaml"], "proposes runs without end: pass --count N"),
        (["sweeps/mix_x_targets.yaml", "--count", "0"], "--count=0: must be >= 1"),
        (["sweeps/mix_x_targets.yaml", "--", "lora=attn"], "lora is a parameter of this sweep"),
        (["sweeps/mix_x_targets.yaml", "--", "tracking.mode=online"], "the runner sets tracking.mode"),
        (["sweeps/mix_x_targets.yaml", "--", "train.lr=-1"], "train.lr=-1: must be > 0"),
        (["sweeps/mix_x_targets.yaml", "--out", "{tmp}/a_file/sweeps"], "--out={tmp}/a_file/sweeps: cannot create"),
        (["sweeps/missing.yaml"], "sweeps/missing.yaml: cannot read the sweep file"),
    ],
)
def test_command_line_mistakes_are_caught_before_any_run(tmp_path, monkeypatch, argv, expected):
    monkeypatch.chdir(ROOT)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigError, match=re.escape(expected.format(tmp=tmp_path))):
        prepare(parse_args([a.format(tmp=tmp_path) for a in argv]))


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    # The runner alone, without the pre-run checks: both runs fail in the training app's own preflight.
    spec = load_sweep(_write(tmp_path, "mix_x_targets", parameters={"lora": {"values": ["nope1", "nope2"]}}))
    folder = run_sweep(spec, tmp_path / "out", None, [])
    record = json.loads((folder / "sweep.json").read_text())
    assert [r["state"] for r in record["runs"]] == ["failed", "failed"] and record["best"] is None
    for run, name in zip(record["runs"], ["nope1", "nope2"], strict=True):
        assert run["returncode"] == 2 and run["metric"] is None
        assert f"lora={name}: no such option" in run["stderr_tail"][-1]
    again = run_sweep(spec, tmp_path / "out", 1, [])  # a new stamped folder: nothing is overwritten
    assert again != folder and len(json.loads((again / "sweep.json").read_text())["runs"]) == 1
    assert json.loads((folder / "sweep.json").read_text()) == record


def test_tiny_grid_runs_end_to_end_offline(sweep_grid):
    record = json.loads((sweep_grid / "sweep.json").read_text())
    assert record["name"] == "mix_x_targets_tiny" and record["group"] == "mix_x_targets_tiny"
    assert record["config"] == yaml.safe_load((ROOT / "sweeps" / "mix_x_targets_tiny.yaml").read_text())
    runs = record["runs"]
    assert [r["state"] for r in runs] == ["finished"] * 4 and [r["returncode"] for r in runs] == [0] * 4
    assert sorted((r["params"]["data.mix.wikidoc"], r["params"]["lora"]) for r in runs) == sorted(
        itertools.product([0, 0.5], ["attn", "attn_mlp"])
    )
    assert sorted(p.name for p in sweep_grid.iterdir() if p.is_dir()) == ["00", "01", "02", "03"]
    groups = set()
    for r in runs:
        run_dir = Path(r["run_dir"])
        assert run_dir.parent == sweep_grid
        mix, lora = r["params"]["data.mix.wikidoc"], r["params"]["lora"]
        hydra_overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
        assert hydra_overrides == [o for o in r["overrides"] if not o.startswith("hydra.")]  # Hydra omits its own
        assert f"hydra.run.dir={run_dir}" in r["overrides"]
        assert {f"data.mix.wikidoc={mix}", f"lora={lora}", "train=smoke", "tracking.mode=offline"} <= set(
            hydra_overrides
        )
        summary = json.loads((run_dir / "run.json").read_text())
        assert summary["settings"]["data"]["mix"] == {"chatdoctor": 1 - mix, "wikidoc": mix}
        assert ("gate_proj" in summary["settings"]["lora"]["target_modules"]) == (lora == "attn_mlp")
        assert summary["global_step"] == 2
        wandb_run = read_offline_run(Path(r["wandb_dir"]))
        groups.add(wandb_run["group"])
        # The metric came from the run's W&B summary: the kept eval's probe quality.
        assert r["metric"] == wandb_run["summary"][METRIC] == summary["selected"]["probe_quality"]
        assert isinstance(r["metric"], float) and 0 <= r["metric"] <= 1
        assert wandb_run["summary"]["selected/eval_loss"] == summary["selected"]["eval_loss"]
    assert groups == {"mix_x_targets_tiny"}
    best = max(runs, key=lambda r: r["metric"])
    assert record["best"]["metric"] == best["metric"]
    output = (sweep_grid.parent / "cli_output.txt").read_text()
    assert "data.mix.wikidoc  lora" in output and f"sweep folder: {sweep_grid}" in output
