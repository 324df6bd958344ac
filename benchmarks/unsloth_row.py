"""Peer row for issue 19: Unsloth's LoRA on the shape, batch and examples of row b_peft in train_throughput.py.

Unsloth pins trl<=1.15 and datasets<5, so this runs from its own package folder and imports nothing from medqa.
Two steps, each in the environment it needs:

    # medqa's environment: the random-weight checkpoint (common.random_checkpoint) and b_peft's chat examples
    python benchmarks/unsloth_row.py --write-examples /tmp/ex.json --shape llama32_3b --root /tmp/medqa-bench
    # Unsloth's environment: TRL's SFTTrainer as Unsloth patches it, padding-free, 16 examples a step
    python benchmarks/unsloth_row.py --checkpoint /tmp/medqa-bench/llama32_3b --examples /tmp/ex.json \
        --variants u_drop05,u_drop0 --json out.json

Each variant runs in its own process (fresh CUDA context and peak memory) and prints `RESULT {json}`; a failure,
an import error on this torch/transformers included, is recorded as the row's `error`. Tokens are real tokens
(the examples' own lengths, counted per batch as the collator builds it); useful MFU as in train_throughput.py."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/common.py (torch only at import)
import common  # noqa: E402

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# variant -> LoRA dropout. b_peft runs the seed's dropout 0.05; 0 is Unsloth's own default.
VARIANTS = {"u_drop05": 0.05, "u_drop0": 0.0}


def write_examples(path: Path, shape: str, root: Path, n: int) -> None:
    """Build (once) the random checkpoint and write the chat examples train_throughput.py trains on (medqa's env)."""
    common.random_checkpoint(shape, root)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(root / shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(common.chat_examples(tokenizer, n)))
    print(f"{n} examples -> {path}; checkpoint {root / shape}", flush=True)


def run_variant(name: str, checkpoint: Path, examples: Path, steps: int, warmup: int, out_dir: Path) -> dict:
    """Train `warmup + steps` steps of 16 examples with Unsloth's LoRA r16/α32 on all 7 projections; time the last
    `steps` by the host clock after a device synchronisation, as train_throughput.py does."""
    started = time.time()
    try:
        import unsloth  # first, before transformers/trl/peft, as Unsloth requires
        from unsloth import FastLanguageModel
    except Exception as err:  # noqa: BLE001 - the import failing on this stack is itself the result
        return {"row": name, "error": f"import unsloth: {type(err).__name__}: {err}", "trace": common.error_tail()}
    import peft
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    versions = {
        "unsloth": unsloth.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
        "trl": trl.__version__, "peft": peft.__version__, "import_s": round(time.time() - started, 1),
    }  # fmt: skip
    cuda = torch.cuda.is_available()
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(checkpoint), max_seq_length=8192, dtype=torch.bfloat16 if cuda else torch.float32,
        load_in_4bit=False, use_gradient_checkpointing=False,
    )  # fmt: skip
    n_params = sum(p.numel() for p in model.parameters())
    model = FastLanguageModel.get_peft_model(
        model, r=16, lora_alpha=32, lora_dropout=VARIANTS[name], target_modules=ALL_PROJECTIONS, bias="none",
        use_gradient_checkpointing=False, random_state=0,
    )  # fmt: skip
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    layer = _first_layer(model)
    patched = {  # which forward each part of a decoder layer got: Unsloth's fused LoRA kernels or PEFT's own
        "qkv": getattr(getattr(layer.self_attn, "apply_qkv", None), "__name__", None),
        "o": getattr(getattr(layer.self_attn, "apply_o", None), "__name__", None),
        "mlp": getattr(getattr(layer.mlp, "forward", None), "__name__", None),
    }
    if tokenizer.pad_token is None:  # TRL needs one even without padding
        tokenizer.pad_token = tokenizer.eos_token
    dataset = Dataset.from_list(json.loads(examples.read_text()))
    config = SFTConfig(  # train=gpu's SFTConfig (medqa/training/trainer.py), without evaluation and saving
        output_dir=str(out_dir / name), max_steps=warmup + steps, learning_rate=2e-4, per_device_train_batch_size=16,
        gradient_accumulation_steps=1, warmup_steps=100, lr_scheduler_type="linear", weight_decay=0.0,
        max_length=None, padding_free=True, logging_steps=1000, save_strategy="no",
        optim="adamw_torch_fused" if cuda else "adamw_torch", gradient_checkpointing=False, bf16=cuda,
        seed=42, data_seed=42, report_to="none", dataloader_pin_memory=cuda,
        include_num_input_tokens_seen="non_padding",
    )  # fmt: skip
    marks: dict[int, tuple[float, int]] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (warmup, warmup + steps):
                if cuda:
                    torch.cuda.synchronize()
                marks[state.global_step] = (time.perf_counter(), state.num_input_tokens_seen)

    trainer = SFTTrainer(
        model=model, processing_class=tokenizer, train_dataset=dataset, args=config, callbacks=[Clock()]
    )
    batches: list[tuple[int, int]] = []  # (real tokens, computed positions) of each batch, in the order trained
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        real = int(mask.sum()) if mask is not None else sum(len(f["input_ids"]) for f in features)
        batches.append((real, ids.numel()))
        return batch

    trainer.data_collator = counting  # train() builds its dataloader from trainer.data_collator
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    setup_s = time.time() - started
    trainer.train()
    (t0, n0), (t1, n1) = marks[warmup], marks[warmup + steps]
    timed = batches[warmup : warmup + steps]  # batch k is step k+1's; prefetching appends later ones after
    real = sum(b[0] for b in timed)
    tok_s = real / (t1 - t0)
    return {
        "row": name,
        "lora_dropout": VARIANTS[name],
        "tokens_per_s": round(tok_s),
        "tokens_per_step": round(real / steps),
        "computed_per_step": round(sum(b[1] for b in timed) / steps),
        "trainer_tokens_per_step": round((n1 - n0) / steps),
        "seconds_per_step": round((t1 - t0) / steps, 3),
        "useful_mfu": common.useful_mfu(n_params, tok_s, common.peak_flops()),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "params": n_params,
        "trainable": trainable,
        "patched": patched,
        "setup_s": round(setup_s, 1),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "versions": versions,
    }


