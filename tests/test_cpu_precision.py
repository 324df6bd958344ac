"""bf16 is used on a CPU only where it is native: with the CPU forced below AVX-512 (as on an AVX2-only
machine) or without a bf16 flag, every caller gets fp32, and runs record what they used."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from medqa.core import cpu_precision
from medqa.core.cpu_precision import cpu_precision as pick
from medqa.core.cpu_precision import native_bf16, training_precision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import json, torch
import dataclasses
from medqa.model.tiny.build import build_precision, recipe_key
from medqa.config.compose import compose_config
from medqa.config.build import tiny_recipe
from medqa.core.cpu_precision import autocast_dtype, cpu_capability, cpu_precision, native_bf16, training_precision
fp32 = dataclasses.replace(tiny_recipe(compose_config().model), precision="fp32")
bf16 = dataclasses.replace(fp32, precision="bf16")
print(json.dumps({
    "capability": cpu_capability(), "torch_capability": torch.backends.cpu.get_cpu_capability(),
    "native": native_bf16(), "pick": cpu_precision("bf16"), "train": training_precision("bf16", on_gpu=False),
    "autocast": str(autocast_dtype()), "build": build_precision(bf16),
    "same_key": recipe_key(bf16) == recipe_key(fp32),
}))
"""


def _probe(env_changes: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT, **env_changes}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "forcing",
    [
        {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},  # the slow path of an AVX2-only CPU
        {"ATEN_CPU_CAPABILITY": "avx2"},
        {"ONEDNN_MAX_CPU_ISA": "AVX2"},
        {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},  # AVX-512 without bf16 dot products
    ],
)
def test_bf16_is_never_chosen_when_forced_below_native(forcing):
    got = _probe(forcing)
    assert got["native"] is False and got["pick"] == "fp32" and got["train"] == "fp32", got
    assert got["autocast"] == "torch.float32", got
    # The builder falls back too, and its bf16 recipe then names the fp32 build (the same weights).
    assert got["build"] == "fp32" and got["same_key"], got
    assert got["capability"] == got["torch_capability"]
    if "ATEN_CPU_CAPABILITY" in forcing:
        assert got["capability"] == "AVX2", got  # the switch took effect: the test forces what it claims


def test_bf16_is_never_chosen_on_a_cpu_without_a_bf16_flag(monkeypatch):
    monkeypatch.setattr(cpu_precision, "cpu_flags", lambda: frozenset({"avx2", "fma", "avx512f"}))
    assert native_bf16() is False and pick("bf16") == "fp32" and training_precision("bf16", on_gpu=False) == "fp32"
    assert pick("fp32") == "fp32"
    assert training_precision("bf16", on_gpu=True) == "bf16"  # a GPU's request stands


def test_native_bf16_is_used_where_the_cpu_has_it():
    if (
        not cpu_precision.cpu_has_bf16()
        or os.environ.get("ATEN_CPU_CAPABILITY")
        or os.environ.get("ONEDNN_MAX_CPU_ISA")
    ):
        pytest.skip("this CPU (or its forcing switches) has no native bf16")
    assert torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX")
    assert native_bf16() and pick("bf16") == "bf16"
    got = _probe({})
    assert got["build"] == "bf16" and not got["same_key"], got  # a native bf16 build is another model


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="fp16"):
        pick("fp16")


def test_run_json_records_precision_and_cpu_capability(smoke_run):
    summary, run_dir, _ = smoke_run
    compute = json.loads((run_dir / "run.json").read_text())["compute"]
    assert compute == summary["compute"]
    assert compute["precision_requested"] == "fp32" and compute["precision"] == "fp32"
    assert compute["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(compute["cpu_native_bf16"], bool)
