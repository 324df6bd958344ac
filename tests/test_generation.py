"""Decoding settings become a GenerationConfig that always stops at end of turn and never on padding;
every preset builds one; seeded sampling gives the same text twice."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import GenerationConfig

from medqa.config.build import settings_from_cfg
from medqa.config.compose import CONF_DIR
from medqa.model.generation import generate_answers, generation_config, generation_config_dict
from medqa.model.tokenizer import EOT, PAD
from medqa.settings.decoding import DecodingSettings
from tests.markers import INDUCTOR_ON_CPU


def test_greedy_config_stops_at_end_of_turn(tokenizer):
    config = generation_config(DecodingSettings(), tokenizer)
    assert config.eos_token_id == [tokenizer.convert_tokens_to_ids(EOT)]
    assert config.pad_token_id == tokenizer.pad_token_id != tokenizer.convert_tokens_to_ids(EOT)
    assert config.do_sample is False and config.max_new_tokens == 256


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (DecodingSettings(eos_tokens=["<|end_of_text|>"]), r"must include <\|eot_id\|>"),
        (DecodingSettings(eos_tokens=[EOT, PAD]), "contains the pad token"),
        (DecodingSettings(eos_tokens=[EOT, "<|not_a_token|>"]), "is not a token"),
        (DecodingSettings(max_new_tokens=0), "max_new_tokens=0"),
    ],
)
def test_bad_decoding_is_rejected(tokenizer, settings, message):
    with pytest.raises(ValueError, match=message):
        generation_config(settings, tokenizer)


PRESETS = sorted(p.stem for p in (CONF_DIR / "decoding").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_a_generation_config_that_stops_at_end_of_turn(compose, tokenizer, preset):
    assert (CONF_DIR / "decoding" / f"{preset}.yaml").read_text().startswith("#"), "a preset says what it is for"
    settings = settings_from_cfg(compose([f"decoding={preset}"])).decoding
    config = generation_config(settings, tokenizer)
    assert isinstance(config, GenerationConfig)
    eot = tokenizer.convert_tokens_to_ids(EOT)
    assert eot in config.eos_token_id and config.pad_token_id not in config.eos_token_id
    assert config.max_new_tokens == settings.max_new_tokens and config.do_sample is settings.do_sample
    logged = generation_config_dict(config)
    assert logged["eos_token_id"] == config.eos_token_id and "transformers_version" not in logged


def test_seed_presets_hold_the_seed_settings(compose):
    ngram3 = settings_from_cfg(compose(["decoding=greedy_ngram3"])).decoding
    rp13 = settings_from_cfg(compose(["decoding=greedy_rp13"])).decoding
    sample = settings_from_cfg(compose(["decoding=sample"])).decoding
    assert (ngram3.do_sample, ngram3.no_repeat_ngram_size, ngram3.repetition_penalty) == (False, 3, 1.0)
    assert (rp13.do_sample, rp13.repetition_penalty, rp13.max_new_tokens, rp13.eos_tokens) == (False, 1.3, 256, [EOT])
    assert sample.do_sample and sample.temperature < 1 and sample.top_p < 1


def test_a_preset_that_drops_end_of_turn_is_rejected(compose, tokenizer):
    settings = settings_from_cfg(compose(["decoding=greedy_rp13", "decoding.eos_tokens=['<|end_of_text|>']"]))
    with pytest.raises(ValueError, match=r"decoding.eos_tokens=\['<\|end_of_text\|>'\] must include <\|eot_id\|>"):
        generation_config(settings.decoding, tokenizer)


def test_a_tokenizer_without_pad_is_rejected(tokenizer):
    no_pad = copy.deepcopy(tokenizer)
    no_pad.pad_token = None
    with pytest.raises(ValueError, match="no pad token"):
        generation_config(DecodingSettings(), no_pad)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (DecodingSettings(do_sample=True, temperature=0.0), "temperature=0.0"),
        (DecodingSettings(do_sample=True, top_p=1.5), "top_p=1.5"),
        (DecodingSettings(repetition_penalty=0.0), "repetition_penalty=0.0"),
        (DecodingSettings(temperature=0.7), "does not give a valid GenerationConfig"),  # sampling knob, greedy
    ],
)
def test_settings_transformers_would_misread_are_rejected(tokenizer, settings, message):
    with pytest.raises(ValueError, match=message):
        generation_config(settings, tokenizer)


@pytest.fixture(scope="module")
def tiny_model(base_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True)


CHATS = [[{"role": "user", "content": q}] for q in ("What causes iron deficiency anemia?", "How is malaria treated?")]


def test_seeded_sampling_gives_the_same_text_whatever_the_callers_rng(compose, tiny_model, tokenizer):
    settings = settings_from_cfg(compose(["decoding=sample", "decoding.max_new_tokens=24"])).decoding
    config = generation_config(settings, tokenizer)
    torch.manual_seed(1)
    caller_state = torch.get_rng_state()
    first = generate_answers(tiny_model, tokenizer, CHATS, config, seed=settings.seed)
    assert torch.equal(torch.get_rng_state(), caller_state), "generation must not consume the caller's RNG"
    torch.manual_seed(2)  # a different global state must not change the seeded text
    again = generate_answers(tiny_model, tokenizer, CHATS, config, seed=settings.seed)
    assert [a.text for a in again] == [a.text for a in first]
    other_seed = generate_answers(tiny_model, tokenizer, CHATS, config, seed=settings.seed + 1)
    assert [a.text for a in other_seed] != [a.text for a in first], "sampling must actually sample"


def test_static_kv_cache_gives_the_same_greedy_answers(compose_small, base_dir, tokenizer):
    """The static cache is a speed lever only: byte-identical greedy answers to the dynamic cache."""
    import dataclasses

    from transformers import AutoModelForCausalLM

    settings = settings_from_cfg(compose_small(["decoding=greedy_rp13", "decoding.max_new_tokens=24"]))
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    chats = [[{"role": "user", "content": p.question}] for p in settings.probes]
    answers = {}
    for cache in (None, "static"):
        decoding = dataclasses.replace(settings.decoding, cache_implementation=cache)
        answers[cache] = generate_answers(model, tokenizer, chats, generation_config(decoding, tokenizer))
    assert [a.text for a in answers["static"]] == [a.text for a in answers[None]]
    assert any(a.n_tokens > 0 for a in answers[None])


def test_merged_adapter_computes_the_adapter_and_leaves_base_weights_bit_identical(compose_small, base_dir, tokenizer):
    """decoding.merge_adapter: the LoRA update folded into copies of the weights while answering. The model
    must compute what the adapter computes (not the bare base), and the base weights must come back untouched."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from medqa.model.generation import merged_adapter
    from medqa.model.loading import lora_config

    settings = settings_from_cfg(compose_small(["lora=attn_mlp", "decoding.max_new_tokens=24"]))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), lora_config(settings.lora)).eval()
    torch.manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)  # a trained adapter is not zero
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}
    ids = tokenizer("What causes iron deficiency anemia?", return_tensors="pt").input_ids
    with torch.no_grad():
        adapted = model(ids).logits
        with model.disable_adapter():
            bare = model(ids).logits
        with merged_adapter(model):
            merged = model(ids).logits
            first_buffers = {n: p.data_ptr() for n, p in model.named_parameters() if "base_layer" in n}
        with merged_adapter(model):
            assert {n: p.data_ptr() for n, p in model.named_parameters() if "base_layer" in n} == first_buffers
    assert (adapted - bare).abs().max() > 1e-2, "the adapter must change the output for this test to mean anything"
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-4)
    for name, param in model.named_parameters():
        if "base_layer" in name:
            assert torch.equal(param, base_before[name]), f"{name} drifted"
            assert param.data_ptr() != first_buffers[name], f"{name} still points at the merged copy"

    config = generation_config(settings.decoding, tokenizer)
    plain = generate_answers(model, tokenizer, CHATS, config)
    folded = generate_answers(model, tokenizer, CHATS, config, merge_adapter=True)
    assert [a.text for a in folded] == [a.text for a in plain]


