"""Where the main job's time goes: runs `python -m medqa.train` (any overrides) in this process with timers around
its stages and prints stage -> wall seconds and CPU seconds (all threads), each exclusive of the stages inside it.

    python benchmarks/cpu_profile.py                       # the main job, as `make run` runs it
    python benchmarks/cpu_profile.py train=smoke ...       # any medqa.train overrides
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/cpu_profile.py   # an AVX2-only CPU

The timers wrap medqa's own functions (nothing of the job is replaced); `--json FILE` also writes the table.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (label, module, attribute): a function, or Class.method, patched where its caller looks it up (a name imported
# with `from x import f` is patched in the importing module). Inner stages are subtracted from the outer ones.
STAGES = [
    ("data: mix, clean, split, provenance", "medqa.training.run", "load_data"),
    ("model: load base + tokenizer", "medqa.training.run", "load_model"),
    ("W&B: start run, provenance table, mix", "medqa.training.run", "open_tracking"),
    ("trainer: LoRA + SFTTrainer build", "medqa.training.run", "build_run_trainer"),
    ("train: the rest (data, logging, callbacks)", "medqa.training.run", "train"),
    ("train: forward + backward", "trl.trainer.sft_trainer", "SFTTrainer.training_step"),
    ("train: optimizer step", "torch.optim.adam", "Adam.step"),
    ("eval: loss on the eval split", "transformers.trainer", "Trainer.evaluate"),
    ("eval: probe answers (generate)", "medqa.probing.recorder", "ProbeRecorder._answer"),
    ("eval: held-out answers (generate)", "medqa.probing.heldout_eval", "HeldoutEval.answer"),
    ("eval: scoring (quality, claims, bootstrap)", "medqa.probing.heldout_eval", "HeldoutEval._add_eval"),
    ("eval: scoring (quality, claims, bootstrap)", "medqa.probing.heldout_eval", "score_heldout"),
    ("eval: scoring (quality, claims, bootstrap)", "medqa.probing.recorder", "ProbeRecorder.score"),
    ("eval: scoring (quality, claims, bootstrap)", "medqa.probing.recorder", "ProbeRecorder._add_eval"),
    ("W&B: log tables and scalars", "medqa.probing.recorder", "ProbeRecorder.log"),
    ("W&B: log tables and scalars", "medqa.probing.heldout_eval", "HeldoutEval.log"),
    ("checkpoints: save", "transformers.trainer", "Trainer._save_checkpoint"),
    ("checkpoints: load best at end", "transformers.trainer", "Trainer._load_best_model"),
    ("finish: determinism check (generate)", "medqa.probing.recorder", "ProbeRecorder.check_determinism"),
    ("finish: adapter, card, plot, run.json", "medqa.training.run", "finish_run"),
    ("W&B: finish (offline run file)", "wandb.sdk.wandb_run", "Run.finish"),
]
ABSORB = {"finish: determinism check (generate)"}  # stages whose inner stages are not told apart
TOTAL = "whole job (python start to exit)"


class Clock:
    """Exclusive wall and CPU time per label: a stage's own time, less the stages called inside it."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.each: dict[str, list[float]] = {}  # wall seconds of every call (inclusive)
        self.stack: list[list] = []  # per open stage: [label, child wall, child cpu]

    def wrap(self, label: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if self.stack and self.stack[-1][0] in ABSORB:  # its inner calls are its own time
                return fn(*args, **kwargs)
            self.stack.append([label, 0.0, 0.0])
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                dw, dc = time.perf_counter() - w0, time.process_time() - c0
                _, child_w, child_c = self.stack.pop()
                self.wall[label] = self.wall.get(label, 0.0) + dw - child_w
                self.cpu[label] = self.cpu.get(label, 0.0) + dc - child_c
                self.calls[label] = self.calls.get(label, 0) + 1
                self.each.setdefault(label, []).append(dw)
                if self.stack:
                    self.stack[-1][1] += dw
                    self.stack[-1][2] += dc

        return timed

    def install(self) -> None:
        for label, module, attr in STAGES:
            owner = importlib.import_module(module)
            *classes, name = attr.split(".")
            for c in classes:
                owner = getattr(owner, c)
            setattr(owner, name, self.wrap(label, getattr(owner, name)))


def table(clock: Clock, total_wall: float, total_cpu: float, header: str) -> str:
    """The stages in run order with wall s, CPU s and calls, and the rest (imports, Hydra, run folder)."""
    labels = list(dict.fromkeys(label for label, _, _ in STAGES))
    w, c, n = clock.wall, clock.cpu, clock.calls
    rows = [(label, w.get(label, 0.0), c.get(label, 0.0), n.get(label, 0)) for label in labels]
    rest_w = total_wall - sum(r[1] for r in rows)
    rest_c = total_cpu - sum(r[2] for r in rows)
    rows.append(("start-up: imports, Hydra, checks, run folder", rest_w, rest_c, 1))
    lines = [header, f"{'stage':<46} {'wall s':>7} {'CPU s':>7} {'calls':>5}", "-" * 68]
    lines += [f"{label:<46} {w:>7.1f} {c:>7.1f} {n:>5}" for label, w, c, n in rows]
    lines += ["-" * 68, f"{TOTAL:<46} {total_wall:>7.1f} {total_cpu:>7.1f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    args, overrides = parser.parse_known_args(argv)
    started_wall = time.perf_counter() - _since_process_start()
    import torch

    from medqa.cli.train import cli  # the real entrypoint (medqa.train's shim imports the same)

    clock = Clock()
    clock.install()
    try:
        cli(overrides)
    except SystemExit as err:
        if err.code not in (0, None):
            raise
    total_wall, total_cpu = time.perf_counter() - started_wall, time.process_time()
    load = os.getloadavg()
    header = (
        f"medqa.train {' '.join(overrides) or '(no overrides: the main job)'}\n"
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, torch threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end"
    )
    print("\n" + table(clock, total_wall, total_cpu, header))
    if args.json:
        stages = {k: {"wall_s": round(clock.wall[k], 2), "cpu_s": round(clock.cpu[k], 2)} for k in clock.wall}
        each = {k: [round(x, 3) for x in v] for k, v in clock.each.items()}
        out = {"overrides": overrides, "wall_s": total_wall, "cpu_s": total_cpu, "load": load, "stages": stages}
        out["each"] = each
        args.json.write_text(json.dumps(out, indent=2))


def _since_process_start() -> float:
    """Seconds since this python process started (so interpreter start-up and imports count)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start)
    except (OSError, ValueError, IndexError):
        return 0.0


if __name__ == "__main__":
    main()
