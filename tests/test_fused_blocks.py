"""`train.fused_blocks` (q/k/v as one node, the MLP as one node) and `train.flash_varlen` (FlashAttention-2
varlen over padding-free packs) compute the same function as PEFT's LoRA on the model's own attention: loss and
every LoRA gradient in fp32 on the tiny model (CPU). The GPU timings are in benchmarks/RESULTS.md."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_fused_lora import _batch, _lora_model, _loss_and_grads, _train

ROOT = Path(__file__).resolve().parent.parent


class _FixedMask(torch.nn.Module):
    """PEFT's dropout slot with a given mask (inverted dropout, as nn.Dropout): to reproduce shared draws."""

    def __init__(self, mask: torch.Tensor, p: float):
        super().__init__()
        self.mask, self.p = mask, p

    def forward(self, x):
        return x * self.mask.view_as(x) / (1 - self.p)


def _training_batch(tokenizer) -> dict:
    return {**_batch(tokenizer), "use_cache": False}  # as TRL calls the model: a cache would take the plain path


def _counting(monkeypatch) -> dict:
    """Count the calls of the two block nodes (a fallback would pass every comparison trivially)."""
    from medqa.model import fused_blocks

    calls = {"qkv": 0, "mlp": 0}
    for key, node in (("qkv", fused_blocks._SharedInputLora), ("mlp", fused_blocks._LoraSwiGLU)):
        apply = node.apply

        def counted(*args, _apply=apply, _key=key):
            calls[_key] += 1
            return _apply(*args)

        monkeypatch.setattr(node, "apply", counted)
    return calls


def _fuse_all(model, joint: bool = False) -> tuple[int, int]:
    from medqa.model.fused_blocks import fuse_lora_blocks
    from medqa.model.fused_lora import fuse_lora_layers

    fuse_lora_layers(model)
    return fuse_lora_blocks(model, joint_projections=joint)


def _recording_masks(monkeypatch) -> list[torch.Tensor]:
    """Every dropout mask drawn from here on, in order (the fused nodes and fused_lora draw through native_dropout)."""
    masks = []
    draw = torch.native_dropout

    def recording(x, prob, train):
        out, mask = draw(x, prob, train)
        masks.append(mask)
        return out, mask

    monkeypatch.setattr(torch, "native_dropout", recording)
    return masks


def _fix_masks(reference, masks: list[torch.Tensor], p: float) -> None:
    """Give PEFT's `reference` the masks the fused blocks drew: one for q/k/v, one for o, one for gate/up, one for
    down in each layer."""
    layers = [m for m in reference.modules() if type(m).__name__ == "LlamaDecoderLayer"]
    assert len(masks) == 4 * len(layers)  # a layer draws: q/k/v, o, gate/up, down
    for i, layer in enumerate(layers):
        m_qkv, m_o, m_gu, m_down = masks[4 * i : 4 * i + 4]
        assert m_qkv.float().mean() < 1  # live masks
        attn, mlp = layer.self_attn, layer.mlp
        slots = [(attn.q_proj, m_qkv), (attn.k_proj, m_qkv), (attn.v_proj, m_qkv), (attn.o_proj, m_o),
                 (mlp.gate_proj, m_gu), (mlp.up_proj, m_gu), (mlp.down_proj, m_down)]  # fmt: skip
        for proj, mask in slots:
            proj.lora_dropout["default"] = _FixedMask(mask, p)


def _assert_same(loss, grads, loss_ref, grads_ref):
    assert loss == pytest.approx(loss_ref.item(), rel=1e-5)
    assert grads.keys() == grads_ref.keys()
    for name, grad in grads_ref.items():
        assert grad.abs().sum() > 0, name  # an all-zero gradient would compare equal trivially
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_whole_blocks_match_peft_loss_and_every_gradient(compose_small, base_dir, monkeypatch):
    from medqa.config.build import settings_from_cfg

    settings = settings_from_cfg(compose_small(["lora=attn_mlp"]))
    model, tokenizer = _lora_model(settings, dropout=0.0)
    batch = _training_batch(tokenizer)
    calls = _counting(monkeypatch)
    loss_peft, grads_peft = _loss_and_grads(model, batch, seed=7)
    layers = model.config.num_hidden_layers
    assert _fuse_all(model) == (layers, layers)
    loss, grads = _loss_and_grads(model, batch, seed=7)
    assert calls == {"qkv": layers, "mlp": layers} and len(grads) == 2 * 7 * layers
    _assert_same(loss, grads, loss_peft, grads_peft)


