"""`python -m medqa.sweep sweeps/X.yaml [--count N] [--out DIR] [-- overrides]`: run a W&B sweep file offline
(medqa.sweep.runner), every run W&B offline, and print the table of runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medqa.core.errors import ConfigError, exit_on_error
from medqa.core.run_folder import check_run_dir_writable
from medqa.sweep.runner import _fmt, format_table, run_sweep
from medqa.sweep.spec import SweepSpec, check_composes, load_sweep


def parse_args(argv: list[str]) -> argparse.Namespace:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        prog="python -m medqa.sweep",
        description="Run a W&B sweep file offline with W&B's own search engine; each run trains with W&B offline.",
        epilog="Example: python -m medqa.sweep sweeps/mix_x_targets.yaml -- data.total=400",
    )
    parser.add_argument("sweep_file", type=Path, help="a W&B sweep YAML (sweeps/*.yaml)")
    parser.add_argument("--count", type=int, help="at most this many runs (needed for random and bayes)")
    parser.add_argument("--out", type=Path, help="parent folder of the sweep folder (default multirun/sweep-<name>)")
    args = parser.parse_args(own)
    args.extra = extra
    return args


def prepare(args: argparse.Namespace) -> SweepSpec:
    """Everything checked before the first run: the file, --count, the extra overrides, every value."""
    spec = load_sweep(args.sweep_file)
    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count={args.count}: must be >= 1")
    if spec.method != "grid" and args.count is None:
        raise ConfigError(f"{spec.path}: method={spec.method} proposes runs without end: pass --count N")
    check_composes(spec, args.extra)
    args.out = args.out or Path("multirun") / f"sweep-{spec.name}"
    try:
        check_run_dir_writable(args.out)
    except ConfigError:
        raise ConfigError(f"--out={args.out}: cannot create the sweep folder there (no writable folder)") from None
    return spec


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    spec = exit_on_error("medqa.sweep", lambda: prepare(args))
    try:
        folder = run_sweep(spec, args.out, args.count, args.extra)
    except KeyboardInterrupt:  # between runs; sweep.json was written on the way out
        print("\nmedqa.sweep: interrupted; the runs so far are in sweep.json", file=sys.stderr)
        return 130
    record = json.loads((folder / "sweep.json").read_text())
    print()
    print(format_table(spec, record["runs"]))
    failed = [r for r in record["runs"] if r["state"] != "finished"]
    best = record["best"]
    if best:
        print(f"\nbest: {Path(best['run_dir']).name} ({spec.metric} {_fmt(best['metric'])}, goal {spec.goal})")
    if failed:
        print(f"{len(failed)} of {len(record['runs'])} runs did not finish: see state and stderr_tail in sweep.json")
    group = record["group"] or "(tracking.group as given)"
    print(f"sweep folder: {folder}  (sweep.json; W&B group {group})")
    if record.get("interrupted"):
        print("medqa.sweep: interrupted; the runs so far are in sweep.json", file=sys.stderr)
        return 130
    return 1 if failed else 0


def cli(argv: list[str] | None = None) -> None:
    raise SystemExit(main(argv))


if __name__ == "__main__":
    cli()
