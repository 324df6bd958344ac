"""Where and how a run is tracked in Weights & Biases."""

from __future__ import annotations

from dataclasses import dataclass, field

from medqa.settings.validation import TRACKING_MODES


@dataclass(frozen=True)
class TrackingSettings:
    mode: str = "offline"  # offline | online | disabled
    project: str = "medqa"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """What is wrong with these fields."""
        if self.mode in TRACKING_MODES:
            return []
        return [f"tracking.mode={self.mode!r}: expected one of {sorted(TRACKING_MODES)}"]
