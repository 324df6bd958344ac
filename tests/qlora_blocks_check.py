"""QLoRA's check for tests/test_fused_blocks.py, run in its own process with bitsandbytes on the path: PEFT's
bitsandbytes LoRA and the whole-block nodes over the same NF4 projections of the tiny model (CPU, fp32 compute)
give the same loss and every LoRA gradient. Exits non-zero on a difference; prints a JSON summary last."""

from __future__ import annotations

import json

import torch

from medqa.config.build import settings_from_cfg
from medqa.config.compose import compose_config
from tests.early import TEST_OVERRIDES
from tests.test_fused_blocks import _assert_same, _fuse_all, _training_batch
from tests.test_fused_lora import _lora_model, _loss_and_grads


def _quantize_projections(model) -> None:
    """The seven projections of each layer as bitsandbytes NF4 linears (QLoRA's base), quantized on CPU."""
    import bitsandbytes as bnb

    for layer in model.model.layers:
        for parent, names in ((layer.self_attn, ("q_proj", "k_proj", "v_proj", "o_proj")),
                              (layer.mlp, ("gate_proj", "up_proj", "down_proj"))):  # fmt: skip
            for name in names:
                dense = getattr(parent, name)
                quantized = bnb.nn.Linear4bit(
                    dense.in_features, dense.out_features, bias=False, compute_dtype=torch.float32, quant_type="nf4"
                )
                quantized.weight = bnb.nn.Params4bit(dense.weight.data, requires_grad=False, quant_type="nf4")
                setattr(parent, name, quantized.to("cpu"))  # .to quantizes the weight


def main() -> None:
    from medqa.model import fused_blocks

    calls = {"qkv": 0, "mlp": 0}
    for key, node in (("qkv", fused_blocks._SharedInputLora), ("mlp", fused_blocks._LoraSwiGLU)):

        def counted(*args, _apply=node.apply, _key=key):
            calls[_key] += 1
            return _apply(*args)

        node.apply = counted
    settings = settings_from_cfg(compose_config([*TEST_OVERRIDES, "lora=attn_mlp"]))
    model, tokenizer = _lora_model(settings, dropout=0.0, before_lora=_quantize_projections)
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    dense = fused_blocks._dense_weight(q_proj.base_layer.weight, torch.float32)
    assert dense.shape == (q_proj.out_features, q_proj.in_features) and dense.abs().sum() > 0
    batch = _training_batch(tokenizer)
    loss_peft, grads_peft = _loss_and_grads(model, batch, seed=7)
    calls_peft = dict(calls)
    layers = model.config.num_hidden_layers
    assert _fuse_all(model) == (layers, layers)
    loss, grads = _loss_and_grads(model, batch, seed=7)
    _assert_same(loss, grads, loss_peft, grads_peft)
    from medqa.model.compiled_layers import compile_blocker

    summary = {
        "base": type(q_proj.base_layer).__name__, "weight_dtype": str(q_proj.base_layer.weight.dtype),
        "layers": layers, "calls_peft": calls_peft, "calls_fused": {k: calls[k] - calls_peft[k] for k in calls},
        "gradients_compared": len(grads_peft), "loss": loss.item(), "loss_peft": loss_peft.item(),
        "compile_blocker": compile_blocker(model),
    }  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
