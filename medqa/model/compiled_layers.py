"""Each decoder layer as one `torch.compile`d graph while training (`train.compile_layers`): inductor fuses what the
eager layer leaves as separate kernels (RMSNorm, RoPE, LoRA dropout and adds around the whole-block nodes).

The compiled function is medqa's own (`_layer_step`), installed as each layer's forward and used only while the
layer trains with gradients: evaluation and generation run the layer's own forward and never meet the training
graphs (generation also sees the layers as built: `layers_as_built`). Not `Module.compile`, which compiles
`Module._call_impl`, the code object every module's call goes through, and left each module's call to dynamo's cache.

On an H200 (s13, torch 2.11) the main job's probes failed in generation's compiled decode step (static cache, CUDA
graphs: "accessing tensor output of CUDAGraphs that has been overwritten") with every form of compiled layers: the
flex attention kept outside the training graphs (below) was disabled for dynamo everywhere, so the decode step's
graph broke at every layer. Only a training layer's graph leaves flex out now (a CPU test traces the decode step
whole, fullgraph)."""

from __future__ import annotations

import functools
import types
from contextlib import contextmanager

import torch

FLEX_OUTSIDE_GRAPH = "medqa_flex_outside_graph"


def _layer_step(layer, *args, **kwargs):
    """The layer's own forward: compiled below, so that its graphs live on this function's code object only."""
    return type(layer).forward(layer, *args, **kwargs)


@functools.cache
def compiled_step():
    """One compiled `_layer_step` for every layer (the layers share graphs; dynamic shapes: padding-free packs
    change length from step to step)."""
    return torch.compile(_layer_step, dynamic=True)


def _training_forward(self, *args, **kwargs):
    """The compiled layer while training with gradients, else the layer's own forward."""
    if self.training and torch.is_grad_enabled():
        return compiled_step()(self, *args, **kwargs)
    return type(self).forward(self, *args, **kwargs)


def _cuda_training_forward(self, hidden_states, *args, **kwargs):
    """`_training_forward` on CUDA; elsewhere the layer's own forward."""
    if not hidden_states.is_cuda:
        return type(self).forward(self, hidden_states, *args, **kwargs)
    return _training_forward(self, hidden_states, *args, **kwargs)


TRAINING_FORWARDS = (_training_forward, _cuda_training_forward)


@contextmanager
def layers_as_built(model):
    """The decoder layers with their class's forward for the duration (generation), then the training switch back:
    generation's compiled decode step traces the model it traces without compiled layers."""
    switches = {}
    for layer in model.modules():
        forward = getattr(layer.__dict__.get("forward"), "__func__", None)
        if forward in TRAINING_FORWARDS:
            switches[layer] = forward
            del layer.forward
    try:
        yield model
    finally:
        for layer, forward in switches.items():
            layer.forward = types.MethodType(forward, layer)


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model) -> list[torch.nn.Module]:
    base = _base(model)
    kinds = set(getattr(base, "_no_split_modules", None) or [])
    return [m for m in base.modules() if type(m).__name__ in kinds]


def compile_blocker(model) -> str | None:
    """Why `model`'s layers cannot be compiled whole, or None."""
    if any(not p.is_floating_point() for p in model.parameters()):
        return ("a 4-bit base (QLoRA): bitsandbytes' matmul does not trace inside a compiled layer "
                "(RecursionError on an H200, benchmarks/RESULTS.md s13)")  # fmt: skip
    return None


def compile_decoder_layers(model, cpu: bool = False) -> int:
    """Train every decoder layer of `model` through the compiled `_layer_step`; returns how many. Parameter names
    and checkpoints are unchanged. On CPU the layers stay eager unless `cpu` (as compile_norm_rope: inductor's CPU
    kernels take long to build, buy nothing at the tiny size, and crashed torch 2.13 under a forced CPU capability).

    Flex attention stays outside the layers' graphs: inductor cannot lower its backward with symbolic block-mask
    sizes (torch 2.11 on an H100: "unsupported operand type(s) for &: 'floor' and 'Add'"). The model switches to
    the same flex attention and mask functions under another name, with dynamo disabled around the attention
    call, so each layer compiles into the graphs before and after it and flex runs as in eager mode."""
    base = _base(model)
    layers = decoder_layers(model)
    if not layers:
        raise ValueError(f"train.compile_layers: {type(base).__name__} has no decoder layer class")
    if base.config._attn_implementation == "flex_attention":
        _register_flex_outside_graph()
        base.config._attn_implementation = FLEX_OUTSIDE_GRAPH
    forward = _training_forward if cpu else _cuda_training_forward
    for layer in layers:
        layer.forward = types.MethodType(forward, layer)
    return len(layers)


def _register_flex_outside_graph() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    flex = AttentionInterface._global_mapping["flex_attention"]
    outside = torch.compiler.disable(flex)

    def flex_outside_training_graph(module, *args, **kwargs):
        # Only a training layer's graph leaves flex out: generation's compiled decode step (static cache, CUDA
        # graphs) traces flex inside its one graph as it does without compiled layers. A disabled call there broke
        # that graph at every layer, and the next frame read the rotary cos/sin from a CUDA graph output already
        # overwritten (s13, H200: "accessing tensor output of CUDAGraphs that has been overwritten").
        if module.training and torch.is_grad_enabled():
            return outside(module, *args, **kwargs)
        return flex(module, *args, **kwargs)

    flex_outside_training_graph.outside = outside
    AttentionInterface.register(FLEX_OUTSIDE_GRAPH, flex_outside_training_graph)
    AttentionMaskInterface.register(FLEX_OUTSIDE_GRAPH, ALL_MASK_ATTENTION_FUNCTIONS._global_mapping["flex_attention"])
