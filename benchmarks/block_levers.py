"""The LoRA and attention levers of issue 19 one at a time, on the decoder stack alone: a random-weight model of a
real shape with PEFT LoRA r16/α32 on all 7 projections, one padding-free pack of 16 examples (120-512 tokens
each, as train_throughput.py), forward + backward of the backbone, timed with CUDA events. Prints a table.

    python benchmarks/block_levers.py                          # Llama-3.2-3B shape, on a GPU
    python benchmarks/block_levers.py --shape toy --variants peft,fused_lora,fused_blocks --iters 2  # CPU try-out

Variants: PEFT's own LoRA forward; `train.fused_lora` (one node a projection); + `train.fused_blocks` (q/k/v one
node, the MLP one node), + `train.joint_projections` (q/k/v and gate/up one GEMM each way); each with transformers'
flex attention or `train.flash_varlen` (FlashAttention-2 varlen).
Before timing, each variant's loss and LoRA gradients (dropout 0) are compared with PEFT + flex: relative error
of the loss and the worst LoRA gradient (bf16: ~1e-2 is rounding). The LM head and optimizer are left out (the
same in every variant); train_throughput.py times whole steps."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

VARIANTS = [
    "peft",
    "fused_lora",
    "fused_blocks",
    "peft+flash",
    "fused_lora+flash",
    "fused_blocks+flash",
    "fused_blocks+cnr",
    "fused_blocks+flash+cnr",
    "fused_blocks+joint",
    "fused_blocks+flash+cnr+joint",
]  # cnr: train.compile_norm_rope; joint: train.joint_projections


def _reset(model) -> None:
    """Undo every per-instance forward that a lever bound (back to the classes' own forwards)."""
    for module in model.modules():
        for bound in ("forward", "medqa_rotary", "medqa_joint"):  # packed weights stay views: harmless
            module.__dict__.pop(bound, None)


def _apply(model, variant: str) -> None:
    from medqa.model.compiled_norm_rope import compile_norm_rope
    from medqa.model.fused_blocks import fuse_lora_blocks
    from medqa.model.fused_lora import fuse_lora_layers
    from medqa.model.varlen_attention import use_flash_varlen

    _reset(model)
    base, *extras = variant.split("+")
    if base in ("fused_lora", "fused_blocks"):
        fuse_lora_layers(model)
    if base == "fused_blocks":
        fuse_lora_blocks(model, joint_projections="joint" in extras)
    if "flash" in extras:
        use_flash_varlen(model)
    if "cnr" in extras:
        compile_norm_rope(model)


def _pack(n: int, vocab: int, seed: int = 0) -> tuple[list[int], dict]:
    rng = random.Random(seed)
    lens = [rng.randint(120, 512) for _ in range(n)]
    import torch

    ids = torch.randint(5, vocab, (1, sum(lens)))
    pos = torch.cat([torch.arange(x) for x in lens])[None]
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32)
    return lens, {"input_ids": ids, "position_ids": pos, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
                  "max_length_q": max(lens), "max_length_k": max(lens), "use_cache": False}  # fmt: skip


