"""The probe answers as one W&B table that grows per eval (log_mode="INCREMENTAL"): each eval logs only its own
rows, and the W&B app shows all increments as one table with a `step` column. The per-probe pivot (one column of
answers per step) cannot grow by rows, so it is logged with log_mode="MUTABLE": one table in the app, replaced
as steps are added."""

from __future__ import annotations

import wandb

PROBE_COLUMNS = ["step", "probe_id", "question", "answer", "stopped_eos", "n_tokens"]


def _cell(value):
    # W&B tables hold one type per column: lists (flags, facts missing) become one string.
    return ", ".join(map(str, value)) if isinstance(value, list) else value


class ProbeAnswerTable:
    """`probes/answers`: one row per (step, probe) with every quality metric as a further column; the columns are
    fixed by the first rows added (every scored row carries the same keys)."""

    def __init__(self):
        self.table: wandb.Table | None = None
        self.columns: list[str] = []

    def add(self, rows: list[dict]) -> wandb.Table:
        """Append `rows` (one eval's probes.jsonl rows) and return the table to log; logging it writes only the
        rows added since it was last logged."""
        if self.table is None:
            self.columns = PROBE_COLUMNS + [c for c in rows[0] if c not in PROBE_COLUMNS]
            self.table = wandb.Table(columns=self.columns, log_mode="INCREMENTAL")
        for r in rows:
            self.table.add_data(*[_cell(r.get(c)) for c in self.columns])
        return self.table


def side_by_side(rows: list[dict]) -> wandb.Table:
    """`probes/side_by_side`: one row per probe, a column of answers (with quality and flags) per step."""
    steps = sorted({r["step"] for r in rows})
    by_probe: dict[str, dict] = {}
    for r in rows:
        entry = by_probe.setdefault(r["probe_id"], {"question": r["question"]})
        entry[r["step"]] = r["answer"] + ("" if r["stopped_eos"] else " [no EOS: hit the token limit]")
        if "quality" in r:
            entry[r["step"]] += f"\n[quality {r['quality']:.2f}" + "".join(f"; {f}" for f in r["flags"]) + "]"
    return wandb.Table(
        columns=["probe_id", "question", *[f"step_{s}" for s in steps]],
        data=[[pid, e["question"], *[e.get(s, "") for s in steps]] for pid, e in by_probe.items()],
        log_mode="MUTABLE",
    )
