"""Attention over padding-free packs with FlashAttention-2's varlen kernel, as torch ships it
(`torch.ops.aten._flash_attention_forward/_backward`), for `train.flash_varlen`.

transformers' flex path repeats K and V to the query heads when their count is not a power of two (the 3B shape
has 24 query heads over 8 KV heads: two extra copies a layer and pass); the varlen kernel reads the 8 KV heads
as they are (native GQA) and keeps examples apart through the cumulative sequence lengths that TRL's
padding-free collator already passes (`cu_seq_lens_q`, `max_length_q`), so no mask is built either. Used only
for a training forward over a packed batch on CUDA; evaluation, generation and CPU keep the model's attention."""

from __future__ import annotations

import types

import torch

NAME = "medqa_flash_varlen"


class _FlashVarlen(torch.autograd.Function):
    """Causal attention within each packed sequence: q (T, Hq, D), k and v (T, Hkv, D), Hq a multiple of Hkv."""

    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens, max_len: int, scale: float | None):
        out, lse, rng_state, unused, _ = torch.ops.aten._flash_attention_forward(
            q, k, v, cu_seqlens, cu_seqlens, max_len, max_len, 0.0, True, False, scale=scale
        )
        ctx.save_for_backward(q, k, v, out, lse, rng_state, unused, cu_seqlens)
        ctx.max_len, ctx.scale = max_len, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse, rng_state, unused, cu = ctx.saved_tensors
        dq, dk, dv = torch.ops.aten._flash_attention_backward(
            grad_out.contiguous(), q, k, v, out, lse, cu, cu, ctx.max_len, ctx.max_len, 0.0, True, rng_state,
            unused, scale=ctx.scale,
        )  # fmt: skip
        return dq, dk, dv, None, None, None


def flash_varlen_attention(
    module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs
):
    """transformers' attention-function interface: query (1, Hq, T, D), key/value (1, Hkv, T, D) of one packed
    row; returns ((1, T, Hq, D), None)."""
    cu, max_len = kwargs.get("cu_seq_lens_q"), kwargs.get("max_length_q")
    if cu is None or max_len is None or query.shape[0] != 1 or dropout:
        raise ValueError(f"{NAME} needs one padding-free row with cu_seq_lens_q/max_length_q and no attention dropout")
    # The kernel takes bf16/fp16 only: a QLoRA model (norms upcast to fp32) computes attention in autocast's dtype
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else query.dtype
    if query.is_cuda and dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"{NAME} computes in bf16 or fp16, not {dtype}: train with train.precision=bf16")
    q, k, v = (t[0].transpose(0, 1).to(dtype).contiguous() for t in (query, key, value))  # (T, H, D)
    out = _FlashVarlen.apply(q, k, v, cu.to(device=q.device, dtype=torch.int32), int(max_len), scaling)
    return out.unsqueeze(0).to(query.dtype), None


def register() -> None:
    """Make NAME a transformers attention implementation (no mask function: masks are skipped for it)."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, flash_varlen_attention)


def _on_cuda(t: torch.Tensor) -> bool:
    return t.is_cuda


def _switching_forward(self, *args, **kwargs):
    """The backbone's forward with NAME as its attention while training on a packed batch, else unchanged."""
    cu = kwargs.get("cu_seq_lens_q")
    # FlashAttention runs on CUDA only: elsewhere (a CPU try-out of train=gpu) the configured attention stays
    packed = cu is not None and _on_cuda(cu) and kwargs.get("max_length_q") is not None
    cache = kwargs.get("past_key_values", kwargs.get("cache"))
    if not (self.training and packed and cache is None):
        return type(self).forward(self, *args, **kwargs)
    previous = self.config._attn_implementation
    self.config._attn_implementation = NAME
    try:
        return type(self).forward(self, *args, **kwargs)
    finally:
        self.config._attn_implementation = previous


def use_flash_varlen(model: torch.nn.Module) -> int:
    """Train `model`'s decoder stacks (modules with `layers` and `embed_tokens`) with NAME on padding-free packs;
    returns how many stacks. Evaluation, generation and padded batches keep the configured attention."""
    register()
    count = 0
    for module in model.modules():
        if hasattr(module, "layers") and hasattr(module, "embed_tokens") and hasattr(module, "config"):
            module.forward = types.MethodType(_switching_forward, module)
            count += 1
    return count
