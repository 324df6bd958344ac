"""A run folder: what marks it as holding a run, and one lock per live run folder. The process training (or
resuming) a run holds `<run dir>/.medqa.lock`, so no second trainer, resume or `train.resume=auto` writes into
it while it lives.

The lock file records pid, host, the pid's start time and the command. A lock is stale, and is taken over, when
its process is gone: same host and the pid no longer runs, or runs but started at another time (a reused pid).
A lock from another host cannot be checked from here and counts as live (its message says how to clear it).
Creating the file with O_EXCL decides a race between two processes; a stale lock is moved aside first.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from medqa.checks import ConfigError

LOCK_FILE = ".medqa.lock"
# Files that mean a folder already holds a run: never written into twice.
RUN_MARKERS = ("run.json", "adapter", "probes.jsonl", "checkpoints", "wandb", "data_provenance.json")
_HELD: set[Path] = set()  # run folders this process has locked
_CREATED: set[Path] = set()  # run folders acquire() created (so an empty one may be removed again)


def check_fresh_run_dir(run_dir: Path) -> None:
    """Refuse a folder that already holds a run: nothing a user made is overwritten."""
    taken = [m for m in RUN_MARKERS if (Path(run_dir) / m).exists()]
    if taken:
        raise FileExistsError(f"{run_dir} already holds a run ({', '.join(taken)}); choose a new run dir")


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    started: str  # when the lock was taken (local time)
    pid_start: str | None  # the process's start time (/proc/<pid>/stat), to tell a reused pid apart
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.started}"


def _pid_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 (starttime); the command name may hold spaces


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def read_lock(run_dir: Path) -> LockHolder | None:
    """The holder recorded in the run folder's lock, or None when there is no readable lock."""
    try:
        data = json.loads((Path(run_dir) / LOCK_FILE).read_text(encoding="utf-8"))
        return LockHolder(**{k: data.get(k) for k in LockHolder.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def is_stale(holder: LockHolder) -> bool:
    """Whether the lock's process is gone (only decidable on its own host)."""
    if holder.host != socket.gethostname():
        return False
    if not _alive(holder.pid):
        return True
    now = _pid_start(holder.pid)
    return holder.pid_start is not None and now is not None and now != holder.pid_start


def live_holder(run_dir: Path) -> LockHolder | None:
    """Who trains in `run_dir` now (another live process), or None."""
    holder = read_lock(run_dir)
    if holder is None or is_stale(holder) or (holder.pid == os.getpid() and holder.host == socket.gethostname()):
        return None
    return holder


def check_not_live(run_dir: Path, key: str) -> None:
    """ConfigError naming the holder when another live process trains in `run_dir`."""
    holder = live_holder(run_dir)
    if holder is not None:
        raise _in_use(key, run_dir, holder)


def _in_use(key: str, run_dir: Path, holder: LockHolder) -> ConfigError:
    return ConfigError(
        f"{key}={run_dir}: in use by a live run ({holder.describe()}); wait for it to end or choose another "
        f"folder (if that process is gone, delete {Path(run_dir) / LOCK_FILE})"
    )


def acquire(run_dir: Path, key: str = "hydra.run.dir") -> None:
    """Lock `run_dir` (created if missing) for this process; a ConfigError naming the holder if another live
    process has it. A stale lock is moved aside (`.medqa.lock.stale-<time>`) and taken over."""
    run_dir = Path(run_dir)
    if run_dir.absolute() in _HELD:
        return
    if not run_dir.exists():
        _CREATED.add(run_dir.absolute())
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "pid_start": _pid_start(os.getpid()),
        "command": " ".join(sys.argv),
    }
    for _ in range(50):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = read_lock(run_dir)
            if holder is None:  # being written this instant, or left half-written by a kill
                if time.time() - _mtime(path) < 5:
                    time.sleep(0.1)
                    continue
            elif not is_stale(holder):
                raise _in_use(key, run_dir, holder) from None
            with contextlib.suppress(FileNotFoundError):  # another process may take it over at the same time
                os.replace(path, run_dir / f"{LOCK_FILE}.stale-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        _HELD.add(run_dir.absolute())
        return
    raise ConfigError(f"{key}={run_dir}: could not take the run folder's lock {path}")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def release(run_dir: Path) -> None:
    """Remove this process's lock on `run_dir` (a no-op if it holds none)."""
    run_dir = Path(run_dir)
    if run_dir.absolute() not in _HELD:
        return
    _HELD.discard(run_dir.absolute())
    holder = read_lock(run_dir)
    if holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname():
        with contextlib.suppress(OSError):
            (run_dir / LOCK_FILE).unlink()


def held() -> list[Path]:
    """The run folders this process holds locks on."""
    return sorted(_HELD)


def created_here(run_dir: Path) -> bool:
    """Whether this process created `run_dir` (when it locked it)."""
    return Path(run_dir).absolute() in _CREATED
