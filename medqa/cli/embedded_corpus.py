"""`python -m medqa.embedded_corpus [--seed N] [--out-dir DIR]`: regenerate the embedded corpus files
(medqa.data.embedded.corpus) from the knowledge table."""

from __future__ import annotations

import argparse
from pathlib import Path

from medqa.data.embedded.corpus import DEFAULT_OUT_DIR, write_corpus
from medqa.data.embedded.corpus import __doc__ as CORPUS_DOC


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m medqa.embedded_corpus [--seed N] [--out-dir DIR]``."""
    parser = argparse.ArgumentParser(description=CORPUS_DOC.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)
    for name, path in write_corpus(args.out_dir, args.seed).items():
        n_rows = sum(1 for _ in path.open(encoding="utf-8"))
        print(f"{name}: {n_rows} rows -> {path}")


if __name__ == "__main__":
    main()
