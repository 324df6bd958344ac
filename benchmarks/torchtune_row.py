"""Peer row for issue 19: torchtune 0.6.1's LoRA on the shape, batch and examples of row b_peft in train_throughput.py.

torchtune runs from its own `--target` folder on the GPU image's torch, so this imports nothing from medqa. Two steps,
each in the environment it needs (the examples are the ones unsloth_row.py trains on):

    # medqa's environment: the random-weight checkpoint (common.random_checkpoint) and b_peft's chat examples
    python benchmarks/unsloth_row.py --write-examples /tmp/ex.json --shape llama32_3b --root /tmp/medqa-bench
    # torchtune's environment: the single-device LoRA recipe's train step, 16 examples packed into one sequence a step
    python benchmarks/torchtune_row.py --checkpoint /tmp/medqa-bench/llama32_3b --examples /tmp/ex.json \
        --variants tt,tt_compile --json out.json
    # CPU check: the checkpoint's own (toy) shape through the component builder, fp32, SDPA with a dense mask
    python benchmarks/torchtune_row.py --tiny --checkpoint /tmp/medqa-bench/toy --examples /tmp/ex.json --variants tt

The choices, so that the row is torchtune's own way of training on b_peft's examples:
- Tokens: the chats are tokenized here with the checkpoint's HF tokenizer (transformers is on the image), as TRL's
  SFTTrainer does for prompt/completion chats: the prompt with the generation prompt, the prompt + completion, and
  the loss on the completion only (labels -100 up to where the two diverge). So the token ids are b_peft's.
- Model: `lora_llama3_2_3b` (r16/α32, q/k/v/output_proj + MLP, not the output head), bf16 on the GPU, the random HF
  checkpoint's weights converted with torchtune's `hf_to_tune` (every row trains the same weights); only the adapters
  train (`get_adapter_params` / `set_trainable_params`). No activation checkpointing (b_peft has none).
- Batch: 16 examples a step, in a shuffled order (seed 42), packed into ONE sequence as torchtune's PackedDataset
  does: tokens and labels concatenated, `input_pos` restarting at 0 for each example, a block-causal document mask
  from `packed_block_causal_mask` (flex attention's BlockMask on a GPU of capability >= 7.5, else a dense mask for
  SDPA), and the pack padded to one fixed length (PackedDataset pads to `max_seq_len`, the padding a last document
  with labels -100). torchtune compiles flex attention with `dynamic=False`, so every new length would recompile
  it: the fixed length is the smallest multiple of 128 that holds every step's 16 examples (or `--pack-len`).
  `tokens_per_s` counts real tokens only (the examples' lengths); the padding is torchtune's cost and is reported
  (`computed_per_step`, `padding`).
- Step: the recipe's `_loss_step` and `train` (lora_finetune_single_device.py): labels shifted by one with an ignore
  column, `CEWithChunkedOutputLoss` with `model.set_num_output_chunks`, loss × unmasked tokens, backward, gradients
  scaled by 1/tokens, fused AdamW (lr 2e-4, no weight decay, as b_peft; no LR schedule), `zero_grad(set_to_none=True)`,
  and the recipe's per-step `running_loss.item()`. The block mask is built in the timed step (the recipe's collate).
- Variants: `tt` eager and `tt_compile` the recipe's `compile: True` (`training.compile_model`: each decoder layer
  `.compile()`d; `training.compile_loss`: the chunked loss's cross-entropy compiled), both at the seed's dropout 0.05.
  `torchtune.training` imports `int4_weight_only` from torchao, which torchao 0.16+ dropped; with a newer torchao
  (the one Unsloth's wheel set carries) the same three helpers are used from the copies below (`helpers` says which).

Each variant runs in its own process (fresh CUDA context and peak memory) and prints `RESULT {json}`; a failure,
an import error on this torch included, is recorded as the row's `error`. Timing: `--warmup` steps, a device
synchronisation, then the host clock over `--steps` steps. Useful MFU as in train_throughput.py (4 · base params)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py (torch only at import)
import common  # noqa: E402

# variant -> (LoRA dropout, the recipe's `compile`). The seed's dropout is 0.05 (b_peft's).
VARIANTS = {"tt": (0.05, False), "tt_compile": (0.05, True)}
LORA_ATTN = ["q_proj", "k_proj", "v_proj", "output_proj"]  # torchtune's names of HF's q/k/v/o_proj
BATCH = 16  # examples an optimizer step (b_peft's per_device_train_batch_size)
IGNORE = -100  # torchtune's CROSS_ENTROPY_IGNORE_IDX, TRL's label mask


def encode(examples: list[dict], tokenizer) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) of each prompt/completion chat, as TRL's SFTTrainer tokenizes them for its
    completion-only loss: the completion starts where the tokenized prompt and prompt + completion diverge."""

    def ids(messages, **kwargs) -> list[int]:
        return list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"])

    out = []
    for ex in examples:
        prompt = ids(ex["prompt"], add_generation_prompt=True)
        full = ids(ex["prompt"] + ex["completion"])
        n = next((i for i, (a, b) in enumerate(zip(prompt, full, strict=False)) if a != b), min(len(prompt), len(full)))
        out.append((full, [IGNORE] * n + full[n:]))
    return out


