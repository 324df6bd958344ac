"""The default recipe's model ships in the package (medqa/assets/base/tiny): it is the build of exactly the recipe
in conf/model/tiny.yaml, loads without building or writing anything, and answers the probes at step 0 the same
way on an AVX-512 and an AVX2 machine."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medqa.config.build import tiny_recipe
from medqa.data.embedded.phrasing import load_knowledge
from medqa.model.tiny.build import (
    BUILDER_VERSION,
    SHIPPED_DIR,
    ensure_base,
    inputs_hash,
    pretraining_documents,
    recipe_key,
    shipped_base,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_FILES = {
    "model.safetensors",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "build_info.json",
}


@pytest.fixture(scope="module")
def info() -> dict:
    return json.loads((SHIPPED_DIR / "build_info.json").read_text())


def test_shipped_model_is_the_default_recipe(compose, info):
    """Change conf/model/tiny.yaml, the shipped text or BUILDER_VERSION without rebuilding the shipped copy
    (python -m medqa.build_base --ship) and this fails."""
    recipe = tiny_recipe(compose().model)
    assert info["recipe"] == dataclasses.asdict(recipe), "conf/model/tiny.yaml differs from the shipped build"
    assert info["builder_version"] == BUILDER_VERSION, "BUILDER_VERSION changed: rebuild with --ship"
    assert info["inputs_hash"] == inputs_hash(), "the shipped text changed: rebuild with --ship"
    assert info["key"] == recipe_key(recipe)
    assert info["precision"] == "fp32" and recipe.precision == "fp32"  # the same weights whoever rebuilds it
    assert SHIPPED_FILES <= {p.name for p in SHIPPED_DIR.iterdir()}


def test_pretraining_text_is_what_the_shipped_model_read(info):
    """A change to the corpus renderers changes the weights: it needs a BUILDER_VERSION bump and a rebuild."""
    recipe = info["recipe"]
    prose, chats = pretraining_documents(load_knowledge(), recipe["seed"], recipe["textbook_variants"])
    assert hashlib.sha256(json.dumps([prose, chats]).encode()).hexdigest()[:16] == info["corpus_sha256"]


def test_shipped_blob_is_small(info):
    size = (SHIPPED_DIR / "model.safetensors").stat().st_size
    assert size < 12 * 2**20, size  # one blob, well under 20 MB
    assert info["parameters"] > 4_000_000


def test_default_recipe_loads_the_shipped_folder_without_writing(compose, tmp_path, monkeypatch):
    from medqa.config.build import settings_from_cfg
    from medqa.model.loading import resolve_model_path

    cache = tmp_path / "cache"
    monkeypatch.setenv("MEDQA_CACHE", str(cache))
    settings = settings_from_cfg(compose())
    before = {p: p.stat().st_mtime_ns for p in SHIPPED_DIR.iterdir()}
    assert resolve_model_path(settings.model) == str(SHIPPED_DIR)
    assert ensure_base(settings.model.recipe, cache_dir=cache) == SHIPPED_DIR
    assert not cache.exists(), "no cache folder, no lock file for the shipped model"
    assert {p: p.stat().st_mtime_ns for p in SHIPPED_DIR.iterdir()} == before
    # Any other recipe is not the shipped model (it is built into the cache instead).
    assert shipped_base(dataclasses.replace(settings.model.recipe, seed=1)) is None


STEP0 = """
import json
from medqa.config.compose import compose_config
from medqa.config.build import settings_from_cfg
from medqa.core.cpu_precision import cpu_capability
from medqa.model.generation import generate_answers, generation_config
from medqa.model.loading import load_base
s = settings_from_cfg(compose_config([]))
model, tok, path = load_base(s.model, s.quant)
chats = [[{"role": "system", "content": s.data.system_prompt}, {"role": "user", "content": p.question}]
         for p in s.probes]
answers = generate_answers(model, tok, chats, generation_config(s.decoding, tok), seed=s.decoding.seed)
print(json.dumps({"capability": cpu_capability(), "path": path, "answers": [a.text for a in answers]}))
"""


def _step0(env_changes: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    env.update(PYTHONPATH=str(ROOT), **env_changes)
    out = subprocess.run([sys.executable, "-c", STEP0], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_step0_probe_answers_are_the_same_on_avx2_and_native():
    """The default probe set, greedy, from the shipped base: the same text on this CPU's own kernels and forced
    to AVX2 (an AVX2-only machine's kernels), so step 0 of every run is the same experiment everywhere."""
    native = _step0({})
    forced = _step0({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert forced["capability"] == "AVX2"
    if native["capability"] == "AVX2":
        pytest.skip("this CPU has no kernels above AVX2: nothing to compare")
    assert native["path"] == forced["path"] == str(SHIPPED_DIR)
    assert all(native["answers"]) and len(native["answers"]) == 5
    assert forced["answers"] == native["answers"]