def test_layers_compiled_for_training_answer_with_their_own_forward(compose_small, base_dir, tokenizer, monkeypatch):
    """train.compile_layers trains each decoder layer through one compiled function; evaluation and generation (eval
    mode, no grad, a token at a time under generation's own compiled decode step) run the layer's own forward and
    never reach the training graphs. (A spy stands in for torch.compile's wrapper: what is checked is the routing.)"""
    from transformers import AutoModelForCausalLM

    from medqa.model import compiled_layers

    calls = []

    def spy(layer, *args, **kwargs):
        calls.append(layer)
        return compiled_layers._layer_step(layer, *args, **kwargs)

    monkeypatch.setattr(compiled_layers, "compiled_step", lambda: spy)
    seen = []
    settings = settings_from_cfg(compose_small(["decoding.max_new_tokens=8"]))
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = generation_config(settings.decoding, tokenizer)
    eager = generate_answers(model, tokenizer, CHATS, config)
    assert compiled_layers.compile_blocker(model) is None
    layers = compiled_layers.compile_decoder_layers(model, cpu=True)
    assert layers == model.config.num_hidden_layers
    assert not any(getattr(m, "_compiled_call_impl", None) for m in model.modules()), "not Module.compile"
    decoder = compiled_layers.decoder_layers(model)
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.append("forward" in m.__dict__)) for m in decoder]
    answers = generate_answers(model, tokenizer, CHATS, config)
    for hook in hooks:
        hook.remove()
    assert seen and not any(seen), "generation must see the layers as built, without the training switch"
    assert all("forward" in m.__dict__ for m in decoder), "the switch must come back after generation"
    assert calls == [] and [a.text for a in answers] == [a.text for a in eager]
    ids = tokenizer("What causes iron deficiency anemia?", return_tensors="pt").input_ids
    with torch.no_grad():
        model.train()(ids)
    assert calls == [], "no grad: the layer's own forward"
    model.train()(ids).logits.sum().backward()
    assert len(calls) == layers and len(set(map(id, calls))) == layers


