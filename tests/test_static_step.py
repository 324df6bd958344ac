"""`train.static_packs` (each padding-free pack padded to a token bucket with one masked padding document) computes
the same loss and LoRA gradients as PEFT's LoRA on the unpadded pack, through medqa's trainer too. The CUDA-graph
replay (`train.cuda_graphs`) of that same step is checked on the GPU (benchmarks/static_step_check.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.test_fused_blocks import _assert_same, _fuse_all
from tests.test_fused_lora import _lora_model


def _pack(lens: list[int], seed: int = 0) -> dict:
    """A padding-free batch as TRL's collator makes it: one row, position ids restarting per example, the first
    token of each example unlabelled, a prompt of 2 tokens unlabelled (completion-only loss)."""
    torch.manual_seed(seed)
    ids = torch.randint(5, 200, (1, sum(lens)))
    pos = torch.cat([torch.arange(n) for n in lens])[None]
    labels = ids.clone()
    labels[pos < 2] = -100
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32)
    return {"input_ids": ids, "position_ids": pos, "labels": labels, "cu_seq_lens_q": cu, "cu_seq_lens_k": cu,
            "max_length_q": max(lens), "max_length_k": max(lens)}  # fmt: skip


def test_buckets_and_the_padding_document():
    from medqa.training.static_step import bucket_length, pad_pack

    assert [bucket_length(n, 64) for n in (1, 63, 64, 65, 127)] == [64, 64, 128, 128, 128]
    with pytest.raises(ValueError, match="static_packs"):
        bucket_length(10, 0)
    batch = _pack([5, 9, 3])
    out = pad_pack(batch, 8, max_docs=4, pad_id=0)
    assert out["input_ids"].shape == (1, 24) and out["real_tokens"] == 17
    assert torch.equal(out["input_ids"][:, :17], batch["input_ids"]) and (out["input_ids"][:, 17:] == 0).all()
    assert (out["labels"][:, 17:] == -100).all() and torch.equal(out["labels"][:, :17], batch["labels"])
    assert out["position_ids"][0, 17:].tolist() == list(range(7))
    # 4 examples + the padding document: 6 offsets; the unused slot is an empty sequence at the end
    assert out["cu_seq_lens"].tolist() == [0, 5, 14, 17, 24, 24]
    with pytest.raises(ValueError, match="3 documents"):
        pad_pack(batch, 8, max_docs=2, pad_id=0)


@pytest.mark.parametrize("fused", [False, True])
def test_padded_step_gives_peft_loss_and_every_gradient(compose_small, base_dir, fused):
    """PEFT's own forward on the unpadded pack (HF's shifted cross-entropy over labelled tokens) against the
    static step on the padded pack: same loss, same gradient for every LoRA weight (fp32, dropout 0)."""
    from medqa.training.static_step import StaticStep

    settings = settings_small(compose_small)
    model, tokenizer = _lora_model(settings, dropout=0.0)
    batch = _pack([5, 9, 3, 11])
    model.train()
    model.zero_grad(set_to_none=True)
    ref = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"],
                use_cache=False).loss  # fmt: skip
    ref.backward()
    ref_grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    if fused:
        _fuse_all(model)
    model.zero_grad(set_to_none=True)
    step = StaticStep(model, step=16, max_docs=6, pad_id=tokenizer.pad_token_id, dtype=None)
    loss, real = step(batch, num_items=None)
    assert real == 28 and step.steps == {"eager": 1, "captured": 0, "replayed": 0}
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    _assert_same(loss.item(), grads, ref.detach(), ref_grads)


def settings_small(compose_small):
    from medqa.config.build import settings_from_cfg

    return settings_from_cfg(compose_small(["lora=attn_mlp"]))


def test_trainer_with_static_packs_follows_the_same_losses(compose_small, base_dir, tmp_path):
    """Four optimizer steps through medqa's trainer, padding-free with and without static packs (LoRA dropout 0):
    the same logged losses and the same LoRA B movement; the static step took every batch."""
    from datasets import Dataset

    from medqa.model.loading import load_base, lora_b_movement
    from medqa.training.run import build_trainer

    settings = settings_small(compose_small)
    lora = dataclasses.replace(settings.lora, dropout=0.0)
    rows = [{"text": f"Question {i}: what treats anemia? Answer: oral iron. " * (1 + i % 3)} for i in range(32)]
    results = []
    for packs in (0, 32):
        train = dataclasses.replace(settings.train, max_steps=4, logging_steps=1, padding_free=True, static_packs=packs)
        model, tokenizer, _ = load_base(settings.model, settings.quant)
        trainer = build_trainer(
            model, tokenizer, Dataset.from_list(rows), None, train, lora, tmp_path / str(packs), "none"
        )
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        results.append((losses, lora_b_movement(trainer.model), trainer.state.num_input_tokens_seen))
    (plain, moved_plain, seen_plain), (static, moved_static, seen_static) = results
    assert static == pytest.approx(plain, rel=1e-4) and moved_static == pytest.approx(moved_plain, rel=1e-3)
    assert moved_static > 0 and seen_static == seen_plain


def test_settings_refuse_graphs_without_their_needs(compose):
    from medqa.config.build import settings_from_cfg

    train = settings_from_cfg(compose(["train=gpu"])).train
    assert train.static_packs == 512 and not train.cuda_graphs  # adopted: RESULTS.md 2026-12-01 s7
    assert settings_from_cfg(compose(["train=gpu", "train.static_packs=0"])).train.static_packs == 0
    assert dataclasses.replace(train, flash_varlen=True, cuda_graphs=True).problems() == []
    assert any("cuda_graphs" in p for p in dataclasses.replace(train, static_packs=0, cuda_graphs=True).problems())
    assert any("static_packs" in p for p in dataclasses.replace(train, static_packs=512, grad_accum=2).problems())
    assert any("static_packs" in p for p in dataclasses.replace(train, static_packs=-1).problems())
