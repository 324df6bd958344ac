"""Interrupts a scheduler or a user sends (SIGINT from Ctrl-C, SIGTERM from schedulers and SLURM's pre-emption,
SIGUSR1 from SLURM's `--signal`) become one exception, `Interrupted`, raised in the main thread: the run's
`finally` blocks then close W&B and record what happened instead of the process dying mid-write.

A second signal while the first is being handled is ignored (closing W&B takes a moment); SIGKILL cannot be
caught, and a run killed so is continued from its latest complete checkpoint (medqa.resume).
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


_state = {"raised": False}


def _handler(signum: int, frame) -> None:
    if _state["raised"]:
        return  # already stopping: let the first interrupt's cleanup finish
    _state["raised"] = True
    raise Interrupted(signum)


def install() -> None:
    """Turn SIGINT, SIGTERM and SIGUSR1 into `Interrupted` for the rest of the process (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, _handler)


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """`install` for a block; the previous handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    install()
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
