"""`train.joint_projections`: inside the fused blocks, each layer's frozen q/k/v (gate/up) base weights are views of one
buffer and go through one GEMM each way. On the tiny model (fp32, CPU): PEFT's loss and every LoRA gradient with the
packed path counted as taken; a weight replaced, cast or moved after packing falls back to the separate GEMMs (the
same results); parameter names, state_dict and memory unchanged. The GPU timing is train_throughput.py's b_joint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.test_fused_blocks import _assert_same, _fix_masks, _fuse_all, _recording_masks, _training_batch
from tests.test_fused_lora import _lora_model, _loss_and_grads, _train

BLOCKS = ("LlamaAttention", "LlamaMLP")


def _recording_joint(monkeypatch) -> list:
    """The `joint` argument of every block-node call, in call order (None: that call took the separate GEMMs)."""
    from medqa.model import fused_blocks

    seen = []
    for node in (fused_blocks._SharedInputLora, fused_blocks._LoraSwiGLU):

        def recorded(*args, _apply=node.apply):
            seen.append(args[3])
            return _apply(*args)

        monkeypatch.setattr(node, "apply", recorded)
    return seen


def _blocks(model) -> list[torch.nn.Module]:
    """Attention and MLP modules in model order: layer 0's attention, layer 0's MLP, ... (the nodes' call order)."""
    return [m for m in model.modules() if type(m).__name__ in BLOCKS]


def _packed(model) -> list[torch.Tensor | None]:
    """Each block's packed buffer (None: not packed, or its pack was dropped)."""
    return [None if m.medqa_joint is None else m.medqa_joint.buffer for m in _blocks(model)]


def _settings(compose_small):
    from medqa.config.build import settings_from_cfg

    return settings_from_cfg(compose_small(["lora=attn_mlp"]))


@pytest.mark.parametrize("p", [0.0, 0.05])
def test_joint_projections_match_peft_loss_and_every_gradient(compose_small, base_dir, monkeypatch, p):
    """Every block node gets its layer's packed buffer, and the loss and every LoRA gradient are PEFT's (with p > 0,
    PEFT given the masks the blocks drew, as in test_fused_blocks)."""
    settings = _settings(compose_small)
    model, tokenizer = _lora_model(settings, dropout=p)
    reference, _ = _lora_model(settings, dropout=p)
    reference.load_state_dict(model.state_dict())  # A is drawn at random when PEFT wraps the model
    batch = _training_batch(tokenizer)
    layers = model.config.num_hidden_layers
    assert _fuse_all(model, joint=True) == (layers, layers)
    buffers = _packed(model)
    assert len(buffers) == 2 * layers and all(b is not None for b in buffers)
    masks = _recording_masks(monkeypatch)
    seen = _recording_joint(monkeypatch)
    loss, grads = _loss_and_grads(model, batch, seed=7)
    assert len(seen) == 2 * layers and all(s is b for s, b in zip(seen, buffers, strict=True))  # the packed path ran
    if p:
        _fix_masks(reference, list(masks), p)
    loss_ref, grads_ref = _loss_and_grads(reference, batch, seed=7)
    assert len(grads) == 2 * 7 * layers
    _assert_same(loss, grads, loss_ref, grads_ref)


def _merge_safely(model) -> None:
    """PEFT's safe merge puts a merged copy in each weight's .data; unmerging subtracts in that copy."""
    model.merge_adapter(safe_merge=True)
    model.unmerge_adapter()


def _cast_there_and_back(model) -> None:
    model.double().float()  # every weight gets new storage (as .to(cuda) or a bf16 cast would), values unchanged


def _replace_first_k_weight(model) -> None:
    weight = _blocks(model)[0].k_proj.base_layer.weight
    weight.data = weight.data * 1.5  # other values: computing with the stale buffer would give another loss


@pytest.mark.parametrize(
    ("change", "broken"),
    [(_merge_safely, "all"), (_cast_there_and_back, "all"), (_replace_first_k_weight, "layer 0 attention")],
)
def test_a_weight_replaced_after_packing_takes_the_separate_gemms(compose_small, base_dir, monkeypatch, change, broken):
    """The blocks whose weights are no longer views of their buffer drop the pack (one warning) and compute PEFT's
    loss and gradients (PEFT's model changed alike) with separate GEMMs, the others keep the joint path; packing
    again restores it."""
    settings = _settings(compose_small)
    model, tokenizer = _lora_model(settings, dropout=0.0)
    reference, _ = _lora_model(settings, dropout=0.0)
    reference.load_state_dict(model.state_dict())
    batch = _training_batch(tokenizer)
    _fuse_all(model, joint=True)
    change(model)
    change(reference)
    loss_peft, grads_peft = _loss_and_grads(reference, batch, seed=7)
    blocks = len(_blocks(model))
    expected = [i > 0 for i in range(blocks)] if broken == "layer 0 attention" else [False] * blocks
    seen = _recording_joint(monkeypatch)
    with pytest.warns(UserWarning, match="no longer a view of its packed buffer"):
        loss, grads = _loss_and_grads(model, batch, seed=7)
    assert [s is not None for s in seen] == expected
    assert [b is not None for b in _packed(model)] == expected  # dropped: no longer holds the weights' old memory
    _assert_same(loss, grads, loss_peft, grads_peft)

    _fuse_all(model, joint=True)  # packing where the weights now are: the joint path again
    seen.clear()
    loss, grads = _loss_and_grads(model, batch, seed=7)
    assert all(s is b and b is not None for s, b in zip(seen, _packed(model), strict=True))
    _assert_same(loss, grads, loss_peft, grads_peft)


def test_probes_merged_copy_leaves_the_packs_in_place(compose_small, base_dir, monkeypatch):
    """decoding.merge_adapter (train=gpu) points each weight at a merged copy while probes decode, then back at its
    original tensor: the views, so the next training step still takes the packed path, without a warning."""
    import warnings

    from medqa.model.generation import merged_adapter

    model, tokenizer = _lora_model(_settings(compose_small), dropout=0.0)
    _fuse_all(model, joint=True)
    buffers = _packed(model)
    with torch.no_grad(), merged_adapter(model):
        model.eval()
        model(**{k: v for k, v in _training_batch(tokenizer).items() if k != "labels"})
    seen = _recording_joint(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _loss_and_grads(model, _training_batch(tokenizer), seed=7)
    assert len(seen) == len(buffers) and all(s is b for s, b in zip(seen, buffers, strict=True))


def _storages(model) -> dict[int, int]:
    """Bytes of each distinct storage behind the model's parameters, by address."""
    return {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in model.parameters()}


def test_packing_keeps_names_state_dict_and_memory(compose_small, base_dir):
    """Packed weights are views of one buffer (shared storage, no extra bytes); names, state_dict keys and values,
    and the adapter's saved keys are unchanged; packing twice keeps the first pack."""
    from peft import get_peft_model_state_dict

    from medqa.model.fused_blocks import JOINT

    model, _ = _lora_model(_settings(compose_small), dropout=0.0)
    names = [n for n, _ in model.named_parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    adapter_keys = get_peft_model_state_dict(model).keys()
    storages = _storages(model)

    _fuse_all(model, joint=True)
    assert [n for n, _ in model.named_parameters()] == names
    after = model.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(after[k], v) for k, v in state.items())
    assert get_peft_model_state_dict(model).keys() == adapter_keys
    packed = _storages(model)
    layers = model.config.num_hidden_layers
    assert sum(packed.values()) == sum(storages.values())  # the same bytes, fewer storages
    assert len(packed) == len(storages) - 3 * layers  # q, k, v: one storage (-2), gate, up: one (-1)
    for block in _blocks(model):
        kind = "attention" if type(block).__name__ == "LlamaAttention" else "mlp"
        buffer = block.medqa_joint.buffer
        weights = [getattr(block, name).base_layer.weight for name in JOINT[kind]]
        assert buffer.shape == (sum(w.shape[0] for w in weights), weights[0].shape[1])
        for weight in weights:
            assert weight.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr()
        other = block.o_proj if kind == "attention" else block.down_proj  # read another input: not packed
        assert other.base_layer.weight.untyped_storage().data_ptr() != buffer.untyped_storage().data_ptr()

    packs = [m.medqa_joint for m in _blocks(model)]
    _fuse_all(model, joint=True)
    assert all(m.medqa_joint is pack for m, pack in zip(_blocks(model), packs, strict=True))


def test_trainer_with_joint_projections_follows_the_fused_blocks_losses(compose_small, base_dir, tmp_path, monkeypatch):
    """train.joint_projections reaches the model through build_trainer: four optimizer steps take the packed path
    and give fused_blocks' loss curve."""
    from medqa.config.build import settings_from_cfg

    overrides = ["train=smoke", "lora=attn_mlp", "lora.dropout=0.0", "train.fused_lora=true", "train.fused_blocks=true"]
    settings = settings_from_cfg(compose_small([*overrides, "train.padding_free=true"]))
    text = "Question {i}: what treats anemia? Answer: iron, {i} times a day."
    rows = [{"text": text.format(i=i) * (1 + i % 3)} for i in range(16)]
    blocks = _train(settings, rows, tmp_path / "blocks", joint_projections=False)
    seen = _recording_joint(monkeypatch)
    joint = _train(settings, rows, tmp_path / "joint", joint_projections=True)
    assert seen and all(s is not None for s in seen)
    assert joint[1] > 0 and joint[1] == pytest.approx(blocks[1], rel=1e-3)
    assert joint[0] == pytest.approx(blocks[0], rel=1e-4), (joint, blocks)


def test_joint_projections_is_off_by_default_and_needs_fused_blocks(compose):
    from medqa.config.build import settings_from_cfg
    from medqa.config.validate import checked_settings
    from medqa.core.errors import ConfigError

    for preset in ("cpu", "smoke", "seed_t4", "gpu"):  # gpu: to be measured first (b_joint)
        assert not settings_from_cfg(compose([f"train={preset}"])).train.joint_projections, preset
    train = settings_from_cfg(compose(["train=gpu", "train.joint_projections=true"])).train
    assert train.joint_projections and train.fused_blocks and not train.problems()
    with pytest.raises(ConfigError, match=r"train\.joint_projections=True: needs train\.fused_blocks=true"):
        checked_settings(["train.joint_projections=true"])  # train=cpu: no fused blocks

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import train_throughput

    row = settings_from_cfg(compose(["model=llama32_3b", *train_throughput.ROWS["b_joint"]])).train
    assert row.joint_projections and row.fused_blocks
