"""Compare finished runs offline: one table row per run, eval loss against probe quality in one plot, and the
probe answers side by side in an HTML page.

    python -m medqa.compare runs/2026-11-27/07-06-51-708906 runs/2026-11-27/07-12-03-118822
    python -m medqa.compare multirun/sweep-mix_x_targets/<stamp>            # every run dir below it
    python -m medqa.compare runs/ --out /tmp/my-report                      # a new (or empty) folder

A run dir is what `python -m medqa.train` writes (`run.json`, `probes.jsonl`, `wandb/offline-run-*`); every
folder given is searched for them. The report goes to a fresh folder (default `reports/<date>/<time>/`), never
over an existing one: `runs.md`, `runs.csv`, `runs.json`, `loss_vs_quality.png` and `index.html`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from medqa.analysis.columns import COLUMNS
from medqa.analysis.compare_html import render_html
from medqa.analysis.replicates import differences, format_groups, group_rows, group_runs, plot_groups
from medqa.core.atomic import atomic_dir
from medqa.core.errors import ConfigError, json_lines, read_utf8
from medqa.core.labels import science_labels

# What a run dir's run.json must hold for a row of the report (dotted paths).
REQUIRED_KEYS = (
    "settings.model.name_or_path",
    "settings.quant.load_in_4bit",
    "settings.data.mix",
    "settings.data.total",
    "settings.lora.target_modules",
    "settings.lora.r",
    "settings.train.epochs",
    "settings.train.max_steps",
    "settings.train.lr",
    "settings.decoding",
    "evals",
    "selected.step",
    "flags",
    "final_eval_loss",
    "final_mean_token_accuracy",
)
EVAL_KEYS = ("step", "eval_loss", "probe_quality", "probe_eos_rate")
PROBE_KEYS = ("step", "probe_id", "question", "answer", "stopped_eos")
# Folders inside a run dir that never hold another run: not searched.
SKIP_DIRS = {"wandb", "checkpoints", "adapter", ".hydra", "__pycache__"}


@dataclass
class Run:
    """One run dir read back: its run.json, its probe rows (the last row per (step, probe)) and its W&B run."""

    path: Path
    label: str
    summary: dict
    probes: list[dict]
    wandb: dict = field(default_factory=dict)  # {"group", "tags", "id"} read from the offline W&B run

    def answers_at(self, step: int) -> dict[str, dict]:
        return {r["probe_id"]: r for r in self.probes if r["step"] == step}


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Every run dir (a folder holding run.json) that `paths` name or hold, in order, each once; a path that
    does not exist or holds no run dir is an error naming it."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path}: no such file or folder")
        if path.is_file():
            if path.name != "run.json":
                raise ConfigError(f"{path}: not a run dir (a folder with run.json) nor a folder holding run dirs")
            path = path.parent
        here = []
        for folder, dirs, files in os.walk(path):
            if "run.json" in files:
                if not _interrupted(Path(folder)):  # an interrupted run is continued, not compared
                    here.append(Path(folder))
                dirs[:] = []  # a run dir holds no further runs
            else:
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        if not here:
            raise ConfigError(
                f"{path}: no run.json in it or below (a run dir is the folder `python -m medqa.train` writes)"
            )
        found += [p for p in here if p.resolve() not in {f.resolve() for f in found}]
    return found


def _interrupted(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "run.json").read_bytes()).get("state") == "interrupted"
    except (OSError, ValueError, AttributeError):
        return False  # read_run reports what is wrong with it


def _get(data: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            raise KeyError(dotted)
        data = data[key]
    return data


def read_run(path: Path, label: str, read_wandb: bool = True) -> Run:
    """A run dir's run.json and probes.jsonl, checked: a missing file, bad JSON or a missing key is an error
    naming the file (and line)."""
    run_json = path / "run.json"
    try:
        summary = json.loads(read_utf8(run_json))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{run_json}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(summary, dict):
        raise ConfigError(f"{run_json}: not a JSON object (not a medqa.train run?)")
    missing = [k for k in REQUIRED_KEYS if not _has(summary, k)]
    evals = summary.get("evals")
    if isinstance(evals, list):
        missing += sorted({f"evals[].{k}" for e in evals for k in EVAL_KEYS if not isinstance(e, dict) or k not in e})
        if not evals:
            missing.append("evals (empty: the run never evaluated)")
    if missing:
        raise ConfigError(f"{run_json}: missing key(s) {', '.join(missing)} (not a finished medqa.train run?)")
    probes_file = path / "probes.jsonl"
    if not probes_file.is_file():
        raise ConfigError(f"{probes_file}: no such file (every medqa.train run writes its probe answers there)")
    rows: dict[tuple[int, str], dict] = {}
    for n, row in json_lines(probes_file):
        lacking = [k for k in PROBE_KEYS if not isinstance(row, dict) or k not in row]
        if lacking:
            raise ConfigError(f"{probes_file}:{n}: missing key(s) {', '.join(lacking)}")
        rows[(row["step"], row["probe_id"])] = row  # a later row for the same (step, probe) wins
    run = Run(path=path, label=label, summary=summary, probes=list(rows.values()))
    if read_wandb:
        run.wandb = _read_wandb(path)
    return run


def _has(data: dict, dotted: str) -> bool:
    try:
        _get(data, dotted)
    except KeyError:
        return False
    return True


def _read_wandb(path: Path) -> dict:
    """Group, tags and id of the run's newest offline W&B segment, read with W&B's own reader; {} when the run
    has none (tracking=none) or it cannot be read (a warning says so)."""
    import subprocess

    from medqa.tracking.runs import read_offline_run  # lazy: wandb's import costs seconds, --no-wandb skips it

    segments = sorted((path / "wandb").glob("offline-run-*"))
    if not segments:
        return {}
    try:
        record = read_offline_run(segments[-1])
    except (subprocess.CalledProcessError, OSError, ValueError) as err:
        print(
            f"medqa.compare: warning: {segments[-1]}: W&B run not readable ({err}); group/tags left out",
            file=sys.stderr,
        )
        return {}
    return {"group": record.get("group"), "tags": record.get("tags") or [], "id": record.get("id")}


def read_runs(paths: list[Path], read_wandb: bool = True) -> list[Run]:
    """Every run under `paths`, labelled by its path relative to the folder they share."""
    dirs = find_run_dirs(paths)
    root = Path(os.path.commonpath([d.resolve() for d in dirs]))
    labels = [str(d.resolve().relative_to(root)) if d.resolve() != root else d.resolve().name for d in dirs]
    return [read_run(d, label, read_wandb) for d, label in zip(dirs, labels, strict=True)]


def run_row(run: Run) -> dict:
    """The table's row for one run (see COLUMNS); probe figures at the eval whose adapter was kept."""
    s, settings = run.summary, run.summary["settings"]
    evals = s["evals"]
    by_step = {e["step"]: e for e in evals}
    kept = s["selected"]["step"]
    losses = [e for e in evals if e["eval_loss"] is not None]
    best = min(losses, key=lambda e: e["eval_loss"]) if losses else None
    answers = list(run.answers_at(kept).values())
    reps = [a["rep_4"] for a in answers if a.get("rep_4") is not None]
    flags = list(s["flags"]) + [f"divergence@{e['step']}" for e in evals if e.get("divergence")]
    counts: dict[str, int] = {}
    for a in answers:
        for f in a.get("flags") or []:
            counts[f] = counts.get(f, 0) + 1
    flags += [f"{f}×{n}" for f, n in sorted(counts.items())]
    labels = science_labels(settings)  # the same labels as the run's W&B tags
    return {
        "run": run.label,
        "group": run.wandb.get("group") or (settings.get("tracking") or {}).get("group") or "",
        "tags": run.wandb.get("tags", []),
        "mix": settings["data"]["mix"],
        "wikidoc": settings["data"]["mix"].get("wikidoc", 0.0),
        "targets": labels["lora"],
        "epochs": labels["length"],
        "decoding": labels["decoding"],
        "steps": evals[-1]["step"],
        "best_eval_loss": best and best["eval_loss"],
        "best_eval_step": best and best["step"],
        "final_eval_loss": s["final_eval_loss"],
        "token_accuracy": s["final_mean_token_accuracy"],
        "kept_step": kept,
        "kept_rule": s["selected"].get("rule"),
        "quality_kept": (by_step.get(kept) or {}).get("probe_quality"),
        "heldout_kept": (s.get("selected") or {}).get("heldout_quality"),
        "quality_final": evals[-1]["probe_quality"],
        "eos_rate": (by_step.get(kept) or {}).get("probe_eos_rate"),
        "rep_4": sum(reps) / len(reps) if reps else None,
        "flags": ", ".join(flags),
        "path": str(run.path),
    }


