"""`python -m medqa.compare RUN_DIR_OR_FOLDER... [--out DIR] [--no-wandb]`: the comparison report
(medqa.analysis.compare) of finished runs: a table, the loss-vs-quality plot and an HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from medqa.analysis.compare import __doc__ as COMPARE_DOC
from medqa.analysis.compare import format_table, read_runs, write_report
from medqa.core.errors import exit_on_error


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medqa.compare", description=COMPARE_DOC.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs, or folders holding run dirs (searched)")
    parser.add_argument("--out", type=Path, help="a new or empty folder for the report (default reports/<stamp>/)")
    parser.add_argument("--no-wandb", action="store_true", help="skip reading the W&B runs (group, tags)")
    args = parser.parse_args(argv)
    runs = read_runs(args.paths, read_wandb=not args.no_wandb)
    out, rows = write_report(runs, args.out)
    print(format_table(rows))
    if (out / "replicates.md").exists():
        print("\nreplicates over seeds (mean [95% CI]):")
        print((out / "replicates.md").read_text(encoding="utf-8"))
    print(f"\nreport:  {out}/  (runs.md, runs.csv, runs.json, loss_vs_quality.png; replicates.* when seeds repeat)")
    print(f"  open:  {(out / 'index.html').resolve().as_uri()}")


def cli(argv: list[str] | None = None) -> None:
    """`main` as a command: a bad input is one line on stderr naming the path, and exit code 2."""
    exit_on_error("medqa.compare", lambda: main(argv), bad_input=(OSError,))


if __name__ == "__main__":
    cli()