def check_attention(shape: str, examples: int) -> list[dict]:
    """Output and q/k/v gradients of transformers' flex path and of the FlashAttention-2 varlen path on one
    packed batch of the shape's heads, against causal attention per example in fp32 (relative errors)."""
    import torch
    from transformers.integrations.flex_attention import flex_attention_forward
    from transformers.masking_utils import create_causal_mask

    from medqa.model.varlen_attention import flash_varlen_attention

    s = common.SHAPES[shape]
    lens, batch = _pack(examples, 100)
    cu, n = batch["cu_seq_lens_q"].cuda(), sum(lens)
    torch.manual_seed(1)
    q = torch.randn(1, s["num_attention_heads"], n, s["head_dim"], device="cuda")
    k, v = (torch.randn(1, s["num_key_value_heads"], n, s["head_dim"], device="cuda") for _ in range(2))
    grad = torch.randn(1, n, s["num_attention_heads"], s["head_dim"], device="cuda")
    scale = s["head_dim"] ** -0.5

    def run(fn):
        leaves = [t.detach().to(torch.bfloat16).requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        out.backward(grad.to(out.dtype))
        return [out.float(), *(t.grad.float() for t in leaves)]

    def reference(q_, k_, v_):
        out = torch.empty(1, n, q_.shape[1], q_.shape[3], device="cuda")
        qf, kf, vf = (t.float() for t in (q_, k_, v_))
        for a, b in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
            o = torch.nn.functional.scaled_dot_product_attention(
                qf[:, :, a:b], kf[:, :, a:b], vf[:, :, a:b], is_causal=True, scale=scale, enable_gqa=True
            )
            out[:, a:b] = o.transpose(1, 2)
        return out

    class Module(torch.nn.Module):
        training = True

    from transformers import LlamaConfig

    config = LlamaConfig(**s, attn_implementation="flex_attention")
    embeds = torch.zeros(1, n, 8, device="cuda", dtype=torch.bfloat16)
    mask = create_causal_mask(config=config, inputs_embeds=embeds, attention_mask=None, past_key_values=None,
                              position_ids=batch["position_ids"].cuda())  # fmt: skip
    flex = lambda q_, k_, v_: flex_attention_forward(Module(), q_, k_, v_, mask, scaling=scale)[0]  # noqa: E731
    flash = lambda q_, k_, v_: flash_varlen_attention(  # noqa: E731
        Module(), q_, k_, v_, None, scaling=scale, cu_seq_lens_q=cu, max_length_q=max(lens)
    )[0]
    ref = run(reference)
    rows = []
    for name, fn in (("flex", flex), ("flash_varlen", flash)):
        got = run(fn)
        errs = [((g - r).norm() / r.norm()).item() for g, r in zip(got, ref, strict=True)]
        named = {f"{x}_rel_err": float(f"{e:.2e}") for x, e in zip("oqkv", errs, strict=True)}
        rows.append({"attention": name, **named})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="llama32_3b", choices=sorted(common.SHAPES))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--dropouts", default="0.05,0.0", help="LoRA dropout rates timed (each variant, each rate)")
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--fp32-reference", action="store_true", help="compare every variant with fp32, not PEFT bf16")
    parser.add_argument("--check-only", action="store_true", help="only each variant's loss/gradient check, no timing")
    parser.add_argument("--check-attention", action="store_true", help="only compare flex and flash with fp32")
    args = parser.parse_args(argv)
    if args.check_attention:
        common.write_json(args.json, {"shape": args.shape, "attention": check_attention(args.shape, args.examples)})
        return

    import torch
    from peft import get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from medqa.model.loading import lora_config
    from medqa.settings.model import LoraSettings

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    attn = "flex_attention" if cuda else "sdpa"  # CPU flex has no backward
    config = LlamaConfig(**common.SHAPES[args.shape], max_position_embeddings=8192, rope_theta=500000.0,
                         attn_implementation=attn, dtype=dtype)  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    # Built with dropout > 0 so PEFT makes nn.Dropout modules (with 0 it makes nn.Identity and no rate can be set)
    lora = LoraSettings(r=16, alpha=32, dropout=0.05, target_modules=list(common.ALL_PROJECTIONS))
    model = get_peft_model(model, lora_config(lora))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)  # a trained adapter is not zero
    backbone = model.base_model.model.model
    lens, batch = _pack(args.examples, min(config.vocab_size, 4096))
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    tokens = sum(lens)
    lora_params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]

    # A fixed random readout of the last hidden states: the mean square of RMS-normed states is ~1 whatever the
    # weights (scale invariant), so its gradients are rounding noise and kernels cannot be compared through it.
    readout = torch.randn(1, tokens, config.hidden_size, device=device)

    def step(autocast: bool = cuda) -> torch.Tensor:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            hidden = backbone(**batch).last_hidden_state
        loss = (hidden.float() * readout).mean()
        loss.backward()
        return loss.detach()

    def set_dropout(p: float) -> None:
        for m in dropouts:
            m.p = p

    model.train()
    reference = None
    if args.fp32_reference:  # the exact function: PEFT's LoRA, the model's attention, every weight and op in fp32
        set_dropout(0.0)
        dtypes = {p: p.dtype for p in model.parameters()}
        with torch.no_grad():
            model.float()  # bf16 weights are fp32 numbers: exact, and restored exactly below
        model.zero_grad(set_to_none=True)
        loss = step(autocast=False)
        reference = (loss, {n: p.grad.float().clone() for n, p in lora_params})
        with torch.no_grad():
            for p, dtype in dtypes.items():
                p.data = p.data.to(dtype)
    results = []
    for variant in args.variants.split(","):
        if "flash" in variant.split("+") and not cuda:
            continue
        try:
            _apply(model, variant)
            set_dropout(0.0)
            model.zero_grad(set_to_none=True)
            loss = step()
            grads = {n: p.grad.float().clone() for n, p in lora_params}
            if reference is None:
                reference = (loss, grads)
            errs = {n: ((g - reference[1][n]).norm() / reference[1][n].norm()).item() for n, g in grads.items()}
            worst = max(errs, key=errs.get)
            check = {
                "loss_rel_err": abs(loss.item() - reference[0].item()) / abs(reference[0].item()),
                "worst_grad_rel_err": errs[worst],
                "median_grad_rel_err": statistics.median(errs.values()),
            }
            del grads
            if args.check_only:
                row = {
                    "variant": variant,
                    "worst_grad_param": worst,
                    **{k: float(f"{v:.2e}") for k, v in check.items()},
                }
                print(json.dumps(row), flush=True)
                results.append(row)
                continue
            for p in [float(x) for x in args.dropouts.split(",")]:
                set_dropout(p)
                times = []
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                for i in range(args.warmup + args.iters):
                    model.zero_grad(set_to_none=True)
                    if cuda:
                        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        start.record()
                    else:
                        import time

                        t0 = time.perf_counter()
                    step()
                    if cuda:
                        end.record()
                        torch.cuda.synchronize()
                        ms = start.elapsed_time(end)
                    else:
                        ms = 1e3 * (time.perf_counter() - t0)
                    if i >= args.warmup:
                        times.append(ms)
                med = statistics.median(times)
                row = {
                    "variant": variant, "dropout": p, "ms": round(med, 2),
                    "ms_spread": [round(min(times), 2), round(max(times), 2)],
                    "backbone_tok_s": round(tokens / med * 1e3),
                    "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
                    "tokens": tokens, "worst_grad_param": worst, **{k: float(f"{v:.2e}") for k, v in check.items()},
                }  # fmt: skip
                print(json.dumps(row), flush=True)
                results.append(row)
        except Exception as err:  # a failing variant is a row of the table, not the end of it
            results.append({"variant": variant, "error": f"{type(err).__name__}: {err}"[:400]})
            print(json.dumps(results[-1]), flush=True)
    _reset(model)
    common.write_json(args.json, {"shape": args.shape, "tokens": tokens, "results": results})
    base = {r["dropout"]: r["ms"] for r in results if r.get("variant") == "fused_lora" and "ms" in r}
    head = f"{'ms':>9}{'vs fused_lora':>15}{'tok/s':>9}{'GiB':>7}{'loss err':>10}{'grad err':>10}"
    print(f"\n{'variant':<22}{'p':>6}{head}")
    for r in results:
        if "error" in r:
            print(f"{r['variant']:<22}  failed: {r['error']}")
            continue
        if "ms" not in r:  # --check-only
            print(
                f"{r['variant']:<22}  loss err {r['loss_rel_err']:.1e}  grad err worst {r['worst_grad_rel_err']:.1e} "
                f"({r['worst_grad_param']}), median {r['median_grad_rel_err']:.1e}"
            )
            continue
        gain = f"{base[r['dropout']] / r['ms'] - 1:+.1%}" if r["dropout"] in base else "-"
        print(f"{r['variant']:<22}{r['dropout']:>6}{r['ms']:>9.1f}{gain:>15}{r['backbone_tok_s']:>9,}"
              f"{r['peak_gib'] or 0:>7.1f}{r['loss_rel_err']:>10.1e}{r['worst_grad_rel_err']:>10.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
