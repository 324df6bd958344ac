"""Decoding settings -> `transformers.GenerationConfig`, and batched chat generation that records
whether each answer stopped at end of turn or ran into the token limit."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from medqa.model.compiled_layers import layers_as_built
from medqa.settings.decoding import DecodingSettings, decoding_problems


@dataclass(frozen=True)
class Answer:
    text: str
    n_tokens: int  # generated tokens, end-of-turn token excluded
    stopped_eos: bool  # False: the answer ran into max_new_tokens


def generation_config(settings: DecodingSettings, tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """Build the GenerationConfig; end of turn must stop generation and padding must not."""
    problems = decoding_problems(settings)
    if problems:
        raise ValueError("; ".join(problems))
    eos_ids = []
    for token in settings.eos_tokens:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ValueError(f"decoding.eos_tokens: {token!r} is not a token of this tokenizer")
        eos_ids.append(token_id)
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer has no pad token: batched decoding needs one that is not an EOS token")
    if tokenizer.pad_token_id in eos_ids:
        raise ValueError("decoding.eos_tokens contains the pad token: padding would end every answer")
    config = GenerationConfig(
        cache_implementation=settings.cache_implementation,
        do_sample=settings.do_sample,
        max_new_tokens=settings.max_new_tokens,
        repetition_penalty=settings.repetition_penalty,
        no_repeat_ngram_size=settings.no_repeat_ngram_size,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        temperature=settings.temperature,  # with do_sample false, a value other than 1.0 fails validation below
        top_p=settings.top_p,
    )
    try:
        # Strict: a combination transformers would only warn about (or refuse to save) is an error here.
        config.validate(strict=True)
    except ValueError as err:
        raise ValueError(f"decoding: {settings} does not give a valid GenerationConfig: {err}") from err
    return config


def generation_config_dict(config: GenerationConfig) -> dict:
    """The settings that differ from transformers' defaults (what `save_pretrained` writes), for logging."""
    values = config.to_diff_dict()
    values.pop("transformers_version", None)
    return values


@contextmanager
def merged_adapter(model):
    """Generate with each LoRA layer's update folded into its weight, without merging into the base weights.

    PEFT's merge_adapter/unmerge_adapter adds B·A into the base weight and subtracts it again; in bf16 that
    leaves rounding drift in the frozen weights after every eval. Here each adapted weight is pointed, for the
    duration, at a buffer holding W + scale·B·A and then pointed back at its untouched original tensor, so
    the base weights are bit-for-bit what they were. The buffers stay on the model and are refilled on every
    call: the addresses a compiled decode step saw last eval are the same the next time. Costs one extra copy
    of the adapted weights. A model with no active LoRA layer, or with quantized (4-bit) or sharded base
    weights, is left as is."""
    from peft.tuners.lora import LoraLayer

    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer) and not m.disable_adapters}
    weights = [m.get_base_layer().weight for m in layers.values()]
    if not layers or not hasattr(model, "disable_adapter") or any(_not_plain(w) for w in weights):
        yield model
        return
    buffers = model.__dict__.setdefault("_medqa_merged_weights", {})
    originals = []
    try:
        with torch.no_grad():
            for (name, layer), weight in zip(layers.items(), weights, strict=True):
                buffer = buffers.get(name)
                if buffer is None or buffer.shape != weight.shape or buffer.device != weight.device:
                    buffer = buffers[name] = torch.empty_like(weight.data)
                buffer.copy_(weight.data)
                for adapter in layer.active_adapters:
                    if adapter in layer.lora_A:
                        buffer.add_(layer.get_delta_weight(adapter).to(buffer.dtype))
                originals.append((weight, weight.data))
                weight.data = buffer
        with model.disable_adapter():  # the LoRA branch is off; the base layers compute with W + ΔW
            yield model
    finally:
        for weight, data in originals:
            weight.data = data


def _not_plain(weight) -> bool:
    """4-bit (bitsandbytes packs two values a byte) or sharded (DTensor) weights cannot take a merged copy."""
    return not weight.is_floating_point() or type(weight.data).__name__ == "DTensor"


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[dict]],
    config: GenerationConfig,
    seed: int = 0,
    merge_adapter: bool = False,
) -> list[Answer]:
    """Answer a batch of chats (left-padded, one generate call) without touching the caller's RNG state;
    `merge_adapter`: with the LoRA update folded into the weights for the call (see merged_adapter)."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    # The template already emits BOS: tokenizing with special tokens would double it.
    batch = tokenizer(texts, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
    batch = batch.to(model.device)
    was_training = model.training
    model.eval()
    try:
        cuda = [model.device] if model.device.type == "cuda" else []
        merged = merged_adapter(model) if merge_adapter else nullcontext(model)
        with torch.random.fork_rng(devices=cuda), torch.no_grad(), layers_as_built(model), merged:
            torch.manual_seed(seed)
            out = model.generate(**batch, generation_config=config)
    finally:
        model.train(was_training)
    eos_ids = set(config.eos_token_id)
    answers = []
    for row in out[:, batch["input_ids"].shape[1] :].tolist():
        stop = next((i for i, t in enumerate(row) if t in eos_ids), None)
        ids = row if stop is None else row[:stop]
        # Special tokens are kept in the text: a leaked chat header is a failure worth seeing.
        answers.append(Answer(tokenizer.decode(ids, skip_special_tokens=False), len(ids), stop is not None))
    return answers
