"""`train.fused_lora` computes the same function as PEFT's LoRA layers, with the same gradients, on the tiny
model (fp32 on CPU, full precision and 4-bit base); the speed it buys on a GPU is in benchmarks/RESULTS.md."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from medqa.core.cpu_precision import autocast_dtype
from tests.markers import INDUCTOR_ON_CPU


def _lora_model(settings, quant=None, dropout: float = 0.1, before_lora=None):
    """The tiny model wrapped by PEFT's LoRA, B drawn away from zero; `before_lora(model)` changes the base first."""
    from peft import get_peft_model

    from medqa.model.loading import load_base, lora_config

    model, tokenizer, _ = load_base(settings.model, quant or settings.quant)
    if before_lora is not None:
        before_lora(model)
    lora = dataclasses.replace(settings.lora, dropout=dropout)
    model = get_peft_model(model, lora_config(lora))
    torch.manual_seed(0)
    for name, param in model.named_parameters():  # PEFT starts B at zero: A's gradient would be zero too
        if "lora_B" in name:
            param.data.normal_(0, 0.02)
    return model, tokenizer


def _loss_and_grads(model, batch, seed: int, autocast: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    # bf16 only where this CPU has it natively (medqa.core.cpu_precision): emulated bf16 is slow and rounds differently.
    dtype = autocast_dtype() if autocast else torch.float32
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


def _train(settings, rows: list[dict], out, **train_changes) -> tuple[list[float], float]:
    """Four optimizer steps through medqa's trainer: the logged losses and how far LoRA B moved from zero."""
    from datasets import Dataset

    from medqa.model.compiled_layers import compile_decoder_layers
    from medqa.model.loading import load_base, lora_b_movement
    from medqa.training.run import build_trainer

    train = dataclasses.replace(settings.train, max_steps=4, logging_steps=1, **train_changes)
    model, tokenizer, _ = load_base(settings.model, settings.quant)
    trainer = build_trainer(model, tokenizer, Dataset.from_list(rows), None, train, settings.lora, out, "none")
    if train.compile_layers:  # the trainer compiles the layers on CUDA only
        compile_decoder_layers(trainer.model, cpu=True)
    trainer.train()
    return [h["loss"] for h in trainer.state.log_history if "loss" in h], lora_b_movement(trainer.model)


def _batch(tokenizer):
    texts = ["Iron deficiency anemia is treated with oral iron.", "Malaria is treated with artemisinin."]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return batch


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_fused_branch_matches_peft_loss_and_every_gradient(compose_small, base_dir, dropout):
    from medqa.config.build import settings_from_cfg
    from medqa.model.fused_lora import fuse_lora_layers

    settings = settings_from_cfg(compose_small(["lora=attn_mlp"]))
    model, tokenizer = _lora_model(settings, dropout=dropout)
    batch = _batch(tokenizer)
    loss_peft, grads_peft = _loss_and_grads(model, batch, seed=7)
    fused = fuse_lora_layers(model)
    assert fused == 7 * model.config.num_hidden_layers
    loss_fused, grads_fused = _loss_and_grads(model, batch, seed=7)

    assert loss_fused == pytest.approx(loss_peft.item(), rel=1e-5)
    assert grads_fused.keys() == grads_peft.keys() and len(grads_peft) == 2 * fused
    for name, grad in grads_peft.items():
        assert grad.abs().sum() > 0, name  # a gradient that is zero everywhere would compare equal trivially
        torch.testing.assert_close(grads_fused[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # Dropout draws differ from seed to seed: with p > 0 another seed gives another loss (the masks are live).
    if dropout:
        assert _loss_and_grads(model, batch, seed=8)[0] != loss_fused


def test_adapter_off_and_eval_mode_fall_back_to_the_plain_paths(compose_small, base_dir):
    from medqa.config.build import settings_from_cfg
    from medqa.model.fused_lora import fuse_lora_layers

    settings = settings_from_cfg(compose_small(["lora=attn_mlp"]))
    model, tokenizer = _lora_model(settings)
    batch = {k: v for k, v in _batch(tokenizer).items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        with model.disable_adapter():
            base_logits = model(**batch).logits
        adapted = model(**batch).logits
        fuse_lora_layers(model)
        with model.disable_adapter():
            torch.testing.assert_close(model(**batch).logits, base_logits, rtol=0, atol=0)
        torch.testing.assert_close(model(**batch).logits, adapted, rtol=1e-5, atol=1e-5)  # eval: no dropout
    assert not torch.equal(adapted, base_logits)


def test_fused_training_follows_the_same_losses(compose_small, base_dir, tmp_path):
    """Four optimizer steps through medqa's trainer, fused and not, from the same seed: the same loss curve."""
    from medqa.config.build import settings_from_cfg

    settings = settings_from_cfg(compose_small(["train=smoke", "lora=attn_mlp", "lora.dropout=0.1"]))
    rows = [{"text": f"Question {i}: what treats anemia? Answer: iron, {i} times a day."} for i in range(16)]
    losses = {fused: _train(settings, rows, tmp_path / str(fused), fused_lora=fused)[0] for fused in (False, True)}
    assert len(losses[True]) == 4 and losses[True][0] != losses[True][-1]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4), losses


def test_under_bf16_autocast_the_branch_computes_in_bf16_and_keeps_fp32_gradients(compose_small, base_dir):
    """As in bf16 training on a GPU (fp32 adapter weights, bf16 matmuls): the same loss and gradients as PEFT
    up to bf16 rounding, gradients in the parameters' fp32. On a CPU without native bf16 it runs in fp32."""
    from medqa.config.build import settings_from_cfg
    from medqa.model.fused_lora import fuse_lora_layers

    settings = settings_from_cfg(compose_small(["lora=attn_mlp"]))
    model, tokenizer = _lora_model(settings, dropout=0.1)
    batch = _batch(tokenizer)
    loss_peft, grads_peft = _loss_and_grads(model, batch, seed=7, autocast=True)
    fuse_lora_layers(model)
    loss_fused, grads_fused = _loss_and_grads(model, batch, seed=7, autocast=True)
    assert loss_fused == pytest.approx(loss_peft.item(), rel=1e-2)
    for name, grad in grads_peft.items():
        assert grads_fused[name].dtype == torch.float32
        cosine = torch.nn.functional.cosine_similarity(grads_fused[name].flatten(), grad.flatten(), dim=0)
        ratio = grads_fused[name].norm() / grad.norm()
        assert cosine > 0.95 and 0.9 < ratio < 1.1, (name, cosine.item(), ratio.item())  # bf16: ~3 digits


@pytest.mark.slow  # ~11 s; inductor on CPU, which train.compile_layers skips (it compiles on CUDA only): `make slow`
@INDUCTOR_ON_CPU
def test_compiled_layers_train_the_adapter_like_eager(compose_small, base_dir, tmp_path):
    """train.compile_layers (each decoder layer under torch.compile, dynamic shapes) on top of the fused branch:
    the same loss curve as eager and LoRA B weights that moved from their zero start. (On CPU; the H100 check
    is benchmarks/levers_learn.py.)"""
    from medqa.config.build import settings_from_cfg

    overrides = ["train=smoke", "lora=attn_mlp", "lora.dropout=0.0", "train.fused_lora=true", "train.padding_free=true"]
    settings = settings_from_cfg(compose_small(overrides))
    rows = [
        {"text": f"Question {i}: what treats anemia? Answer: iron, {i} times a day." * (1 + i % 3)} for i in range(16)
    ]
    losses, moved = {}, {}
    for compiled in (False, True):
        losses[compiled], moved[compiled] = _train(settings, rows, tmp_path / str(compiled), compile_layers=compiled)
    assert moved[True] > 0 and moved[True] == pytest.approx(moved[False], rel=1e-2)
    assert losses[True] == pytest.approx(losses[False], rel=1e-3), losses


def test_compiled_layers_keep_flex_attention_out_of_their_graphs(compose_small, base_dir):
    """Inductor cannot lower flex attention's backward with dynamic shapes (H100, torch 2.11), so compiling the
    layers switches a flex model to the same attention and mask functions under another name, with dynamo
    disabled around the attention call while training; other implementations compile whole. (CPU flex cannot train,
    so the H100 run in benchmarks/RESULTS.md is the end-to-end check.)"""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    from medqa.config.build import settings_from_cfg
    from medqa.model.compiled_layers import FLEX_OUTSIDE_GRAPH, compile_decoder_layers
    from medqa.model.loading import load_base

    settings = settings_from_cfg(compose_small([]))
    flex, _, _ = load_base(settings.model, settings.quant, "flex_attention")
    assert compile_decoder_layers(flex) == flex.config.num_hidden_layers
    assert flex.config._attn_implementation == FLEX_OUTSIDE_GRAPH
    attention = AttentionInterface._global_mapping
    outside = attention[FLEX_OUTSIDE_GRAPH].outside  # what a training layer calls (test_generation: generation's)
    assert outside._torchdynamo_disable  # a graph break, not traced into the layer
    assert outside.__wrapped__ is attention["flex_attention"]
    masks = ALL_MASK_ATTENTION_FUNCTIONS._global_mapping
    assert masks[FLEX_OUTSIDE_GRAPH] is masks["flex_attention"]
    sdpa, _, _ = load_base(settings.model, settings.quant, "sdpa")
    compile_decoder_layers(sdpa)
    assert sdpa.config._attn_implementation == "sdpa"


def test_an_adapter_that_learned_nothing_is_flagged(compose_small, base_dir):
    """run.json's flags say `adapter_unchanged` when every LoRA B is still at its zero start (no gradient reached
    the adapter: what a broken speed lever looks like), and nothing when B moved."""
    from peft import get_peft_model

    from medqa.config.build import settings_from_cfg
    from medqa.model.loading import load_base, lora_config
    from medqa.training.run import run_flags

    settings = settings_from_cfg(compose_small(["lora=attn_mlp"]))
    model = get_peft_model(load_base(settings.model, settings.quant)[0], lora_config(settings.lora))
    assert run_flags({"identical": True}, model) == ["adapter_unchanged"]
    assert run_flags({"identical": False}, model) == ["nondeterministic_probes", "adapter_unchanged"]
    next(p for n, p in model.named_parameters() if "lora_B" in n).data[0, 0] = 1e-3
    assert run_flags({"identical": True}, model) == []
