"""The whole run at tiny size: real TRL + PEFT training of the embedded model, probes, W&B offline files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from medqa.config.build import settings_from_cfg
from medqa.tracking.runs import read_offline_run
from medqa.training.run import finetune

ROOT = Path(__file__).resolve().parent.parent


def test_loss_is_finite_and_falls(smoke_run):
    summary, run_dir, _ = smoke_run
    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    evals = [e["eval_loss"] for e in summary["evals"]]
    assert [e["step"] for e in summary["evals"]] == [0, 3, 6]
    assert evals[-1] < evals[0]


def test_loss_falls_on_the_answer_only_and_includes_end_of_turn(smoke_run, tokenizer):
    _, _, watcher = smoke_run
    ids, labels = watcher.batch["input_ids"], watcher.batch["labels"]
    header = tokenizer("<|start_header_id|>assistant<|end_header_id|>\n\n", add_special_tokens=False)["input_ids"]
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    for row_ids, row_labels in zip(ids.tolist(), labels.tolist(), strict=True):
        trained = [i for i, label in enumerate(row_labels) if label != -100]
        start = next(i for i in range(len(row_ids)) if row_ids[i : i + len(header)] == header) + len(header)
        assert trained[0] == start, "loss must start right after the assistant header"
        assert trained == list(range(start, trained[-1] + 1)), "the answer is trained as one contiguous span"
        assert row_ids[trained[-1]] == eot, "the end-of-turn token is trained, so the model learns to stop"
        assert row_ids[trained[-1] + 1 :] == [tokenizer.pad_token_id] * (len(row_ids) - trained[-1] - 1)


def test_only_lora_weights_changed(smoke_run):
    _, _, watcher = smoke_run
    changed = {n for n in watcher.before if not torch.equal(watcher.before[n], watcher.after[n])}
    lora = {n for n in watcher.before if "lora_" in n}
    assert changed, "nothing trained"
    assert changed <= lora, f"non-LoRA weights changed: {sorted(changed - lora)[:3]}"
    assert any("lora_B" in n for n in changed) and any("mlp" in n for n in changed)  # attn_mlp targets


def test_adapter_holds_only_lora_tensors(smoke_run):
    from safetensors import safe_open

    summary, run_dir, _ = smoke_run
    with safe_open(run_dir / "adapter" / "adapter_model.safetensors", framework="pt") as f:
        keys = list(f.keys())
    assert keys and all("lora_A" in k or "lora_B" in k for k in keys)
    assert summary["adapter_bytes"] == (run_dir / "adapter" / "adapter_model.safetensors").stat().st_size
    # 4 layers x 7 targets x (A, B)
    assert summary["adapter_tensors"] == 4 * 7 * 2


def test_probes_recorded_at_step0_and_every_eval(smoke_run):
    _, run_dir, _ = smoke_run
    rows = [json.loads(line) for line in (run_dir / "probes.jsonl").read_text().splitlines()]
    assert len(rows) == 5 * (2 + 1)
    assert sorted({r["step"] for r in rows}) == [0, 3, 6]
    for r in rows:
        assert r["n_tokens"] <= 48 and isinstance(r["stopped_eos"], bool)
        assert r["stopped_eos"] or r["n_tokens"] == 48
        assert 0 <= r["quality"] <= 1 and isinstance(r["flags"], list) and ("no_eos" in r["flags"]) != r["stopped_eos"]
    assert any(r["answer"].strip() for r in rows)


def test_adapter_kept_is_the_best_eval_by_probe_quality(smoke_run):
    from safetensors.torch import load_file

    summary, run_dir, _ = smoke_run
    evals = {e["step"]: e for e in summary["evals"]}
    assert all(e["probe_quality"] is not None for e in evals.values())
    selected = summary["selected"]
    assert selected["rule"] == "quality" and selected["step"] in (3, 6)  # step 0 is the base model, no adapter
    assert selected["probe_quality"] == max(evals[3]["probe_quality"], evals[6]["probe_quality"])
    kept = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    best = load_file(Path(selected["checkpoint"]) / "adapter_model.safetensors")
    assert kept.keys() == best.keys() and all(torch.equal(kept[k], best[k]) for k in kept)
    assert summary["determinism"]["identical"] and summary["flags"] == []


def test_run_dir_holds_the_run(smoke_run):
    summary, run_dir, _ = smoke_run
    for name in ("run.json", "trainer_state.json", "probes.jsonl", "curves.png", "adapter/adapter_config.json"):
        assert (run_dir / name).exists(), name
    saved = json.loads((run_dir / "run.json").read_text())
    assert saved["final_eval_loss"] == summary["final_eval_loss"]
    assert saved["data"] == json.loads((run_dir / "data_provenance.json").read_text())
    assert saved["data"]["mix"]["train"] + saved["data"]["mix"]["eval"] == 160


def test_wandb_offline_run_reads_back(smoke_run):
    summary, _, _ = smoke_run
    run = read_offline_run(Path(summary["wandb_dir"]))
    keys = set().union(*run["history"])
    for key in (
        "train/loss",
        "eval/loss",
        "train/mean_token_accuracy",
        "eval/mean_token_accuracy",
        "train/entropy",
        "train/num_tokens",
        "probes/eos_rate",
        "probes/quality",
        "probes/rep_4",
        "probes/fact_recall",
        "probes/flag_repetition_loop",
        "probes/divergence",
        "probe_quality/hypertension_first_line",
    ):
        assert key in keys, key
    quality = [h for h in run["history"] if "probes/quality" in h]
    assert [h["train/global_step"] for h in quality] == [0, 3, 6]
    assert [h["probes/quality"] for h in quality] == [e["probe_quality"] for e in summary["evals"]]
    assert "probes/deterministic_batching" in run["summary"]
    # wandb flattens a logged table into dotted keys of the history row
    tables = [h for h in run["history"] if "probes/answers.path" in h]
    # one incremental table: each eval logs its own five rows (tests/test_wandb_lineage.py joins them)
    assert len(tables) == 3 and all(t["probes/answers._type"] == "incremental-table-file" for t in tables)
    files = Path(summary["wandb_dir"]) / "files"
    last = json.loads((files / tables[-1]["probes/answers.path"]).read_text())
    assert len(last["data"]) == 5 and last["columns"][:4] == ["step", "probe_id", "question", "answer"]
    assert {"quality", "flags", "rep_4", "invented_terms", "fact_recall"} <= set(last["columns"])
    wide = json.loads((files / tables[-1]["probes/side_by_side.path"]).read_text())
    assert wide["columns"] == ["probe_id", "question", "step_0", "step_3", "step_6"] and len(wide["data"]) == 5
    assert run["config"]["lora"]["target_modules"][-1] == "down_proj"  # the resolved Hydra config
    assert any(h.get("data/provenance._type") == "table-file" for h in run["history"])  # the data stages
    # Tags carry the scientific settings (and only those), the same labels as run.json's.
    labels = json.loads((Path(summary["run_dir"]) / "run.json").read_text())["labels"]
    assert run["tags"] == [f"{k}={v}" for k, v in labels.items()]
    assert {"lora=attn_mlp-r16", "length=6steps", "n=160", "decoding=greedy_max48"} <= set(run["tags"])


def test_refuses_a_run_dir_that_holds_a_run(smoke_run, compose_small):
    _, run_dir, _ = smoke_run
    before = sorted(p.name for p in run_dir.iterdir())
    cfg = compose_small(["train=smoke"])
    with pytest.raises(FileExistsError, match="already holds a run"):
        finetune(settings_from_cfg(cfg), run_dir, {})
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_cli_main_job_prints_summary(base_dir, tmp_path, shrink_overrides, run_module):
    run_dir = tmp_path / "cli"
    out = run_module(
        "medqa.train",
        *shrink_overrides,
        "train=smoke",
        "data.total=80",
        "decoding.max_new_tokens=16",
        "quality.heldout_questions=86",  # the main job's full held-out set, once (other tests answer 14)
        "tracking=none",
        f"hydra.run.dir={run_dir}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "eval loss" in out.stdout and f"run dir:      {run_dir}" in out.stdout
    assert len((run_dir / "heldout.jsonl").read_text().splitlines()) == 86 * 3  # evals at steps 0, 3, 6
    assert (run_dir / ".hydra" / "config.yaml").exists() and (run_dir / "run.json").exists()
