"""Where every row of a data mix came from, shown three ways: a console table (the preview CLI and the
run log), `data_provenance.json` in the run dir, and a W&B table with summary keys."""

from __future__ import annotations

import json
from pathlib import Path

PROVENANCE_FILE = "data_provenance.json"
TABLE_COLUMNS = ["source", "stage", "rows", "dropped", "changed", "flagged", "checked"]


def stage_rows(provenance: dict) -> list[dict]:
    """One row per (source, stage) from loaded to train/eval, in pipeline order."""
    out = []
    for name, p in provenance["sources"].items():

        def add(stage: str, rows: int, _name: str = name, **kw) -> None:
            out.append({"source": _name, "stage": stage, "rows": rows, **kw})

        add("asked (share x total)", p["wanted"], dropped=None, changed=None, flagged=None)
        if p.get("loaded") is None:
            continue
        add("loaded", p["loaded"])
        for s in p["steps"]:
            add(s["rule"], s["remaining"], dropped=s["dropped"], changed=s["changed"], flagged=s["flagged"])
        tok = p.get("max_tokens")
        if tok:
            # Only the rows walked past while drawing are tokenized: rows = those that fit, of `checked`.
            kept = tok["checked"] - tok["dropped"]
            add(f"max_tokens_{tok['limit']}", kept, dropped=tok["dropped"], checked=tok["checked"])
        add("sampled", p["sampled"])
        add("train", p["train"])
        add("eval", p["eval"])
    return [{c: r.get(c) for c in TABLE_COLUMNS} for r in out]


def format_provenance(provenance: dict) -> str:
    """The console table: per source, rows after each stage (dropped / changed in brackets), then the mix."""
    names = list(provenance["sources"])
    stages: list[str] = []
    cells: dict[tuple[str, str], str] = {}
    for r in stage_rows(provenance):
        if r["stage"] not in stages:
            stages.append(r["stage"])
        note = ", ".join(f"{k[0]}{r[k]}" for k in ("dropped", "changed", "flagged") if r.get(k))
        of = f" of {r['checked']:,}" if r.get("checked") is not None else ""
        cells[(r["stage"], r["source"])] = f"{r['rows']:,}{of}" + (f" ({note})" if note else "")
    width = max(len(s) for s in stages) + 2
    colw = max(18, *(len(n) + 2 for n in names), *(len(c) + 2 for c in cells.values()))
    lines = ["stage".ljust(width) + "".join(n.rjust(colw) for n in names)]
    lines.append("-" * len(lines[0]))
    for stage in stages:
        lines.append(stage.ljust(width) + "".join(cells.get((stage, n), "—").rjust(colw) for n in names))
    shares = lambda key: "".join(  # noqa: E731
        _pct((provenance["sources"][n].get("list_share") or {}).get(key)).rjust(colw) for n in names
    )
    lines += [f"list share {k}".ljust(width) + shares(k) for k in ("loaded", "sampled")]
    mix = provenance["mix"]
    share = ", ".join(f"{n} {_pct(v)}" for n, v in mix["share"].items())
    ls = mix["list_share"]
    lines += [
        "(rows left after each stage; d = dropped, c = changed, f = flagged; max_tokens: fit of checked while drawing)",
        f"mix: {mix['train']:,} train + {mix['eval']:,} eval of {mix['total']:,} asked ({share}); "
        f"list-formatted answers: train {_pct(ls['train'])}, eval {_pct(ls['eval'])}, all {_pct(ls['all'])}",
        f"fingerprint: train {provenance['fingerprint']['train']}  eval {provenance['fingerprint']['eval']}",
    ]
    return "\n".join(lines)


def format_examples(train, n: int) -> str:
    """A few cleaned training examples as the model will see them (question and answer)."""
    out = []
    for row in train.select(range(min(n, len(train)))):
        out += [
            f"--- {row['source']} row {row['source_row']}",
            f"Q: {row['prompt'][-1]['content']}",
            f"A: {row['completion'][0]['content']}",
        ]
    return "\n".join(out)


def summary_keys(provenance: dict) -> dict:
    """Flat W&B summary keys: rows per split and source, list shares, fingerprints."""
    mix = provenance["mix"]
    keys = {"data/train_rows": mix["train"], "data/eval_rows": mix["eval"]}
    keys.update({f"data/list_share_{k}": v for k, v in mix["list_share"].items()})
    keys.update({f"data/fingerprint_{k}": v for k, v in provenance["fingerprint"].items()})
    for name, p in provenance["sources"].items():
        keys.update({f"data/{name}/{k}": p.get(k) for k in ("loaded", "cleaned", "sampled", "train", "eval")})
        keys[f"data/{name}/list_share"] = (p.get("list_share") or {}).get("sampled")
    return keys


def write_provenance(provenance: dict, run_dir: Path) -> Path:
    """`data_provenance.json` in the run dir (a new run dir: never overwrites)."""
    path = run_dir / PROVENANCE_FILE
    with path.open("x") as f:
        json.dump(provenance, f, indent=2)
    return path


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"
