"""Decoding settings become a GenerationConfig that always stops at end of turn and never on padding."""

from __future__ import annotations

import pytest

from medqa.generation import DecodingSettings, generation_config
from medqa.tokenizer import EOT, PAD


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
