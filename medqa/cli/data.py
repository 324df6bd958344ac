"""`python -m medqa.data [overrides] [--examples N] [--export mix.jsonl]`: preview a data mix (cleaning,
mixing, provenance) with the run's tokenizer and no model weights."""

from __future__ import annotations

import os
from pathlib import Path

from medqa.config.validate import checked_settings
from medqa.core.errors import exit_on_error
from medqa.data.mix import build_datasets, check_hubs_reachable, export_jsonl
from medqa.data.provenance import format_examples, format_provenance


def main(argv: list[str] | None = None) -> None:
    """Preview: compose the config, build the mix with the model's tokenizer (no weights), print provenance."""
    import argparse

    import datasets

    parser = argparse.ArgumentParser(prog="python -m medqa.data", description=main.__doc__)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data.mix.wikidoc=0.3")
    parser.add_argument("--examples", type=int, default=3, help="cleaned training examples to print")
    parser.add_argument("--export", type=Path, help="write the mix (train then eval) to this .jsonl")
    parser.add_argument("--no-token-filter", action="store_true", help="skip the tokenizer (and its build)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    datasets.disable_progress_bars()
    _, settings = checked_settings(args.overrides)  # every key and value, as medqa.train checks them
    check_hubs_reachable(settings.data)  # the rest was checked with the settings
    tokenizer = None
    if not args.no_token_filter:
        from medqa.model.loading import data_tokenizer  # lazy: torch costs ~10 s, a bad override fails before it

        tokenizer = data_tokenizer(settings.model)
    train, evaluation, provenance = build_datasets(settings.data, tokenizer)
    print(format_provenance(provenance))
    print(format_examples(train, args.examples))
    if args.export:
        if args.export.exists():
            raise FileExistsError(f"--export {args.export}: exists; choose a new file")
        print(f"exported {export_jsonl(train, evaluation, args.export)} rows to {args.export}")


def cli(argv: list[str] | None = None) -> None:
    """`main` as a command: a bad override, a missing file, a bad row or an existing --export file: one line, exit 2."""
    exit_on_error("medqa.data", lambda: main(argv), bad_input=(ValueError, OSError))


if __name__ == "__main__":
    cli()
