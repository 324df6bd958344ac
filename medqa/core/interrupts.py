"""Interrupts a scheduler or a user sends (SIGINT from Ctrl-C, SIGTERM from schedulers and SLURM's pre-emption,
SIGUSR1 from SLURM's `--signal`) become one exception, `Interrupted`, raised in the main thread: the run's
`finally` blocks then close W&B and record what happened instead of the process dying mid-write.

Python runs a signal handler wherever the main thread is, even inside a `__del__` or a GC callback, where an
exception is printed and dropped; so the signal is also kept as pending, and `raise_pending()` at the stages'
boundaries raises it again until a caller takes it (`taken`). While W&B closes and the run is recorded
(`deferred()`), further signals wait. SIGKILL cannot be caught: a run killed so is continued from its latest
complete checkpoint (train.resume).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class Interrupted(KeyboardInterrupt):
    """The process got SIGINT, SIGTERM or SIGUSR1; `exit_code` is the shell's 128 + signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_state: dict = {"pending": None, "deferred": 0}


def _handler(signum: int, frame) -> None:
    if _state["pending"] is None:
        _state["pending"] = signum
    if _state["deferred"]:
        return  # closing W&B / recording the run: raised at the end of deferred()
    raise Interrupted(_state["pending"])


def install() -> None:
    """Turn SIGINT, SIGTERM and SIGUSR1 into `Interrupted` for the rest of the process (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, _handler)


def raise_pending() -> None:
    """Raise the interrupt a signal left pending (its first raise may have been dropped inside a __del__)."""
    if _state["pending"] is not None and not _state["deferred"]:
        raise Interrupted(_state["pending"])


def taken(err: Interrupted) -> Interrupted:
    """Mark the interrupt as handled by the caller (it is not raised again); returns it."""
    _state["pending"] = None
    _state["deferred"] += 1  # from here on the process only winds down: later signals do not cut that short
    return err


@contextmanager
def deferred() -> Iterator[None]:
    """A block (closing W&B, writing run.json) that a signal does not interrupt; the signal stays pending."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1