@INDUCTOR_ON_CPU  # flex's block mask compiles through inductor
def test_compiled_decode_traces_one_graph_beside_layers_compiled_for_training(compose_small, base_dir, tokenizer):
    """With train.compile_layers on a flex-attention model, flex is kept out of the training layers' graphs;
    generation's compiled decode step (static cache) must still trace the whole model as one graph, as without
    compiled layers. s13 on an H200: a flex call disabled for dynamo everywhere broke that graph at every layer and
    the decode failed ("accessing tensor output of CUDAGraphs that has been overwritten"). Here: fullgraph on CPU,
    dynamo's eager backend."""
    from transformers import AutoModelForCausalLM
    from transformers.generation.configuration_utils import CompileConfig

    from medqa.model import compiled_layers

    settings = settings_from_cfg(compose_small(["decoding.max_new_tokens=3", "decoding.cache_implementation=static"]))
    model = AutoModelForCausalLM.from_pretrained(base_dir, attn_implementation="flex_attention").eval()
    config = generation_config(settings.decoding, tokenizer)
    plain = generate_answers(model, tokenizer, CHATS, config)
    compiled_layers.compile_decoder_layers(model)
    assert model.config._attn_implementation == compiled_layers.FLEX_OUTSIDE_GRAPH
    config.compile_config = CompileConfig(fullgraph=True, backend="eager", mode=None, dynamic=False)
    config.compile_config._compile_all_devices = True  # transformers compiles the decode step on accelerators only
    torch._dynamo.reset()
    answers = generate_answers(model, tokenizer, CHATS, config)  # a graph break raises under fullgraph
    assert [a.text for a in answers] == [a.text for a in plain]
