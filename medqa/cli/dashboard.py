"""Create the project's saved W&B workspace (W&B's `wandb-workspaces` library; needs a server and `wandb login`):

    python -m medqa.dashboard --entity E --project P                  # save it; prints its URL
    python -m medqa.dashboard --entity E --project P --dry-run        # build it here and list its panels and keys
    python -m medqa.dashboard --entity E --project P --dry-run --check-run runs/<date>/<time>/wandb/offline-run-*

`--check-run` compares every key the panels read with what that offline run logged (exit code 1 if one is
missing; heldout/* only when the run logged any). Without a server, saving stops at once with one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request
from pathlib import Path

COMMAND = "medqa.dashboard"
DEFAULT_BASE_URL = "https://api.wandb.ai"


def _describe(workspace) -> str:
    from medqa.tracking.workspace import panel_keys

    lines = [f"workspace {workspace.name!r} for {workspace.entity}/{workspace.project}:"]
    for section in workspace.sections:
        lines.append(f"  [{section.name}]")
        for panel in section.panels:
            title = getattr(panel, "title", None) or getattr(panel, "table_name", "")
            lines.append(f"    {type(panel).__name__}: {title}")
    for kind, names in panel_keys(workspace).items():
        lines.append(f"  {kind} keys: {', '.join(sorted(names))}")
    return "\n".join(lines)


def _server_problem() -> str | None:
    """Why saving cannot work here, checked before the library's own (long) retries; None when it may."""
    if os.environ.get("WANDB_MODE", "").lower() in {"offline", "disabled", "dryrun"}:
        return f"WANDB_MODE={os.environ['WANDB_MODE']}"
    base = os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)
    try:
        urllib.request.urlopen(urllib.request.Request(base, method="HEAD"), timeout=5)
    except urllib.error.HTTPError:
        pass  # the server answered
    except (OSError, ValueError) as err:
        return f"{base} is not reachable ({getattr(err, 'reason', err)})"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {COMMAND}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--entity", required=True, help="W&B entity (user or team) that owns the project")
    parser.add_argument("--project", required=True, help="W&B project the runs are synced to (tracking.project)")
    parser.add_argument("--name", default=None, help="workspace name (default: 'medqa: loss vs answers')")
    parser.add_argument("--dry-run", action="store_true", help="build the workspace and list it; save nothing")
    parser.add_argument("--check-run", nargs="*", default=[], help="offline run folders to check the panel keys on")
    args = parser.parse_args(argv)

    missing_runs = [p for p in args.check_run if not Path(p).is_dir()]
    if missing_runs:
        print(f"{COMMAND}: error: --check-run {missing_runs[0]}: no such run folder", file=sys.stderr)
        raise SystemExit(2)

    from medqa.tracking.runs import read_offline_run
    from medqa.tracking.workspace import NAME, build_workspace, missing_keys

    workspace = build_workspace(args.entity, args.project, args.name or NAME)
    workspace._to_model()  # every panel serialises as the server would receive it
    if args.dry_run:
        print(_describe(workspace))
    failed = False
    for folder in args.check_run:
        run = read_offline_run(Path(folder))
        logged_heldout = any(k.startswith("heldout/") for h in run["history"] for k in h)  # quality.heldout_questions=0
        gaps = missing_keys(workspace, run, optional_prefixes=() if logged_heldout else ("heldout/",))
        if gaps:
            failed = True
            detail = "; ".join(f"{kind}: {', '.join(sorted(names))}" for kind, names in gaps.items())
            print(f"{folder}: panels read keys the run did not log: {detail}")
        else:
            print(f"{folder}: every panel key is logged")
    if args.dry_run:
        raise SystemExit(1 if failed else 0)

    problem = _server_problem()
    if problem:
        print(
            f"{COMMAND}: error: saving a workspace needs a W&B server and `wandb login`, and {problem}; nothing was "
            "saved (build and check it here with --dry-run)",
            file=sys.stderr,
        )
        raise SystemExit(1)
    try:
        workspace.save()
    except Exception as err:  # the library's errors (no API key, HTTP, GraphQL) all mean the same here
        print(f"{COMMAND}: error: saving the workspace failed: {type(err).__name__}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"saved: {workspace.url}")


if __name__ == "__main__":
    main()
