"""LoRA's training step by whole blocks: q, k and v as one autograd node, the MLP (gate, up, SwiGLU, down) as
another, each computing the same function as PEFT's `lora.Linear` layers it replaces (`train.fused_blocks`).

`medqa.model.fused_lora` makes each adapted projection one node. Here the projections that read the same input share
it, as Unsloth's `LoRA_QKV` / `LoRA_MLP` do (unsloth/kernels/fast_lora.py):

    q, k, v:  xd = dropout(x) once (one mask for the three),  t = xd @ [Aq; Ak; Av]ᵀ   (one r·3-wide product)
              q = x @ Wqᵀ, then q += s · t_q @ Bqᵀ in place (addmm_: the scale and the add in the GEMM), k, v alike
    backward: dx = gq @ Wq + gk @ Wk + gv @ Wv + dropout_backward(u @ [Aq; Ak; Av])   (accumulated in place)
    MLP:      e = gate(x), g = up(x) as above (one mask, one A product), h = silu(e) · g, y = down(h)
              saves x, e, g and the r-wide products; h is recomputed in backward, never kept.

With dropout > 0, PEFT draws an independent mask per projection; here q, k, v share one mask (they read the same
input) and gate, up share another: the same expected function, different draws. Tests check the gradients
against PEFT with the masks fixed. Base weights are frozen: no weight gradient is computed for them. Blocks
outside the plain case (adapters off or merged, several adapters, DoRA, a LoRA bias, an 8-bit base, a cache,
no gradient) take the model's own forward, whose projections still go through `medqa.model.fused_lora` if fused.
A bitsandbytes 4-bit base (QLoRA) takes the blocks too: each node dequantizes its weights into transient copies in
forward and again in backward (2 bytes a weight are never kept between them).

Joint projections (`train.joint_projections`): fewer, larger GEMMs for a GPU. The frozen base weights of q, k, v are
packed as row blocks of one buffer [Wq; Wk; Wv] (gate, up of [Wg; Wu]), each `base_layer.weight` re-pointed at its
view: no extra memory, and parameter names, state_dict and the saved adapter are unchanged. Then

    forward:  [q | k | v] = x @ [Wq; Wk; Wv]ᵀ   (one GEMM; q, k, v are its column views, each LoRA addmm_ in place)
    backward: dx = [gq | gk | gv] @ [Wq; Wk; Wv]   (one GEMM with K = the three widths, instead of three)
    MLP:      [e | g] = x @ [Wg; Wu]ᵀ;  d_e, d_g written into the halves of one buffer, dx = [d_e | d_g] @ [Wg; Wu]

Each node first checks (pointers, shapes, strides: cheap) that every weight is still its view of the buffer: a weight
replaced after packing (PEFT's safe_merge, a cast or a device move of the model) drops the pack, with a warning,
and the node computes with the separate GEMMs above. Only plain frozen nn.Linear bases without bias are packed,
and the buffer is used only when it is in the compute dtype."""

from __future__ import annotations

import sys
import types
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

ATTENTION_CLASSES = ("LlamaAttention",)  # forwards mirrored below (transformers 5.17 - 5.24)
MLP_CLASSES = ("LlamaMLP",)
JOINT = {"attention": ("q_proj", "k_proj", "v_proj"), "mlp": ("gate_proj", "up_proj")}  # packed per block


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