def make_packs(encoded: list[tuple[list[int], list[int]]], n_steps: int, pack_len: int, pad_id: int, seed: int = 42):
    """`n_steps` packs of BATCH examples each, in a shuffled order (cycled), each padded to one length as
    PackedDataset._pad_pack does. Returns (packs, pack_len, real tokens of each pack)."""
    import torch

    order = list(range(len(encoded)))
    random.Random(seed).shuffle(order)
    groups = [[order[(s * BATCH + i) % len(order)] for i in range(BATCH)] for s in range(n_steps)]
    totals = [sum(len(encoded[i][0]) for i in g) for g in groups]
    if pack_len <= 0:  # the smallest multiple of 128 that holds every pack (flex's block size)
        pack_len = -(-max(totals) // 128) * 128
    if max(totals) > pack_len:
        raise ValueError(f"--pack-len {pack_len} is shorter than a step's {max(totals)} tokens")
    packs = []
    for group, total in zip(groups, totals, strict=True):
        tokens = [t for i in group for t in encoded[i][0]]
        labels = [t for i in group for t in encoded[i][1]]
        input_pos = [p for i in group for p in range(len(encoded[i][0]))]
        seq_lens = [len(encoded[i][0]) for i in group]
        pad = pack_len - total
        if pad:  # PackedDataset: pad ids, ignored labels, positions continuing (clamped), and one more document
            tokens += [pad_id] * pad
            labels += [IGNORE] * pad
            input_pos += [min(input_pos[-1] + 1 + k, pack_len - 1) for k in range(pad)]
            seq_lens.append(pad)
        packs.append({
            "tokens": torch.tensor(tokens), "labels": torch.tensor(labels),
            "input_pos": torch.tensor(input_pos), "seq_lens": torch.tensor(seq_lens),
        })  # fmt: skip
    return packs, pack_len, totals


# Copies of torchtune 0.6.1's torchtune/training/_compile.py (compile_model, compile_loss) and _grad_scaler.py
# (scale_grads), used where `torchtune.training` does not import (torchao > 0.15, see the module docstring).
def _compile_model(model) -> None:
    from torchtune.modules import TransformerCrossAttentionLayer, TransformerSelfAttentionLayer

    backend = os.environ.get("TORCH_COMPILE_BACKEND", "inductor")
    for m in reversed(list(model.modules())):  # per-layer compilation, as the recipe's default
        if isinstance(m, TransformerSelfAttentionLayer | TransformerCrossAttentionLayer):
            m.compile(backend=backend)


def _compile_loss(loss):
    import torch

    backend = os.environ.get("TORCH_COMPILE_BACKEND", "inductor")
    loss.compute_cross_entropy = torch.compile(loss.compute_cross_entropy, backend=backend)  # not the chunking
    return loss


def _scale_grads(model, scaler) -> None:
    device = None
    for p in model.parameters():
        if not device:
            device = p.device
            scaler = scaler.to(device)
        if p.grad is not None:
            p.grad *= scaler


def _helpers() -> tuple[object, object, object, str]:
    try:
        from torchtune.training import compile_loss, compile_model, scale_grads

        return compile_model, compile_loss, scale_grads, "torchtune.training"
    except ImportError as err:
        return _compile_model, _compile_loss, _scale_grads, f"copies ({type(err).__name__}: {err})"[:200]


@contextlib.contextmanager
def _default_dtype(dtype):
    """torchtune.training.set_default_dtype: the recipe builds the model under it (params born in bf16)."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def build_model(checkpoint: Path, dropout: float, tiny: bool, random_weights: bool, device, dtype):
    """The LoRA model (3B builder, or the checkpoint's own shape with --tiny) with the checkpoint's weights."""
    from torchtune.models.convert_weights import hf_to_tune
    from torchtune.models.llama3_2 import lora_llama3_2, lora_llama3_2_3b
    from torchtune.modules.peft import get_adapter_params, set_trainable_params

    cfg = json.loads((checkpoint / "config.json").read_text())
    lora = dict(lora_attn_modules=LORA_ATTN, apply_lora_to_mlp=True, apply_lora_to_output=False, lora_rank=16,
                lora_alpha=32, lora_dropout=dropout)  # fmt: skip
    with _default_dtype(dtype), device:
        if tiny:
            model = lora_llama3_2(
                **lora, vocab_size=cfg["vocab_size"], num_layers=cfg["num_hidden_layers"],
                num_heads=cfg["num_attention_heads"], num_kv_heads=cfg["num_key_value_heads"],
                embed_dim=cfg["hidden_size"], max_seq_len=8192, intermediate_dim=cfg["intermediate_size"],
                tie_word_embeddings=cfg.get("tie_word_embeddings", True),
            )  # fmt: skip
        else:
            shape = (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["vocab_size"])
            if shape != (3072, 28, 24, 128256):
                raise ValueError(f"{checkpoint} is not the Llama-3.2-3B shape {shape}; use --tiny for others")
            model = lora_llama3_2_3b(**lora)
    adapter = get_adapter_params(model)
    set_trainable_params(model, adapter)
    weights = "random"
    if not random_weights:
        from safetensors.torch import load_file

        hf: dict = {}
        for f in sorted(checkpoint.glob("*.safetensors")):
            hf.update(load_file(f, device=str(device)))
        sd = hf_to_tune(hf, num_heads=cfg["num_attention_heads"], num_kv_heads=cfg["num_key_value_heads"],
                        dim=cfg["hidden_size"], head_dim=cfg.get("head_dim"))  # fmt: skip
        own = model.state_dict()
        sd = {k: v.to(dtype) for k, v in sd.items() if k in own}  # tied models have no output.weight
        missing, unexpected = model.load_state_dict(sd, strict=False)
        base_missing = [k for k in missing if k not in adapter]
        if base_missing or unexpected:
            raise RuntimeError(f"checkpoint keys: missing {base_missing[:5]}, unexpected {unexpected[:5]}")
        weights = f"{checkpoint.name} (hf_to_tune)"
        del hf, sd
    return model, adapter, weights


def run_variant(name: str, args) -> dict:
    """Train `warmup + steps` optimizer steps of 16 packed examples with the recipe's step; time the last `steps`."""
    started = time.time()
    try:
        import torch
        import torchao
        import torchtune
        import transformers
        from torchtune.modules.attention_utils import packed_block_causal_mask
        from torchtune.modules.loss import CEWithChunkedOutputLoss
    except Exception as err:  # noqa: BLE001 - the import failing on this stack is itself the result
        return {"row": name, "error": f"import: {type(err).__name__}: {err}"[:600], "trace": common.error_tail()}
    from transformers import AutoTokenizer

    dropout, compile_ = VARIANTS[name]
    compile_model, compile_loss, scale_grads, helpers = _helpers()
    versions = {
        "torchtune": torchtune.__version__, "torchao": torchao.__version__, "torch": torch.__version__,
        "transformers": transformers.__version__, "import_s": round(time.time() - started, 1),
    }  # fmt: skip
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        raise RuntimeError("the 3B row needs a GPU; --tiny runs the checkpoint's own shape on the CPU")
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda and not args.fp32 else torch.float32
    torch.manual_seed(0)

    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    encoded = encode(json.loads(args.examples.read_text()), tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # PackedDataset: tokenizer.pad_id
    n_steps = args.warmup + args.steps
    packs, pack_len, totals = make_packs(encoded, n_steps, args.pack_len, pad_id)

    model, adapter, weights = build_model(args.checkpoint, dropout, args.tiny, args.random_weights, device, dtype)
    trainable = sum(p.numel() for p in adapter.values())
    n_params = sum(p.numel() for p in model.parameters()) - trainable  # the base's, as the other rows count
    if compile_:
        compile_model(model)
    loss_fn = CEWithChunkedOutputLoss()
    if compile_:
        loss_fn = compile_loss(loss_fn)
    model.set_num_output_chunks(loss_fn.num_output_chunks)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, fused=cuda)
    ignore_labels_cache = torch.full((1, 1), loss_fn.ignore_index, device=device)
    model.train()

    def loss_step(batch: dict):  # the recipe's _loss_step
        labels = batch.pop("labels")
        logits = model(**batch)
        labels = torch.hstack((labels[..., 1:], ignore_labels_cache[: labels.shape[0]]))
        if not isinstance(logits, list):
            labels = labels.reshape(-1)
            logits = logits.reshape(-1, logits.size(-1))
        loss = loss_fn(logits, labels)
        del logits
        return loss

    losses: list[float] = []
    attention = None

    def step(pack: dict) -> None:  # the recipe's train loop body, gradient accumulation 1
        nonlocal attention
        mask = packed_block_causal_mask(seq_lens=[pack["seq_lens"]])  # padded_collate_packed
        attention = attention or ("flex BlockMask" if type(mask).__name__ == "BlockMask" else "sdpa dense mask")
        batch = {
            "tokens": pack["tokens"][None].to(device), "labels": pack["labels"][None].to(device),
            "input_pos": pack["input_pos"][None].to(device), "mask": mask.to(device),
        }  # fmt: skip
        num_tokens = (batch["labels"] != loss_fn.ignore_index).sum()
        running_loss = loss_step(batch) * num_tokens
        running_loss.backward()
        scale_grads(model, 1 / num_tokens)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(running_loss.item() / num_tokens.item())  # the recipe's loss_to_log (a sync each step)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    setup_s = time.time() - started
    for pack in packs[: args.warmup]:
        step(pack)
    if cuda:
        torch.cuda.synchronize()
    graphs0 = _graphs() if compile_ else 0
    t0 = time.perf_counter()
    for pack in packs[args.warmup :]:
        step(pack)
    if cuda:
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    real = sum(totals[args.warmup :])
    tok_s = real / (t1 - t0)
    lora_b = max(float(p.detach().abs().max()) for k, p in adapter.items() if "lora_b" in k)
    return {
        "row": name,
        "lora_dropout": dropout,
        "compile": compile_,
        "tokens_per_s": round(tok_s),
        "tokens_per_step": round(real / args.steps),
        "computed_per_step": pack_len,
        "padding": round(1 - real / (pack_len * args.steps), 4),
        "seconds_per_step": round((t1 - t0) / args.steps, 3),
        "useful_mfu": common.useful_mfu(n_params, tok_s, common.peak_flops()),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "params": n_params,
        "trainable": trainable,
        "weights": weights,
        "dtype": str(dtype).removeprefix("torch."),
        "attention": attention,
        "helpers": helpers,
        "graphs_compiled_in_timed_steps": _graphs() - graphs0 if compile_ else None,
        "losses": [round(x, 4) for x in losses],
        "lora_b_absmax": lora_b,  # 0 at init: above 0 once the adapters have learned
        "setup_s": round(setup_s, 1),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "versions": versions,
    }


def _graphs() -> int:
    """Graphs dynamo has compiled so far (a recompile inside the timed steps shows up here)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="the random-weight model and tokenizer")
    parser.add_argument("--examples", type=Path, required=True, help="unsloth_row.py --write-examples's JSON")
    parser.add_argument("--variants", default="tt,tt_compile", help=f"comma list from {sorted(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=8, help="optimizer steps before the clock starts")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--pack-len", type=int, default=0, help="tokens a pack is padded to (0: the longest, to 128)")
    parser.add_argument("--tiny", action="store_true", help="the checkpoint's own shape (component builder), CPU ok")
    parser.add_argument("--fp32", action="store_true", help="fp32 weights on the GPU too (the CPU is always fp32)")
    parser.add_argument("--random-weights", action="store_true", help="torchtune's init, not the checkpoint's")
    parser.add_argument("--row-timeout", type=float, default=300, help="seconds before a variant is stopped")
    parser.add_argument("--json", type=Path, help="append each variant's result here (one JSON line each)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant in this process
    args = parser.parse_args(argv)

    for path in (args.checkpoint / "config.json", args.examples):
        if not path.exists():
            parser.error(f"{path} does not exist")
    if args.one:
        try:
            result = run_variant(args.one, args)
        except Exception as err:  # noqa: BLE001 - recorded as the row's result
            result = {"row": args.one, "error": f"{type(err).__name__}: {err}"[:600], "trace": common.error_tail()}
        print("RESULT " + json.dumps(result), flush=True)
        return
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    passed = _without(list(argv if argv is not None else sys.argv[1:]), "--variants", "--json", "--row-timeout")
    # torchtune's and torch.compile's own messages stay in the log
    common.run_isolated(
        args.variants.split(","), lambda name: [sys.executable, __file__, *passed, "--one", name], args.row_timeout,
        args.json,
    )  # fmt: skip


def _without(argv: list[str], *options: str) -> list[str]:
    """`argv` less the parent's own options (and their values), for the child's command line."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not any(a.startswith(o + "=") for o in options):
            out.append(a)
    return out


if __name__ == "__main__":
    main()