def _cell(value, spec: str) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return format(value, spec)


def format_table(rows: list[dict]) -> str:
    """The rows as fixed-width text for the console."""
    cells = [[h for _, h, _ in COLUMNS]] + [[_cell(r[k], f) for k, _, f in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def format_markdown(rows: list[dict]) -> str:
    def md(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(md(_cell(r[k], f)) for k, _, f in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def format_csv(rows: list[dict]) -> str:
    keys = [k for k, _, _ in COLUMNS] + ["kept_rule", "tags", "mix", "path"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "tags": " ".join(r["tags"]), "mix": json.dumps(r["mix"])})
    return out.getvalue()


def plot_loss_vs_quality(runs: list[Run], path: Path) -> Path:
    """Eval loss (x) against mean probe quality (y): one point per eval, a line per run in step order, every
    point labelled with its step; start (square), end (triangle), kept adapter (ring), divergence alarms (x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        pts = [e for e in run.summary["evals"] if e["eval_loss"] is not None and e["probe_quality"] is not None]
        if not pts:
            continue
        xs, ys = [e["eval_loss"] for e in pts], [e["probe_quality"] for e in pts]
        row = run_row(run)
        label = f"{run.label}: wikidoc {row['wikidoc']:.2f}, {row['targets']}, {row['epochs']}, {row['decoding']}"
        ax.plot(xs, ys, "o-", color=color, label=label, alpha=0.85, markersize=4)
        ax.plot(xs[0], ys[0], "s", color=color, markersize=11, markerfacecolor="white", markeredgewidth=2)
        ax.plot(xs[-1], ys[-1], "^", color=color, markersize=12, zorder=3)
        for e in pts:
            ax.annotate(f"{e['step']}", (e["eval_loss"], e["probe_quality"]), textcoords="offset points",
                        xytext=(5, 4), fontsize=7, color=color)  # fmt: skip
            if e["step"] == run.summary["selected"]["step"]:
                ax.plot(e["eval_loss"], e["probe_quality"], "o", color=color, markersize=17, fillstyle="none")
            if e.get("divergence"):
                ax.plot(e["eval_loss"], e["probe_quality"], "x", color="red", ms=14, mew=2, zorder=1)
    for marker, text in [("s", "start (step 0, base model)"), ("^", "end (last eval)"), ("o", "kept adapter")]:
        ax.plot([], [], marker, color="gray", markersize=9, fillstyle="none", label=text)
    ax.plot([], [], "x", color="red", markersize=9, label="divergence alarm")
    ax.set(xlabel="eval loss (lower is left)", ylabel="mean probe quality (better is up)", ylim=(-0.03, 1.03))
    ax.set_title("Eval loss vs probe quality: a run moving left and down = lower loss, worse answers", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.12), ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def new_report_dir(out: Path | None) -> Path:
    """`out` if it does not exist or is an empty folder, else an error; default reports/<date>/<time>/."""
    if out is None:
        now = datetime.now()
        out = Path("reports") / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S-%f")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out}: already exists and is not an empty folder; a report never overwrites one")
    return out


def write_report(runs: list[Run], out: Path | None = None) -> tuple[Path, list[dict]]:
    """Write the report of `runs` into a fresh folder; return it and the table's rows."""
    out = new_report_dir(out)
    rows = [run_row(r) for r in runs]
    with atomic_dir(out) as tmp:  # the report appears whole, or not at all (full disk, a kill, a bad value)
        (tmp / "runs.md").write_text(format_markdown(rows), encoding="utf-8")
        (tmp / "runs.csv").write_text(format_csv(rows), encoding="utf-8")
        detail = [
            {**row, "evals": r.summary["evals"], "selected": r.summary["selected"]}
            for row, r in zip(rows, runs, strict=True)
        ]
        (tmp / "runs.json").write_text(json.dumps(detail, indent=2, default=str), encoding="utf-8")
        png = plot_loss_vs_quality(runs, tmp / "loss_vs_quality.png")
        write_replicates(runs, tmp)
        (tmp / "index.html").write_text(render_html(runs, rows, png), encoding="utf-8")
    return out, rows


def write_replicates(runs: list[Run], out: Path) -> list[dict]:
    """When runs repeat a setting over seeds: replicates.md / .json (mean and 95% CI per group, and every
    pairwise difference with its Welch CI) and replicates.png (error bars). Returns the group rows."""
    groups = group_runs([(r.label, r.summary) for r in runs])
    rows = group_rows(groups)
    if not any(r["n_seeds"] >= 2 for r in rows):
        return rows
    diffs = differences(groups)
    text = format_groups(rows)
    if diffs:
        text += "\n\n| a | b | metric | b - a | 95% CI | exceeds seed noise |\n|---|---|---|---|---|---|\n"
        text += "\n".join(
            f"| {d['a']} | {d['b']} | {d['metric']} | {d['difference']:+.4f} | "
            f"[{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}] | {'yes' if d['exceeds_seed_noise'] else 'no'} |"
            for d in diffs
        )
    (out / "replicates.md").write_text(text + "\n", encoding="utf-8")
    (out / "replicates.json").write_text(json.dumps({"groups": rows, "differences": diffs}, indent=2), "utf-8")
    plot_groups(rows, out / "replicates.png")
    return rows
