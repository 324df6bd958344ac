"""Training throughput of medqa's own path (Hydra presets -> settings -> load_base -> build_trainer -> TRL
SFTTrainer + PEFT LoRA r16 on all 7 projections) on a random-weight model of a real shape. Prints a table.

    python benchmarks/train_throughput.py                      # rows a, b, c on the Llama-3.2-3B shape
    python benchmarks/train_throughput.py --rows a,b --shape toy --steps 2 --warmup 1   # tries it on a CPU

Each row is a list of Hydra overrides on top of the composed config and runs in its own process (a fresh
CUDA context, its own peak memory; an out-of-memory row does not end the table). Tokens are real tokens
(padding excluded, counted by the Trainer's `include_num_input_tokens_seen="non_padding"`); useful MFU is
4·N·tokens/s over the GPU's dense bf16 peak (N = base parameters: forward 2N + input-gradient backward 2N;
frozen weights need no weight gradient)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py
import common  # noqa: E402

SEED = ["train=seed_t4", "train.precision=bf16", "train.optim=adamw_torch"]  # T4 had fp16 only; H100 runs bf16
GPU = ["train=gpu"]
TRL_STEP = ["train.static_packs=0"]  # TRL's own training step, not medqa's static packs
# What TRL + PEFT give a user: every medqa lever that train=gpu turns on, off. b_peft inherited compile_norm_rope
# (s9-s13) and, in s14 call 3, compile_layers (21,212 tok/s instead of ~15,000), because only some were listed here.
PEER = ["train.fused_lora=false", "train.fused_blocks=false", "train.flash_varlen=false",
        "train.compile_norm_rope=false", "train.compile_layers=false", *TRL_STEP]  # fmt: skip
ROWS = {
    # (a) the seed: batch 4 x accum 4, right padding to the longest, gradient checkpointing, no packing.
    "a": SEED,
    # (b) medqa's GPU preset (conf/train/gpu.yaml), (c) the same with the base in 4-bit NF4 (QLoRA).
    "b": GPU,
    "c": [*GPU, "quant=nf4"],
    # QLoRA's levers (s10): c as measured before them (fp32 layers, per-projection LoRA over 4-bit bases), then each.
    "c_s9": [*GPU, "quant=nf4", "quant.fp32_layers=true", "train.fused_blocks=false"],
    "c_bf16": [*GPU, "quant=nf4", "train.fused_blocks=false"],
    "c_blocks": [*GPU, "quant=nf4", "quant.fp32_layers=true"],
    # Levers, one at a time from (a) (RESULTS.md has the prediction written before each was measured).
    "a_nogc": [*SEED, "train.gradient_checkpointing=false"],
    "a_b16": [*SEED, "train.per_device_batch=16", "train.grad_accum=1"],
    "a_b16_pf": [*SEED, "train.per_device_batch=16", "train.grad_accum=1", "train.padding_free=true"],
    # Levers from (b), one at a time.
    "b_sdpa": [*GPU, "train.attn_implementation=sdpa"],
    "b_liger": [*GPU, "train.use_liger=true"],
    "b_compile": [*GPU, "train.torch_compile=true"],
    "b_gc": [*GPU, "train.gradient_checkpointing=true"],
    "b_b32": [*GPU, "train.per_device_batch=32"],
    "b_b64": [*GPU, "train.per_device_batch=64"],
    "b_nodrop": [*GPU, "lora.dropout=0.0"],
    "b_liger_norm": GPU,  # + Liger's RMSNorm and SwiGLU kernels, not its RoPE (ROW_SFT)
    "b_clayers": [*GPU, "train.compile_layers=true"],  # torch.compile each decoder layer, dynamic shapes
    # s11: torchtune's compiled recipe beat b; each decoder layer compiled over PEFT's own LoRA (torchtune's way)
    "b_clayers_peft": [*GPU, "train.fused_lora=false", "train.fused_blocks=false", "train.compile_norm_rope=false",
                       "train.compile_layers=true"],
    "b_clayers_nocnr": [*GPU, "train.compile_norm_rope=false", "train.compile_layers=true"],
    # PEFT's own LoRA forward with flex attention and TRL's own step: what TRL + PEFT with padding-free packing gives
    # a user. static_packs=0: train=gpu adopted medqa's static step (s7), which b_peft inherited until s8
    "b_peft": [*GPU, *PEER],
    # issue 19's levers, each taken out of b (train=gpu) again
    "b_prev": [*GPU, "train.fused_blocks=false", "train.flash_varlen=false", "train.compile_norm_rope=false",
               "train.compile_layers=false", *TRL_STEP],  # b as issue 7 left it
    "b_noflash": [*GPU, "train.flash_varlen=false"],
    "b_noblocks": [*GPU, "train.fused_blocks=false"],
    "b_joint": [*GPU, "train.joint_projections=true"],  # q/k/v and gate/up as one GEMM each way (unmeasured)
    # issue 19, second half: static packs (512-token buckets, one masked padding document), then CUDA graphs
    "b_flash": [*GPU, "train.flash_varlen=true"],
    "b_static": [*GPU, "train.flash_varlen=true", "train.static_packs=512"],
    "b_static_flex": [*GPU, "train.static_packs=512"],  # static packs with flex attention (no flash_varlen)
    "c_static": [*GPU, "quant=nf4", "train.static_packs=512"],
    "b_graphs": [*GPU, "train.flash_varlen=true", "train.static_packs=512", "train.cuda_graphs=true"],
    "b_graphs_nocnr": [*GPU, "train.flash_varlen=true", "train.cuda_graphs=true", "train.compile_norm_rope=false"],
    "b_graphs256": [*GPU, "train.flash_varlen=true", "train.static_packs=256", "train.cuda_graphs=true"],
    "c_graphs": [*GPU, "quant=nf4", "train.flash_varlen=true", "train.static_packs=512", "train.cuda_graphs=true"],
    # issue 19, third push: RMSNorm and RoPE as compiled kernels, 256-token buckets, flash on top of b
    "b_cnr": [*GPU, "train.compile_norm_rope=true"],
    "b_flash_static": [*GPU, "train.flash_varlen=true"],  # b (static packs) with FlashAttention-2 varlen for flex
    "b_flash_cnr": [*GPU, "train.flash_varlen=true", "train.compile_norm_rope=true"],
    "b_256": [*GPU, "train.static_packs=256"],
    "b_flash_cnr_256": [*GPU, "train.flash_varlen=true", "train.compile_norm_rope=true", "train.static_packs=256"],
    "c_peft": [*GPU, "quant=nf4", *PEER],
    "c_clayers": [*GPU, "quant=nf4", "train.compile_layers=true"],
    "c_clayers_nocnr": [*GPU, "quant=nf4", "train.compile_norm_rope=false", "train.compile_layers=true"],
    "b_clayers_nodrop": [*GPU, "train.compile_layers=true", "lora.dropout=0.0"],
    "a_qlora": [*SEED, "quant=nf4"],
}  # fmt: skip
# Levers that are SFTConfig fields without a medqa setting (yet): passed to build_trainer as they are.
LIGER_NORM = {
    "rope": False,
    "rms_norm": True,
    "swiglu": True,
    "cross_entropy": False,
    "fused_linear_cross_entropy": False,
}
LIGER_ROW = {"use_liger_kernel": True, "liger_kernel_config": LIGER_NORM}
ROW_SFT = {"b_liger_norm": LIGER_ROW}


def run_row(
    name: str, shape: str, steps: int, warmup: int, examples: int, root: Path, profile: Path | None = None
) -> dict:
    """Train `warmup + steps` optimizer steps with the row's settings; time the last `steps`. With `profile`,
    two more steps run under torch.profiler after the timed ones and its tables go to `profile/<row>.txt`."""
    import torch
    from transformers import TrainerCallback

    from medqa.config.build import settings_from_cfg
    from medqa.config.compose import compose_config
    from medqa.model.loading import count_parameters, load_base
    from medqa.training.run import build_trainer

    ckpt = common.random_checkpoint(shape, root)
    overrides = [
        "model=llama32_3b", f"model.name_or_path={ckpt}", "lora=attn_mlp", "tracking=none",
        *ROWS[name], f"train.max_steps={warmup + steps + (2 if profile else 0)}", "train.logging_steps=1000",
    ]  # fmt: skip
    settings = settings_from_cfg(compose_config(overrides))
    if not torch.cuda.is_available():  # the CPU try-out: no bf16 autocast, no 4-bit
        settings = _cpu(settings)
    model, tokenizer, _ = load_base(settings.model, settings.quant, settings.train.attn_implementation)
    n_params = sum(p.numel() for p in model.parameters()) if not settings.quant.load_in_4bit else None
    from datasets import Dataset

    train_ds = Dataset.from_list(common.chat_examples(tokenizer, examples))

    profiled = 2 if profile else 0

    class Clock(TrainerCallback):
        marks: dict = {}
        profiler = None
        static: dict = {}

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (warmup, warmup + steps, warmup + steps + profiled):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                self.marks[state.global_step] = (time.perf_counter(), state.num_input_tokens_seen)
                runner = getattr(trainer, "static_step", None)
                if runner is not None:  # static packs: graphs captured and tokens computed in the timed steps
                    self.static[state.global_step] = {**runner.steps, **runner.tokens}
            if profile and state.global_step == warmup + steps:
                self.profiler = torch.profiler.profile(activities=_activities(torch))
                self.profiler.__enter__()
            elif self.profiler is not None and state.global_step == warmup + steps + profiled:
                self.profiler.__exit__(None, None, None)

    clock = Clock()
    trainer = build_trainer(
        model, tokenizer, train_ds, None, settings.train, settings.lora, root / "out" / name, "none",
        callbacks=[clock], include_num_input_tokens_seen="non_padding", **ROW_SFT.get(name, {}),
    )  # fmt: skip
    if n_params is None:  # 4-bit weights pack two values a byte: count the shape's parameters instead
        n_params = _shape_params(shape)
    trainable, _ = count_parameters(trainer.model)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    (t0, n0), (t1, n1) = clock.marks[warmup], clock.marks[warmup + steps]
    tok_s = (n1 - n0) / (t1 - t0)
    static = None
    if clock.static:
        before, after = clock.static[warmup], clock.static[warmup + steps]
        static = {k: after[k] - before[k] for k in after}  # in the timed steps only
    peak = common.peak_flops()
    gpus = int(os.environ.get("WORLD_SIZE", "1"))
    if profile:
        wall = clock.marks[warmup + steps + profiled][0] - t1
        _write_profile(clock.profiler, profile / f"{name}.txt", wall, profiled)
    return {
        "row": name,
        "overrides": ROWS[name],
        "tokens_per_s": round(tok_s),
        "tokens_per_step": round((n1 - n0) / steps),
        "seconds_per_step": round((t1 - t0) / steps, 3),
        # tokens are counted over every rank under torchrun (ddp_scaling.py): the peak is all GPUs' together
        "useful_mfu": common.useful_mfu(n_params, tok_s, peak, gpus),
        "gpus": gpus,
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "params": n_params,
        "trainable": trainable,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "static_packs": static,
    }


def _activities(torch) -> list:
    acts = [torch.profiler.ProfilerActivity.CPU]
    return acts + ([torch.profiler.ProfilerActivity.CUDA] if torch.cuda.is_available() else [])


def _write_profile(prof, path: Path, wall_s: float, steps: int) -> None:
    """Where a step's time goes: GPU-busy share (kernel time / wall time) and the top ops by device and CPU time."""
    from torch.autograd import DeviceType

    events = prof.key_averages()
    # Kernels only: an op's own row repeats the time of the kernels it launched.
    device_us = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA)
    lines = [
        f"{steps} steps, {wall_s:.3f} s wall; kernels busy {device_us / 1e6:.3f} s = "
        f"{100 * device_us / 1e6 / wall_s:.1f}% of wall",
        events.table(sort_by="self_device_time_total", row_limit=30, max_name_column_width=70),
        events.table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=70),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(lines))
    print(lines[0], flush=True)


