"""Console report of a finished run: the per-eval table and where to look at the run."""

from __future__ import annotations


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def format_eval_table(evals: list[dict]) -> str:
    """Per eval: step, train loss, eval loss, mean token accuracy, probe EOS rate and quality."""
    header = f"{'step':>6} {'train loss':>10} {'eval loss':>10} {'token acc':>10} {'probe EOS':>10} {'quality':>8}"
    lines = [header, "-" * len(header)]
    for e in evals:
        lines.append(
            f"{e['step']:>6} {_fmt(e['train_loss'], '.4f'):>10} {_fmt(e['eval_loss'], '.4f'):>10} "
            f"{_fmt(e['mean_token_accuracy'], '.4f'):>10} {_fmt(e['probe_eos_rate'], '.0%'):>10} "
            f"{_fmt(e['probe_quality'], '.3f'):>8}"
        )
    return "\n".join(lines)


def print_run_summary(summary: dict) -> None:
    print()
    print(format_eval_table(summary["evals"]))
    print(
        f"\n{summary['global_step']} steps in {summary['seconds']} s; "
        f"adapter {summary['adapter_bytes'] / 1e6:.2f} MB ({summary['adapter_tensors']} LoRA tensors, "
        f"{summary['params_trainable']:,} of {summary['params_total']:,} params trainable)"
    )
    print(f"run dir:      {summary['run_dir']}  (run.json, probes.jsonl, adapter/, .hydra/)")
    if summary["wandb_dir"]:
        print(f"W&B offline:  {summary['wandb_dir']}")
        print(f"  look:       wandb leet {summary['wandb_dir']}")
        print(f"  upload:     wandb sync {summary['wandb_dir']}")
