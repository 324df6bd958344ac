"""The GPU benchmarks run on a fresh checkout: `train_throughput.py` and `probe_eval.py` at the CPU-sized `toy`
shape, as a user runs them (the H100 numbers are in benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import early
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--shape", "toy", *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@early.starts("throughput_rows", background=False)  # the lane beside the first tests: slower on 2 cores
def _start_throughput_rows() -> early.Started:
    """Rows a (the seed) and b (`train=gpu`) at the toy shape, one step each: started at collection (tests/early.py)."""
    tmp = Path(tempfile.mkdtemp(prefix="medqa-test-bench-"))
    cmd = [sys.executable, str(BENCH / "train_throughput.py"), "--shape", "toy", "--rows", "a,b", "--steps", "1",
           "--warmup", "1", "--examples", "32", "--root", str(tmp), "--json", str(tmp / "train.json")]  # fmt: skip
    return early.Started({"rows": early.launch(cmd, tmp / "out.txt", stderr=tmp / "err.txt")}, {"tmp": tmp})


@pytest.fixture(scope="module")
def throughput_rows() -> tuple[Path, str]:
    """(the folder with train.json and the random checkpoint, the table printed)."""
    work = early.take("throughput_rows")
    tmp = work.paths["tmp"]
    assert work.wait("rows", timeout=300) == 0, (tmp / "err.txt").read_text()[-2000:]
    return tmp, (tmp / "out.txt").read_text()


def test_throughput_table_then_probe_share_of_it(throughput_rows):
    """Rows a (the seed) and b (`train=gpu`) train the same examples through medqa's trainer and print a table with
    the ratio to row a; the probe benchmark then reads row b's step time for the share of training."""
    tmp_path, out = throughput_rows
    train_json, probe_json = tmp_path / "train.json", tmp_path / "probe.json"
    common = ["--root", str(tmp_path)]
    rows = {r["row"]: r for r in json.loads(train_json.read_text())["results"]}
    assert all("error" not in r for r in rows.values()), rows
    assert rows["a"]["tokens_per_s"] > 0 and rows["b"]["tokens_per_s"] > 0
    assert rows["a"]["tokens_per_step"] == rows["b"]["tokens_per_step"]  # 16 examples a step either way
    assert rows["b"]["overrides"] == ["train=gpu"] and rows["a"]["trainable"] == rows["b"]["trainable"] > 0
    table = out[out.index("\nrow") :].splitlines()
    assert table[2].split()[:3] == ["a", f"{rows['a']['tokens_per_s']:,}", "1.00"]

    out = _run("probe_eval.py", "--variants", "dynamic,folded_static", "--repeats", "1", "--max-new-tokens", "8",
               *common, "--train-json", str(train_json), "--json", str(probe_json))  # fmt: skip
    probe = json.loads(probe_json.read_text())
    assert probe["train_step_s_row_b"] == rows["b"]["seconds_per_step"]
    results = {r["variant"]: r for r in probe["results"]}
    assert results["dynamic"]["new_tokens"] == results["folded_static"]["new_tokens"] > 0
    assert results["folded_static"]["merge_drift_max_abs"] == 0.0  # folding never touches the base weights
    assert "%" in out.splitlines()[-1]  # the share of training time at an eval every 100 steps


def test_useful_mfu_divides_by_every_gpus_peak():
    """Under torchrun the tokens are counted over all ranks, so N GPUs' MFU is over N GPUs' peak: the same
    per-GPU speed on 2 GPUs gives the same MFU as on 1."""
    sys.path.insert(0, str(BENCH))
    import common

    one = common.useful_mfu(3_212_749_824, 15_000, 989e12)
    assert one == round(4 * 3_212_749_824 * 15_000 / 989e12, 4)
    assert common.useful_mfu(3_212_749_824, 30_000, 989e12, gpus=2) == one
    assert common.useful_mfu(3_212_749_824, 30_000, None, gpus=2) is None


def test_peer_rows_train_with_trls_own_step():
    """b_peft (TRL + PEFT) and the other peer rows must not inherit medqa's levers from train=gpu (its static-pack
    step, compiled norms, compiled layers), while b keeps them: b_peft measured medqa's step instead of TRL's for as
    long as they did (s8 call), and compiled layers in s14 call 3 (RESULTS.md)."""
    sys.path.insert(0, str(BENCH))
    import train_throughput

    from medqa.config.build import settings_from_cfg
    from medqa.config.compose import compose_config

    def train_of(row: str):
        return settings_from_cfg(compose_config(["model=llama32_3b", *train_throughput.ROWS[row]])).train

    for row in ("b_peft", "b_prev", "c_peft"):
        assert train_of(row).static_packs == 0, row
    levers = ("fused_lora", "fused_blocks", "flash_varlen", "compile_norm_rope", "compile_layers")
    for row in ("b_peft", "c_peft"):
        assert not any(getattr(train_of(row), lever) for lever in levers), row
    b = train_of("b")
    assert b.static_packs > 0 and all(getattr(b, lever) for lever in levers)
