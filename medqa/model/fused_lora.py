"""LoRA's training step in fewer kernels: the same function as PEFT's `lora.Linear`, computed as one autograd
node per adapted projection.

PEFT computes `base(x) + lora_B(lora_A(dropout(x.float()))) * scale` as ~10 kernels forward and as many
backward: the input is cast to the adapter's fp32 and back to bf16 (two activation-sized copies each way),
dropout runs in fp32, then a multiply and an add. On an H100 with the 3B shape that elementwise traffic took
more kernel time than the matmuls (benchmarks/RESULTS.md). Here the branch runs in the base output's dtype:

    forward:  mask, xd = dropout(x)      t = xd @ Aᵀ          y = base(x) + scale · t @ Bᵀ   (one addmm)
    backward: gB = scale · g @ B          dA = gBᵀ @ xd        dB = scale · gᵀ @ t
              dx = dropout_backward(gB @ A, mask)   (autograd adds the base layer's own input gradient)

The adapter weights stay fp32 parameters (optimizer state unchanged); only their bf16 copies enter the
matmuls, as they do under PEFT with autocast. Dropout is the same `native_dropout` that nn.Dropout calls (on
CPU a seeded run draws the same masks). Any case outside plain single-adapter LoRA (adapters disabled or
merged, several adapters, DoRA and other variants, a LoRA bias, extra forward arguments) takes PEFT's own
forward unchanged, so probes with the adapter off or folded behave as before."""

from __future__ import annotations

import types

import torch


class _LoraBranch(torch.autograd.Function):
    """y = base_out + scale · dropout(x) @ Aᵀ @ Bᵀ, with base_out computed (and differentiated) outside."""

    @staticmethod
    def forward(ctx, base_out, x, weight_a, weight_b, scale: float, p: float):
        # The branch computes in autocast's dtype when autocast is on (bf16 training; QLoRA's 4-bit base may
        # return fp32), else in the base output's dtype; the result has the base output's dtype, as in PEFT.
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else base_out.dtype
        with torch.autocast(device, enabled=False):
            x2 = x.reshape(-1, x.shape[-1]).to(dtype)
            a, b = weight_a.to(dtype), weight_b.to(dtype)
            if p > 0:
                xd, mask = torch.native_dropout(x2, p, True)
            else:
                xd, mask = x2, None
            t = xd @ a.t()
            out = torch.addmm(base_out.reshape(-1, base_out.shape[-1]).to(dtype), t, b.t(), alpha=scale)
        ctx.save_for_backward(xd, t, a, b, mask)
        ctx.scale, ctx.p, ctx.x_shape, ctx.x_dtype = scale, p, x.shape, x.dtype
        ctx.weight_dtypes = (weight_a.dtype, weight_b.dtype)
        return out.view(base_out.shape).to(base_out.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        xd, t, a, b, mask = ctx.saved_tensors
        g = grad_out.reshape(-1, grad_out.shape[-1]).to(a.dtype)
        g_b = (g @ b).mul_(ctx.scale)  # (tokens, r): small
        grad_x = grad_a = grad_b = None
        if ctx.needs_input_grad[1]:
            grad_x = g_b @ a
            if mask is not None:
                grad_x = torch.ops.aten.native_dropout_backward(grad_x, mask, 1.0 / (1.0 - ctx.p))
            grad_x = grad_x.view(ctx.x_shape).to(ctx.x_dtype)
        if ctx.needs_input_grad[2]:
            grad_a = (g_b.t() @ xd).to(ctx.weight_dtypes[0])
        if ctx.needs_input_grad[3]:
            grad_b = (g.t() @ t).mul_(ctx.scale).to(ctx.weight_dtypes[1])
        return grad_out, grad_x, grad_a, grad_b, None, None


def _fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """A bound replacement of `lora.Linear.forward` (and of its 4-bit/8-bit variants): the fused branch for
    plain single-adapter LoRA, PEFT's own forward for everything else."""
    adapters = self.active_adapters
    name = adapters[0] if len(adapters) == 1 else None
    if (
        args
        or kwargs
        or name is None
        or self.disable_adapters
        or self.merged
        or name not in self.lora_A
        or name in getattr(self, "lora_variant", {})
        or self.lora_B[name].bias is not None
    ):
        return type(self).forward(self, x, *args, **kwargs)
    dropout = self.lora_dropout[name]
    p = float(dropout.p) if isinstance(dropout, torch.nn.Dropout) and dropout.training else 0.0
    base_out = self.base_layer(x)
    weight_a, weight_b, scale = self.lora_A[name].weight, self.lora_B[name].weight, self.scaling[name]
    if torch.compiler.is_compiling():
        return _traced_branch(base_out, x, weight_a, weight_b, scale, p)
    return _LoraBranch.apply(base_out, x, weight_a, weight_b, scale, p)


def _traced_branch(base_out, x, weight_a, weight_b, scale: float, p: float) -> torch.Tensor:
    """The same function in plain differentiable ops, for a layer under torch.compile (train.compile_layers):
    inductor fuses the elementwise work itself. (On an H100 the autograd.Function traced by dynamo inside a
    compiled layer with flex attention trained nothing: the LoRA B weights stayed zero, as in
    pytorch/pytorch#159299 where `ctx.needs_input_grad` reads False; on CPU it trained. benchmarks/RESULTS.md.)"""
    dtype = base_out.dtype
    # A Python branch, not `training=p > 0`: with dynamic shapes dynamo makes p symbolic, dropout() refuses a
    # symbolic bool, and every LoRA projection broke its layer's graph in two (s13, TORCH_LOGS=graph_breaks).
    xd = torch.nn.functional.dropout(x.to(dtype), p, training=True) if p > 0 else x.to(dtype)
    return base_out + (xd @ weight_a.to(dtype).t()) @ weight_b.to(dtype).t() * scale


def fuse_lora_layers(model: torch.nn.Module) -> int:
    """Route every LoRA linear layer of `model` (a PeftModel) through the fused branch; returns how many.
    Idempotent; the parameters, their names and the saved adapter are untouched."""
    from peft.tuners.lora import LoraLayer

    count = 0
    for module in model.modules():
        # bitsandbytes' 4-bit and 8-bit linears subclass nn.Linear: QLoRA takes the fused branch too.
        if isinstance(module, LoraLayer) and isinstance(module.base_layer, torch.nn.Linear):
            module.forward = types.MethodType(_fused_forward, module)
            count += 1
    return count
