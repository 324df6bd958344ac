"""The released adapter explains itself and travels: medqa's card with the run's numbers, the portable base name in
adapter_config.json, no pickle, and loading from a copied folder on a clean cache (medqa's loader rebuilds the
embedded base from the recipe; plain PEFT given the base folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from medqa.config.build import saved_run_settings
from medqa.model.portable import SIDECAR, adapter_base_name, load_portable_adapter, resolve_base
from medqa.model.tiny.build import recipe_key
from medqa.training.card import NOT_ADVICE, render_card


def _fmt(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}f}"


def test_card_shows_the_runs_numbers(smoke_run):
    summary, run_dir, _ = smoke_run
    card = (run_dir / "adapter" / "README.md").read_text()
    key = recipe_key(saved_run_settings(run_dir).model.recipe)
    assert f"`medqa-tiny@{key}`" in card and NOT_ADVICE in card
    assert "More Information Needed" not in card  # not PEFT's template
    for e in summary["evals"]:  # every eval row: loss, token accuracy, quality
        row = next(line for line in card.splitlines() if line.startswith(f"| {e['step']} |"))
        assert _fmt(e["eval_loss"]) in row and _fmt(e["mean_token_accuracy"]) in row
        assert _fmt(e["probe_quality"], 3) in row
    kept = summary["selected"]["step"]
    assert f"**Kept: step {kept}** (train.select_by=quality" in card
    rows = [json.loads(line) for line in (run_dir / "probes.jsonl").read_text().splitlines()]
    at_kept = [r for r in rows if r["step"] == kept]
    assert len(at_kept) == 5 and all(f"```text\n{r['answer']}\n```" in card for r in at_kept)
    decoding = json.loads((run_dir / "probes.generation_config.json").read_text())
    assert json.dumps(decoding, indent=2, sort_keys=True) in card
    mix = summary["data"]["mix"]
    assert f"{mix['train']:,} train + {mix['eval']:,} eval rows" in card
    assert "LoRA r=16, alpha=32" in card and "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj" in card


def test_adapter_config_names_the_portable_base_and_no_pickle_is_kept(smoke_run):
    summary, run_dir, _ = smoke_run
    adapter = run_dir / "adapter"
    recipe = saved_run_settings(run_dir).model.recipe
    assert adapter_base_name(adapter) == f"medqa-tiny@{recipe_key(recipe)}"
    assert json.loads((adapter / SIDECAR).read_text())["recipe"]["pretrain_steps"] == recipe.pretrain_steps
    assert not [p.name for p in adapter.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".pkl"}]
    checkpoint = Path(summary["selected"]["checkpoint"])
    assert (checkpoint / "training_args.bin").exists()  # checkpoints keep what resume reads
    assert summary["adapter"]["base_model_name"] == adapter_base_name(adapter)


def test_copied_adapter_loads_on_a_clean_cache(smoke_run, tmp_path, monkeypatch):
    """Copied elsewhere, with an empty medqa cache: medqa resolves the portable base name (the default recipe is
    the shipped model; any other recipe is rebuilt from the recipe beside the adapter), and base + adapter give the
    training run's logits; plain PEFT does too, given that base folder."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from medqa.model.tiny.build import SHIPPED_DIR

    summary, run_dir, _ = smoke_run
    copy = shutil.copytree(run_dir / "adapter", tmp_path / "elsewhere" / "adapter")
    monkeypatch.setenv("MEDQA_CACHE", str(tmp_path / "clean-cache"))
    model, tokenizer = load_portable_adapter(copy)
    rebuilt = resolve_base(adapter_base_name(copy), copy)
    assert Path(rebuilt) == SHIPPED_DIR or Path(rebuilt).is_relative_to(tmp_path / "clean-cache"), rebuilt
    original = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(summary["base_model"]), copy)
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(rebuilt), copy)
    ids = tokenizer("What is the first-line treatment for hypertension?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        reference = original.eval()(ids).logits
        assert torch.allclose(model.eval()(ids).logits, reference, atol=1e-5)
        assert torch.allclose(plain.eval()(ids).logits, reference, atol=1e-5)


def test_portable_base_errors_name_the_problem(smoke_run, tmp_path, monkeypatch):
    _, run_dir, _ = smoke_run
    monkeypatch.setenv("MEDQA_CACHE", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=r"medqa-tiny@0000: not shipped, not in the cache"):
        resolve_base("medqa-tiny@0000")
    copy = shutil.copytree(run_dir / "adapter", tmp_path / "a")
    with pytest.raises(ValueError, match=r"base_model.json: its recipe hashes to \w+, not 0000"):
        resolve_base("medqa-tiny@0000", copy)
    assert resolve_base("meta-llama/Llama-3.2-3B-Instruct") == "meta-llama/Llama-3.2-3B-Instruct"


def test_card_escapes_nothing_into_markdown():
    """An answer is shown as text: fences inside it cannot close the block; HTML stays inside the fence."""
    provenance = {
        "mix": {"train": 9, "eval": 1, "total": 10, "share": {"a": 1.0}, "list_share": {"train": 0.0, "eval": 0.0}},
        "sources": {"a": {"where": "a.jsonl", "loaded": 10, "cleaned": 10, "sampled": 10, "train": 9, "eval": 1}},
        "fingerprint": {"train": "t", "eval": "e"},
    }
    answer = "```\n<script>alert(1)</script>\n```"
    card = render_card(
        base_model="meta-llama/Llama-3.2-3B-Instruct",
        provenance=provenance,
        lora={"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj"]},
        train={"epochs": 1, "select_by": "loss"},
        evals=[{"step": 0, "eval_loss": 1.0}, {"step": 5, "eval_loss": 0.5, "divergence": True}],
        selected={"rule": "loss", "step": 5, "eval_loss": 0.5},
        answers=[{"probe_id": "p", "question": "Q?", "answer": answer, "quality": 0.1, "flags": ["no_eos"]}],
        decoding={"do_sample": False},
    )
    assert card.startswith("---\nlibrary_name: peft") and 'base_model: "meta-llama/Llama-3.2-3B-Instruct"' in card
    fenced = card.split("```text\n", 1)[1].split("\n```", 1)[0]
    assert "<script>" in fenced and "```" not in fenced
    assert "| 5 | — | 0.5000 | — | — | — | kept; divergence alarm |" in card
