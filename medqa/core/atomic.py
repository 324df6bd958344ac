"""Outputs are written whole or not at all: into a temporary sibling, then renamed over (or linked to) the final
name, so a full disk, a kill or a bad value mid-write never leaves a 0-byte or half-written file behind."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def _named(err: OSError, path: Path) -> OSError:
    """The same error, naming the final file (a failed write() names none)."""
    return type(err)(err.errno, err.strerror or str(err), str(path)) if err.errno else err


@contextlib.contextmanager
def atomic_path(path: str | Path, exclusive: bool = False) -> Iterator[Path]:
    """A temporary path to write `path`'s content to; on success it becomes `path` (with `exclusive`, only if
    `path` does not exist yet: FileExistsError otherwise), on any error it is removed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield tmp
        if exclusive:
            os.link(tmp, path)  # fails if path exists: never overwrites
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, FileExistsError) and exclusive:
            raise FileExistsError(err.errno, "exists; choose a new file", str(path)) from None
        raise _named(err, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text(path: str | Path, text: str, exclusive: bool = False) -> Path:
    """Write `text` (UTF-8) to `path` atomically; see atomic_path."""
    with atomic_path(path, exclusive) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary sibling folder to fill; on success it is renamed to `path` (which must not exist or be an
    empty folder), on any error it is removed with everything in it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.mkdir()
    try:
        yield tmp
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        os.rename(tmp, path)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise _named(err, path) from None
        raise
