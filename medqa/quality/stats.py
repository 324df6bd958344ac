"""Statistics for decisions on generation quality that respect the noise: bootstrap confidence intervals
over questions, paired CIs between two evals, the paired divergence alarm and the selection report.

Pure python (random, no numpy). Every CI is a percentile bootstrap (Efron & Tibshirani 1993) with a fixed
seed, so the same scores give the same interval:
  mean CI    resample the questions with replacement B times; the 2.5% and 97.5% quantiles of the means;
  paired CI  the same over per-question differences (b - a) of the questions both evals answered -- the
             question-to-question spread cancels, only the change of each question counts (Koehn 2004).
Rules:
  divergence  fires when eval loss improved against the reference eval (the best quality so far, or the
              previous eval) AND the paired CI of the per-question quality change excludes zero on the
              negative side (hi < -margin; margin 0 by default).
  selection   the eval with the highest mean is picked; it is "distinguishable" from the runner-up when the
              paired CI of (best - runner-up) excludes zero (lo > 0).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
METRICS = ("quality", "precision", "recall")


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted list."""
    if not sorted_values:
        raise ValueError("quantile of an empty list")
    pos = q * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def bootstrap_ci(
    values: Sequence[float | None],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> tuple[float, float, float] | None:
    """(mean, lo, hi): the mean of `values` (None skipped) and its percentile-bootstrap CI; None when empty."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return None
    n = len(xs)
    mean = sum(xs) / n
    if n == 1 or max(xs) == min(xs):
        return mean, mean, mean
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(xs, k=n)) / n for _ in range(n_resamples))
    alpha = (1 - level) / 2
    return mean, _quantile(means, alpha), _quantile(means, 1 - alpha)


def paired_differences(a: Mapping[str, float | None], b: Mapping[str, float | None]) -> list[float]:
    """b[q] - a[q] for every question q scored in both (a value None counts as unscored)."""
    return [float(b[q]) - float(a[q]) for q in a if q in b and a[q] is not None and b[q] is not None]


def paired_bootstrap_ci(
    a: Mapping[str, float | None],
    b: Mapping[str, float | None],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> tuple[float, float, float] | None:
    """(mean, lo, hi) of the per-question difference b - a over the questions both scored; None when none."""
    return bootstrap_ci(paired_differences(a, b), n_resamples, seed, level)


def summarize(rows: Sequence[Mapping], metrics: Sequence[str] = METRICS, **kw) -> dict[str, float]:
    """W&B-ready scalars of one eval's per-question rows: for each metric its mean, `_lo` and `_hi` (95% CI),
    and `n` (questions). A metric no row has is left out."""
    out: dict[str, float] = {"n": float(len(rows))}
    for m in metrics:
        ci = bootstrap_ci([r.get(m) for r in rows], **kw)
        if ci is not None:
            out[m], out[f"{m}_lo"], out[f"{m}_hi"] = ci
    return out


def per_question(rows: Sequence[Mapping], metric: str = "quality", key: str = "id") -> dict[str, float | None]:
    """{question id: metric} of one eval's rows (the input of the paired rules)."""
    return {str(r[key]): r.get(metric) for r in rows}


def _mean(values: Mapping[str, float | None]) -> float:
    xs = [v for v in values.values() if v is not None]
    return sum(xs) / len(xs) if xs else float("nan")


def divergence_paired(
    evals: Sequence[Mapping],
    against: str = "best",
    margin: float = 0.0,
    **kw,
) -> dict | None:
    """The divergence alarm for the last of `evals` ({step, eval_loss, scores: {question id: quality}}, in
    order), or None. Reference eval: `best` = the earlier eval with the highest mean quality, `previous` = the
    one before. Fires when eval_loss < the reference's (best: < every earlier loss) and the paired CI of the
    per-question quality change (now - reference) lies entirely below -margin."""
    if against not in {"best", "previous"}:
        raise ValueError(f"against={against!r}: expected best or previous")
    *before, now = evals
    before = [e for e in before if e.get("eval_loss") is not None and e.get("scores")]
    if not before or now.get("eval_loss") is None or not now.get("scores"):
        return None
    if against == "previous":
        ref, ref_loss = before[-1], before[-1]["eval_loss"]
    else:
        ref, ref_loss = max(before, key=lambda e: _mean(e["scores"])), min(e["eval_loss"] for e in before)
    if not now["eval_loss"] < ref_loss:
        return None
    ci = paired_bootstrap_ci(ref["scores"], now["scores"], **kw)
    if ci is None or not ci[2] < -margin:
        return None
    return {
        "step": now["step"],
        "eval_loss": now["eval_loss"],
        "reference_loss": ref_loss,
        "reference_step": ref["step"],
        "quality": _mean(now["scores"]),
        "reference_quality": _mean(ref["scores"]),
        "drop": -ci[0],
        "drop_ci": [-ci[2], -ci[1]],
        "n_questions": len(paired_differences(ref["scores"], now["scores"])),
    }


def selection_report(evals: Sequence[Mapping], **kw) -> dict | None:
    """Which eval has the best mean quality ({step, scores} each), the runner-up, the paired CI of (best -
    runner-up), and whether that CI excludes zero (`distinguishable`); None with no scored eval."""
    scored = [e for e in evals if e.get("scores")]
    if not scored:
        return None
    ranked = sorted(scored, key=lambda e: _mean(e["scores"]), reverse=True)
    best = ranked[0]
    report = {"best_step": best["step"], "best_quality": _mean(best["scores"]), "runner_up_step": None}
    if len(ranked) == 1:
        return report | {"distinguishable": None}
    second = ranked[1]
    ci = paired_bootstrap_ci(second["scores"], best["scores"], **kw)
    return report | {
        "runner_up_step": second["step"],
        "runner_up_quality": _mean(second["scores"]),
        "difference": None if ci is None else ci[0],
        "difference_ci": None if ci is None else [ci[1], ci[2]],
        "distinguishable": bool(ci is not None and ci[1] > 0),
    }
