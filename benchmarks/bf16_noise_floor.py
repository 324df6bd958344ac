"""How far apart two bf16 computations of the same function land on a random deep Llama (CPU, no GPU needed):
the final hidden states of bf16 eager (sdpa), bf16 eager attention, and bf16 with `train.compile_norm_rope`, each
against the fp32 computation and against each other (relative L2). It is the yardstick for the whole-backbone
gradient checks of `block_levers.py --check-only`, whose random 28-layer model amplifies rounding.

    python benchmarks/bf16_noise_floor.py            # 28 layers, hidden 512, 768 tokens: ~1 min on 2 cores"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--tokens", type=int, default=768)
    args = parser.parse_args(argv)

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from medqa.model.compiled_norm_rope import compile_norm_rope

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=args.hidden, intermediate_size=3 * args.hidden, num_hidden_layers=args.layers,
                         num_attention_heads=8, num_key_value_heads=2, vocab_size=4096, rope_theta=500000.0,
                         max_position_embeddings=max(4096, args.tokens), attn_implementation="sdpa")  # fmt: skip
    model = LlamaForCausalLM(config).to(torch.bfloat16).train()
    ids = torch.randint(5, config.vocab_size, (1, args.tokens))

    def hidden(bf16: bool, attention: str = "sdpa") -> torch.Tensor:
        model.config._attn_implementation = attention
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model.model(input_ids=ids, use_cache=False).last_hidden_state.float()

    with torch.no_grad():  # weights are bf16 numbers: the fp32 copy computes the same function exactly
        model.float()
        reference = hidden(bf16=False)
        model.to(torch.bfloat16)
    states = {"bf16 sdpa": hidden(True), "bf16 eager attention": hidden(True, "eager")}
    compile_norm_rope(model, cpu=True)
    model.train()
    with torch.enable_grad():  # the compiled path is taken while training with gradients
        model.config._attn_implementation = "sdpa"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            states["bf16 compile_norm_rope"] = model.model(input_ids=ids, use_cache=False).last_hidden_state.float()

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a.detach() - b).norm() / b.norm()).item()

    print(f"{args.layers} layers, hidden {args.hidden}, {args.tokens} tokens; relative L2 of the final hidden states")
    print(f"{'variant':<24}{'vs fp32':>10}{'vs bf16 sdpa':>14}")
    for name, state in states.items():
        print(f"{name:<24}{rel(state, reference):>10.2e}{rel(state, states['bf16 sdpa']):>14.2e}")


if __name__ == "__main__":
    main()
