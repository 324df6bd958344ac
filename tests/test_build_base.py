"""The embedded base model builder: deterministic from its recipe, cached under the recipe's key, built once."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from medqa.config.build import tiny_recipe
from medqa.data.embedded.phrasing import load_knowledge
from medqa.model.tiny.build import build_base, ensure_base, pretraining_documents, recipe_key, shipped_qa_texts


def _digest(folder):
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def _toy(compose_small):
    """The default recipe at a toy size: the real builder end to end in seconds."""
    return dataclasses.replace(tiny_recipe(compose_small().model), pretrain_steps=3, textbook_variants=2)


def test_builder_is_deterministic_cached_by_key_and_reused(compose_small, tmp_path):
    """A recipe other than the shipped one is built by the real builder into the cache, under its key, once;
    building it again elsewhere gives the same weights and tokenizer."""
    recipe = _toy(compose_small)
    built = ensure_base(recipe, cache_dir=tmp_path / "cache")
    assert built == tmp_path / "cache" / "base" / f"tiny-{recipe_key(recipe)}"
    info = json.loads((built / "build_info.json").read_text())
    assert info["key"] == recipe_key(recipe) and info["recipe"]["pretrain_steps"] == 3
    assert info["precision"] == "fp32" and info["cpu_capability"]  # what it was built with, on what CPU
    assert info["final_loss"] < info["first_loss"]
    stamp = (built / "build_info.json").stat().st_mtime_ns
    assert ensure_base(recipe, cache_dir=tmp_path / "cache") == built  # found, not rebuilt
    assert (built / "build_info.json").stat().st_mtime_ns == stamp

    again = build_base(recipe, tmp_path / "again", "again")
    assert _digest(tmp_path / "again") == _digest(built)
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (built / "tokenizer.json").read_bytes()
    assert again["first_loss"] == info["first_loss"]


def test_key_hashes_what_determines_the_weights(compose_small):
    recipe = _toy(compose_small)
    assert recipe_key(dataclasses.replace(recipe, seed=1)) != recipe_key(recipe)
    assert recipe_key(dataclasses.replace(recipe, lr=1e-3)) != recipe_key(recipe)
    assert recipe_key(dataclasses.replace(recipe)) == recipe_key(recipe)


def test_key_changes_with_the_builder_version(compose_small, monkeypatch):
    from medqa.model.tiny import build as builder

    recipe = _toy(compose_small)
    key = recipe_key(recipe)
    monkeypatch.setattr(builder, "BUILDER_VERSION", builder.BUILDER_VERSION + 1)
    assert recipe_key(recipe) != key


def test_pretraining_never_sees_a_fine_tuning_row():
    prose, chats = pretraining_documents(load_knowledge(), seed=0, variants=1)
    shipped = set(shipped_qa_texts())
    assert len(chats) > 1000 and prose
    assert not any(f"{c[1]['content']}\n\n{c[2]['content']}" in shipped for c in chats)
    assert all([m["role"] for m in c] == ["system", "user", "assistant"] for c in chats)
