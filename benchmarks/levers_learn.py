"""Does each training lever still learn? Trains the embedded tiny model for a few steps with `train=gpu` and
each variant, and prints the loss curve, how far the LoRA B weights moved from their zero start, peak memory
and time. A lever that is fast because no gradient reaches the adapter shows |B| = 0 here. Run it before
timing a new lever (benchmarks/RESULTS.md, 2026-11-27 third session: compile_layers with the fused branch).

    python benchmarks/levers_learn.py                    # on the GPU machine (benchmarks/gpu_session.sh learn)
    python benchmarks/levers_learn.py --preset cpu       # a try-out on CPU (train=cpu levers)
    python benchmarks/levers_learn.py --shape toy        # a random-weight model of a benchmark shape instead
                                                         # (no 2-minute build of the embedded model)"""

from __future__ import annotations

import argparse
import dataclasses
import time

VARIANTS = {
    "fused": {"fused_lora": True},
    "peft": {"fused_lora": False},
    "fused + compile_layers": {"fused_lora": True, "compile_layers": True},
    "peft + compile_layers": {"fused_lora": False, "compile_layers": True},
    "fused_blocks": {"fused_lora": True, "fused_blocks": True},
    "flash_varlen": {"fused_lora": True, "flash_varlen": True},
    "fused_blocks + flash_varlen": {"fused_lora": True, "fused_blocks": True, "flash_varlen": True},
    "fused_blocks + static_packs (flex)": {"fused_lora": True, "fused_blocks": True, "static_packs": 512},
    "+ static_packs": {"fused_lora": True, "fused_blocks": True, "flash_varlen": True, "static_packs": 512},
    "fused_blocks + static_packs (flex) + compile_norm_rope": {
        "fused_lora": True, "fused_blocks": True, "static_packs": 512, "compile_norm_rope": True,
    },
    "+ static_packs + compile_norm_rope": {
        "fused_lora": True, "fused_blocks": True, "flash_varlen": True, "static_packs": 512, "compile_norm_rope": True,
    },
    # with --quant nf4: the 4-bit base through the blocks (train=gpu), and the per-projection path before them
    "no blocks + static_packs (flex) + compile_norm_rope": {
        "fused_lora": True, "fused_blocks": False, "static_packs": 512, "compile_norm_rope": True,
    },
    "+ static_packs + compile_norm_rope + joint_projections": {
        "fused_lora": True, "fused_blocks": True, "flash_varlen": True, "static_packs": 512, "compile_norm_rope": True,
        "joint_projections": True,
    },
    # s12 candidate: each decoder layer compiled over the whole-block nodes, RMSNorm/RoPE left to that compile
    "+ static_packs + compile_layers": {
        "fused_lora": True, "fused_blocks": True, "flash_varlen": True, "static_packs": 512, "compile_norm_rope": False,
        "compile_layers": True,
    },
    # s14 candidate: as train=gpu would run it (compile_norm_rope's kernels step aside inside the layers' graphs)
    "+ static_packs + compile_norm_rope + compile_layers": {
        "fused_lora": True, "fused_blocks": True, "flash_varlen": True, "static_packs": 512, "compile_norm_rope": True,
        "compile_layers": True,
    },
    # s15 candidate: train=gpu with its q/k/v (gate/up) base weights in one buffer each (train.joint_projections)
    "+ static_packs + compile_norm_rope + compile_layers + joint_projections": {
        "fused_lora": True, "fused_blocks": True, "flash_varlen": True, "static_packs": 512, "compile_norm_rope": True,
        "compile_layers": True, "joint_projections": True,
    },
    # s16 candidate: train=gpu with each static pack's compiled step captured once and replayed (train.cuda_graphs)
    "+ static_packs + compile_norm_rope + compile_layers + cuda_graphs": {
        "fused_lora": True, "fused_blocks": True, "flash_varlen": True, "static_packs": 512, "compile_norm_rope": True,
        "compile_layers": True, "cuda_graphs": True,
    },
    "+ cuda_graphs": {
        "fused_lora": True, "fused_blocks": True, "flash_varlen": True, "static_packs": 512, "cuda_graphs": True,
    },
}  # fmt: skip


def run_variant(settings, changes: dict, steps: int, out: str) -> dict:
    import torch
    from datasets import Dataset

    from medqa.model.loading import load_base, lora_b_movement
    from medqa.training.run import build_trainer

    answer = "Question {i}: what treats anemia? Answer: oral iron, {n} times a day. "
    rows = [{"text": answer.format(i=i, n=i % 3 + 1) * (1 + i % 5)} for i in range(400)]
    model, tokenizer, _ = load_base(settings.model, settings.quant, settings.train.attn_implementation)
    train = dataclasses.replace(settings.train, max_steps=steps, logging_steps=3, warmup_steps=1, **changes)
    trainer = build_trainer(model, tokenizer, Dataset.from_list(rows), None, train, settings.lora, out, "none")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.time()
    trainer.train()
    moved = lora_b_movement(trainer.model)
    return {
        "losses": [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h],
        "sum_abs_lora_B": round(moved, 3),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "seconds": round(time.time() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpu", choices=["gpu", "cpu"], help="the train preset the levers modify")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {list(VARIANTS)}")
    parser.add_argument("--shape", help="a random-weight model of this benchmark shape instead")
    parser.add_argument("--quant", default="none", help="the quant preset (nf4: QLoRA's levers; needs a GPU)")
    args = parser.parse_args(argv)
    from medqa.config.build import settings_from_cfg
    from medqa.config.compose import compose_config

    model = []
    if args.shape:
        import os
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import common

        root = Path(os.environ.get("MEDQA_BENCH", "/tmp/medqa-bench"))
        model = ["model=llama32_3b", f"model.name_or_path={common.random_checkpoint(args.shape, root)}"]
    overrides = [f"train={args.preset}", f"quant={args.quant}", "lora=attn_mlp", "tracking=none", *model]
    settings = settings_from_cfg(compose_config(overrides))
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    print(f"{'variant':<26}{'learns':>8}{'sum|B|':>10}{'peak GiB':>10}{'s':>7}  losses every 3 steps")
    for i, name in enumerate(names):
        r = run_variant(settings, VARIANTS[name], args.steps, f"/tmp/medqa-levers/{i}")
        learns = "yes" if r["sum_abs_lora_B"] > 0 and r["losses"][-1] < r["losses"][0] else "NO"
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        print(
            f"{name:<26}{learns:>8}{r['sum_abs_lora_B']:>10.3f}{peak:>10}{r['seconds']:>7.1f}  {r['losses']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