def _dense_weight(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A base projection's weight in the compute dtype; a bitsandbytes 4-bit weight dequantized into a transient
    copy (QLoRA: forward and backward each dequantize again rather than keep 2 bytes a weight alive in between)."""
    from peft.utils.integrations import dequantize_bnb_weight, get_bnb_param_type

    if get_bnb_param_type(weight) != "4bit":
        return weight.to(dtype)
    return dequantize_bnb_weight(weight).to(dtype)


@dataclass(eq=False)
class _JointWeights:
    """A block's frozen base weights packed as row blocks of `buffer`; `views` are the weights' expected views."""

    buffer: torch.Tensor
    views: tuple[torch.Tensor, ...]

    def still_views(self, weights: list[torch.Tensor]) -> bool:
        """Whether each weight still is its view of the buffer: same memory, shape, strides, dtype and device (while
        the buffer lives, nothing else can hold its address)."""
        return len(weights) == len(self.views) and all(
            w.data_ptr() == v.data_ptr() and w.shape == v.shape and w.stride() == v.stride() and w.dtype == v.dtype
            and w.device == v.device
            for w, v in zip(weights, self.views, strict=True)
        )  # fmt: skip


def _base_outputs(x2, joint, weights, biases, dtype: torch.dtype) -> list[torch.Tensor]:
    """x @ W_iᵀ (+ bias_i) for each projection: column views of one GEMM when the weights are packed in `joint`,
    else one GEMM each (a 4-bit weight dequantized for its own GEMM only)."""
    if joint is not None:
        return list((x2 @ joint.t()).split([w.shape[0] for w in weights], dim=1))
    return [
        F.linear(x2, _dense_weight(w, dtype), None if b is None else b.to(dtype))
        for w, b in zip(weights, biases, strict=True)
    ]


def _base_input_grad(grads, weights, dtype: torch.dtype, joint=None, side_by_side=None) -> torch.Tensor:
    """Σ g_i @ W_i. Packed weights: one GEMM of the gradients side by side (`side_by_side` when already laid out so,
    else concatenated) with `joint`; otherwise one GEMM per projection, accumulated in place."""
    if joint is not None:
        return (torch.cat(grads, dim=1) if side_by_side is None else side_by_side) @ joint
    grad_x = grads[0] @ _dense_weight(weights[0], dtype)
    for g, w in zip(grads[1:], weights[1:], strict=True):
        grad_x.addmm_(g, _dense_weight(w, dtype))
    return grad_x


def _silu_backward(grad: torch.Tensor, e: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """silu'(e) · grad, written into `out` when given (a half of the packed gate/up gradient)."""
    if out is None:
        return torch.ops.aten.silu_backward(grad, e)
    return torch.ops.aten.silu_backward.grad_input(grad, e, grad_input=out)


def _dropout(x: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    return torch.native_dropout(x, p, True) if p > 0 else (x, None)


def _lora_input_grad(dx: torch.Tensor, u: torch.Tensor, a: torch.Tensor, mask, p: float) -> None:
    """dx += dropout_backward(u @ a): in the GEMM's accumulator when there is no dropout."""
    if mask is None:
        dx.addmm_(u, a)
    else:
        dx.add_(torch.ops.aten.native_dropout_backward(u @ a, mask, 1.0 / (1.0 - p)))


class _SharedInputLora(torch.autograd.Function):
    """outs[i] = x @ W_iᵀ (+ bias_i) + s_i · dropout(x) @ A_iᵀ @ B_iᵀ for projections reading one input x.
    `joint`: the packed [W_0; W_1; ...] in the compute dtype, or None. Arguments after x, p, the scales and joint:
    (W, bias, A, B) for each projection."""

    @staticmethod
    def forward(ctx, x, p: float, scales: tuple, joint, *weights):
        n = len(scales)
        dtype = _compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            x2 = x.reshape(-1, x.shape[-1]).to(dtype)
            a = torch.cat([weights[4 * i + 2] for i in range(n)]).to(dtype)  # (sum of ranks, in)
            bs = [weights[4 * i + 3].to(dtype) for i in range(n)]
            xd, mask = _dropout(x2, p)
            t = xd @ a.t()
            base = [weights[4 * i] for i in range(n)]
            outs = _base_outputs(x2, joint, base, [weights[4 * i + 1] for i in range(n)], dtype)
            start = 0
            for i, out in enumerate(outs):
                rank = weights[4 * i + 2].shape[0]
                out.addmm_(t[:, start : start + rank], bs[i].t(), alpha=scales[i])  # into a column view if joint
                start += rank
            outs = [out.view(*x.shape[:-1], out.shape[-1]) for out in outs]
        ctx.save_for_backward(xd, mask, t, a, *bs)
        ctx.base, ctx.joint = tuple(base), joint  # frozen: made dense again in backward (unless packed)
        ctx.p, ctx.scales, ctx.x_shape, ctx.x_dtype = p, scales, x.shape, x.dtype
        ctx.ranks = [weights[4 * i + 2].shape[0] for i in range(n)]
        ctx.weight_dtypes = [(weights[4 * i + 2].dtype, weights[4 * i + 3].dtype) for i in range(n)]
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        xd, mask, t, a, *bs = ctx.saved_tensors
        gs = [g.reshape(-1, g.shape[-1]).to(a.dtype) for g in grads]
        # u_i = s_i · g_i @ B_i: the gradient at the r-wide product, for A's and the input's gradients
        u = torch.cat([(g @ b).mul_(s) for g, b, s in zip(gs, bs, ctx.scales, strict=True)], dim=1)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = _base_input_grad(gs, ctx.base, a.dtype, ctx.joint)
            _lora_input_grad(grad_x, u, a, mask, ctx.p)
            grad_x = grad_x.view(ctx.x_shape).to(ctx.x_dtype)
        grad_a = (u.t() @ xd).split(ctx.ranks)
        out = [grad_x, None, None, None]
        start = 0
        for i, rank in enumerate(ctx.ranks):
            needs_a, needs_b = ctx.needs_input_grad[6 + 4 * i], ctx.needs_input_grad[7 + 4 * i]
            ga = grad_a[i].to(ctx.weight_dtypes[i][0]) if needs_a else None
            gb = (gs[i].t() @ t[:, start : start + rank]).mul_(ctx.scales[i]).to(ctx.weight_dtypes[i][1])
            out += [None, None, ga, gb if needs_b else None]
            start += rank
        return tuple(out)


class _LoraSwiGLU(torch.autograd.Function):
    """y = down(silu(gate(x)) · up(x)), each projection with its LoRA branch; gate and up share x's dropout mask.
    Saves x, e = gate(x), g = up(x) and the r-wide products; h = silu(e) · g is recomputed in backward.
    `joint`: the packed [Wg; Wu] in the compute dtype, or None."""

    @staticmethod
    def forward(ctx, x, p: float, scales: tuple, joint, wg, ag, bg, wu, au, bu, wd, ad, bd):
        dtype = _compute_dtype(x)
        sg, su, sd = scales
        with torch.autocast(x.device.type, enabled=False):
            x2 = x.reshape(-1, x.shape[-1]).to(dtype)
            a1 = torch.cat([ag, au]).to(dtype)
            bg_, bu_, ad_, bd_ = bg.to(dtype), bu.to(dtype), ad.to(dtype), bd.to(dtype)
            rg = ag.shape[0]
            xd, mask1 = _dropout(x2, p)
            t1 = xd @ a1.t()
            e, g = _base_outputs(x2, joint, (wg, wu), (None, None), dtype)
            e.addmm_(t1[:, :rg], bg_.t(), alpha=sg)  # into a column view if joint
            g.addmm_(t1[:, rg:], bu_.t(), alpha=su)
            h = F.silu(e).mul_(g)
            hd, mask2 = _dropout(h, p)
            t2 = hd @ ad_.t()
            del hd
            y = h @ _dense_weight(wd, dtype).t()  # a 4-bit base's dense copy: made again in backward, not kept
            y.addmm_(t2, bd_.t(), alpha=sd)
        ctx.save_for_backward(xd, mask1, t1, e, g, mask2, t2, a1, bg_, bu_, ad_, bd_)
        ctx.base, ctx.joint = (wg, wu, wd), joint
        ctx.p, ctx.scales, ctx.rg, ctx.x_shape, ctx.x_dtype = p, scales, rg, x.shape, x.dtype
        ctx.weight_dtypes = [t.dtype for t in (ag, bg, au, bu, ad, bd)]
        return y.view(*x.shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad_y):
        xd, mask1, t1, e, g, mask2, t2, a1, bg, bu, ad, bd = ctx.saved_tensors
        sg, su, sd = ctx.scales
        p, rg = ctx.p, ctx.rg
        gy = grad_y.reshape(-1, grad_y.shape[-1]).to(e.dtype)
        silu_e = F.silu(e)
        h = silu_e * g  # recomputed, as the forward kept only e and g
        hd = h if mask2 is None else torch.ops.aten.native_dropout_backward(h, mask2, 1.0 / (1.0 - p))
        u_d = (gy @ bd).mul_(sd)
        grad_ad = u_d.t() @ hd
        del h, hd
        grad_bd = (gy.t() @ t2).mul_(sd)
        dh = gy @ _dense_weight(ctx.base[2], e.dtype)
        _lora_input_grad(dh, u_d, ad, mask2, p)
        # Packed [Wg; Wu]: d_e and d_g are written side by side into one buffer, whose GEMM with it is dx's base part
        d_eg = dh.new_empty(dh.shape[0], 2 * dh.shape[1]) if ctx.joint is not None else None
        d_e_out, d_g_out = (None, None) if d_eg is None else d_eg.split(dh.shape[1], dim=1)
        d_g = torch.mul(dh, silu_e, out=d_g_out)
        del silu_e
        d_e = _silu_backward(dh.mul_(g), e, d_e_out)  # dh · g is the gradient at silu(e)
        del dh
        u1 = torch.cat([(d_e @ bg).mul_(sg), (d_g @ bu).mul_(su)], dim=1)
        grad_a1 = u1.t() @ xd
        grad_bg = (d_e.t() @ t1[:, :rg]).mul_(sg)
        grad_bu = (d_g.t() @ t1[:, rg:]).mul_(su)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = _base_input_grad([d_e, d_g], ctx.base[:2], e.dtype, ctx.joint, d_eg)
            _lora_input_grad(grad_x, u1, a1, mask1, p)
            grad_x = grad_x.view(ctx.x_shape).to(ctx.x_dtype)
        dts = ctx.weight_dtypes
        grad_ag, grad_au = grad_a1[:rg].to(dts[0]), grad_a1[rg:].to(dts[2])
        return (
            grad_x, None, None, None,
            None, grad_ag, grad_bg.to(dts[1]),
            None, grad_au, grad_bu.to(dts[3]),
            None, grad_ad.to(dts[4]), grad_bd.to(dts[5]),
        )  # fmt: skip


def _lora_parts(layer) -> tuple | None:
    """(W, bias, A, B, scale, p) of a plain single-adapter LoRA linear over a frozen nn.Linear; None otherwise."""
    from peft.tuners.lora import LoraLayer

    if not isinstance(layer, LoraLayer):
        return None
    if not (type(layer.base_layer) is torch.nn.Linear or _is_4bit(layer.base_layer)):
        return None  # other bases (bitsandbytes' 8-bit, ...) keep the per-projection path
    adapters = layer.active_adapters
    if len(adapters) != 1 or layer.disable_adapters or layer.merged:
        return None
    name = adapters[0]
    if name not in layer.lora_A or name in getattr(layer, "lora_variant", {}) or layer.lora_B[name].bias is not None:
        return None
    base = layer.base_layer
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return None
    dropout = layer.lora_dropout[name]
    p = float(dropout.p) if isinstance(dropout, torch.nn.Dropout) and dropout.training else 0.0
    return base.weight, base.bias, layer.lora_A[name].weight, layer.lora_B[name].weight, float(layer.scaling[name]), p


def _is_4bit(base: torch.nn.Module) -> bool:
    """A bitsandbytes 4-bit linear with its weight quantized (QLoRA), without importing bitsandbytes."""
    from peft.utils.integrations import get_bnb_param_type

    return get_bnb_param_type(base.weight) == "4bit" and base.weight.quant_state is not None


def _block_parts(module, names: tuple[str, ...]) -> list[tuple] | None:
    """The LoRA parts of each named projection, if all are plain and share one dropout rate (one mask)."""
    if not torch.is_grad_enabled():
        return None  # evaluation: nothing to save for backward, the plain path is as fast
    parts = [_lora_parts(getattr(module, n)) for n in names]
    if any(x is None for x in parts) or len({x[5] for x in parts}) != 1:
        return None
    return parts


def _attention_forward(self, hidden_states, position_embeddings=None, attention_mask=None, *args, **kwargs):
    """LlamaAttention.forward with q, k and v from one `_SharedInputLora` node (training without a cache)."""
    cache = kwargs.get("past_key_values", kwargs.get("cache"))
    plain = not args and cache is None and position_embeddings is not None
    parts = _block_parts(self, ("q_proj", "k_proj", "v_proj")) if plain else None
    if parts is None:
        return type(self).forward(self, hidden_states, position_embeddings, attention_mask, *args, **kwargs)
    kwargs.pop("past_key_values", None)
    kwargs.pop("cache", None)
    model_code = sys.modules[type(self).__module__]
    weights = [w for (wt, bias, a, b, _, _) in parts for w in (wt, bias, a, b)]
    joint = _joint_buffer(self, parts, _compute_dtype(hidden_states))
    q, k, v = _SharedInputLora.apply(hidden_states, parts[0][5], tuple(x[4] for x in parts), joint, *weights)
    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, self.head_dim)
    q, k, v = (t.view(hidden_shape).transpose(1, 2) for t in (q, k, v))
    cos, sin = position_embeddings
    # medqa.model.compiled_norm_rope's kernels where it was applied (the same arithmetic), else the model's own
    q, k = getattr(self, "medqa_rotary", model_code.apply_rotary_pos_emb)(q, k, cos, sin)
    attention = model_code.ALL_ATTENTION_FUNCTIONS.get_interface(
        self.config._attn_implementation, model_code.eager_attention_forward
    )
    out, weights_out = attention(
        self, q, k, v, attention_mask, dropout=0.0 if not self.training else self.attention_dropout,
        scaling=self.scaling, **kwargs,
    )  # fmt: skip
    out = out.reshape(*input_shape, -1).contiguous()
    return self.o_proj(out), weights_out


def _mlp_forward(self, x, *args, **kwargs):
    """LlamaMLP.forward as one `_LoraSwiGLU` node (SiLU activation, no MLP bias)."""
    parts = None if args or kwargs else _block_parts(self, ("gate_proj", "up_proj", "down_proj"))
    if parts is None or any(bias is not None for (_, bias, _, _, _, _) in parts):
        return type(self).forward(self, x, *args, **kwargs)
    (wg, _, ag, bg, sg, p), (wu, _, au, bu, su, _), (wd, _, ad, bd, sd, _) = parts
    joint = _joint_buffer(self, parts[:2], _compute_dtype(x))
    return _LoraSwiGLU.apply(x, p, (sg, su, sd), joint, wg, ag, bg, wu, au, bu, wd, ad, bd)


def _joint_buffer(module, parts: list[tuple], dtype: torch.dtype) -> torch.Tensor | None:
    """The block's packed weights if the projections' weights (`parts`, in pack order) still are its views and it
    is in the compute dtype; None: separate GEMMs. A pack whose views broke (a weight replaced, cast or moved after
    packing) is dropped, so that it no longer holds memory the weights left."""
    pack = getattr(module, "medqa_joint", None)
    if pack is None or torch.compiler.is_compiling():  # dynamo cannot trace data_ptr(): compiled code keeps them apart
        return None
    if not pack.still_views([part[0] for part in parts]):
        module.medqa_joint = None
        warnings.warn(
            "joint projections: a base weight is no longer a view of its packed buffer (replaced, cast or moved "
            "after fuse_lora_blocks packed it); those blocks compute with separate GEMMs from now on",
            stacklevel=3,
        )
        return None
    if pack.buffer.dtype != dtype or any(part[1] is not None for part in parts):
        return None
    return pack.buffer


def _plain_base_weights(module, names: tuple[str, ...]) -> list[torch.Tensor] | None:
    """The base weights of the named LoRA projections if each is a frozen, bias-free plain nn.Linear's dense weight,
    all of one dtype, device and input width (what one GEMM can cover); None otherwise."""
    from peft.tuners.lora import LoraLayer

    layers = [getattr(module, n, None) for n in names]
    if not all(isinstance(layer, LoraLayer) for layer in layers):
        return None
    bases = [layer.base_layer for layer in layers]
    if any(type(b) is not torch.nn.Linear or b.bias is not None or b.weight.requires_grad for b in bases):
        return None  # a 4-bit or 8-bit base, a bias, a trained base: nothing to pack
    weights = [b.weight for b in bases]
    first = weights[0]
    same = all((w.dtype, w.device, w.shape[1]) == (first.dtype, first.device, first.shape[1]) for w in weights)
    plain = all(type(w.data) is torch.Tensor for w in weights)  # not a DTensor shard
    return weights if same and plain and first.is_floating_point() and first.device.type != "meta" else None


def _pack_joint(module, names: tuple[str, ...]) -> bool:
    """Copy the named projections' base weights into one buffer, row blocks in `names` order, and re-point each
    weight at its view (the old storage is freed: memory stays that of the weights); whether the block is packed.
    Idempotent. Call it where the weights are final: a later cast or device move breaks the views."""
    weights = _plain_base_weights(module, names)
    if weights is None:
        return False
    pack = getattr(module, "medqa_joint", None)
    if pack is not None and pack.still_views(weights):
        return True
    with torch.no_grad():
        buffer = torch.cat([w.detach() for w in weights])
    views = buffer.split([w.shape[0] for w in weights])
    for weight, view in zip(weights, views, strict=True):
        weight.data = view
    module.medqa_joint = _JointWeights(buffer, views)
    return True


def fuse_lora_blocks(model: torch.nn.Module, joint_projections: bool = False) -> tuple[int, int]:
    """Route the attention q/k/v and the MLPs of `model` (a PeftModel of a Llama-architecture model) through the
    whole-block nodes; returns (attention blocks, MLP blocks). Idempotent; parameters, their names and the saved
    adapter are untouched. Combine with `medqa.fused_lora.fuse_lora_layers` for o_proj and the fallbacks.
    `joint_projections`: also pack each block's q/k/v (gate/up) base weights into one buffer for single GEMMs
    (train.joint_projections); call it after the model's last cast or device move."""
    attention = mlp = 0
    for module in model.modules():
        kind = type(module).__name__
        if kind in ATTENTION_CLASSES and all(hasattr(module, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")):
            module.forward = types.MethodType(_attention_forward, module)
            attention += 1
            if joint_projections:
                _pack_joint(module, JOINT["attention"])
        elif kind in MLP_CLASSES and getattr(module.config, "hidden_act", None) == "silu":
            module.forward = types.MethodType(_mlp_forward, module)
            mlp += 1
            if joint_projections:
                _pack_joint(module, JOINT["mlp"])
    return attention, mlp
