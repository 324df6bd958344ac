"""The compare report from real run dirs: rows match each run.json, the plot is a real PNG, the HTML holds every
probe answer escaped, and bad input is one line naming the path with exit code 2. Then the report opened in a
real headless browser (Debian chromium, installed by `make setup`): the DOM holds a table row per run and every
probe answer, the plot image decodes, and an answer holding a script is shown as text and never runs. No
browser is a failure, not a skip: CI installs one."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import struct
import subprocess
from html import escape
from pathlib import Path

import pytest

from medqa.analysis.compare import find_run_dirs, read_runs, run_row, write_report
from medqa.cli.compare import cli

PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture(scope="session")
def run_folder(sweep_grid) -> Path:
    """A folder of run dirs: the 2x2 tiny sweep grid that CI runs once (tests/conftest.py)."""
    return sweep_grid


def copy_runs(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns("checkpoints", "adapter"))
    return dest


def inject_answer(run_dir: Path, text: str) -> dict:
    """Replace the first probe answer at the run's kept step with `text`; return that row."""
    kept = json.loads((run_dir / "run.json").read_text())["selected"]["step"]
    rows = [json.loads(line) for line in (run_dir / "probes.jsonl").read_text().splitlines()]
    target = next(r for r in rows if r["step"] == kept)
    target["answer"] = text
    (run_dir / "probes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return target


def test_every_run_dir_below_a_folder_is_found_once(run_folder):
    first = sorted(p.parent for p in run_folder.rglob("run.json"))[0]
    dirs = find_run_dirs([run_folder, first])
    expected = sorted(p.parent for p in run_folder.rglob("run.json") if "checkpoints" not in p.parts)
    assert sorted(dirs) == expected and len(expected) >= 2


def test_rows_match_each_run_json_and_probe_file(run_folder):
    runs = read_runs([run_folder], read_wandb=False)
    for run in runs:
        summary = json.loads((run.path / "run.json").read_text())
        row, kept = run_row(run), summary["selected"]["step"]
        evals = {e["step"]: e for e in summary["evals"]}
        assert row["wikidoc"] == summary["settings"]["data"]["mix"]["wikidoc"]
        assert row["final_eval_loss"] == summary["evals"][-1]["eval_loss"]
        assert row["best_eval_loss"] == min(e["eval_loss"] for e in summary["evals"])
        assert row["token_accuracy"] == summary["final_mean_token_accuracy"]
        assert (row["kept_step"], row["quality_kept"]) == (kept, evals[kept]["probe_quality"])
        assert row["quality_final"] == summary["evals"][-1]["probe_quality"]
        assert row["eos_rate"] == evals[kept]["probe_eos_rate"]
        probes = [json.loads(line) for line in (run.path / "probes.jsonl").read_text().splitlines()]
        at_kept = [p for p in probes if p["step"] == kept]
        assert row["rep_4"] == pytest.approx(sum(p["rep_4"] for p in at_kept) / len(at_kept))
        for flag in {f for p in at_kept for f in p["flags"]}:
            assert f"{flag}×{sum(flag in p['flags'] for p in at_kept)}" in row["flags"]


def test_rows_carry_each_sweep_runs_settings_group_and_tags(sweep_grid):
    """Settings come from run.json, group and tags from each run's own W&B file; they match what the sweep set."""
    rows = {r["run"]: r for r in map(run_row, read_runs([sweep_grid]))}
    planned = json.loads((sweep_grid / "sweep.json").read_text())["runs"]
    assert sorted(rows) == [Path(r["run_dir"]).name for r in planned]
    for run in planned:
        row, params = rows[Path(run["run_dir"]).name], run["params"]
        assert row["wikidoc"] == params["data.mix.wikidoc"]
        assert row["targets"] == f"{params['lora']}-r16" and row["epochs"] == "2steps"
        assert row["decoding"] == "greedy_max16"
        assert row["group"] == "mix_x_targets_tiny"  # read back from the W&B run file
        assert f"lora={params['lora']}-r16" in row["tags"] and "decoding=greedy_max16" in row["tags"]


def test_report_files(run_folder, tmp_path):
    runs = read_runs([run_folder], read_wandb=False)
    out, rows = write_report(runs, tmp_path / "report")
    assert sorted(p.name for p in out.iterdir()) == [
        "index.html", "loss_vs_quality.png", "runs.csv", "runs.json", "runs.md",
    ]  # fmt: skip
    png = (out / "loss_vs_quality.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    table = list(csv.DictReader((out / "runs.csv").open()))
    assert [r["run"] for r in table] == [r.label for r in runs]
    assert float(table[0]["final_eval_loss"]) == rows[0]["final_eval_loss"]
    md = (out / "runs.md").read_text().splitlines()
    assert len(md) == 2 + len(runs) and all(f"| {r.label} |" in line for r, line in zip(runs, md[2:], strict=True))
    detail = json.loads((out / "runs.json").read_text())
    assert [d["evals"] for d in detail] == [r.summary["evals"] for r in runs]
    html = (out / "index.html").read_text()
    assert html.count('class="run-row"') == len(runs)
    for run in runs:  # every probe question, every kept answer and the base model's step-0 answers
        for probe in [*run.answers_at(run.summary["selected"]["step"]).values(), *run.answers_at(0).values()]:
            assert escape(probe["question"]) in html and escape(probe["answer"]) in html


def test_answers_are_escaped_in_the_html(run_folder, tmp_path):
    folder = copy_runs(run_folder, tmp_path / "runs")
    inject_answer(sorted(p.parent for p in folder.rglob("run.json"))[0], PAYLOAD)
    out, _ = write_report(read_runs([folder], read_wandb=False), tmp_path / "report")
    html = (out / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<script" not in html and "<img src=x" not in html


def test_cli_prints_the_table_and_never_overwrites_a_report(run_folder, tmp_path, capsys):
    out = tmp_path / "report"
    cli([str(run_folder), "--out", str(out), "--no-wandb"])
    printed = capsys.readouterr().out
    for run_dir in find_run_dirs([run_folder]):
        assert run_dir.name in printed
    assert "index.html" in printed
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SystemExit) as exit_:
        cli([str(run_folder), "--out", str(out)])
    assert exit_.value.code == 2
    assert f"--out {out}: already exists" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_the_command_line_as_a_user_types_it(run_module, tmp_path):
    done = run_module("medqa.compare", str(tmp_path / "nope"))
    assert (done.returncode, done.stderr) == (2, f"medqa.compare: error: {tmp_path / 'nope'}: no such file or folder\n")


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing_path", "{folder}/nope: no such file or folder"),
        ("empty_folder", "{folder}/empty: no run.json in it or below"),
        ("missing_keys", "{run}/run.json: missing key(s) settings.lora.target_modules, settings.lora.r, evals"),
        ("bad_probes", "{run}/probes.jsonl:{n}: not a JSON line"),
        ("no_probes", "{run}/probes.jsonl: no such file"),
    ],
)
def test_bad_input_is_one_line_naming_the_path_and_exit_2(run_folder, tmp_path, capsys, breakage, message):
    folder = copy_runs(run_folder, tmp_path / "runs")
    run = sorted(p.parent for p in folder.rglob("run.json"))[0]
    n = len((run / "probes.jsonl").read_text().splitlines()) + 1
    target = folder
    if breakage == "missing_path":
        target = folder / "nope"
    elif breakage == "empty_folder":
        (folder / "empty" / "sub").mkdir(parents=True)
        target = folder / "empty"
    elif breakage == "missing_keys":
        summary = json.loads((run / "run.json").read_text())
        del summary["evals"], summary["settings"]["lora"]
        (run / "run.json").write_text(json.dumps(summary))
    elif breakage == "bad_probes":
        with (run / "probes.jsonl").open("a") as f:
            f.write("{not json\n")
    else:
        (run / "probes.jsonl").unlink()
    with pytest.raises(SystemExit) as exit_:
        cli([str(target), "--out", str(tmp_path / "report"), "--no-wandb"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("medqa.compare: error: ") and err.count("\n") == 1
    assert message.format(folder=folder, run=run, n=n) in err
    assert not (tmp_path / "report").exists()  # checked before the report folder is made


# --- in a real browser ---

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=5000",
]  # fmt: skip
# Injected into a copy of the page (CSP removed): records any alert() and what the browser made of the plot.
PROBE_SCRIPT = """<script>
window.alert = function (m) {
  var html = document.documentElement, seen = html.getAttribute("data-alerted");
  html.setAttribute("data-alerted", (seen ? seen + " " : "") + m);
};
window.addEventListener("load", function () {
  var img = document.getElementById("plot");
  document.body.setAttribute("data-plot", img.complete + " " + img.naturalWidth + "x" + img.naturalHeight);
});
</script>"""


def chromium() -> str:
    path = os.environ.get("MEDQA_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail(
            "chromium not found: the browser test needs Debian's chromium. `make setup` installs it when run as "
            "root; otherwise `sudo apt-get install -y chromium` (or set MEDQA_CHROMIUM to a Chromium binary)."
        )
    return path


def dump_dom(page: Path, tmp_path: Path) -> str:
    """The page's DOM after load, serialised by headless chromium (a fresh profile each time)."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "<html" in done.stdout, (
        f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    )
    return done.stdout


def instrumented(page: Path, dest: Path) -> Path:
    """A copy of the page without its Content-Security-Policy and with PROBE_SCRIPT first in <head>: so the
    escaping alone is what keeps the payload from running."""
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text())
    assert "Content-Security-Policy" not in html
    dest.write_text(html.replace("<head>", "<head>" + PROBE_SCRIPT, 1))
    return dest


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.fixture(scope="module")
def report(run_folder, tmp_path_factory):
    """A report of the run folder, one answer replaced by a script payload."""
    tmp = tmp_path_factory.mktemp("browser")
    folder = copy_runs(run_folder, tmp / "runs")
    injected = inject_answer(sorted(p.parent for p in folder.rglob("run.json"))[0], PAYLOAD)
    runs = read_runs([folder], read_wandb=False)
    out, _ = write_report(runs, tmp / "report")
    return out, runs, injected


def test_report_renders_with_rows_answers_and_escaped_script(report, tmp_path):
    out, runs, injected = report
    dom = dump_dom(out / "index.html", tmp_path)
    assert len(re.findall(r'<tr class="run-row"', dom)) == len(runs)
    for run in runs:
        assert f'data-run="{escape(run.label)}"' in dom
        for probe in run.answers_at(run.summary["selected"]["step"]).values():
            assert escape(probe["question"], quote=False) in dom
            assert escape(probe["answer"], quote=False) in dom  # the payload too: as text
    assert injected["answer"] == PAYLOAD and escape(PAYLOAD, quote=False) in dom
    assert "<script" not in dom and "<img src=" not in dom.replace('<img id="plot"', "")


def test_plot_loads_and_the_payload_does_not_run(report, tmp_path):
    out, _, _ = report
    dom = dump_dom(instrumented(out / "index.html", tmp_path / "page.html"), tmp_path)
    width, height = png_size(out / "loss_vs_quality.png")
    assert f'data-plot="true {width}x{height}"' in dom and width > 300  # the inline PNG decoded
    assert re.search(r"<html[^>]*>", dom).group(0) == '<html lang="en">'  # no data-alerted: alert() never ran


def test_the_alert_probe_would_see_an_unescaped_script(report, tmp_path):
    """Control: the same check on a page with the payload left raw sees both of its alerts run."""
    out, _, _ = report
    page = instrumented(out / "index.html", tmp_path / "raw.html")
    page.write_text(page.read_text().replace(escape(PAYLOAD, quote=False), PAYLOAD, 1))
    assert re.search(r"<html[^>]*>", dump_dom(page, tmp_path)).group(0) == '<html lang="en" data-alerted="1 2">'
