"""How probe answers are scored (medqa.quality.metrics documents the formulas) and which rules select and alarm."""

from __future__ import annotations

from dataclasses import dataclass, field

# Weights of the form components in `quality` (see quality_score).
DEFAULT_WEIGHTS = {
    "eos": 1.5,  # stopped at end of turn
    "repetition": 2.0,  # 1 - rep_4, or 0 on a repetition loop
    "lists": 2.0,  # 0 on a runaway list
    "template": 2.0,  # 0 when chat-template text leaks
    "filler": 0.5,  # 0 with platform filler ("welcome to ...", "hope this helps")
}


@dataclass(frozen=True)
class QualitySettings:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))  # missing keys: default
    rep_4_max: float = 0.3  # rep_4 at or above this: repetition_loop
    max_repeat_run: int = 1  # identical consecutive segments (or list items) allowed in a row
    loop_similarity: float = 0.5  # two consecutive units at least this similar are "near-identical"
    loop_lines: int = 5  # this many near-identical units in a row: repetition_loop
    max_list_items: int = 15  # a longer list is runaway when the probe gives no expected_items
    runaway_factor: float = 1.5  # runaway when items > the probe's expected max x this
    drift_min_items: int = 6  # lists at least this long are checked for drifting off topic
    min_fact_recall: float = 0.5  # below: missing_facts; at or above, the facts factor is 1
    forbidden_penalty: float = 0.6  # share of quality lost when a forbidden claim is made
    invented_penalty: float = 0.4  # share of quality lost when an invented drug-like name appears
    min_words: int = 8  # shorter answers lose quality in proportion
    precision_power: float = 2.0  # content x precision ** this (S / (S + U) of the answer's claims)
    harm_scale: float = 10.0  # content x max(0, 1 + harm points / this); rubric points are negative
    unchecked_cap: float = 0.85  # at most this with a specific claim no reference fact or rule checks (1: no cap)
    unsupported_cap: float = 0.8  # at most this with any claim labelled unsupported (1: no cap)
    unchecked_min_words: int = 5  # words of 3+ letters that make an unchecked item a specific claim
    # The held-out generation eval (medqa.probing.heldout_eval), answered at every eval beside the probes.
    heldout_questions: int = 86  # questions (stratified subset when fewer than the set has); 0 = off
    heldout_max_new_tokens: int = 96  # per answer; the eval's cost grows with it
    heldout_batch_size: int = 96  # answers generated per batch (bounded memory); one batch for 86 questions
    bootstrap_resamples: int = 1000  # for the 95% CIs over questions and the paired rules
    divergence_margin: float = 0.0  # the paired CI of the quality drop must lie above this (0: excludes zero)
    divergence_against: str = "best"  # best: the best loss/quality so far; previous: the previous eval

    def __post_init__(self):
        object.__setattr__(self, "weights", {**DEFAULT_WEIGHTS, **self.weights})
        unknown = sorted(set(self.weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ValueError(f"quality.weights: unknown component(s) {unknown}; allowed: {sorted(DEFAULT_WEIGHTS)}")
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.values()):
            raise ValueError(f"quality.weights must be >= 0 and not all 0, got {dict(self.weights)}")
        for key in ("forbidden_penalty", "invented_penalty", "min_fact_recall", "unchecked_cap", "unsupported_cap"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"quality.{key}={getattr(self, key)}: must be in [0, 1]")
        if self.unchecked_min_words < 1:
            raise ValueError(f"quality.unchecked_min_words={self.unchecked_min_words}: must be >= 1")
        if self.precision_power < 0 or self.harm_scale <= 0:
            raise ValueError(
                f"quality.precision_power must be >= 0 and quality.harm_scale > 0, got "
                f"{self.precision_power}, {self.harm_scale}"
            )
        if self.heldout_questions < 0 or self.heldout_max_new_tokens < 1 or self.heldout_batch_size < 1:
            raise ValueError(
                "quality.heldout_questions must be >= 0, quality.heldout_max_new_tokens and "
                f"quality.heldout_batch_size >= 1, got {self.heldout_questions}, {self.heldout_max_new_tokens}, "
                f"{self.heldout_batch_size}"
            )
        if self.bootstrap_resamples < 100:
            raise ValueError(f"quality.bootstrap_resamples={self.bootstrap_resamples}: must be >= 100")
        if self.divergence_against not in {"best", "previous"}:
            raise ValueError(f"quality.divergence_against={self.divergence_against!r}: expected best or previous")


SELECT_RULES = ("last", "loss", "quality", "loss_quality")