def test_with_dropout_q_k_v_share_one_mask_and_gate_up_another(compose_small, base_dir, monkeypatch):
    """p = 0.05 (the seed's): the fused blocks draw one mask for q, k, v and one for gate, up (o and down their
    own); PEFT given exactly those masks computes the same loss and gradients."""
    from medqa.config.build import settings_from_cfg

    p = 0.05
    settings = settings_from_cfg(compose_small(["lora=attn_mlp"]))
    model, tokenizer = _lora_model(settings, dropout=p)
    reference, _ = _lora_model(settings, dropout=p)
    reference.load_state_dict(model.state_dict())  # A is drawn at random when PEFT wraps the model
    batch = _training_batch(tokenizer)
    masks = _recording_masks(monkeypatch)
    _fuse_all(model)
    loss, grads = _loss_and_grads(model, batch, seed=7)
    _fix_masks(reference, list(masks), p)
    loss_ref, grads_ref = _loss_and_grads(reference, batch, seed=7)
    _assert_same(loss, grads, loss_ref, grads_ref)


def test_blocks_fall_back_in_eval_and_with_the_adapter_off(compose_small, base_dir):
    from medqa.config.build import settings_from_cfg

    settings = settings_from_cfg(compose_small(["lora=attn_mlp"]))
    model, tokenizer = _lora_model(settings)
    batch = {k: v for k, v in _batch(tokenizer).items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        with model.disable_adapter():
            base_logits = model(**batch).logits
        adapted = model(**batch).logits
        _fuse_all(model)
        with model.disable_adapter():
            torch.testing.assert_close(model(**batch).logits, base_logits, rtol=0, atol=0)
        torch.testing.assert_close(model(**batch).logits, adapted, rtol=1e-5, atol=1e-5)
    model.train()
    with model.disable_adapter():  # training forward with the adapter off: the plain base
        torch.testing.assert_close(model(**batch).logits, base_logits, rtol=1e-5, atol=1e-5)


def test_trainer_with_fused_blocks_follows_the_fused_lora_losses(compose_small, base_dir, tmp_path):
    """Four optimizer steps through medqa's trainer (padding-free, dropout 0): the same loss curve as fused_lora,
    and B moved from its zero start."""
    from medqa.config.build import settings_from_cfg

    overrides = ["train=smoke", "lora=attn_mlp", "lora.dropout=0.0", "train.fused_lora=true", "train.padding_free=true"]
    settings = settings_from_cfg(compose_small(overrides))
    text = "Question {i}: what treats anemia? Answer: iron, {i} times a day."
    rows = [{"text": text.format(i=i) * (1 + i % 3)} for i in range(16)]
    runs = {b: _train(settings, rows, tmp_path / str(b), fused_blocks=b) for b in (False, True)}
    assert runs[True][1] > 0 and runs[True][1] == pytest.approx(runs[False][1], rel=1e-3)
    assert runs[True][0] == pytest.approx(runs[False][0], rel=1e-4), runs


def _segment_attention(q, k, v, cu, max_len, scale):
    """What FlashAttention-2 varlen computes, in plain ops: causal attention within each segment, GQA."""
    out = torch.empty_like(q)
    for s, e in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        qs, ks, vs = (t[s:e].transpose(0, 1) for t in (q, k, v))
        out[s:e] = torch.nn.functional.scaled_dot_product_attention(
            qs, ks, vs, is_causal=True, scale=scale, enable_gqa=True
        ).transpose(0, 1)
    return out


def test_flash_varlen_plumbing_gives_the_packed_loss(compose_small, base_dir, monkeypatch):
    """With the kernel replaced by its definition (CPU has no FlashAttention), a packed training forward through
    `use_flash_varlen` (TRL's cu_seq_lens_q / max_length_q) gives sdpa's packed loss and gradients; evaluation
    keeps sdpa. The kernel itself is checked against flex on the GPU (benchmarks/block_levers.py)."""
    from peft import get_peft_model

    from medqa.config.build import settings_from_cfg
    from medqa.model import varlen_attention
    from medqa.model.loading import load_base, lora_config

    settings = settings_from_cfg(compose_small(["lora=attn_mlp"]))
    model = get_peft_model(load_base(settings.model, settings.quant, "sdpa")[0], lora_config(settings.lora))
    lens = [5, 9, 3]
    torch.manual_seed(0)
    ids = torch.randint(5, 200, (1, sum(lens)))
    pos = torch.cat([torch.arange(n) for n in lens])[None]
    cu = torch.tensor([0, 5, 14, 17], dtype=torch.int32)
    # use_cache=False as TRL passes it: with a cache transformers does not look for packed sequences
    batch = {"input_ids": ids, "position_ids": pos, "labels": ids.clone(), "use_cache": False}
    packed = {**batch, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": 9, "max_length_k": 9}
    for param in (p for n, p in model.named_parameters() if "lora_B" in n):
        param.data.normal_(0, 0.02)
    loss_sdpa, grads_sdpa = _loss_and_grads(model, packed, seed=1)

    calls = []

    def kernel(q, k, v, cu_seqlens, max_len, scale):
        calls.append(q.shape)
        return _segment_attention(q, k, v, cu_seqlens, max_len, scale)

    monkeypatch.setattr(varlen_attention._FlashVarlen, "apply", kernel)
    monkeypatch.setattr(varlen_attention, "_on_cuda", lambda t: True)  # the switch is for CUDA batches only
    assert varlen_attention.use_flash_varlen(model) == 1
    loss, grads = _loss_and_grads(model, packed, seed=1)
    assert len(calls) == model.config.num_hidden_layers and calls[0][0] == sum(lens)
    _assert_same(loss, grads, loss_sdpa, grads_sdpa)
    assert model.config._attn_implementation == "sdpa"  # switched back after the forward
    model.eval()
    with torch.no_grad():
        model(**batch)
    assert len(calls) == model.config.num_hidden_layers  # evaluation did not use it


def test_gpu_preset_takes_both_levers_and_the_others_can_turn_them_off(compose):
    from medqa.config.build import settings_from_cfg

    train = settings_from_cfg(compose(["train=gpu"])).train
    assert train.fused_blocks and train.fused_lora and train.padding_free and train.flash_varlen
    other = settings_from_cfg(compose(["train=gpu", "train.fused_blocks=false", "train.flash_varlen=false"])).train
    assert not other.flash_varlen and not other.fused_blocks
    seed = settings_from_cfg(compose(["train=seed_t4"])).train
    assert not (seed.fused_blocks or seed.flash_varlen)
    assert dataclasses.replace(train, fused_blocks=False).fused_lora


def test_whole_blocks_over_a_4bit_base_match_peft_qlora(base_dir):
    """QLoRA: over bitsandbytes NF4 projections the blocks dequantize each weight (forward, and again in backward)
    and compute PEFT's bitsandbytes LoRA function: the same loss and every LoRA gradient. In its own process, with
    bitsandbytes from beside the venv (`make setup` puts it in .venv/bnb): in site-packages, every `import peft`
    in every other test would import it, and torch's compiler with it."""
    side = Path(sys.prefix) / "bnb"
    if not (side / "bitsandbytes").is_dir():
        pytest.fail(f"{side}/bitsandbytes missing: `make setup` installs it there for this test")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(side), str(ROOT)])}
    check = ROOT / "tests" / "qlora_blocks_check.py"
    proc = subprocess.run([sys.executable, str(check)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    layers = summary["layers"]
    assert summary["base"] == "Linear4bit" and summary["weight_dtype"] == "torch.uint8"
    assert summary["calls_peft"] == {"qkv": 0, "mlp": 0} and summary["calls_fused"] == {"qkv": layers, "mlp": layers}
    assert summary["gradients_compared"] == 2 * 7 * layers
    assert "4-bit" in summary["compile_blocker"]  # train.compile_layers keeps a QLoRA model's layers eager
