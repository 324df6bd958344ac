"""Is the CUDA-graph replay of the static step the same function as the eager static step, and both the same as
PEFT's LoRA on the unpadded pack? On one GPU, random-weight model of a benchmark shape, LoRA r16 on all seven
projections with random B, dropout 0 (so every path draws nothing), bf16 autocast, FlashAttention-2 varlen.

    python benchmarks/static_step_check.py --shape toy --json out.json

For three packs (two of one bucket: the second replays the first's graph with new inputs): the loss and the
worst relative error over LoRA gradients (‖g − g_ref‖ / ‖g_ref‖ per tensor) of (1) the eager static step and
(2) the graphed step against (0) PEFT's own forward (flex attention, TRL's fused LM head) on the unpadded pack."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def _model(ckpt: Path, attn: str):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.bfloat16, attn_implementation=attn).cuda()
    config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=common.ALL_PROJECTIONS)
    torch.manual_seed(0)  # the same A in both models
    model = get_peft_model(model, config)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.02)
    return model


def _pack(lens: list[int], vocab: int, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, min(vocab, 4096), (1, sum(lens)), generator=gen)
    pos = torch.cat([torch.arange(n) for n in lens])[None]
    labels = ids.clone()
    labels[pos < 20] = -100  # a prompt of 20 tokens, and the first token of each example (TRL's collator)
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32)
    batch = {"input_ids": ids, "position_ids": pos, "labels": labels, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
             "max_length_q": max(lens), "max_length_k": max(lens)}  # fmt: skip
    return {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}


def _grads(model) -> dict:
    return {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}


def _worst(grads: dict, ref: dict) -> float:
    return max(((grads[n] - g).norm() / g.norm().clamp(min=1e-30)).item() for n, g in ref.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="toy", choices=sorted(common.SHAPES))
    parser.add_argument("--root", type=Path, default=Path("/tmp/medqa-bench"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from trl.trainer.utils import add_fused_lm_head

    from medqa.model.fused_blocks import fuse_lora_blocks
    from medqa.model.fused_lora import fuse_lora_layers
    from medqa.model.varlen_attention import use_flash_varlen
    from medqa.training.static_step import StaticStep

    ckpt = common.random_checkpoint(args.shape, args.root)
    vocab = common.SHAPES[args.shape]["vocab_size"]
    packs = [[300, 120, 500, 410], [512, 200, 250, 300], [100, 480, 377, 150]]  # 1330, 1262: bucket 1536; 1107
    rows = []
    ref_model = _model(ckpt, "flex_attention")
    add_fused_lm_head(ref_model.get_base_model())
    ref_model.train()
    model = _model(ckpt, "flex_attention")
    fuse_lora_layers(model)
    fuse_lora_blocks(model)
    use_flash_varlen(model)
    model.train()
    eager = StaticStep(model, 512, max_docs=8, pad_id=0, dtype=torch.bfloat16)
    graphed = StaticStep(model, 512, max_docs=8, pad_id=0, dtype=torch.bfloat16, graphs=True)
    for i, lens in enumerate(packs):
        batch = _pack(lens, vocab, seed=i)
        ref_model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            labels = batch["labels"]
            kwargs = {k: v for k, v in batch.items() if k != "labels"}
            ref = ref_model(**kwargs, labels=labels, fused_lm_head=True, use_cache=False).loss
        ref.backward()
        ref_grads = _grads(ref_model)
        model.zero_grad(set_to_none=True)
        loss_e, _ = eager(batch, None)
        grads_e = _grads(model)
        model.zero_grad(set_to_none=True)
        loss_g, _ = graphed(batch, None)
        torch.cuda.synchronize()
        grads_g = _grads(model)
        row = {
            "pack": lens, "bucket": (sum(lens) // 512 + 1) * 512, "loss_peft": ref.item(), "loss_eager": loss_e.item(),
            "loss_graph": loss_g.item(), "grad_err_eager_vs_peft": _worst(grads_e, ref_grads),
            "grad_err_graph_vs_peft": _worst(grads_g, ref_grads), "grad_err_graph_vs_eager": _worst(grads_g, grads_e),
            "graph_steps": dict(graphed.steps),
        }  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    common.write_json(args.json, {"shape": args.shape, "rows": rows})


if __name__ == "__main__":
    main()
