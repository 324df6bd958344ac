"""Everything medqa knows about a run folder, in one place: which files mark a run, which checkpoints are
complete (one rule: checkpoint_problem), where its W&B segments are, the checks that a run dir can be made
and an adapter will load, and the lock a live run holds on its folder.

    runs/<date>/<time>/  .hydra/  data_provenance.json  checkpoints/checkpoint-N/  adapter/  probes.jsonl
                         run.json  trainer_state.json  curves.png  wandb/offline-run-<time>-<id>/"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from medqa.core.errors import ConfigError, one_line


def check_run_dir_writable(run_dir: Path) -> None:
    """The run dir can be created: its nearest existing ancestor is a writable folder."""
    probe = Path(run_dir).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"hydra.run.dir={run_dir}: cannot create it, {probe} is not a writable folder")


def check_adapter_dir(path: str | Path, key: str = "adapter") -> Path:
    """A PEFT adapter folder that will load: a parseable adapter_config.json and a readable safetensors file
    (never a pickled .bin)."""
    import json

    from safetensors import safe_open

    p = Path(path)
    config, weights = p / "adapter_config.json", p / "adapter_model.safetensors"
    if not weights.is_file():
        pickled = (p / "adapter_model.bin").exists()
        pickled = " (only a pickled adapter_model.bin, which is never loaded)" if pickled else ""
        raise ConfigError(f"{key}={p}: no adapter_model.safetensors{pickled}")
    try:
        json.loads(config.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}={p}: adapter_config.json unreadable ({one_line(str(err))})") from None
    try:
        with safe_open(str(weights), framework="pt") as f:  # checks the header and that it covers the file
            if not list(f.keys()):
                raise ValueError("no tensors")
    except Exception as err:  # safetensors raises its own error types for a corrupt or truncated file
        raise ConfigError(f"{weights}: corrupt adapter file ({one_line(str(err))[:200]})") from None
    return p


# What HF Trainer writes into checkpoint-N and resume reads; trainer_state.json comes last, so a checkpoint cut
# short by a kill lacks it (or holds it empty) and is skipped (checkpoint_problem).
CHECKPOINT_FILES = (
    "adapter_model.safetensors",
    "adapter_config.json",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
    "trainer_state.json",
)


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's complete checkpoints (checkpoint_problem is None), oldest first."""
    return [p for p in saved_checkpoints(run_dir) if checkpoint_problem(p) is None]


def saved_checkpoints(run_dir: Path) -> list[Path]:
    """Every checkpoint-N folder of the run, complete or not, oldest first."""
    root = Path(run_dir) / "checkpoints"
    found = [p for p in root.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()] if root.is_dir() else []
    return sorted(found, key=checkpoint_step)


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why resume could not continue from `checkpoint`, or None when it is complete: every file resume reads
    is there and not empty, trainer_state.json parses with its log, the adapter's safetensors header covers
    the file. Read before anything opens (no W&B segment, no probe rows moved)."""
    p = Path(checkpoint)
    for name in CHECKPOINT_FILES:
        f = p / name
        if not f.is_file():
            return f"{p.name}: no {name}"
        if f.stat().st_size == 0:
            return f"{p.name}: {name} is empty (0 bytes)"
    try:
        state = json.loads((p / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return f"{p.name}: trainer_state.json unreadable ({one_line(str(err))})"
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        return f"{p.name}: trainer_state.json has no log_history"
    try:
        check_adapter_dir(p, key="train.resume checkpoint")
    except ConfigError as err:
        return str(err)
    return None


def checkpoint_step(checkpoint: Path) -> int:
    return int(Path(checkpoint).name.split("-")[-1])


def wandb_segments(run_dir: Path) -> list[Path]:
    """The run's W&B run folders (offline-run-<time>-<id> / run-<time>-<id>), oldest first."""
    root = Path(run_dir) / "wandb"
    return sorted((p for p in root.glob("*run-*-*") if p.is_dir()), key=lambda p: p.name.split("run-", 1)[1])


def previous_wandb_id(run_dir: Path) -> str | None:
    segments = wandb_segments(run_dir)
    return segments[-1].name.rsplit("-", 1)[1] if segments else None


# Files that mean a folder already holds a run: never written into twice.
RUN_MARKERS = ("run.json", "adapter", "probes.jsonl", "checkpoints", "wandb", "data_provenance.json")


def check_fresh_run_dir(run_dir: Path) -> None:
    """Refuse a folder that already holds a run: nothing a user made is overwritten."""
    taken = [m for m in RUN_MARKERS if (run_dir / m).exists()]
    if taken:
        raise FileExistsError(f"{run_dir} already holds a run ({', '.join(taken)}); choose a new run dir")


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def is_run_dir(path: Path) -> bool:
    return (path / "run.json").exists() or (path / ".hydra" / "config.yaml").exists()


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").exists()


def run_finished(run_dir: Path) -> bool:
    """Whether the run in `run_dir` finished: it has a run.json that is not an interrupted run's (an interrupted
    run's run.json says `"state": "interrupted"`, and the run can be continued)."""
    path = Path(run_dir) / "run.json"
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("state") != "interrupted"
    except (OSError, ValueError, AttributeError):
        return True  # unreadable: never resumed over


def check_resumable(run_dir: Path, key: str = "train.resume") -> Path:
    """The checkpoint to continue `run_dir` from; ConfigError when it is not an unfinished run with a
    complete one (the reason the latest is incomplete is named)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{key}={run_dir}: no such run folder")
    if run_finished(run_dir):
        raise ConfigError(f"{key}={run_dir}: that run finished (run.json exists); start a new run instead")
    found = checkpoints(run_dir)
    if not found:
        saved = saved_checkpoints(run_dir)
        why = f" ({checkpoint_problem(saved[-1])})" if saved else ""
        raise ConfigError(f"{key}={run_dir}: no complete checkpoint in {run_dir / 'checkpoints'}{why}")
    return found[-1]


# ---- the lock of a live run ----
# The process training (or resuming) a run holds `<run dir>/.medqa.lock` (pid, host, the pid's start time), so
# no second trainer, resume or `train.resume=auto` writes into it while it lives. A lock is stale, and is taken
# over, when its process is gone: same host and the pid no longer runs, or runs but started at another time (a
# reused pid). A lock from another host cannot be checked from here and counts as live (the message says how to
# clear it). Creating the file with O_EXCL decides a race between two processes.
LOCK_FILE = ".medqa.lock"
_HELD: set[Path] = set()  # run folders this process has locked
_CREATED: set[Path] = set()  # run folders acquire() created (so an empty one may be removed again)


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
    process has it. A stale lock is removed and taken over."""
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
            _remove_if_unchanged(path, holder)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        _HELD.add(run_dir.absolute())
        return
    raise ConfigError(f"{key}={run_dir}: could not take the run folder's lock {path}")


def _remove_if_unchanged(path: Path, holder: LockHolder | None) -> None:
    """Remove a stale lock file, unless another process replaced it meanwhile: the stale file's own inode is
    flock'ed while its content is read again, so two processes taking it over together remove it only once."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if read_lock(path.parent) == holder:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        os.close(fd)


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