def _first_layer(model):
    inner = model
    while not hasattr(inner, "layers"):  # PeftModel -> LoraModel -> LlamaForCausalLM -> LlamaModel
        inner = getattr(inner, "model", None) or inner.base_model
    return inner.layers[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-examples", type=Path, help="(medqa's env) write the examples here and stop")
    parser.add_argument("--shape", default="llama32_3b")
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("MEDQA_BENCH", "/tmp/medqa-bench")))
    parser.add_argument("--n-examples", type=int, default=400, help="as train_throughput.py --examples")
    parser.add_argument("--checkpoint", type=Path, help="folder of the random-weight model and its tokenizer")
    parser.add_argument("--examples", type=Path, help="JSON list of prompt/completion chats")
    parser.add_argument("--variants", default="u_drop05,u_drop0", help=f"comma list from {sorted(VARIANTS)}")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=8, help="optimizer steps before the clock starts")
    parser.add_argument("--row-timeout", type=float, default=300, help="seconds before a variant is stopped")
    parser.add_argument("--json", type=Path, help="append each variant's result here (one JSON line each)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant in this process
    args = parser.parse_args(argv)

    if args.write_examples:
        write_examples(args.write_examples, args.shape, args.root, args.n_examples)
        return
    if not args.checkpoint or not args.examples:
        parser.error("--checkpoint and --examples are required (or --write-examples)")
    for path in (args.checkpoint / "config.json", args.examples):
        if not path.exists():
            parser.error(f"{path} does not exist")
    if args.one:
        try:
            result = run_variant(args.one, args.checkpoint, args.examples, args.steps, args.warmup, args.root)
        except Exception as err:  # noqa: BLE001 - recorded as the row's result
            result = {"row": args.one, "error": f"{type(err).__name__}: {err}"[:600], "trace": common.error_tail()}
        print("RESULT " + json.dumps(result), flush=True)
        return
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")

    def child(name: str) -> list[str]:
        cmd = [sys.executable, __file__, "--one", name, "--checkpoint", str(args.checkpoint)]
        cmd += ["--examples", str(args.examples), "--steps", str(args.steps), "--warmup", str(args.warmup)]
        return cmd + ["--root", str(args.root)]

    common.run_isolated(args.variants.split(","), child, args.row_timeout, args.json)  # Unsloth's messages: the log


if __name__ == "__main__":
    main()
