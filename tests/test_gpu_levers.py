"""The speed levers of `train=gpu` change how a batch is computed, never what is learned from it: checked on
CPU at tiny size (the GPU timings are in benchmarks/RESULTS.md)."""

from __future__ import annotations

import dataclasses

import pytest


def test_gpu_preset_composes_with_its_levers(compose):
    from medqa.config.build import settings_from_cfg

    train = settings_from_cfg(compose(["train=gpu", "model=llama32_3b"])).train
    assert train.padding_free and not train.gradient_checkpointing
    assert train.attn_implementation == "flex_attention" and train.precision == "bf16" and train.fused_lora
    assert train.per_device_batch * train.grad_accum == 16  # the seed's 4 x 4 examples per step


def test_gpu_preset_sets_fast_probes_whatever_the_decoding_preset(compose):
    """train=gpu also sets how probes are computed (static cache, LoRA folded); the decoding preset still
    decides what is decoded, and a command-line override still wins."""
    from medqa.config.build import settings_from_cfg

    rp13 = settings_from_cfg(compose(["train=gpu", "decoding=greedy_rp13"])).decoding
    assert (rp13.cache_implementation, rp13.merge_adapter, rp13.repetition_penalty) == ("static", True, 1.3)
    off = settings_from_cfg(compose(["train=gpu", "decoding.merge_adapter=false"])).decoding
    assert (off.cache_implementation, off.merge_adapter) == ("static", False)
    cpu = settings_from_cfg(compose(["decoding=greedy_rp13"])).decoding
    assert (cpu.cache_implementation, cpu.merge_adapter) == (None, False)  # the CPU default is unchanged


def test_seed_batch_and_every_lever_override_compose(compose):
    from medqa.config.build import settings_from_cfg

    overrides = ["train=seed_t4", "train.padding_free=true", "train.use_liger=true", "train.torch_compile=true"]
    train = settings_from_cfg(compose(overrides)).train
    assert (train.per_device_batch, train.grad_accum, train.padding_free) == (4, 4, True)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_batches_keep_examples_apart(compose_small, base_dir, tmp_path, attn):
    """Eval loss on the same examples, padded vs flattened into one row: equal only if no example attends to
    another (transformers builds the block-diagonal mask from the restarting position ids)."""
    from datasets import Dataset

    from medqa.config.build import settings_from_cfg
    from medqa.model.loading import load_base
    from medqa.training.run import build_trainer

    settings = settings_from_cfg(compose_small(["train=smoke"]))
    system = [{"role": "system", "content": settings.data.system_prompt}]
    rows = [
        {"prompt": [*system, {"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]}
        for q, a in [
            ("What causes iron deficiency anemia?", "Blood loss, low dietary iron and poor absorption."),
            ("How is malaria treated?", "With artemisinin-based combination therapy such as artemether-lumefantrine."),
            ("What are the signs of a heart attack?", "Chest pain, shortness of breath and a cold sweat."),
            ("What is hypertension?", "Blood pressure that stays at or above 130/80 mmHg."),
        ]
    ]
    dataset = Dataset.from_list(rows)
    losses = {}
    for padding_free in (False, True):
        train = dataclasses.replace(settings.train, padding_free=padding_free, per_device_batch=4)
        model, tokenizer, _ = load_base(settings.model, settings.quant, attn_implementation=attn)
        out = tmp_path / str(padding_free)
        trainer = build_trainer(model, tokenizer, dataset, dataset, train, settings.lora, out, "none")
        losses[padding_free] = trainer.evaluate()["eval_loss"]
    assert losses[True] == pytest.approx(losses[False], abs=1e-4), losses