def _shape_params(shape: str) -> int:
    s = common.SHAPES[shape]
    h, i, layers, kv = s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"], s["num_key_value_heads"]
    attn = h * (s["num_attention_heads"] * s["head_dim"]) * 2 + h * kv * s["head_dim"] * 2
    return layers * (attn + 3 * h * i + 2 * h) + s["vocab_size"] * h + h


def _cpu(settings):
    import dataclasses

    attn = "sdpa" if settings.train.attn_implementation == "flex_attention" else settings.train.attn_implementation
    # flex attention has no backward on CPU; bf16 autocast, fused AdamW and 4-bit weights need a GPU
    train = dataclasses.replace(settings.train, precision="fp32", optim="adamw_torch", attn_implementation=attn)
    model = dataclasses.replace(settings.model, dtype="float32")
    return dataclasses.replace(
        settings, train=train, model=model, quant=dataclasses.replace(settings.quant, load_in_4bit=False)
    )


def print_table(results: list[dict]) -> None:
    base = next((r for r in results if r.get("row") == "a" and "tokens_per_s" in r), None)
    print(f"\n{'row':<16}{'tok/s':>9}{'x (a)':>8}{'MFU':>8}{'peak GiB':>10}{'s/step':>8}{'tok/step':>10}")
    for r in results:
        if "error" in r:
            print(f"{r['row']:<16}  failed: {r['error']}")
            continue
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}" if base else "-"
        mfu = f"{100 * r['useful_mfu']:.1f}%" if r["useful_mfu"] else "-"
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "-"
        print(
            f"{r['row']:<16}{r['tokens_per_s']:>9,}{ratio:>8}{mfu:>8}{mem:>10}"
            f"{r['seconds_per_step']:>8.2f}{r['tokens_per_step']:>10,}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rows",
        default="a,b,c",
        help=f"comma-separated, from {sorted(ROWS)}, run in this order (repeats too); ROW:N times N steps for that row",
    )
    parser.add_argument("--shape", default="llama32_3b", choices=sorted(common.SHAPES))
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=3, help="optimizer steps before the clock starts")
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("MEDQA_BENCH", "/tmp/medqa-bench")))
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--profile", type=Path, help="also profile 2 steps a row; tables go to PROFILE/<row>.txt")
    parser.add_argument("--profile-rows", help="profile only these rows (default: all)")
    parser.add_argument("--row-timeout", type=float, default=300, help="seconds before a row is stopped")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one row in this process
    args = parser.parse_args(argv)

    if args.one:
        result = run_row(args.one, args.shape, args.steps, args.warmup, args.examples, args.root, args.profile)
        print("RESULT " + json.dumps(result), flush=True)
        return
    # in the order given, repeats kept: "b,x,x,b" times an ABBA pair in one invocation
    planned = [(r.split(":")[0], int(r.split(":")[1]) if ":" in r else args.steps) for r in args.rows.split(",")]
    rows = [name for name, _ in planned]
    profiled_rows = set(args.profile_rows.split(",")) if args.profile_rows else set(rows)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; known: {sorted(ROWS)}")
    common.random_checkpoint(args.shape, args.root)
    results = []
    for name, steps in planned:
        cmd = [sys.executable, __file__, "--one", name, "--shape", args.shape, "--steps", str(steps)]
        cmd += ["--warmup", str(args.warmup), "--examples", str(args.examples), "--root", str(args.root)]
        cmd += ["--profile", str(args.profile)] if args.profile and name in profiled_rows else []
        result = common.run_child(name, cmd, args.row_timeout)
        if "error" in result:
            result["overrides"] = ROWS[name]
        print(json.dumps(result), flush=True)
        results.append(result)
    common.write_json(args.json, {"shape": args.shape, "results": results})
    print_table(results)


if __name__ == "__main__":
    main()
