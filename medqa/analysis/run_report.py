"""What a finished run shows a person: the per-eval table on the console and a plot of loss beside
what the probes did, saved in the run dir."""

from __future__ import annotations

import sys
from pathlib import Path


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def format_eval_table(evals: list[dict], selected_step: int | None = None) -> str:
    """Per eval: step, train loss, eval loss, mean token accuracy, probe EOS rate and quality; a note marks
    the eval whose weights were kept and evals where the divergence alarm fired."""
    held = any("heldout_quality" in e for e in evals)
    header = f"{'step':>6} {'train loss':>10} {'eval loss':>10} {'token acc':>10} {'probe EOS':>10} {'quality':>8}"
    header += f"  {'held-out quality [95% CI]':>26}" if held else ""
    lines = [header, "-" * len(header)]
    for e in evals:
        note = ("  <- kept" if e["step"] == selected_step else "") + ("  DIVERGENCE" if e.get("divergence") else "")
        line = (
            f"{e['step']:>6} {_fmt(e['train_loss'], '.4f'):>10} {_fmt(e['eval_loss'], '.4f'):>10} "
            f"{_fmt(e['mean_token_accuracy'], '.4f'):>10} {_fmt(e['probe_eos_rate'], '.0%'):>10} "
            f"{_fmt(e['probe_quality'], '.3f'):>8}"
        )
        if held:
            lo, hi = e.get("heldout_quality_ci") or (None, None)
            line += f"  {_fmt(e.get('heldout_quality'), '.3f'):>8} [{_fmt(lo, '.3f')}, {_fmt(hi, '.3f')}]"
        lines.append(line + note)
    return "\n".join(lines)


def plot_run(log_history: list[dict], evals: list[dict], path: Path) -> Path:
    """Loss curves on the left; token accuracy and the probes' EOS rate (and quality) on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h]
    if train:
        left.plot(*zip(*train, strict=True), label="train loss", alpha=0.7)
    left.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="eval loss")
    left.set(xlabel="step", ylabel="loss", title="Loss")
    left.legend()
    for key, label in [
        ("mean_token_accuracy", "eval token accuracy"),
        ("probe_eos_rate", "probes stopped at EOS"),
        ("probe_quality", "probe quality (5 probes)"),
        ("heldout_quality", "held-out quality (95% CI)"),
    ]:
        points = [(e["step"], e[key]) for e in evals if e.get(key) is not None]
        if points:
            right.plot(*zip(*points, strict=True), "o-", label=label)
    band = [(e["step"], *e["heldout_quality_ci"]) for e in evals if e.get("heldout_quality_ci")]
    if band and all(lo is not None for _, lo, _ in band):
        steps, lows, highs = zip(*band, strict=True)
        right.fill_between(steps, lows, highs, alpha=0.2, color="C3")
    alarms = [(e["step"], e.get("heldout_quality", e["probe_quality"])) for e in evals if e.get("divergence")]
    if alarms:
        right.plot(*zip(*alarms, strict=True), "rx", markersize=12, label="divergence: loss down, quality down")
    right.set(xlabel="step", ylim=(-0.02, 1.02), title="What the answers did")
    right.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def print_run_summary(summary: dict) -> None:
    print()
    selected = summary.get("selected") or {}
    print(format_eval_table(summary["evals"], selected.get("step")))
    print(
        f"\n{summary['global_step']} steps in {summary['train_seconds']} s (run {summary['seconds']} s); "
        f"adapter {summary['adapter_bytes'] / 1e6:.2f} MB ({summary['adapter_tensors']} LoRA tensors, "
        f"{summary['params_trainable']:,} of {summary['params_total']:,} params trainable)"
    )
    if selected:
        print(
            f"adapter kept: step {selected['step']} (train.select_by={selected['rule']}; "
            f"quality {_fmt(selected['probe_quality'], '.3f')}, eval loss {_fmt(selected['eval_loss'], '.4f')})"
        )
        report = selected.get("report") or {}
        if report.get("runner_up_step") is not None:
            lo, hi = report.get("difference_ci") or (None, None)
            verdict = "distinguishable" if report.get("distinguishable") else "NOT distinguishable"
            print(
                f"best held-out eval: step {report['best_step']} vs runner-up step {report['runner_up_step']}: "
                f"difference {_fmt(report.get('difference'), '.3f')} [95% CI {_fmt(lo, '.3f')}, {_fmt(hi, '.3f')}], "
                f"{verdict}"
            )
    for alarm in summary.get("divergence", []):
        lo, hi = alarm.get("drop_ci") or (None, None)
        print(
            f"DIVERGENCE at step {alarm['step']}: eval loss {alarm['eval_loss']:.4f} < {alarm['reference_loss']:.4f} "
            f"but quality {alarm['quality']:.3f} < {alarm['reference_quality']:.3f} "
            f"(paired drop 95% CI [{_fmt(lo, '.3f')}, {_fmt(hi, '.3f')}])"
        )
    if summary.get("flags"):
        print(f"flags:        {', '.join(summary['flags'])} (see run.json: determinism)")
    print(f"run dir:      {summary['run_dir']}  (run.json, probes.jsonl, curves.png, adapter/, .hydra/)")
    if summary["wandb_dir"]:
        wandb_cli = Path(sys.executable).with_name("wandb")  # the one installed beside this Python
        print(f"W&B offline:  {summary['wandb_dir']}")
        print(f"  look:       {wandb_cli} leet {summary['wandb_dir']}")
        print(f"  upload:     {wandb_cli} sync {summary['wandb_dir']}")
