"""Score answers from any model, without loading one: every quality metric, `quality` and `flags` per answer.

    python -m medqa.score --answers answers.jsonl [--probes seed5] [--out scored.jsonl] [--allow-unmatched]
    python -m medqa.score --answers runs/<date>/<time>/probes.jsonl      # rescore a run's probe answers

Each input line is {"question": str, "answer": str, "stopped": bool (optional)} or {"probe": id, "answer":
...}; a run's probes.jsonl rows (probe_id, stopped_eos) work too. A question is matched to a probe by its text
(case and punctuation ignored), among every shipped probe set (conf/probes/*.yaml) unless --probes names one;
that brings the probe's facts spec and reference (medqa.quality.factuality). A question that matches no probe is an
error naming its line (--allow-unmatched scores it on form and the harm rubric only). Writes one JSON line per
input (the input's fields plus the metrics, the claim labels included) to stdout or --out, and a summary table
to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medqa.core.atomic import write_text
from medqa.core.errors import exit_on_error, json_lines, read_utf8
from medqa.core.paths import PROBES_DIR, QUALITY_DIR
from medqa.quality.lexicon import corpus_words, words
from medqa.quality.metrics import score_answer
from medqa.quality.probe_specs import load_probe_set
from medqa.settings.probes import Probe
from medqa.settings.quality import QualitySettings


def load_quality(name: str) -> QualitySettings:
    """Quality settings by name (conf/quality/NAME.yaml) or path; an unknown key is an error naming it."""
    import dataclasses

    import yaml

    path = Path(name) if name.endswith((".yaml", ".yml")) else QUALITY_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"quality settings {name!r}: no file {path}")
    try:
        values = yaml.safe_load(read_utf8(path)) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of quality settings")
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(QualitySettings)})
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}")
    return QualitySettings(**values)


def all_probes() -> list[Probe]:
    """Every probe of every shipped probe set (conf/probes/*.yaml), in file-name order."""
    probes: list[Probe] = []
    for path in sorted(PROBES_DIR.glob("*.yaml")):
        probes += load_probe_set(path.stem)
    return probes


def read_answers(path: Path, probes: list[Probe], allow_unmatched: bool = True) -> list[tuple[dict, Probe | None]]:
    """Input rows paired with their probe (None when the question matches no probe and `allow_unmatched`; an
    error naming the line otherwise); every row is checked before any is scored."""
    if not path.is_file():
        raise FileNotFoundError(f"--answers {path}: no such file")
    by_id = {p.id: p for p in probes}
    by_text = {" ".join(words(p.question)): p for p in probes}
    rows = []
    for n, row in json_lines(path):  # a line that is not JSON: ConfigError (a ValueError) naming it
        if not isinstance(row, dict) or not isinstance(row.get("answer"), str):
            raise ValueError(f'{path}:{n}: needs an "answer" string')
        stopped = row.get("stopped", row.get("stopped_eos"))
        if stopped is not None and not isinstance(stopped, bool):
            raise ValueError(f'{path}:{n}: "stopped" must be true or false, got {stopped!r}')
        probe_id = row.get("probe", row.get("probe_id"))
        if probe_id is not None:
            if probe_id not in by_id:
                raise ValueError(f"{path}:{n}: probe {probe_id!r} is not in the probe set (known: {sorted(by_id)})")
            probe = by_id[probe_id]
        else:
            probe = by_text.get(" ".join(words(str(row.get("question") or ""))))
            if probe is None and not allow_unmatched:
                raise ValueError(
                    f"{path}:{n}: question {str(row.get('question') or '')[:80]!r} matches no probe question "
                    f"(give --probes, or --allow-unmatched to score it without facts)"
                )
        rows.append((row, probe))
    if not rows:
        raise ValueError(f"--answers {path}: no answers in the file")
    return rows


def summary_table(scored: list[dict]) -> str:
    """One line per answer: its probe, quality and the metrics behind it, then the mean quality."""
    header = f"{'#':>3} {'probe':<24} {'quality':>7} {'eos':>4} {'rep_4':>5} {'items':>5} {'facts':>5} {'prec':>5}"
    header += "  flags"
    lines = [header, "-" * 80]
    for i, s in enumerate(scored, 1):
        eos = "—" if s["stopped_eos"] is None else ("yes" if s["stopped_eos"] else "no")
        facts = "—" if s["fact_recall"] is None else f"{s['fact_recall']:.2f}"
        prec = "—" if s.get("precision") is None else f"{s['precision']:.2f}"
        lines.append(
            f"{i:>3} {str(s['probe_id'] or '—')[:24]:<24} {s['quality']:>7.3f} {eos:>4} {s['rep_4']:>5.2f} "
            f"{s['list_items']:>5} {facts:>5} {prec:>5}  {', '.join(s['flags']) or '—'}"
        )
    mean = sum(s["quality"] for s in scored) / len(scored)
    lines.append(f"mean quality {mean:.3f} over {len(scored)} answers")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medqa.score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", required=True, type=Path, help="JSONL file of answers")
    parser.add_argument("--probes", help="probe set: conf/probes/NAME.yaml or a path (default: every shipped set)")
    parser.add_argument(
        "--allow-unmatched", action="store_true", help="score questions that match no probe (form and rubric only)"
    )
    parser.add_argument("--quality", default="default", help="conf/quality/NAME.yaml or a path (default)")
    parser.add_argument("--known-words", type=Path, help="text file of training text: its words are not invented")
    parser.add_argument("--out", type=Path, help="write the scored lines here instead of stdout (a new file)")
    args = parser.parse_args(argv)

    probes = load_probe_set(args.probes) if args.probes else all_probes()
    settings = load_quality(args.quality)
    if args.out and args.out.exists():
        raise FileExistsError(f"--out {args.out} exists; choose a new file")
    if args.out and not args.out.absolute().parent.is_dir():
        raise FileNotFoundError(f"--out {args.out}: no folder {args.out.absolute().parent}")
    rows = read_answers(args.answers, probes, allow_unmatched=args.allow_unmatched)
    known = frozenset(corpus_words([read_utf8(args.known_words)])) if args.known_words else frozenset()

    scored = []
    for row, probe in rows:
        stopped = row.get("stopped", row.get("stopped_eos"))
        metrics = score_answer(
            row["answer"], stopped_eos=stopped, n_tokens=row.get("n_tokens"), probe=probe, settings=settings,
            known_words=known,
        )  # fmt: skip
        scored.append(row | {"probe_id": probe.id if probe else None, **metrics})
    text = "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in scored)
    if args.out:
        write_text(args.out, text, exclusive=True)  # whole or not at all: a failed write leaves no file
    else:
        sys.stdout.write(text)
    print(summary_table(scored), file=sys.stderr)
    return 0


def cli(argv: list[str] | None = None) -> None:
    """`main` as a command: a missing or malformed file, an unknown probe set, an existing --out: one line, exit 2."""
    sys.exit(exit_on_error("medqa.score", lambda: main(argv), bad_input=(ValueError, OSError, KeyError)))


if __name__ == "__main__":
    cli()
