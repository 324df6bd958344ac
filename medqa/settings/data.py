"""Settings of the data sources, their cleaning rules and the mix; each checks its own fields."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_FILLER_KEYWORDS = [
    "hope", "take care", "regards", "wish you", "wishing you", "best wishes", "good luck", "get well",
    "feel free", "let me know", "chat doctor", "chatdoctor", "query", "queries", "revert", "write back",
    "get back to me", "thanks", "thank you", "stay safe", "god bless",
]  # fmt: skip


@dataclass(frozen=True)
class CleaningSettings:
    """Which rules run on one source (all off but the structural checks by default)."""

    bad_rows: str = "skip"  # skip | error: a missing, non-string or empty question/answer cell
    platform_in_input: bool = False  # seed: drop rows whose question mentions the platform
    platform_pattern: str = r"chat\s*doctor|healthcare\s*magic|icliniq"
    ocr_repair: bool = False  # "HiT hanks" -> "Hi. Thanks", "Doctor.I" -> "Doctor. I", "Hello,welcome"
    ocr_residue: str = "keep"  # keep | flag | drop: what the repair could not fix
    strip_filler: bool = False  # seed: greetings at the start, sign-offs at the end
    strip_passes: int = 2  # seed: two passes, since removing one sign-off can expose another
    trailing_filler: bool = False  # drop whole closing sentences that contain a filler keyword
    filler_keywords: list[str] = field(default_factory=lambda: list(DEFAULT_FILLER_KEYWORDS))
    residual_filler: str = "keep"  # keep | drop: seed drops rows still starting/ending with filler
    min_answer_words: int = 0  # seed: 30 (counted after stripping); 0 = off
    max_words: int = 0  # seed: 600 for question + answer; 0 = off
    dedupe: bool = True  # drop an exact repeat of an earlier (question, answer) pair


def check_cleaning(settings: CleaningSettings, key: str) -> None:
    """Reject settings that would fail only later, naming the config key."""
    choices = {
        "bad_rows": ("skip", "error"),
        "ocr_residue": ("keep", "flag", "drop"),
        "residual_filler": ("keep", "drop"),
    }
    for name, allowed in choices.items():
        if getattr(settings, name) not in allowed:
            raise ValueError(f"{key}.{name}={getattr(settings, name)!r}: expected one of {list(allowed)}")
    if settings.strip_passes < 1:
        raise ValueError(f"{key}.strip_passes={settings.strip_passes}: must be >= 1")
    try:
        re.compile(settings.platform_pattern)
    except re.error as err:
        raise ValueError(f"{key}.platform_pattern: not a regex ({err})") from err


STYLES = ("conversational", "encyclopedic")


@dataclass(frozen=True)
class SourceSettings:
    path: str | None = None  # a local .jsonl/.json/.parquet/.csv file; wins over hub_id
    hub_id: str | None = None  # a hub dataset id, or a local folder holding a downloaded snapshot
    split: str = "train"
    style: str = "conversational"  # conversational | encyclopedic
    columns: dict[str, str] = field(default_factory=lambda: {"question": "input", "answer": "output"})
    cleaning: CleaningSettings = field(default_factory=CleaningSettings)

    def check(self, key: str) -> None:
        """Raise ValueError naming `key` for a bad style, column map or cleaning rule (no file is read)."""
        if self.style not in STYLES:
            raise ValueError(f"{key}.style={self.style!r}: expected one of {list(STYLES)}")
        if set(self.columns) != {"question", "answer"}:
            raise ValueError(f"{key}.columns={dict(self.columns)}: map exactly 'question' and 'answer' to columns")
        check_cleaning(self.cleaning, f"{key}.cleaning")


@dataclass(frozen=True)
class DataSettings:
    sources: dict[str, SourceSettings]
    mix: dict[str, float]
    total: int = 800  # rows in train + eval together, counted after cleaning and the token filter
    eval_fraction: float = 0.1
    seed: int = 42
    system_prompt: str = ""
    max_tokens: int = 512  # drop examples longer than this as chat-formatted by the model's tokenizer; 0 = off
    allow_fewer: bool = False  # a source too small for its share: error (False) or take what it has

    def problems(self) -> list[str]:
        """What is wrong with the mix and each used source's settings (files are checked in medqa.data.mix)."""
        try:
            validate_mix(self)
            for name, share in self.mix.items():
                if share > 0:
                    self.sources[name].check(f"data.sources.{name}")
        except ValueError as err:
            return [str(err)]
        return []


def validate_mix(settings: DataSettings) -> None:
    """Shares are non-negative, name known sources and sum to 1; checked before anything loads."""
    for name, share in settings.mix.items():
        if name not in settings.sources:
            raise ValueError(f"data.mix.{name}: no such source (known: {sorted(settings.sources)})")
        if share < 0:
            raise ValueError(f"data.mix.{name}={share}: a share must be >= 0")
    if abs(sum(settings.mix.values()) - 1.0) > 1e-6:
        raise ValueError(f"data.mix shares sum to {sum(settings.mix.values()):.6f}, not 1: {dict(settings.mix)}")
    if not 0 < settings.eval_fraction < 1:
        raise ValueError(f"data.eval_fraction={settings.eval_fraction}: must be in (0, 1)")
    if settings.total < 1 or settings.max_tokens < 0:
        raise ValueError(f"data.total={settings.total} must be >= 1, data.max_tokens={settings.max_tokens} >= 0")
