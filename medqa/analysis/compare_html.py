"""The comparison report as one self-contained HTML page: the runs' table, the loss-vs-quality plot (inline
PNG) and, per probe, the question and every run's answer at its kept eval beside the base model's step-0
answer, with quality and flags. Every value that came from a run is HTML-escaped; the page holds no script
and its Content-Security-Policy forbids any, so a model's answer is shown as text, never run."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from html import escape
from pathlib import Path

from medqa.analysis.columns import COLUMNS

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.answers { table-layout: fixed; width: 100%; }
pre.answer { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0 0 4px; font: 13px/1.35 ui-monospace, monospace; }
.meta { color: #555; font-size: 12px; }
.flag { background: #fde2e2; border-radius: 3px; padding: 0 3px; margin-right: 3px; }
.base { background: #fafafa; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def _e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def _fmt(value, spec: str) -> str:
    return "—" if value is None or value == "" else value if isinstance(value, str) else format(value, spec)


def _table(rows: list[dict]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for _, h, _ in COLUMNS)
    body = []
    for r in rows:
        cells = "".join(
            f'<td class="{"num" if spec not in {"s"} else "txt"}">{_e(_fmt(r[key], spec))}</td>'
            for key, _, spec in COLUMNS
        )
        body.append(f'<tr class="run-row" data-run="{_e(r["run"])}">{cells}</tr>')
    return f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _answer_cell(row: dict | None, css: str = "") -> str:
    if row is None:
        return f'<td class="{css}"><span class="meta">no answer recorded</span></td>'
    meta = [f"quality {_fmt(row.get('quality'), '.2f')}", "stopped at EOS" if row["stopped_eos"] else "no EOS"]
    if row.get("rep_4") is not None:
        meta.append(f"rep-4 {row['rep_4']:.2f}")
    if row.get("n_tokens") is not None:
        meta.append(f"{row['n_tokens']} tokens")
    flags = "".join(f'<span class="flag">{_e(f)}</span>' for f in row.get("flags") or [])
    # The newline after <pre> is one the HTML parser drops, so an answer's own leading newlines survive.
    return (
        f'<td class="{css}"><pre class="answer">\n{_e(row["answer"])}</pre>'
        f'<div class="meta">{_e(" · ".join(meta))}</div><div class="meta">{flags}</div></td>'
    )


def _base_groups(runs) -> list[tuple[str, list]]:
    """Runs whose step-0 answers are the same base model under the same decoding and probes, grouped: one
    base column per group."""
    groups: dict[str, list] = {}
    for run in runs:
        s = run.summary
        settings = s["settings"]
        key = json.dumps([s.get("base_model"), settings.get("decoding"), settings.get("probes")], sort_keys=True)
        groups.setdefault(key, []).append(run)
    return list(groups.items())


def _probe_sections(runs, rows: list[dict]) -> str:
    probe_ids: list[str] = []
    questions: dict[str, str] = {}
    for run in runs:
        for p in run.probes:
            if p["probe_id"] not in questions:
                probe_ids.append(p["probe_id"])
                questions[p["probe_id"]] = p["question"]
    groups = _base_groups(runs)
    heads = []
    for _, members in groups:
        who = "" if len(groups) == 1 else f" ({', '.join(r.label for r in members)})"
        heads.append(f'<th class="base">base model, step 0{_e(who)}</th>')
    heads += [
        f"<th>{_e(r.label)}<div class='meta'>{_e(row['targets'])}, wikidoc {_e(_fmt(row['wikidoc'], '.2f'))}, "
        f"{_e(row['decoding'])}<br>kept step {_e(row['kept_step'])}</div></th>"
        for r, row in zip(runs, rows, strict=True)
    ]
    sections = []
    for pid in probe_ids:
        cells = [_answer_cell(members[0].answers_at(0).get(pid), "base") for _, members in groups]
        cells += [_answer_cell(r.answers_at(r.summary["selected"]["step"]).get(pid)) for r in runs]
        sections.append(
            f'<section class="probe" id="probe-{_e(pid)}"><h3>{_e(questions[pid])} '
            f'<span class="meta">({_e(pid)})</span></h3>'
            f'<table class="answers"><thead><tr>{"".join(heads)}</tr></thead>'
            f"<tbody><tr>{''.join(cells)}</tr></tbody></table></section>"
        )
    return "\n".join(sections)


def render_html(runs, rows: list[dict], png: Path) -> str:
    """The report page; `png` is embedded as a data: URI so the page is one file."""
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    sources = "".join(f"<li><code>{_e(r.path)}</code></li>" for r in runs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>medqa: {len(runs)} runs compared</title><style>{STYLE}</style></head>
<body>
<h1>medqa: {len(runs)} runs compared</h1>
<p class="meta">Written {_e(datetime.now().isoformat(timespec="seconds"))} by <code>python -m medqa.compare</code>.
Probe figures (quality, EOS rate, rep-4, flags) are at the eval whose adapter each run kept
(<code>train.select_by</code>); "final" is the last eval.</p>
<h2>Runs</h2>
{_table(rows)}
<h2>Eval loss vs probe quality</h2>
<p class="meta">One point per eval, a line per run in step order, each point labelled with its step. A line going
left and down is the warning sign: lower loss, worse answers.</p>
<img id="plot" alt="eval loss vs probe quality per run" src="data:image/png;base64,{image}">
<h2>Probe answers side by side</h2>
<p class="meta">Per probe: the base model's answer at step 0, then each run's answer at its kept eval.</p>
{_probe_sections(runs, rows)}
<h2>Run dirs</h2>
<ul>{sources}</ul>
</body></html>
"""
