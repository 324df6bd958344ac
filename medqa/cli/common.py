"""What every command line shares: checking the overrides before Hydra makes a run folder."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from medqa.core.errors import exit_on_error


def run_checked(command: str, preflight: Callable[[list[str]], list[str]], main: Callable[[], Any], argv=None) -> None:
    """A Hydra app's command line: `preflight` checks (and may rewrite) the overrides before Hydra creates an
    output folder, then `main` runs; a bad input ends with one line on stderr and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0], *exit_on_error(command, lambda: preflight(args))]
    main()
