"""How far the quality score agrees with human labels: AUC of good above bad answers, the good answers scored
below 0.7 and the bad ones at or above 0.9, per labelled set, with the mean score per kind of answer.

    python benchmarks/scorer_agreement.py [FILE.jsonl ...]     (default: tests/assets/blind/*.jsonl)

Each line: {"question", "answer", "stopped", "label": good|bad, "kind"}. The sets in tests/assets/blind were written
by other sessions that had not seen the scorer; README "How far to trust it" says which were tuned on afterwards.
Pure text (no model): it runs the same scoring as `python -m medqa.score`.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from medqa.cli.score import all_probes, load_quality, read_answers
from medqa.quality.metrics import score_answer

ROOT = Path(__file__).resolve().parent.parent


def auc(good: list[float], bad: list[float]) -> float:
    """P(a good answer scores above a bad one), ties counting half."""
    return sum((g > b) + 0.5 * (g == b) for g in good for b in bad) / (len(good) * len(bad))


def agreement(path: Path) -> dict:
    """AUC, misses and mean quality per kind of one labelled file."""
    probes, settings = all_probes(), load_quality("default")
    kinds: dict[str, list[float]] = defaultdict(list)
    good, bad = [], []
    for row, probe in read_answers(path, probes):
        q = score_answer(row["answer"], stopped_eos=row.get("stopped"), probe=probe, settings=settings)["quality"]
        (good if row["label"] == "good" else bad).append(q)
        kinds[row.get("kind", row["label"])].append(q)
    return {
        "set": path.stem,
        "n": len(good) + len(bad),
        "auc": auc(good, bad),
        "good_below_0.7": sum(g < 0.7 for g in good),
        "n_good": len(good),
        "bad_at_0.9": sum(b >= 0.9 for b in bad),
        "n_bad": len(bad),
        "kinds": {k: sum(v) / len(v) for k, v in sorted(kinds.items())},
    }


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "tests" / "assets" / "blind").glob("*.jsonl"))
    print("| set | answers | AUC | good < 0.7 | bad >= 0.9 | mean quality per kind |")
    print("|---|---:|---:|---:|---:|---|")
    for p in paths:
        r = agreement(p)
        kinds = ", ".join(f"{k} {v:.2f}" for k, v in r["kinds"].items())
        print(f"| {r['set']} | {r['n']} | {r['auc']:.3f} | {r['good_below_0.7']}/{r['n_good']} | "
              f"{r['bad_at_0.9']}/{r['n_bad']} | {kinds} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
