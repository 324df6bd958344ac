"""`train.compile_norm_rope` (RMSNorm and RoPE as compiled kernels while training) computes the model's own
function: the loss and every LoRA gradient of the tiny model with the whole-block nodes, fp32 on CPU, and the
trainer still moves the adapter. The GPU timings are in benchmarks/RESULTS.md."""

from __future__ import annotations

import torch

from tests.markers import INDUCTOR_ON_CPU
from tests.test_fused_blocks import _assert_same, _fuse_all, _training_batch
from tests.test_fused_lora import _lora_model, _loss_and_grads, _train

pytestmark = INDUCTOR_ON_CPU


def test_compiled_norm_and_rotary_match_transformers_forward_and_backward():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb

    from medqa.model import compiled_norm_rope as cnr

    torch.manual_seed(0)
    norm = LlamaRMSNorm(48, eps=1e-5)
    norm.weight.data.normal_(1, 0.1)
    x = torch.randn(1, 37, 48, requires_grad=True)
    (norm(x) * torch.arange(48)).sum().backward()
    ref = x.grad.clone(), norm.weight.grad.clone()
    x.grad = norm.weight.grad = None
    assert cnr.compile_norm_rope(norm, cpu=True) == (1, 0)
    norm.train()
    (norm(x) * torch.arange(48)).sum().backward()
    torch.testing.assert_close((x.grad, norm.weight.grad), ref, rtol=1e-5, atol=1e-4)  # fp32 sums, other order

    q, k = torch.randn(1, 4, 37, 16, requires_grad=True), torch.randn(1, 2, 37, 16, requires_grad=True)
    cos, sin = torch.randn(1, 37, 16), torch.randn(1, 37, 16)
    outs = [apply_rotary_pos_emb(q, k, cos, sin), cnr.compiled_rotary(q, k, cos, sin)]
    grads = [torch.autograd.grad(a.sum() * 2 + b.pow(2).sum(), (q, k)) for a, b in outs]
    torch.testing.assert_close(outs[1], outs[0])
    torch.testing.assert_close(grads[1], grads[0])


def test_with_whole_blocks_the_loss_and_every_gradient_are_unchanged(compose_small, base_dir, monkeypatch):
    from medqa.config.build import settings_from_cfg
    from medqa.model import compiled_norm_rope as cnr

    settings = settings_from_cfg(compose_small(["lora=attn_mlp"]))
    model, tokenizer = _lora_model(settings, dropout=0.0)
    batch = _training_batch(tokenizer)
    layers = model.config.num_hidden_layers
    _fuse_all(model)
    loss_ref, grads_ref = _loss_and_grads(model, batch, seed=7)
    calls = {"norm": 0, "rotary": 0}
    norm_forward, rotary = cnr._norm_forward, cnr.compiled_rotary

    def counted_norm(self, x):
        calls["norm"] += 1
        return norm_forward(self, x)

    def counted_rotary(*args):
        calls["rotary"] += 1
        return rotary(*args)

    monkeypatch.setattr(cnr, "_norm_forward", counted_norm)
    monkeypatch.setattr(cnr, "compiled_rotary", counted_rotary)
    assert cnr.compile_norm_rope(model, cpu=True) == (2 * layers + 1, layers)
    loss, grads = _loss_and_grads(model, batch, seed=7)
    assert calls == {"norm": 2 * layers + 1, "rotary": layers}  # the compiled path ran, not a fallback
    _assert_same(loss, grads, loss_ref, grads_ref)

    def no_compile(fn):
        raise AssertionError(f"{fn.__name__} compiled outside training")

    monkeypatch.setattr(cnr, "_compiled", no_compile)
    model.eval()
    with torch.no_grad():
        model(**batch)  # evaluation and generation take the class's own forward


def test_trainer_binds_the_lever_and_a_cpu_try_out_trains_as_eager(compose_small, base_dir, tmp_path):
    """`train.compile_norm_rope` (on in train=gpu) reaches every norm and attention block through build_trainer; on
    CPU they keep the model's arithmetic, so a CPU try-out of the GPU preset trains exactly as without it."""
    import dataclasses

    from datasets import Dataset

    from medqa.config.build import settings_from_cfg
    from medqa.model import compiled_norm_rope as cnr
    from medqa.model.loading import load_base
    from medqa.training.run import build_trainer

    overrides = ["train=smoke", "lora=attn_mlp", "lora.dropout=0.0", "train.fused_lora=true", "train.fused_blocks=true",
                 "train.padding_free=true"]  # fmt: skip
    settings = settings_from_cfg(compose_small(overrides))
    rows = [
        {"text": f"Question {i}: what treats anemia? Answer: iron, {i} times a day." * (1 + i % 3)} for i in range(16)
    ]
    model, tokenizer, _ = load_base(settings.model, settings.quant)
    train = dataclasses.replace(settings.train, compile_norm_rope=True)
    trainer = build_trainer(model, tokenizer, Dataset.from_list(rows), None, train, settings.lora, tmp_path, "none")
    norms = [m for m in trainer.model.modules() if type(m).__name__ in cnr.NORM_CLASSES]
    attention = [m for m in trainer.model.modules() if type(m).__name__ in cnr.ATTENTION_CLASSES]
    assert norms and all(m.forward.__func__ is cnr._cuda_norm_forward for m in norms)
    assert attention and all(m.medqa_rotary is cnr.cuda_rotary for m in attention)
    (eager, moved_eager), (lever, moved) = (
        _train(settings, rows, tmp_path / str(flag), compile_norm_rope=flag) for flag in (False, True)
    )
    assert moved > 0 and moved == moved_eager and lever == eager


def test_inside_a_compiled_layer_the_norm_and_rope_step_aside(monkeypatch):
    """With train.compile_layers the layer's own compile fuses RMSNorm and RoPE: while dynamo traces (is_compiling),
    neither takes its separately compiled kernel, and both compute the model's arithmetic."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb

    from medqa.model import compiled_norm_rope as cnr

    def no_compile(fn):
        raise AssertionError(f"{fn.__name__} compiled inside a compiled layer")

    monkeypatch.setattr(cnr, "_compiled", no_compile)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    norm = LlamaRMSNorm(8).train()
    x = torch.randn(2, 3, 8, requires_grad=True)
    torch.testing.assert_close(cnr._norm_forward(norm, x), LlamaRMSNorm.forward(norm, x))
    q, k = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 3, 8)
    cos, sin = torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    for got, want in zip(cnr.cuda_rotary(q, k, cos, sin), apply_rotary_pos_emb(q, k, cos, sin), strict=True):
        torch.testing.assert_close(got, want)
