"""The held-out generation eval inside a real run (tiny model, W&B offline), and replicates over seeds."""

from __future__ import annotations

import json

import pytest

from medqa.analysis.replicates import differences, group_rows, group_runs, mean_ci, welch_difference
from medqa.probing.heldout_eval import _stratified, read_rows, select_questions
from medqa.quality.heldout import heldout_questions


def test_every_eval_logs_the_heldout_mean_with_its_ci(smoke_run):
    summary, run_dir, _ = smoke_run
    steps = [e["step"] for e in summary["evals"]]
    for e in summary["evals"]:
        lo, hi = e["heldout_quality_ci"]
        assert lo <= e["heldout_quality"] <= hi, e
        assert set(e) >= {"heldout_precision", "heldout_recall", "heldout_precision_ci", "heldout_recall_ci"}
        assert set(e["generate_seconds"]) == {"probes", "heldout"} and min(e["generate_seconds"].values()) > 0, e
    rows = read_rows(run_dir / "heldout.jsonl")
    assert sorted({r["step"] for r in rows}) == steps
    assert all(sum(r["step"] == s for r in rows) == 16 for s in steps)  # quality.heldout_questions=16
    assert all({"quality", "precision", "recall", "claims", "flags"} <= set(r) for r in rows)
    report = summary["selected"]["report"]
    assert report["best_step"] in steps and "distinguishable" in report
    from medqa.tracking.runs import read_offline_run

    (wandb_dir,) = (run_dir / "wandb").glob("offline-run-*")
    history = read_offline_run(wandb_dir)["history"]
    logged = [h for h in history if "heldout/quality_ci_low" in h]
    assert len(logged) == len(steps), history[:2]
    assert all(h["heldout/generate_seconds"] > 0 for h in logged)
    assert sum("probes/generate_seconds" in h for h in history) == len(steps)


def test_the_eval_set_is_stratified_and_large_enough_by_default(compose):
    from medqa.config.build import settings_from_cfg

    s = settings_from_cfg(compose())
    questions = select_questions(s.data, [], s.quality.heldout_questions)
    assert len(questions) >= 60 and len({q.condition for q in questions}) == 43
    subset = _stratified(heldout_questions(), 20)
    counts = {}
    for q in subset:
        counts[q.aspect] = counts.get(q.aspect, 0) + 1
    assert len(subset) == 20 and max(counts.values()) - min(counts.values()) <= 1, counts


def test_real_data_uses_the_eval_split_questions(compose):
    from medqa.config.build import settings_from_cfg

    s = settings_from_cfg(compose(["data=hub"]))
    rows = [{"question": f"Question {i}?", "answer": f"- fact {i} one\n- fact {i} two"} for i in range(80)]
    questions = select_questions(s.data, rows, 64)
    assert len(questions) == 64 and questions[0].condition is None and questions[0].facts


def test_mean_ci_and_welch_match_hand_computation():
    mean, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.303 / 3**0.5, rel=1e-3) and mean - lo == hi - mean
    d, lo, hi = welch_difference([1.0, 2.0, 3.0], [11.0, 12.0, 13.0])
    assert d == 10.0 and lo > 0 and hi > lo
    assert welch_difference([1.0], [2.0, 3.0]) is None


def _summary(seed: int, lora: list[str], loss: float, quality: float) -> dict:
    settings = {
        "model": {"name_or_path": "tiny"},
        "quant": {"load_in_4bit": False},
        "lora": {"target_modules": lora, "r": 16},
        "data": {"mix": {"chatdoctor": 0.85, "wikidoc": 0.15}, "total": 800},
        "train": {"max_steps": -1, "epochs": 1, "lr": 0.002, "seed": seed},
        "decoding": {"do_sample": False, "no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "max_new_tokens": 256},
    }
    evals = [{"step": 0, "eval_loss": loss + 0.1, "heldout_quality": 0.2}, {"step": 30, "eval_loss": loss}]
    evals[-1]["heldout_quality"] = quality
    return {
        "settings": settings,
        "evals": evals,
        "final_eval_loss": loss,
        "selected": {"heldout_quality": quality, "probe_quality": quality},
    }


def test_replicates_group_by_science_and_say_which_differences_exceed_seed_noise():
    attn, both = ["q_proj", "k_proj", "v_proj", "o_proj"], ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"]
    runs = [(f"a{s}", _summary(s, attn, 1.00 + 0.01 * s, 0.50 + 0.01 * s)) for s in (1, 2, 3)]
    runs += [(f"b{s}", _summary(s, both, 0.80 + 0.01 * s, 0.52 - 0.02 * s)) for s in (1, 2, 3)]
    groups = group_runs(runs)
    assert [len(g.runs) for g in groups] == [3, 3] and groups[0].seeds == [1, 2, 3]
    rows = group_rows(groups)
    assert rows[0]["n_seeds"] == 3 and rows[0]["best_eval_loss_lo"] < rows[0]["best_eval_loss"]
    verdicts = {d["metric"]: d["exceeds_seed_noise"] for d in differences(groups)}
    assert verdicts["best eval loss"] is True  # 0.2 apart, spread 0.01
    assert verdicts["held-out quality kept"] is False  # 0.51 vs 0.48 with spreads of 0.01 and 0.02: within noise
    json.dumps(rows)  # the report writes them as JSON
