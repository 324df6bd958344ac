"""Work a fixture needs, started before its first test.

Some fixtures are whole subprocesses (training runs, a torchrun job) that would otherwise hold up the test that
first asks for them. Their module registers a starter under the fixture's name with `@starts("name")`; once
collection is done, conftest queues the background starters of the fixtures some selected test uses, in the order
of their first use, and one background lane runs them one after the other, each beside the tests before its first
user. Measured on two cores, that pays only for the sweep grid; the others are `background=False` and start when
their fixture takes them (`take("name")`: started by the lane, or there and then).
Work started and never taken (a failure with -x, an interrupt) is killed when the session ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Overrides every test run adds: the held-out eval answers 14 of the 86 questions (2 for each of the 7 aspects), still
# scored, logged and used for the alarm and the selection, at a sixth of the generation cost. Tests about the eval
# itself set their own size (test_heldout_eval: 16; test_train_e2e's CLI run: all 86).
TEST_OVERRIDES: list[str] = ["quality.heldout_questions=14"]


@dataclass
class Started:
    """The processes a starter launched, and whatever its fixture needs to find their results (folders, logs)."""

    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)

    def is_settled(self) -> bool:
        """Every process has ended: the lane may start the next fixture's work."""
        return all(p.poll() is not None for p in self.procs.values())

    def wait(self, name: str, timeout: float = 900) -> int:
        """The return code of process `name`; it is killed if it has not ended within `timeout` seconds."""
        proc = self.procs[name]
        try:
            return proc.wait(timeout=timeout)
        finally:
            _kill(proc)  # no-op once it has exited; a timeout does not leave it running

    def stop(self, name: str) -> None:
        """Kill process `name` (and its group) now."""
        _kill(self.procs[name])

    def kill(self) -> None:
        for proc in self.procs.values():
            _kill(proc)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own group (start_new_session): W&B's service process goes too
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


STARTERS: dict[str, Callable[[], Started]] = {}
BACKGROUND: set[str] = set()  # the fixtures whose work the lane starts early; the others start when taken
_started: dict[str, Started] = {}  # started, not yet taken
_queue: list[str] = []  # queued for the lane, not yet started
_lock = threading.Lock()
_stop = threading.Event()


def starts(fixture: str, background: bool = True) -> Callable[[Callable[[], Started]], Callable[[], Started]]:
    """Register the decorated function as the starter of `fixture`'s work; `background=False`: not early, started
    when the fixture takes it (its processes still run side by side)."""

    def register(starter: Callable[[], Started]) -> Callable[[], Started]:
        STARTERS[fixture] = starter
        if background:
            BACKGROUND.add(fixture)
        return starter

    return register


def start_used(fixture_names: list[str]) -> None:
    """Queue the work of every registered fixture in `fixture_names` (what the selected tests use, in the order of
    first use) and start the lane that runs it."""
    with _lock:
        _queue.extend(n for n in dict.fromkeys(fixture_names) if n in BACKGROUND and n not in _started)
    if _queue:
        threading.Thread(target=_lane, name="medqa-early-lane", daemon=True).start()


def _lane() -> None:
    """Start the queued work one fixture at a time, the next once the last has settled."""
    while not _stop.is_set():
        with _lock:
            if not _queue:
                return
            name = _queue.pop(0)
            work = _started[name] = STARTERS[name]()
        while not (_stop.is_set() or work.is_settled()):
            time.sleep(0.5)


def take(fixture: str) -> Started:
    """The work started for `fixture`: by the lane, or now (taken off the queue) if the lane has not got to it."""
    with _lock:
        if fixture in _queue:
            _queue.remove(fixture)
        work = _started.pop(fixture, None)
    return work or STARTERS[fixture]()


def kill_untaken() -> None:
    _stop.set()
    with _lock:
        _queue.clear()
        while _started:
            _started.popitem()[1].kill()


def checkout_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with the checkout on PYTHONPATH (what a subprocess of the tests runs medqa from), plus
    `extra`."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **(extra or {})}


def launch(
    cmd: list[str], log: Path, cwd: Path = ROOT, env: dict[str, str] | None = None, stderr: Path | None = None
) -> subprocess.Popen:
    """`cmd` in the background, in its own process group, stdout into `log`, stderr too unless `stderr` is given."""
    with open(log, "w") as out, open(stderr or os.devnull, "w") as err:  # the child keeps its own descriptors
        return subprocess.Popen(
            cmd, cwd=cwd, env=env or checkout_env(), stdout=out, stderr=err if stderr else subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
