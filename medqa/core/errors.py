"""The errors every command shares, and the one way a command turns a bad input into one line and an exit code."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A bad input; the message names the key, the bad value and what is allowed."""


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of a UTF-8 text file; bytes that are not UTF-8 are a ConfigError
    naming the file, the line and the byte."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                byte = raw[err.start : err.start + 1].hex()
                raise ConfigError(f"{path}:{n}: not UTF-8 (byte 0x{byte} at column {err.start + 1})") from None


def read_utf8(path: Path) -> str:
    """A text file's content; bytes that are not UTF-8 are a ConfigError naming the file and the line."""
    return "".join(line for _, line in text_lines(path))


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSON-lines file; a line that is not UTF-8, not JSON or
    holds a lone surrogate (not writable as UTF-8) is a ConfigError naming the file and the line."""
    for n, line in text_lines(path):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{n}: not a JSON line ({err.msg})") from None
        bad = lone_surrogate(value)
        if bad is not None:
            raise ConfigError(f"{path}:{n}: lone surrogate {bad!r} in a string (not valid Unicode)")
        yield n, value


def lone_surrogate(value: Any) -> str | None:
    """The first piece of a string (key or value) in a parsed JSON value that cannot be encoded as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            return value[err.start : err.end]
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = lone_surrogate(k) if isinstance(k, str) else None
        if found is None:
            found = lone_surrogate(v)
        if found is not None:
            return found
    return None


class RunWriteError(OSError):
    """The run could not write its files (disk full, unwritable folder); earlier checkpoints are intact."""


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def exit_on_error(command: str, fn: Callable[[], Any], bad_input: tuple[type[Exception], ...] = ()) -> Any:
    """Run `fn`; a ConfigError (or one of `bad_input`, the errors a command raises for a bad file or value)
    or a RunWriteError becomes one line on stderr and a non-zero exit."""
    try:
        return fn()
    except (ConfigError, *bad_input) as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunWriteError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
