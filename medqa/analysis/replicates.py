"""Replicates over seeds: runs whose scientific settings are the same (their science labels: model, mix, size,
LoRA, length, lr, decoding) and that differ only in seeds (`train.seed`, `data.seed`) form a group. Per group:
the mean of each metric over seeds with a 95% CI (Student t, n - 1 degrees of freedom); between two groups: the
difference of means with a 95% Welch CI, and whether it excludes zero (the difference exceeds seed noise).

    python -m medqa.train -m experiment=week4_tiny train.seed=1,2,3     # three seeds of a preset (Hydra multirun)
    python -m medqa.compare multirun/<date>/<time> ...                  # groups them: mean ± CI per group
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from medqa.core.labels import science_labels

# Two-sided 95% quantiles of Student's t by degrees of freedom (df > 30: the normal's 1.96 is within 4%).
T975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042,
}  # fmt: skip
# What is compared across seeds: (key, header, format, higher is better).
METRICS = [
    ("best_eval_loss", "best eval loss", ".4f", False),
    ("final_eval_loss", "final eval loss", ".4f", False),
    ("heldout_kept", "held-out quality kept", ".3f", True),
    ("heldout_final", "held-out quality final", ".3f", True),
    ("quality_kept", "probe quality kept", ".3f", True),
]


def t975(df: float) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (table, conservative between entries)."""
    if df >= 30:
        return 1.96 if df > 120 else T975[30]
    below = max(k for k in T975 if k <= max(1, math.floor(df)))
    return T975[below]


def mean_ci(values: list[float]) -> tuple[float, float, float] | None:
    """(mean, lo, hi): the mean and its 95% t interval over replicates; lo = hi = mean for one value."""
    xs = [v for v in values if v is not None]
    if not xs:
        return None
    n, mean = len(xs), sum(xs) / len(xs)
    if n == 1:
        return mean, mean, mean
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def welch_difference(a: list[float], b: list[float]) -> tuple[float, float, float] | None:
    """(mean(b) - mean(a), lo, hi) with a 95% Welch interval; None without two values on each side."""
    a, b = [x for x in a if x is not None], [x for x in b if x is not None]
    if len(a) < 2 or len(b) < 2:
        return None
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return mb - ma, mb - ma, mb - ma
    df = (va + vb) ** 2 / ((va**2 / (len(a) - 1)) + (vb**2 / (len(b) - 1)))
    half = t975(df) * se
    return mb - ma, mb - ma - half, mb - ma + half


@dataclass
class Group:
    """Runs that differ only in seeds: their shared labels, their names and per-run metric values."""

    labels: dict[str, str]
    runs: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.labels.items() if k in ("mix", "lora", "length", "decoding"))


def run_metrics(summary: dict) -> dict[str, float | None]:
    """The replicate metrics of one run.json."""
    evals = summary["evals"]
    losses = [e["eval_loss"] for e in evals if e.get("eval_loss") is not None]
    selected = summary.get("selected") or {}
    return {
        "best_eval_loss": min(losses) if losses else None,
        "final_eval_loss": summary.get("final_eval_loss"),
        "heldout_kept": selected.get("heldout_quality"),
        "heldout_final": evals[-1].get("heldout_quality"),
        "quality_kept": selected.get("probe_quality"),
    }


def group_runs(summaries: list[tuple[str, dict]]) -> list[Group]:
    """(run name, run.json) pairs grouped by their science labels, in first-seen order."""
    groups: dict[tuple, Group] = {}
    for name, summary in summaries:
        labels = science_labels(summary["settings"])
        key = tuple(sorted(labels.items()))
        group = groups.setdefault(key, Group(labels))
        group.runs.append(name)
        group.seeds.append(summary["settings"]["train"]["seed"])
        for metric, value in run_metrics(summary).items():
            group.values.setdefault(metric, []).append(value)
    return list(groups.values())


def group_rows(groups: list[Group]) -> list[dict]:
    """Per group: n seeds, and per metric its mean with the 95% CI (as `<metric>`, `<metric>_lo`, `_hi`)."""
    rows = []
    for g in groups:
        row = {"group": g.name, "labels": g.labels, "n_seeds": len(g.runs), "seeds": g.seeds, "runs": g.runs}
        for key, *_ in METRICS:
            ci = mean_ci(g.values.get(key, []))
            row[key], row[f"{key}_lo"], row[f"{key}_hi"] = ci if ci else (None, None, None)
        rows.append(row)
    return rows


def format_groups(rows: list[dict]) -> str:
    """A console/markdown table: one line per group, `mean [lo, hi]` per metric."""
    header = ["group", "seeds", *[h for _, h, _, _ in METRICS]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["group"], str(r["n_seeds"])]
        for key, _, spec, _ in METRICS:
            if r[key] is None:
                cells.append("—")
            elif r["n_seeds"] == 1:
                cells.append(format(r[key], spec))
            else:
                cells.append(f"{r[key]:{spec}} [{r[f'{key}_lo']:{spec}}, {r[f'{key}_hi']:{spec}}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def differences(groups: list[Group]) -> list[dict]:
    """Every pair of groups with >= 2 seeds each: per metric the difference (second - first) with its 95% Welch
    CI, and whether it exceeds seed noise (the CI excludes zero)."""
    out = []
    many = [g for g in groups if len(g.runs) >= 2]
    for i, a in enumerate(many):
        for b in many[i + 1 :]:
            for key, header, _, higher in METRICS:
                d = welch_difference(a.values.get(key, []), b.values.get(key, []))
                if d is None:
                    continue
                out.append(
                    {
                        "a": a.name,
                        "b": b.name,
                        "metric": header,
                        "difference": d[0],
                        "ci": [d[1], d[2]],
                        "exceeds_seed_noise": d[1] > 0 or d[2] < 0,
                        "b_better": (d[0] > 0) == higher,
                    }
                )
    return out


def plot_groups(rows: list[dict], path):
    """Eval loss (x) against held-out quality (y), mean ± 95% CI over seeds per group (error bars both ways)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, r in enumerate(rows):
        x, y = r["best_eval_loss"], r["heldout_kept"] if r["heldout_kept"] is not None else r["quality_kept"]
        if x is None or y is None:
            continue
        lo_y = r["heldout_kept_lo"] if r["heldout_kept"] is not None else r["quality_kept_lo"]
        hi_y = r["heldout_kept_hi"] if r["heldout_kept"] is not None else r["quality_kept_hi"]
        xerr = [[x - r["best_eval_loss_lo"]], [r["best_eval_loss_hi"] - x]]
        ax.errorbar(x, y, xerr=xerr, yerr=[[y - lo_y], [hi_y - y]], fmt="o", capsize=4, color=f"C{i % 10}",
                    label=f"{r['group']} (n={r['n_seeds']})")  # fmt: skip
    ax.set(xlabel="best eval loss (mean, 95% CI over seeds)", ylabel="held-out quality of the kept adapter")
    ax.set_title("Replicates: lower loss and better answers are separate axes")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
