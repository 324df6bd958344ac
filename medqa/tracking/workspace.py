"""The project's saved W&B workspace, built with W&B's `wandb-workspaces` library: loss next to answer quality on
one step axis, the probe answer tables, token accuracy, the divergence alarms, and for sweeps a parallel-
coordinates panel over mix share x LoRA targets x epochs coloured by the kept adapter's probe quality.

Building needs no server (the panels are plain objects, and `panel_keys` lists every metric, config key and table
they read, to check against what a run logs); saving does (`Workspace.save`, `wandb login`).
"""

from __future__ import annotations

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws

from medqa.tracking.metrics import STEP

NAME = "medqa: loss vs answers"

# Sweep axes, as W&B config keys of a run (the composed Hydra config) and summary keys.
SWEEP_AXES = (
    ("config", "data.mix.wikidoc", "WikiDoc share"),
    ("config", "labels.lora", "LoRA targets"),
    ("config", "train.epochs", "epochs"),
    ("summary", "selected/eval_loss", "kept eval loss"),
    ("summary", "selected/probe_quality", "kept probe quality"),  # last axis: W&B colours the lines by it
)


# Keys a healthy run may not log: claim precision (and its interval) is undefined while no held-out answer makes a
# checkable claim (medqa.quality.stats skips None), which is what a barely trained tiny model does.
CONDITIONAL_KEYS = frozenset({"heldout/precision", "heldout/precision_ci_low", "heldout/precision_ci_high"})


def _line(title: str, *metrics: str, **kw) -> wr.LinePlot:
    return wr.LinePlot(title=title, x=STEP, y=list(metrics), **kw)


def build_workspace(entity: str, project: str, name: str = NAME, heldout: bool = True) -> ws.Workspace:
    """The workspace object (not saved). `heldout`: also the held-out generation-eval section (heldout/*)."""
    loss_vs_answers = ws.Section(
        name="Loss vs answers",
        is_open=True,
        panels=[
            _line("eval loss (lower is not always better)", "eval/loss", "train/loss"),
            _line("probe quality (mean of the five probes)", "probes/quality"),
            _line("token accuracy", "eval/mean_token_accuracy", "train/mean_token_accuracy"),
            _line("probe answers: ended at end of turn, fact recall", "probes/eos_rate", "probes/fact_recall"),
            _line("divergence alarm (1: loss improved while quality fell)", "probes/divergence"),
            wr.ScalarChart(title="divergence alarms in the run", metric="probes/divergence_count"),
        ],
    )
    answers = ws.Section(
        name="Probe answers",
        is_open=True,
        panels=[
            wr.WeavePanelSummaryTable(table_name="probes/answers", layout=wr.Layout(w=24, h=12)),
            wr.WeavePanelSummaryTable(table_name="probes/side_by_side", layout=wr.Layout(w=24, h=12)),
            _line("repetition (rep-4) and flags", "probes/rep_4", "probes/flag_repetition_loop", "probes/flag_no_eos"),
        ],
    )
    sweeps = ws.Section(
        name="Sweeps: what the mix and targets did to the kept adapter",
        is_open=True,
        panels=[
            wr.ParallelCoordinatesPlot(
                title="mix share x LoRA targets x epochs -> kept probe quality",
                columns=[
                    wr.ParallelCoordinatesPlotColumn(
                        metric=wr.Config(key) if kind == "config" else wr.SummaryMetric(key), display_name=label
                    )
                    for kind, key, label in SWEEP_AXES
                ],
                layout=wr.Layout(w=24, h=9),
            ),
            wr.ScatterPlot(
                title="kept adapter: eval loss vs probe quality (one point per run)",
                x=wr.SummaryMetric("selected/eval_loss"),
                y=wr.SummaryMetric("selected/probe_quality"),
            ),
        ],
    )
    sections = [loss_vs_answers, answers, sweeps]
    if heldout:
        sections.insert(
            1,
            ws.Section(
                name="Generation eval (held-out questions)",
                is_open=True,
                panels=[
                    _line("generation quality", "heldout/quality", "heldout/quality_ci_low", "heldout/quality_ci_high"),
                    _line("claim precision / recall", "heldout/precision", "heldout/recall"),
                ],
            ),
        )
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name,
        settings=ws.WorkspaceSettings(x_axis=STEP),
        sections=sections,
    )


def _name(metric) -> tuple[str, str]:
    if isinstance(metric, wr.Config):
        return "config", metric.name
    if isinstance(metric, wr.SummaryMetric):
        return "summary", metric.name
    return "history", str(metric)


def panel_keys(workspace: ws.Workspace) -> dict[str, set[str]]:
    """Every key the panels read: {"history": metrics plotted over steps, "summary": summary keys, "config":
    config keys (dotted), "tables": logged tables}."""
    keys: dict[str, set[str]] = {"history": set(), "summary": set(), "config": set(), "tables": set()}
    for section in workspace.sections:
        for panel in section.panels:
            if isinstance(panel, wr.LinePlot):
                keys["history"].update(str(y) for y in panel.y)
                keys["history"].add(str(panel.x))
            elif isinstance(panel, wr.ScalarChart):
                keys["summary"].add(str(panel.metric))
            elif isinstance(panel, wr.WeavePanelSummaryTable):
                keys["tables"].add(panel.table_name)
            elif isinstance(panel, wr.ParallelCoordinatesPlot):
                for column in panel.columns:
                    kind, name = _name(column.metric)
                    keys[kind].add(name)
            elif isinstance(panel, wr.ScatterPlot):
                for axis in (panel.x, panel.y):
                    kind, name = _name(axis)
                    keys[kind].add(name)
    return keys


def _flat(config: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in config.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
    return out


def missing_keys(workspace: ws.Workspace, run: dict, optional_prefixes: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Panel keys a run (medqa.tracking.read_offline_run's dict) does not log; keys under `optional_prefixes`
    (e.g. "heldout/" for a run with the held-out eval off) and CONDITIONAL_KEYS are not asked for."""
    logged_history = set().union(*run["history"]) if run["history"] else set()
    logged_summary = set(run["summary"])
    have = {
        "history": logged_history,
        "summary": logged_summary | logged_history,
        "config": _flat(run["config"]),
        "tables": {k.rsplit(".", 1)[0] for k in logged_history if k.endswith("._type")},
    }
    gaps = {
        kind: {k for k in names - have[kind] if not k.startswith(optional_prefixes) and k not in CONDITIONAL_KEYS}
        for kind, names in panel_keys(workspace).items()
    }
    return {kind: names for kind, names in gaps.items() if names}
