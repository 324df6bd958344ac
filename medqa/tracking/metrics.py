"""W&B metric definitions: which axis each metric is plotted against and which value of it the runs table shows.

Every eval-time metric (eval/*, probes/*, probe_quality/*, heldout/*) is tied to `train/global_step`, so loss and
answer quality share one x-axis in every chart, and a re-decode run's single point sits at its weights' step.
Losses summarise to their minimum, quality-like metrics to their maximum ("min,last" / "max,last": the runs table
can sort by the best eval and still show the last one). The kept adapter's own values stay plain summary keys
(`selected/probe_quality`, `selected/eval_loss`, written by the training run): what sweeps optimise.
"""

from __future__ import annotations

STEP = "train/global_step"

# Prefixes whose metrics are logged once per eval (or per re-decode) and plotted against STEP.
STEP_PREFIXES = ("train", "eval", "probes", "probe_quality", "heldout")

# Exact metric name -> W&B summary rule. "last" is kept beside min/max so the final value stays visible too.
SUMMARY_RULES: dict[str, str] = {
    "train/loss": "min,last",
    "eval/loss": "min,last",
    "eval/mean_token_accuracy": "max,last",
    "probes/quality": "max,last",
    "probes/fact_recall": "max,last",
    "probes/eos_rate": "max,last",
    "probes/rep_4": "min,last",
    "probes/divergence": "max,last",  # 1 once any eval raised the alarm
    # The held-out generation eval (medqa.probing.heldout_eval), each with its 95% bootstrap interval beside it.
    "heldout/quality": "max,last",
    "heldout/precision": "max,last",
    "heldout/recall": "max,last",
}

# What sweeps and the saved workspace read from the summary: written by the training run as plain values.
SELECTED_KEYS = ("selected/probe_quality", "selected/eval_loss", "selected/step", "selected/heldout_quality")


def define_metrics(run) -> None:
    """Declare STEP as the x-axis of every eval-time metric and the summary rule of each key in SUMMARY_RULES.
    Call right after the run starts, before anything is logged (a no-op on wandb's disabled run)."""
    run.define_metric(STEP)
    for prefix in STEP_PREFIXES:
        run.define_metric(f"{prefix}/*", step_metric=STEP, step_sync=True)
    for name, rule in SUMMARY_RULES.items():
        run.define_metric(name, step_metric=STEP, step_sync=True, summary=rule)


def summary_value(summary: dict, name: str, goal: str = "maximize"):
    """A metric's value as the offline summary holds it: plain for an undefined metric; for one with a summary
    rule ({"min": .., "last": ..}) the best by `goal` if it is kept, else the last."""
    value = summary.get(name)
    if isinstance(value, dict):
        best = value.get("max" if goal == "maximize" else "min")
        return best if best is not None else value.get("last")
    return value
