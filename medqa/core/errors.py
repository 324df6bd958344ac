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


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSON-lines file; a line that is not JSON is a
    ConfigError naming the file and the line."""
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{n}: not a JSON line ({err.msg})") from None


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
