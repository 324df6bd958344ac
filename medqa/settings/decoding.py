"""How probe answers are decoded (becomes a transformers GenerationConfig in medqa.model.generation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from medqa.core.special_tokens import EOT


@dataclass(frozen=True)
class DecodingSettings:
    do_sample: bool = False
    max_new_tokens: int = 256
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0  # sampling is seeded, so the same config gives the same text
    eos_tokens: list[str] = field(default_factory=lambda: [EOT])
    # null: transformers' dynamic KV cache. static: a preallocated cache, so on a GPU transformers compiles the
    # decode step (one graph instead of ~30 kernel launches per layer per token); same tokens either way.
    cache_implementation: str | None = None
    # true: answer with the LoRA update folded into a copy of the adapted weights (medqa.generation.merged_adapter):
    # ~3x fewer kernels per decode step, one extra copy of those weights in memory, the base weights untouched.
    merge_adapter: bool = False

    def problems(self) -> list[str]:
        """What is wrong with these fields (decoding_problems)."""
        return decoding_problems(self)


def decoding_problems(settings: DecodingSettings) -> list[str]:
    """What is wrong with decoding settings before any tokenizer is at hand (medqa.checks reports these with
    every other bad value; generation_config refuses them)."""
    s, problems = settings, []
    if EOT not in s.eos_tokens:
        problems.append(f"decoding.eos_tokens={list(s.eos_tokens)} must include {EOT}")
    if s.max_new_tokens <= 0:
        problems.append(f"decoding.max_new_tokens={s.max_new_tokens}: must be > 0")
    if s.repetition_penalty <= 0:
        problems.append(f"decoding.repetition_penalty={s.repetition_penalty}: must be > 0 (1.0 = off)")
    if s.no_repeat_ngram_size < 0:
        problems.append(f"decoding.no_repeat_ngram_size={s.no_repeat_ngram_size}: must be >= 0 (0 = off)")
    if s.do_sample and not s.temperature > 0:
        problems.append(f"decoding.temperature={s.temperature}: sampling needs temperature > 0")
    if not 0 < s.top_p <= 1:
        problems.append(f"decoding.top_p={s.top_p}: must be in (0, 1]")
    if s.cache_implementation not in (None, "dynamic", "static"):
        problems.append(f"decoding.cache_implementation={s.cache_implementation!r}: null, dynamic or static")
    return problems
