"""Data-parallel scaling of medqa's training path: the same row of benchmarks/train_throughput.py (random-weight
model of a real shape through build_trainer) launched by torchrun on 1 GPU and on N GPUs. Prints tokens/s in
total and per GPU, and the scaling efficiency: per-GPU tokens/s on N GPUs over that on 1 GPU.

    python benchmarks/ddp_scaling.py                          # row b, Llama-3.2-3B shape, 1 and 2 GPUs
    python benchmarks/ddp_scaling.py --rows a,b --gpus 1,2,4 --steps 12 --json /tmp/ddp.json
    python benchmarks/ddp_scaling.py --shape toy --steps 2 --warmup 1   # tries it on a CPU (gloo)

Weak scaling: the per-GPU batch stays the row's, so N GPUs train a global batch N times larger per step. The
throughput script counts real (non-padding) tokens gathered over all ranks; each run is its own torchrun job
(fresh CUDA contexts). The 1-GPU run goes first: it also saves the random checkpoint the N-GPU runs load."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

THROUGHPUT = Path(__file__).resolve().parent / "train_throughput.py"


def run_case(row: str, gpus: int, args: argparse.Namespace) -> dict:
    """One torchrun job of `row` on `gpus` processes; the result line rank 0 prints, or the error."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus)]
    cmd += [str(THROUGHPUT), "--one", row, "--shape", args.shape, "--steps", str(args.steps)]
    cmd += ["--warmup", str(args.warmup), "--examples", str(args.examples)]
    if args.root:
        cmd += ["--root", str(args.root)]
    started = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode == 0 and line:
        result = json.loads(line[len("RESULT ") :])
    else:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        result = {"row": row, "error": " | ".join(tail)[-300:]}
    result.update(gpus=gpus, wall_s=round(time.time() - started, 1))
    if "tokens_per_s" in result:
        result["tokens_per_s_per_gpu"] = round(result["tokens_per_s"] / gpus)
    return result


def print_table(results: list[dict]) -> None:
    print(f"\n{'row':<8}{'GPUs':>5}{'tok/s':>10}{'tok/s/GPU':>11}{'efficiency':>12}{'s/step':>8}{'peak GiB':>10}")
    for r in results:
        if "error" in r:
            print(f"{r['row']:<8}{r['gpus']:>5}  failed: {r['error']}")
            continue
        one = next((x for x in results if x["row"] == r["row"] and x["gpus"] == 1 and "error" not in x), None)
        eff = f"{r['tokens_per_s_per_gpu'] / one['tokens_per_s_per_gpu']:.1%}" if one else "-"
        mem = f"{r['peak_mem_gib']:.1f}" if r.get("peak_mem_gib") is not None else "-"
        print(
            f"{r['row']:<8}{r['gpus']:>5}{r['tokens_per_s']:>10,}{r['tokens_per_s_per_gpu']:>11,}{eff:>12}"
            f"{r['seconds_per_step']:>8.2f}{mem:>10}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="b", help="rows of train_throughput.py (comma-separated)")
    parser.add_argument("--gpus", default="1,2", help="process counts; 1 must come first (it is the baseline)")
    parser.add_argument("--shape", default="llama32_3b")
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=3, help="optimizer steps before the clock starts")
    parser.add_argument("--examples", type=int, default=800, help="enough for (warmup + steps) global batches")
    parser.add_argument("--root", type=Path, help="where the random checkpoint lives (train_throughput's default)")
    parser.add_argument("--json", type=Path, help="write all results here")
    args = parser.parse_args(argv)

    counts = [int(g) for g in args.gpus.split(",")]
    if counts[0] != 1:
        parser.error("--gpus must start with 1: the 1-GPU run is the baseline and saves the checkpoint")
    results = []
    for row in args.rows.split(","):
        for gpus in counts:
            result = run_case(row, gpus, args)
            print(json.dumps(result), flush=True)
            results.append(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"shape": args.shape, "results": results}, indent=2))
    print_table(results)


if __name__ == "__main__":
    main()
