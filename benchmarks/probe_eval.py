"""Cost of one probe eval: the five probes x 256 new tokens through medqa's own generation path
(medqa.generation.generate_answers, decoding preset greedy_rp13) on a random-weight model of a real shape
carrying a LoRA adapter (r16, all 7 projections, non-zero B so the adapter really computes). Prints a table.

    python benchmarks/probe_eval.py [--shape llama32_3b] [--train-json results.json]

Variants: the default dynamic KV cache; a static KV cache without and with torch.compile (transformers compiles
the forward by itself when the cache is static); and the adapter merged into the base weights (with the drift
that a merge + unmerge leaves in bf16 weights). With --train-json (written by train_throughput.py), the share of
training time is given for an eval every 100 steps at row b's measured speed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

# folded_*: the harness's decoding.merge_adapter=true (medqa.generation.merged_adapter: W + ΔW in a separate
# buffer, base weights untouched); merged_static: PEFT's merge_adapter/unmerge_adapter, to measure its drift.
VARIANTS = ["dynamic", "static_nocompile", "static", "folded_dynamic", "folded_static", "merged_static"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="llama32_3b", choices=sorted(common.SHAPES))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("MEDQA_BENCH", "/tmp/medqa-bench")))
    parser.add_argument("--train-json", type=Path, help="train_throughput.py results, for the share of training time")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import torch
    from peft import get_peft_model

    from medqa.config.build import settings_from_cfg
    from medqa.config.compose import compose_config
    from medqa.model.generation import generate_answers, generation_config
    from medqa.model.loading import load_base, lora_config

    ckpt = common.random_checkpoint(args.shape, args.root)
    cfg = compose_config(
        ["model=llama32_3b", f"model.name_or_path={ckpt}", "lora=attn_mlp", "decoding=greedy_rp13"]
        + ([] if torch.cuda.is_available() else ["model.dtype=float32"])
    )
    settings = settings_from_cfg(cfg)
    model, tokenizer, _ = load_base(settings.model, settings.quant)
    if torch.cuda.is_available():
        model = model.cuda()
    model = get_peft_model(model, lora_config(settings.lora))
    torch.manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)  # a trained adapter is not zero
    system = [{"role": "system", "content": settings.data.system_prompt}]
    chats = [[*system, {"role": "user", "content": p.question}] for p in settings.probes]

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    results = []
    for variant in args.variants.split(","):
        static = variant.endswith("static") or variant == "static_nocompile"
        folded, merged = variant.startswith("folded"), variant.startswith("merged")
        # The static cache comes through the harness's own setting (decoding.cache_implementation=static).
        decoding = dataclasses.replace(settings.decoding, cache_implementation="static" if static else None)
        config = generation_config(decoding, tokenizer)
        config.max_new_tokens = args.max_new_tokens
        if variant == "static_nocompile":
            config.disable_compile = True
        drift = None
        if folded or merged:  # how far the base weights drift from what they were
            before = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer.weight" in n}
        if merged:
            model.merge_adapter()
        times, tokens = [], []
        try:
            for _ in range(args.repeats + 1):  # the first call pays for compilation and is reported apart
                sync()
                started = time.perf_counter()
                answers = generate_answers(model, tokenizer, chats, config, seed=0, merge_adapter=folded)
                sync()
                times.append(time.perf_counter() - started)
                tokens.append(sum(a.n_tokens for a in answers))
        except Exception as err:  # a variant that fails is a row of the table, not the end of it
            results.append({"variant": variant, "error": f"{type(err).__name__}: {err}"[:300]})
            continue
        finally:
            if merged:
                model.unmerge_adapter()
            if folded or merged:
                after = dict(model.named_parameters())
                drift = max((after[n].detach() - w).abs().max().item() for n, w in before.items())
                del before
        steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
        results.append(
            {
                "variant": variant,
                "first_call_s": round(times[0], 2),
                "seconds_per_eval": round(steady, 3),
                "new_tokens": tokens[-1],
                "tokens_per_s": round(tokens[-1] / steady),
                "merge_drift_max_abs": drift,
            }
        )
        print(json.dumps(results[-1]), flush=True)

    train_step_s = None
    if args.train_json and args.train_json.exists():
        rows = {r["row"]: r for r in json.loads(args.train_json.read_text())["results"] if "seconds_per_step" in r}
        if "b" in rows:
            train_step_s = rows["b"]["seconds_per_step"]
    print(f"\n{'variant':<18}{'s/eval':>8}{'first call s':>14}{'new tok/s':>11}{'share @100 steps':>18}{'drift':>10}")
    for r in results:
        if "error" in r:
            print(f"{r['variant']:<18}  failed: {r['error']}")
            continue
        share = "-"
        if train_step_s:
            share = f"{100 * r['seconds_per_eval'] / (100 * train_step_s + r['seconds_per_eval']):.2f}%"
        drift = "-" if r["merge_drift_max_abs"] is None else f"{r['merge_drift_max_abs']:.1e}"
        print(
            f"{r['variant']:<18}{r['seconds_per_eval']:>8.2f}{r['first_call_s']:>14.1f}{r['tokens_per_s']:>11,}"
            f"{share:>18}{drift:>10}"
        )
    common.write_json(args.json, {"shape": args.shape, "train_step_s_row_b": train_step_s, "results": results})


if __name__ == "__main__":
    main()
