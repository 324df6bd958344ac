"""`python -m medqa.train`. Fine-tune: the Hydra app in medqa.cli.train."""

import sys

from medqa.core.interrupts import Interrupted, install

if __name__ == "__main__":
    install()  # first: a Ctrl-C or SIGTERM during the heavy imports below is handled like any later one
    try:
        from medqa.cli.train import cli
    except Interrupted as err:
        print(f"medqa.train: interrupted by {err.name} before the run started; nothing was kept", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    cli()
else:
    from medqa.cli.train import cli  # noqa: F401  (the entry point, as before)
