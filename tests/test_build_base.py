"""The embedded base model: deterministic from its recipe, cached under the recipe's key, built once."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from medqa.config.build import tiny_recipe
from medqa.data.embedded.phrasing import load_knowledge
from medqa.model.tiny.build import build_base, ensure_base, pretraining_documents, recipe_key, shipped_qa_texts


def _digest(folder):
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_same_recipe_same_weights_and_tokenizer(compose_small, tmp_path):
    recipe = dataclasses.replace(tiny_recipe(compose_small().model), pretrain_steps=3, textbook_variants=2)
    a = build_base(recipe, tmp_path / "a", "a")
    b = build_base(recipe, tmp_path / "b", "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    assert a["first_loss"] == b["first_loss"]


def test_cache_is_keyed_by_recipe_and_reused(compose_small, base_dir):
    recipe = tiny_recipe(compose_small().model)
    assert base_dir.name == f"tiny-{recipe_key(recipe)}"
    stamp = (base_dir / "build_info.json").stat().st_mtime_ns
    assert ensure_base(recipe) == base_dir  # found, not rebuilt
    assert (base_dir / "build_info.json").stat().st_mtime_ns == stamp
    assert recipe_key(dataclasses.replace(recipe, seed=1)) != recipe_key(recipe)
    info = json.loads((base_dir / "build_info.json").read_text())
    assert info["key"] == recipe_key(recipe) and info["recipe"]["pretrain_steps"] == recipe.pretrain_steps


def test_pretraining_never_sees_a_fine_tuning_row():
    prose, chats = pretraining_documents(load_knowledge(), seed=0, variants=1)
    shipped = set(shipped_qa_texts())
    assert len(chats) > 1000 and prose
    assert not any(f"{c[1]['content']}\n\n{c[2]['content']}" in shipped for c in chats)
    assert all([m["role"] for m in c] == ["system", "user", "assistant"] for c in chats)
