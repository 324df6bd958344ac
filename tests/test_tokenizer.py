"""The embedded tokenizer behaves like Llama 3.2's where medqa depends on it."""

from __future__ import annotations

import json

from medqa.model.tokenizer import EOT, PAD, SPECIAL_TOKENS


def test_special_tokens_are_single_tokens(tokenizer):
    for token in SPECIAL_TOKENS:
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, token
    assert tokenizer.eos_token == EOT


def test_pad_is_reserved_token_not_eos(tokenizer):
    assert tokenizer.pad_token == PAD
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.padding_side == "right"


def test_chat_template_renders_roles(tokenizer):
    chat = [
        {"role": "system", "content": "You are a doctor."},
        {"role": "user", "content": "What causes anemia?"},
        {"role": "assistant", "content": "Low iron."},
    ]
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a doctor.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat causes anemia?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nLow iron.<|eot_id|>"
    )
    prompt = tokenizer.apply_chat_template(chat[:2], tokenize=False, add_generation_prompt=True)
    assert text.startswith(prompt) and prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_prompt_tokens_are_a_prefix_of_prompt_plus_answer(tokenizer):
    # TRL masks the loss up to the common prefix: the whole prompt must be that prefix.
    chat = [{"role": "user", "content": "Why do I feel tired?"}, {"role": "assistant", "content": "Hello. Anemia."}]
    full = tokenizer.apply_chat_template(chat, tokenize=False)
    prompt = tokenizer.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids
    assert full_ids.count(tokenizer.bos_token_id) == 1


def test_text_round_trips(tokenizer):
    text = "Metformin 500 mg twice daily; HbA1c ≥ 6.5%.\n- thirst\n- fatigue"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_base_model_build_is_recorded(base_dir):
    info = json.loads((base_dir / "build_info.json").read_text())
    assert info["final_loss"] < info["first_loss"] - 1  # even the shortened test build learns
    assert (base_dir / "model.safetensors").exists()
