"""A byte-level BPE tokenizer with Llama 3's special tokens, pre-tokenizer and chat format.

The embedded base model uses it so that everything downstream (pad token, end of turn, chat
template, prompt/completion boundary) behaves as it does with the real Llama 3.2 tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from medqa.core.special_tokens import BOS, END_HEADER, END_OF_TEXT, EOT, PAD, SPECIAL_TOKENS, START_HEADER  # noqa: F401

# Llama 3's pre-tokenizer split: "\n\n" stays one piece, so a prompt ending in a header is a token prefix
# of prompt + completion (TRL derives the completion mask from that prefix).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# The Llama 3 chat format without 3.1's date/tools preamble (the embedded model has no tools).
LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts` and wrap it as a Llama-3-style fast tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOT,  # as in Llama-3.2-Instruct: generation ends at end of turn
        pad_token=PAD,
        additional_special_tokens=[END_OF_TEXT, START_HEADER, END_HEADER],
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = LLAMA3_CHAT_TEMPLATE
    return wrapped


def prompt_token_floor(system_prompt: str) -> int:
    """A lower bound on the tokens of the fixed part of every training prompt (system turn, an empty user
    turn, the assistant header) for a Llama-3 tokenizer: each special token is one token and every piece of
    Llama 3's pre-tokenizer split becomes at least one token."""
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated")
    turns = [("system", system_prompt.strip())] if system_prompt.strip() else []
    turns += [("user", ""), ("assistant", None)]
    specials, text = 1, []  # BOS
    for role, content in turns:  # <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>
        specials += 2 + (content is not None)
        text += [role, "\n\n" + (content or "")]
    return specials + sum(len(split.pre_tokenize_str(piece)) for piece in text if piece)
