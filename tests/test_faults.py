"""The fault table: every command line (`python -m medqa.train|probe|data|score|compare|sweep|build_base`) driven
through what goes wrong in real use, as a black box (only files, arguments, signals and exit codes):

- bad files: an invalid JSON line, non-UTF-8 bytes, an empty file, a missing column, every row removed by
  cleaning, a truncated or 0-byte file, a folder where a file belongs;
- bad encodings: lone surrogates in a JSON string, non-UTF-8 bytes in files and on the command line;
- signals: SIGINT, SIGTERM (and SLURM's SIGUSR1) and SIGKILL, at start-up, mid-training and mid-save;
- concurrent runs: two trainers on one hydra.run.dir, `train.resume` against a live run, a stale lock;
- read-only and full disks: a read-only prebuilt cache, unwritable output folders, RLIMIT_FSIZE and a tiny tmpfs;
- hostile sweep files: a command that runs bash or other code, `program:` pointing elsewhere, unknown keys.

For each case: the exit code, ONE stderr line naming the file/key/row, no traceback, nothing lost or
half-written (no leftover run folder for a rejected run, no 0-byte output) and, where a run started, W&B closed.
Most cases fail before training starts and run in a forked child of a process that imported the heavy
libraries once (tests/cli_runner.py; MEDQA_FAULTS_SUBPROCESS=1 runs every case as a real `python -m`); the
signal and concurrency cases run real subprocesses on tiny configs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TINY = ["train=smoke", "data.total=40", "decoding.max_new_tokens=4"]
# A recipe other than the shipped default, so its model lives in a cache (built once per session, ~20 s).
CACHED_RECIPE = ["model.recipe.pretrain_steps=1", "model.recipe.textbook_variants=1"]
WIKIDOC = ROOT / "medqa" / "assets" / "embedded" / "wikidoc.jsonl"
CHATDOCTOR = ROOT / "medqa" / "assets" / "embedded" / "chatdoctor.jsonl"


# ---------------------------------------------------------------------------------------------------- running


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    def error_line(self, command: str) -> str:
        """The one stderr line of a refused command; fails on a traceback or any other stderr output."""
        assert "Traceback" not in self.text, self.text[-3000:]
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n" + self.stderr[-3000:]
        assert lines[0].startswith(f"medqa.{command}: error: "), lines[0]
        return lines[0]


class Runner:
    """Runs `python -m medqa.X ARGS` in a forked child of cli_runner.py (fast), or as a real subprocess."""

    def __init__(self, env: dict):
        self.env = env
        self.proc = None
        if os.environ.get("MEDQA_FAULTS_SUBPROCESS") != "1":
            self.proc = subprocess.Popen(
                [PY, str(ROOT / "tests" / "cli_runner.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                cwd=ROOT,
                text=True,
            )
            assert json.loads(self.proc.stdout.readline())["ready"]

    def __call__(
        self, module: str, *args, cwd: Path, env: dict | None = None, fsize: int | None = None, timeout: int = 300
    ) -> Result:
        env = {**self.env, **(env or {})}
        out, err = cwd / ".faults_stdout", cwd / ".faults_stderr"
        args = [str(a) for a in args]
        if self.proc is None:
            limit = (lambda: _set_fsize(fsize)) if fsize else None
            p = subprocess.run(
                [PY, "-m", f"medqa.{module}", *args], cwd=cwd, env=env, capture_output=True, text=True,
                timeout=timeout, preexec_fn=limit,
            )  # fmt: skip
            return Result(p.returncode, p.stdout, p.stderr)
        req = {"module": f"medqa.{module}", "args": args, "cwd": str(cwd), "env": env, "stdout": str(out),
               "stderr": str(err), "fsize": fsize, "timeout": timeout}  # fmt: skip
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        rc = json.loads(self.proc.stdout.readline())["rc"]
        result = Result(rc, out.read_text(errors="replace"), err.read_text(errors="replace"))
        out.unlink()
        err.unlink()
        return result

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _set_fsize(limit: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def _env() -> dict:
    # Without WANDB_SERVICE: a child must not join a W&B service of this pytest process.
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return {**env, "PYTHONPATH": str(ROOT), "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


@pytest.fixture(scope="session")
def cli(base_dir):
    runner = Runner(_env())
    yield runner
    runner.close()


def popen(module: str, *args, cwd: Path, env: dict | None = None, wrap: list[str] | None = None) -> subprocess.Popen:
    """A real `python -m medqa.X` in its own process group (a kill takes W&B's service along)."""
    return subprocess.Popen(
        [*(wrap or []), PY, "-m", f"medqa.{module}", *map(str, args)],
        cwd=cwd,
        env={**_env(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: int = 300) -> Result:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out:\n{err[-3000:]}")
    return Result(proc.returncode, out, err)


def run_proc(module: str, *args, cwd: Path, env: dict | None = None, wrap=None, timeout: int = 300) -> Result:
    return finish(popen(module, *args, cwd=cwd, env=env, wrap=wrap), timeout)


def readonly(path: Path) -> list[str]:
    """Make `path` read-only for the commands; returns the wrapper that runs a command without root's
    override of file permissions (as root, mode bits alone do not stop a write)."""
    for p in [path, *path.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode & ~0o222)
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a folder read-only")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def writable_again(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o200)


def zero_byte_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_size == 0 and not p.name.startswith(".faults")]


def assert_no_run_left(tmp: Path) -> None:
    assert not (tmp / "run").exists(), f"a run folder was left for a rejected run: {list((tmp / 'run').rglob('*'))}"
    assert not list(tmp.rglob("wandb")), "a W&B run was started for a rejected run"
    assert not (tmp / "runs").exists() and not (tmp / "outputs").exists()


# --------------------------------------------------------------------------------------------------- bad files


def _rows(path: Path, n: int) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:n]]


def _jsonl(rows) -> bytes:
    return b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in rows)


def _csv(rows: list[dict], columns=("instruction", "input", "output")) -> bytes:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


# name -> (bytes, line the fault is on or None, words the message must hold besides the file's path)
def _bad_sources() -> dict[str, tuple[bytes, int | None, list[str]]]:
    rows = _rows(WIKIDOC, 80)
    good = [json.dumps(r).encode() + b"\n" for r in rows]
    cut = json.dumps(rows[9]).encode()[:40]
    no_output = [{"instruction": r["instruction"], "input": r["input"], "answer": r["output"]} for r in rows]
    return {
        "invalid_json.jsonl": (b"".join(good[:10] + [b'{"input": "q", "output": \n'] + good[10:]), 11, ["JSON"]),
        "non_utf8.jsonl": (b"".join(good[:7] + [b'{"input": "caf\xe9?", "output": "ok"}\n'] + good[7:]), 8, ["UTF-8"]),
        "lone_surrogate.jsonl": (b"".join(good[:5] + [b'{"input": "q \\ud800", "output": "a"}\n'] + good[5:]), 6,
                                 ["surrogate"]),
        "not_an_object.jsonl": (b"".join(good[:3] + [b'["a", "list"]\n'] + good[3:]), 4, ["object"]),
        "truncated.jsonl": (b"".join(good[:9]) + cut, 10, ["JSON"]),
        "empty.jsonl": (b"", None, ["empty"]),
        "blank_lines.jsonl": (b"\n\n  \n", None, ["empty"]),
        "missing_column.jsonl": (_jsonl(no_output), None, ["output"]),
        "all_cleaned.jsonl": (_jsonl({**r, "output": ""} for r in rows), None, ["wikidoc", "cleaning"]),
        "non_utf8.csv": (_csv(rows[:2]) + b'"x","caf\xe9","y"\n' + _csv(rows[2:]).split(b"\n", 1)[1], 4, ["UTF-8"]),
        "missing_column.csv": (_csv(rows, ("instruction", "input")), None, ["output"]),
        "empty.csv": (b"", None, ["empty"]),
    }  # fmt: skip


BAD_SOURCES = list(_bad_sources())


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_files")
    for name, (data, _, _) in _bad_sources().items():
        (folder / name).write_bytes(data)
    return folder


def _assert_names(line: str, path: Path, row: int | None, words: list[str]) -> None:
    assert str(path) in line, f"the message does not name the file: {line}"
    if row is not None:
        assert f"{path}:{row}" in line, f"the message does not name row {row}: {line}"
    for w in words:
        assert w.lower() in line.lower(), f"{w!r} not in {line}"


@pytest.mark.parametrize("name", BAD_SOURCES)
def test_data_preview_refuses_a_bad_source_file_in_one_line(name, bad_files, cli, tmp_path):
    path = bad_files / name
    _, row, words = _bad_sources()[name]
    out = cli("data", "data.total=40", f"data.sources.wikidoc.path={path}", "--export", tmp_path / "mix.jsonl",
              cwd=tmp_path)  # fmt: skip
    assert out.rc == 2, out.text[-3000:]
    _assert_names(out.error_line("data"), path, row, words)
    assert not (tmp_path / "mix.jsonl").exists()


@pytest.mark.parametrize("name", BAD_SOURCES)
def test_train_refuses_a_bad_source_file_in_one_line_and_leaves_no_run(name, bad_files, cli, tmp_path):
    path = bad_files / name
    _, row, words = _bad_sources()[name]
    out = cli("train", *TINY, f"data.sources.wikidoc.path={path}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.rc == 2, out.text[-3000:]
    _assert_names(out.error_line("train"), path, row, words)
    assert_no_run_left(tmp_path)


def test_train_refuses_a_folder_given_as_a_data_file(cli, tmp_path):
    folder = tmp_path / "data.jsonl"
    folder.mkdir()
    out = cli("train", *TINY, f"data.sources.chatdoctor.path={folder}", f"hydra.run.dir={tmp_path / 'run'}",
              cwd=tmp_path)  # fmt: skip
    assert out.rc == 2 and str(folder) in out.error_line("train")
    assert_no_run_left(tmp_path)


# --------------------------------------------------------------------------------------- score: files, encodings


def _answers(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


GOOD_ANSWER = b'{"question": "What are the symptoms of asthma?", "answer": "Wheezing and cough."}\n'
SCORE_FILES = {
    # name: (bytes, row, words)
    "invalid_json": (GOOD_ANSWER + b'{"answer": \n', 2, ["JSON"]),
    "non_utf8": (GOOD_ANSWER * 2 + b'{"answer": "caf\xe9"}\n', 3, ["UTF-8"]),
    "lone_surrogate": (GOOD_ANSWER + b'{"answer": "bad \\ud800 text"}\n', 2, ["surrogate"]),
    "surrogate_in_key": (GOOD_ANSWER + b'{"answer": "x", "\\udc80note": 1}\n', 2, ["surrogate"]),
    "no_answer_field": (GOOD_ANSWER + b'{"question": "q"}\n', 2, ["answer"]),
    "answer_not_a_string": (b'{"answer": 3}\n', 1, ["answer"]),
    "stopped_not_bool": (b'{"answer": "a", "stopped": "yes"}\n', 1, ["stopped"]),
    "unknown_probe": (b'{"probe": "nope", "answer": "a"}\n', 1, ["nope"]),
    "empty": (b"", None, ["no answers"]),
    "truncated": (GOOD_ANSWER + GOOD_ANSWER[:30], 2, ["JSON"]),
}


@pytest.mark.parametrize("name", list(SCORE_FILES))
def test_score_refuses_a_bad_answers_file_and_writes_no_output(name, cli, tmp_path):
    data, row, words = SCORE_FILES[name]
    path = _answers(tmp_path, f"{name}.jsonl", data)
    out = cli("score", "--allow-unmatched", "--answers", path, "--out", tmp_path / "scored.jsonl", cwd=tmp_path)
    assert out.rc == 2, out.text[-3000:]
    _assert_names(out.error_line("score"), path, row, words)
    assert not (tmp_path / "scored.jsonl").exists(), "a refused score left an output file"
    out = cli("score", "--allow-unmatched", "--answers", path, "--out", tmp_path / "scored.jsonl", cwd=tmp_path)
    assert "exists" not in out.stderr  # the rerun is not blocked by a leftover


@pytest.mark.parametrize(
    ("flag", "data", "words"),
    [
        ("--known-words", b"fever and caf\xe9 cough", ["UTF-8"]),
        ("--probes", b"questions:\n  - id: a\n    question: caf\xe9\n", ["UTF-8"]),
        ("--quality", b"bogus_key: 1\n", ["bogus_key"]),
        ("--quality", b"weights: [unclosed\n", ["yaml"]),
    ],
    ids=["known_words_non_utf8", "probes_non_utf8", "quality_unknown_key", "quality_bad_yaml"],
)
def test_score_refuses_bad_side_files_in_one_line(flag, data, words, cli, tmp_path):
    answers = _answers(tmp_path, "a.jsonl", GOOD_ANSWER)
    side = tmp_path / ("side.yaml" if flag != "--known-words" else "side.txt")
    side.write_bytes(data)
    out = cli(
        "score", "--allow-unmatched", "--answers", answers, flag, side, "--out", tmp_path / "scored.jsonl", cwd=tmp_path
    )
    assert out.rc == 2, out.text[-3000:]
    _assert_names(out.error_line("score"), side, None, words)
    assert not (tmp_path / "scored.jsonl").exists()


def test_score_refuses_an_existing_output_and_leaves_it_untouched(cli, tmp_path):
    answers = _answers(tmp_path, "a.jsonl", GOOD_ANSWER)
    (tmp_path / "scored.jsonl").write_text("mine\n")
    out = cli("score", "--allow-unmatched", "--answers", answers, "--out", tmp_path / "scored.jsonl", cwd=tmp_path)
    assert out.rc == 2 and "scored.jsonl" in out.error_line("score")
    assert (tmp_path / "scored.jsonl").read_text() == "mine\n"


def test_score_on_a_full_disk_leaves_no_partial_output(cli, tmp_path):
    answers = _answers(tmp_path, "a.jsonl", GOOD_ANSWER * 300)
    out = cli(
        "score", "--allow-unmatched", "--answers", answers, "--out", tmp_path / "scored.jsonl", cwd=tmp_path, fsize=4096
    )
    assert out.rc != 0
    line = out.error_line("score")
    assert "scored.jsonl" in line and "File too large" in line
    assert not list(tmp_path.glob("scored*")), "a partial output was left on a full disk"


def test_score_into_a_missing_folder_is_one_line(cli, tmp_path):
    answers = _answers(tmp_path, "a.jsonl", GOOD_ANSWER)
    out = cli(
        "score", "--allow-unmatched", "--answers", answers, "--out", tmp_path / "nope" / "scored.jsonl", cwd=tmp_path
    )
    assert out.rc == 2 and "nope" in out.error_line("score")


def test_score_with_a_non_utf8_argument_is_one_line(cli, tmp_path):
    bad = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.jsonl")
    out = cli("score", "--allow-unmatched", "--answers", bad, cwd=tmp_path)
    assert out.rc == 2
    assert "caf" in out.error_line("score")


# ------------------------------------------------------------------------------------------------ compare files


def _fake_run(tmp: Path, name: str, run_json: bytes | None, probes: bytes | None) -> Path:
    run = tmp / name
    run.mkdir()
    if run_json is not None:
        (run / "run.json").write_bytes(run_json)
    if probes is not None:
        (run / "probes.jsonl").write_bytes(probes)
    return run


GOOD_PROBE = b'{"step": 0, "probe_id": "p", "question": "q?", "answer": "a", "stopped_eos": true}\n'
COMPARE_CASES = {
    # name: (run.json bytes, probes.jsonl bytes, file the message names, row, words)
    "run_json_empty": (b"", b"", "run.json", None, ["JSON"]),
    "run_json_invalid": (b'{"settings": ', b"", "run.json", None, ["JSON"]),
    "run_json_non_utf8": (b'{"note": "caf\xe9"}', b"", "run.json", None, ["UTF-8"]),
    "run_json_not_object": (b"[1, 2]", b"", "run.json", None, ["object"]),
    "run_json_missing_keys": (b'{"evals": []}', b"", "run.json", None, ["missing"]),
    "probes_missing": (None, None, "probes.jsonl", None, ["no such file"]),
    "probes_non_utf8": (None, GOOD_PROBE + b'{"step": "caf\xe9"}\n', "probes.jsonl", 2, ["UTF-8"]),
    "probes_invalid": (None, b'{"step": 0, \n', "probes.jsonl", 1, ["JSON"]),
    "probes_surrogate": (None, b'{"step": 0, "probe_id": "\\ud800"}\n', "probes.jsonl", 1, ["surrogate"]),
}


@pytest.fixture(scope="session")
def good_run_json() -> bytes:
    """A run.json with every key medqa.compare reads (what a finished medqa.train run writes)."""
    settings = {
        "model": {"name_or_path": "tiny"}, "quant": {"load_in_4bit": False},
        "data": {"mix": {"chatdoctor": 0.85, "wikidoc": 0.15}, "total": 40},
        "lora": {"target_modules": ["q_proj"], "r": 4}, "train": {"epochs": 1, "max_steps": 2, "lr": 0.001},
        "decoding": {"max_new_tokens": 4, "do_sample": False, "temperature": 1.0, "top_p": 1.0,
                     "repetition_penalty": 1.0, "no_repeat_ngram_size": 0},
        "tracking": {"group": None},
    }  # fmt: skip
    evals = [{"step": 0, "eval_loss": 2.0, "probe_quality": 0.5, "probe_eos_rate": 1.0}]
    summary = {"settings": settings, "evals": evals, "selected": {"step": 0}, "flags": [], "final_eval_loss": 2.0,
               "final_mean_token_accuracy": 0.4}  # fmt: skip
    return json.dumps(summary).encode()


@pytest.mark.parametrize("name", list(COMPARE_CASES))
def test_compare_refuses_a_bad_run_folder_in_one_line(name, good_run_json, cli, tmp_path):
    run_json, probes, names, row, words = COMPARE_CASES[name]
    run = _fake_run(tmp_path, "r1", run_json if run_json is not None else good_run_json, probes)
    out = cli("compare", run, "--out", tmp_path / "report", "--no-wandb", cwd=tmp_path)
    assert out.rc == 2, out.text[-3000:]
    _assert_names(out.error_line("compare"), run / names, row, words)
    assert not (tmp_path / "report").exists(), "a refused comparison left a report folder"


@pytest.mark.parametrize(
    "case", ["missing_path", "out_not_empty", "out_is_a_file", "non_utf8_argument", "nothing_below"]
)
def test_compare_command_line_mistakes_are_one_line(case, cli, tmp_path):
    target = tmp_path / "x"
    args = [target]
    if case == "out_not_empty":
        target.mkdir()
        (tmp_path / "report").mkdir()
        (tmp_path / "report" / "mine.txt").write_text("mine")
        args += ["--out", tmp_path / "report"]
    elif case == "out_is_a_file":
        target.mkdir()
        (tmp_path / "report").write_text("mine")
        args += ["--out", tmp_path / "report"]
    elif case == "non_utf8_argument":
        args = [os.fsdecode(bytes(tmp_path) + b"/caf\xe9")]
    elif case == "nothing_below":
        target.mkdir()
    out = cli("compare", *args, "--no-wandb", cwd=tmp_path)
    assert out.rc == 2, out.text[-3000:]
    out.error_line("compare")
    if case in ("out_not_empty", "out_is_a_file"):
        mine = tmp_path / "report" / "mine.txt" if case == "out_not_empty" else tmp_path / "report"
        assert mine.read_text() == "mine"


def test_compare_on_a_full_disk_is_one_line_and_leaves_no_half_written_report(good_run_json, cli, tmp_path):
    probe_rows = b"".join(
        json.dumps({"step": 0, "probe_id": f"p{i}", "question": "q?", "answer": "a " * 300, "stopped_eos": True,
                    "flags": []}).encode() + b"\n" for i in range(20)
    )  # fmt: skip
    run = _fake_run(tmp_path, "r1", good_run_json, probe_rows)
    out = cli("compare", run, "--out", tmp_path / "report", "--no-wandb", cwd=tmp_path, fsize=8192)
    assert out.rc != 0
    assert "File too large" in out.error_line("compare")
    assert not zero_byte_files(tmp_path / "report") if (tmp_path / "report").exists() else True


# ---------------------------------------------------------------------------------------------- probe, build_base


def _adapter_run(tmp: Path, config: bytes | None, weights: bytes | None, pickled: bool = False) -> Path:
    run = tmp / "r"
    (run / "adapter").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    if config is not None:
        (run / "adapter" / "adapter_config.json").write_bytes(config)
    if weights is not None:
        (run / "adapter" / "adapter_model.safetensors").write_bytes(weights)
    if pickled:
        (run / "adapter" / "adapter_model.bin").write_bytes(b"\x80\x04")
    return run


@pytest.mark.parametrize(
    ("case", "config", "weights", "pickled", "words"),
    [
        ("weights_0_bytes", b"{}", b"", False, ["adapter_model.safetensors", "corrupt"]),
        ("weights_truncated", b"{}", b"\x10\x00\x00\x00\x00\x00\x00\x00{", False, ["corrupt"]),
        ("config_0_bytes", b"", None, False, ["adapter_config.json"]),
        ("only_pickle", b"{}", None, True, ["adapter_model.safetensors"]),
        ("config_non_utf8", b'{"r": "caf\xe9"}', None, False, ["adapter_config.json"]),
    ],
)
def test_probe_refuses_a_bad_adapter_before_any_model_loads(case, config, weights, pickled, words, cli, tmp_path):
    if weights is None and not pickled:
        import torch
        from safetensors.torch import save_file  # a valid weights file: only the config is bad

        run = _adapter_run(tmp_path, config, None)
        save_file({"w": torch.zeros(1)}, str(run / "adapter" / "adapter_model.safetensors"))
    else:
        run = _adapter_run(tmp_path, config, weights, pickled)
    out = cli("probe", f"run={run}", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert out.rc == 2, out.text[-3000:]
    line = out.error_line("probe")
    assert all(w in line for w in words), line
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("wandb"))


def test_probe_into_a_read_only_folder_is_one_line(cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    wrap = readonly(ro)
    try:
        out = run_proc("probe", "run=none", f"hydra.run.dir={ro / 'out'}", cwd=tmp_path, wrap=wrap)
    finally:
        writable_again(ro)
    assert out.rc == 2 and str(ro) in out.error_line("probe")
    assert not (ro / "out").exists()


@pytest.fixture(scope="session")
def built_cache(tmp_path_factory) -> Path:
    """A cache holding the built model of CACHED_RECIPE (python -m medqa.build_base, once per session)."""
    cache = tmp_path_factory.mktemp("built_cache")
    out = run_proc("build_base", *CACHED_RECIPE, cwd=cache, env={"MEDQA_CACHE": str(cache)}, timeout=600)
    assert out.rc == 0 and f"embedded base model: {cache}" in out.stdout, out.text[-3000:]
    return cache


def test_build_base_uses_a_read_only_prebuilt_cache(built_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache, ignore=shutil.ignore_patterns("*.lock", "*.partial-*"))
    wrap = readonly(cache)
    try:
        out = run_proc("build_base", *CACHED_RECIPE, cwd=tmp_path, env={"MEDQA_CACHE": str(cache)}, wrap=wrap)
    finally:
        writable_again(cache)
    assert out.rc == 0, out.text[-3000:]
    assert f"embedded base model: {cache}" in out.stdout and "Traceback" not in out.text


def test_data_uses_a_read_only_prebuilt_cache(built_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache, ignore=shutil.ignore_patterns("*.lock", "*.partial-*"))
    wrap = readonly(cache)
    try:
        out = run_proc("data", *CACHED_RECIPE, "data.total=40", "--examples", "0", cwd=tmp_path,
                       env={"MEDQA_CACHE": str(cache)}, wrap=wrap)  # fmt: skip
    finally:
        writable_again(cache)
    assert out.rc == 0, out.text[-3000:]


def test_build_base_in_a_read_only_empty_cache_is_one_line(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    wrap = readonly(cache)
    try:
        out = run_proc(
            "build_base", *CACHED_RECIPE, cwd=tmp_path, env={"MEDQA_CACHE": str(cache)}, wrap=wrap, timeout=120
        )
    finally:
        writable_again(cache)
    assert out.rc != 0 and str(cache) in out.error_line("build_base")


def test_build_base_force_in_a_read_only_cache_is_one_line_and_keeps_the_model(built_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache, ignore=shutil.ignore_patterns("*.lock", "*.partial-*"))
    before = sorted(p.name for p in (cache / "base").iterdir())
    wrap = readonly(cache)
    try:
        env = {"MEDQA_CACHE": str(cache)}
        out = run_proc("build_base", *CACHED_RECIPE, "--force", cwd=tmp_path, env=env, wrap=wrap, timeout=120)
    finally:
        writable_again(cache)
    assert out.rc != 0 and str(cache) in out.error_line("build_base")
    assert sorted(p.name for p in (cache / "base").iterdir()) == before


# ------------------------------------------------------------------------------------------- train: disks, dirs


def test_train_into_a_read_only_folder_is_one_line(cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    wrap = readonly(ro)
    try:
        out = run_proc("train", *TINY, f"hydra.run.dir={ro / 'run'}", cwd=tmp_path, wrap=wrap)
    finally:
        writable_again(ro)
    assert out.rc == 2 and str(ro) in out.error_line("train")
    assert not (ro / "run").exists()


def test_train_with_a_read_only_prebuilt_cache_starts(built_cache, tmp_path):
    """A built, complete model in a read-only place just loads: the run gets past the model (here it then
    stops on a data row, the cheapest way to end it)."""
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache, ignore=shutil.ignore_patterns("*.lock", "*.partial-*"))
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(_bad_sources()["invalid_json.jsonl"][0])
    wrap = readonly(cache)
    try:
        args = [*TINY, *CACHED_RECIPE, f"data.sources.wikidoc.path={bad}", f"hydra.run.dir={tmp_path / 'run'}"]
        out = run_proc("train", *args, cwd=tmp_path, env={"MEDQA_CACHE": str(cache)}, wrap=wrap)
    finally:
        writable_again(cache)
    assert out.rc == 2, out.text[-3000:]
    assert f"{bad}:11" in out.error_line("train")  # the data row, not the cache's lock


def test_train_into_a_folder_that_holds_a_finished_run_changes_nothing(cli, tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("mine: 1\n")
    (run / "run.json").write_text('{"mine": 1}')
    out = cli("train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.rc == 2 and str(run) in out.error_line("train")
    assert (run / ".hydra" / "config.yaml").read_text() == "mine: 1\n"
    assert (run / "run.json").read_text() == '{"mine": 1}'
    assert sorted(p.name for p in run.iterdir()) == [".hydra", "run.json"]


def test_train_with_a_non_utf8_override_is_one_line(cli, tmp_path):
    bad = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.jsonl")
    out = cli("train", *TINY, f"data.sources.wikidoc.path={bad}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.rc == 2 and "wikidoc.path" in out.error_line("train")
    assert_no_run_left(tmp_path)


def test_data_export_on_a_full_disk_leaves_no_partial_file(cli, tmp_path):
    out = cli("data", "data.total=40", "--examples", "0", "--export", tmp_path / "mix.jsonl", cwd=tmp_path,
              fsize=2048)  # fmt: skip
    assert out.rc != 0
    assert "mix.jsonl" in out.error_line("data")
    assert not list(tmp_path.glob("mix*")), "a partial export was left on a full disk"


def test_data_export_over_an_existing_file_keeps_it(cli, tmp_path):
    (tmp_path / "mix.jsonl").write_text("mine\n")
    out = cli("data", "data.total=40", "--examples", "0", "--export", tmp_path / "mix.jsonl", cwd=tmp_path)
    assert out.rc == 2 and "mix.jsonl" in out.error_line("data")
    assert (tmp_path / "mix.jsonl").read_text() == "mine\n"


# ------------------------------------------------------------------------------------------------ hostile sweeps


def _sweep(tmp: Path, name: str, body: dict | bytes) -> Path:
    import yaml

    path = tmp / f"{name}.yaml"
    path.write_bytes(body if isinstance(body, bytes) else yaml.safe_dump(body, sort_keys=False).encode())
    return path


def _sweep_body(command: list, **extra) -> dict:
    return {
        "name": "hostile", "method": "grid", "metric": {"name": "selected/probe_quality", "goal": "maximize"},
        "parameters": {"data.mix.wikidoc": {"values": [0.15]}, "train": {"value": "smoke"}},
        "command": command, **extra,
    }  # fmt: skip


def _hostile(tmp: Path, marker: Path) -> dict[str, dict | bytes]:
    touch = f"touch {marker}"
    evil = tmp / "elsewhere" / "medqa" / "train.py"
    evil.parent.mkdir(parents=True, exist_ok=True)
    evil.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    fake_python = tmp / "bin" / "python"
    fake_python.parent.mkdir(exist_ok=True)
    fake_python.write_text(f"#!/bin/sh\n{touch}\n")
    fake_python.chmod(0o755)
    app = ["-m", "medqa.train", "${args_no_hyphens}"]
    return {
        "bash_before_the_app": _sweep_body(["bash", "-c", touch, *app]),
        "sh_only": _sweep_body(["/bin/sh", "-c", touch, "${args_no_hyphens}"]),
        "python_c_before_the_app": _sweep_body(["${env}", "${interpreter}", "-c", f"import os; os.system({touch!r})",
                                                *app]),
        "other_interpreter": _sweep_body(["${env}", str(fake_python), *app]),
        "env_assignment": _sweep_body(["${env}", f"BASH_ENV={evil}", "${interpreter}", *app]),
        "envvar_as_program": _sweep_body(["${envvar:SHELL}", "-c", touch, *app]),
        "program_elsewhere": _sweep_body(["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"],
                                         program=str(evil)),
        "program_relative_elsewhere": _sweep_body(["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"],
                                                  program="elsewhere/medqa/train.py"),
        "app_twice": _sweep_body(["${env}", "${interpreter}", "-m", "medqa.train", "-m", "medqa.train",
                                  "${args_no_hyphens}"]),
        "hydra_flag_in_command": _sweep_body(["${env}", "${interpreter}", *app, "--multirun"]),
        "unknown_key": {**_sweep_body(["${env}", "${interpreter}", *app]),
                        "parameters": {"data.mix.wikidoc": {"values": [0.15]}, "train.bogus": {"values": [1]}}},
        "two_unknown_keys": {**_sweep_body(["${env}", "${interpreter}", *app]),
                             "parameters": {"lora.bogus": {"values": [7]}, "train.bogus": {"values": [1]}}},
        "unknown_top_level_key": {**_sweep_body(["${env}", "${interpreter}", *app]), "hooks": ["touch"]},
        "runner_key_as_parameter": {**_sweep_body(["${env}", "${interpreter}", *app]),
                                    "parameters": {"tracking.mode": {"values": ["online"]}}},
        "not_a_mapping": b"- just\n- a list\n",
        "bad_yaml": b"method: grid\nparameters: {lora: [unclosed\n",
        "non_utf8": b"name: caf\xe9\nmethod: grid\n",
        "empty": b"",
    }  # fmt: skip


# name -> words the one line must hold
HOSTILE = {
    "bash_before_the_app": ["command"], "sh_only": ["command"], "python_c_before_the_app": ["command"],
    "other_interpreter": ["command"], "env_assignment": ["command"], "envvar_as_program": ["command"],
    "program_elsewhere": ["program"], "program_relative_elsewhere": ["program"], "app_twice": ["command"],
    "hydra_flag_in_command": ["--multirun"], "unknown_key": ["parameters.train.bogus=1", "train.bogus=1: no such key"],
    "two_unknown_keys": ["parameters.lora.bogus=7", "lora.bogus=7: no such key"],
    "unknown_top_level_key": ["hooks"], "runner_key_as_parameter": ["parameters.tracking.mode"],
    "not_a_mapping": ["mapping"], "bad_yaml": ["YAML"], "non_utf8": ["UTF-8"], "empty": ["mapping"],
}  # fmt: skip


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_or_broken_sweep_file_is_refused_before_anything_runs(name, cli, tmp_path):
    marker = tmp_path / "PWNED"
    path = _sweep(tmp_path, name, _hostile(tmp_path, marker)[name])
    out = cli("sweep", path, "--out", tmp_path / "out", cwd=tmp_path, env={"SHELL": "/bin/sh"})
    assert not marker.exists(), "the sweep file ran a command of its own"
    assert out.rc == 2, out.text[-3000:]
    line = out.error_line("sweep")
    assert str(path) in line and all(w in line for w in HOSTILE[name]), line
    assert "<hidden>" not in line
    assert not (tmp_path / "out").exists(), "a refused sweep made a folder"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--count", "0"], ["--count=0"]),
        (["--", "--multirun"], ["--multirun"]),
        (["--", "hydra.run.dir=/tmp/x"], ["hydra.run.dir"]),
        (["--", "train.bogus=1"], ["train.bogus=1: no such key"]),
        (["--", "data.sources.wikidoc.path=/nonexistent.jsonl"], ["/nonexistent.jsonl"]),
    ],
    ids=["count_zero", "extra_flag", "extra_runner_key", "extra_unknown_key", "extra_missing_file"],
)
def test_sweep_command_line_mistakes_are_one_line(argv, words, cli, tmp_path):
    path = tmp_path / "tiny.yaml"
    shutil.copy(ROOT / "sweeps" / "mix_x_targets_tiny.yaml", path)
    out = cli("sweep", path, "--out", tmp_path / "out", *argv[:2] if argv[0] == "--count" else [],
              *(argv if argv[0] == "--" else []), cwd=tmp_path)  # fmt: skip
    assert out.rc == 2, out.text[-3000:]
    line = out.error_line("sweep")
    assert all(w in line for w in words), line
    assert not (tmp_path / "out").exists()


def test_sweep_into_a_read_only_folder_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    wrap = readonly(ro)
    try:
        out = run_proc("sweep", ROOT / "sweeps" / "mix_x_targets_tiny.yaml", "--out", ro / "sweeps", cwd=tmp_path,
                       wrap=wrap)  # fmt: skip
    finally:
        writable_again(ro)
    assert out.rc == 2 and str(ro) in out.error_line("sweep")


# ------------------------------------------------------------------------------------ signals and concurrency


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 400, poll: float = 0.05) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def _catches(pid: int, sig: int) -> bool:
    """Whether process `pid` has its own handler for `sig` (SigCgt in /proc; False where there is no /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(mask >> (sig - 1) & 1)


def _complete_checkpoint(run: Path, step: int) -> bool:
    return (run / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").is_file()


def _wandb_exit_recorded(run: Path) -> list[bool]:
    """Per W&B segment of the run: whether its offline file holds an exit record (the run was closed)."""
    wandb_cli = str(Path(PY).with_name("wandb"))
    found = []
    for segment in sorted((run / "wandb").glob("offline-run-*")):
        out = subprocess.run([wandb_cli, "leet", "inspect", "--json", str(segment)], capture_output=True, text=True)
        found.append(any(json.loads(x).get("type") == "exit" for x in out.stdout.splitlines() if x.startswith("{")))
    return found


# A run long enough to be interrupted: a checkpoint at every second step, many steps to go.
LONG = [*TINY, "train.max_steps=400", "train.eval_steps=2", "train.save_steps=2"]


@pytest.fixture(scope="module")
def live_run(cli, tmp_path_factory):
    """Trainer A (real, tiny) interrupted by SIGTERM after its first checkpoint; while it is alive, a second
    trainer is started on the same hydra.run.dir and `train.resume` is pointed at it. Returns what happened."""
    tmp = tmp_path_factory.mktemp("live")
    run, data = tmp / "A", tmp / "wikidoc.jsonl"
    shutil.copy(WIKIDOC, data)
    args = [*LONG, f"data.sources.wikidoc.path={data}"]
    a = popen("train", *args, f"hydra.run.dir={run}", cwd=tmp)
    assert _wait_for(lambda: _complete_checkpoint(run, 2), a), finish(a, 10).text[-3000:]
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*") if ".hydra" not in p.parts)
    hydra_config = (run / ".hydra" / "config.yaml").read_text()
    same_dir = cli("train", *args, f"hydra.run.dir={run}", cwd=tmp, timeout=120)
    resume = cli("train", *args, f"train.resume={run}", cwd=tmp, timeout=120)
    auto_here = cli("train", *args, "train.resume=auto", f"hydra.run.dir={run}", cwd=tmp, timeout=120)
    alive = a.poll() is None
    os.killpg(a.pid, signal.SIGTERM)
    a_out = finish(a, 120)
    return {
        "run": run, "data": data, "tmp": tmp, "alive": alive, "before": before, "hydra_config": hydra_config,
        "same_dir": same_dir, "resume": resume, "auto_here": auto_here, "a": a_out,
    }  # fmt: skip


def test_a_second_trainer_on_a_live_run_dir_is_one_line(live_run):
    assert live_run["alive"]
    out = live_run["same_dir"]
    assert out.rc == 2, out.text[-3000:]
    line = out.error_line("train")
    assert str(live_run["run"]) in line and str(os.getpid()) not in line and "pid" in line
    assert (live_run["run"] / ".hydra" / "config.yaml").read_text() == live_run["hydra_config"]


@pytest.mark.parametrize("key", ["resume", "auto_here"])
def test_resume_against_a_live_run_is_refused(live_run, key):
    assert live_run["alive"]
    out = live_run[key]
    assert out.rc == 2, out.text[-3000:]
    line = out.error_line("train")
    assert str(live_run["run"]) in line and "pid" in line and socket.gethostname() in line
    assert not list(live_run["run"].glob("probes.superseded-*")), "the live run's probe rows were moved"
    assert len(list((live_run["run"] / "wandb").glob("offline-run-*"))) == 1


def test_sigterm_closes_wandb_records_the_interruption_and_prints_the_resume_command(live_run):
    out, run = live_run["a"], live_run["run"]
    assert out.rc == 128 + signal.SIGTERM, out.text[-3000:]
    assert "Traceback" not in out.text
    assert f"train.resume={run}" in out.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["state"] == "interrupted" and record["signal"] == "SIGTERM"
    assert record["resume_command"].endswith(f"train.resume={run}") and "checkpoint-2" in record["checkpoints"]
    assert _wandb_exit_recorded(run) == [True]


@pytest.fixture(scope="module")
def interrupted_copy(live_run, tmp_path_factory):
    """A fresh copy of the SIGTERM'd run, per test (resume tests change what they get)."""

    def copy(name: str) -> Path:
        dst = tmp_path_factory.mktemp(name) / "A"
        shutil.copytree(live_run["run"], dst, symlinks=True)
        return dst

    return copy


def _resume_args(run: Path) -> list[str]:
    """The command line a resumed run needs: the same overrides as A, from its .hydra/overrides.yaml."""
    import yaml

    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    return [o for o in overrides if not o.startswith("hydra.")] + [f"train.resume={run}"]


def test_resume_skips_a_checkpoint_with_a_0_byte_trainer_state_and_refuses_when_none_is_left(interrupted_copy, cli):
    from medqa.core.run_folder import checkpoint_problem

    run = interrupted_copy("zero_state")
    for ckpt in (run / "checkpoints").glob("checkpoint-*"):
        if checkpoint_problem(ckpt) is not None:  # cut short by the SIGTERM itself (e.g. no scheduler.pt yet)
            shutil.rmtree(ckpt)
        else:
            (ckpt / "trainer_state.json").write_bytes(b"")
    assert list((run / "checkpoints").glob("checkpoint-*")), "the SIGTERM'd run left no complete checkpoint"
    (run / "run.json").unlink()  # as after a kill
    segments = sorted((run / "wandb").glob("offline-run-*"))
    out = cli("train", *_resume_args(run), cwd=run.parent)
    assert out.rc == 2, out.text[-3000:]
    line = out.error_line("train")
    assert "trainer_state.json" in line and "checkpoint" in line
    assert sorted((run / "wandb").glob("offline-run-*")) == segments, "a W&B segment was opened for a refused resume"
    assert not list(run.glob("probes.superseded-*")) and not list((run / ".hydra").glob("resume-*"))


def test_resume_onto_changed_data_is_refused_naming_both_fingerprints(live_run, interrupted_copy, cli):
    run = interrupted_copy("changed_data")
    (run / "run.json").unlink()  # as after a kill
    data = live_run["data"]  # the run's wikidoc file, edited in place: same path, same config
    provenance = json.loads((run / "data_provenance.json").read_text())
    segments = sorted((run / "wandb").glob("offline-run-*"))
    original = data.read_bytes()
    try:
        data.write_bytes(b"".join(reversed(original.splitlines(keepends=True))))  # same rows, another draw
        out = cli("train", *_resume_args(run), cwd=run.parent)
    finally:
        data.write_bytes(original)
    assert out.rc == 2, out.text[-3000:]
    line = out.error_line("train")
    assert provenance["fingerprint"]["train"] in line and "fingerprint" in line
    assert "train.resume_accept_data_change=true" in line
    assert sorted((run / "wandb").glob("offline-run-*")) == segments
    assert not list((run / ".hydra").glob("resume-*")), "a refused resume left its config folder"


def test_a_lock_left_by_a_killed_trainer_is_stale_and_taken_over(bad_files, cli, tmp_path):
    """SIGKILL a trainer as soon as it has made (and locked) its run folder; the next command on that folder
    is not told it is in use: it goes on to its own outcome (here the data row it refuses)."""
    run = tmp_path / "run"
    bad = bad_files / "invalid_json.jsonl"
    args = [*TINY, f"data.sources.wikidoc.path={bad}", f"hydra.run.dir={run}"]
    a = popen("train", *args, cwd=tmp_path)
    holds_something = lambda: run.is_dir() and any(run.iterdir())  # noqa: E731  (the lock, at least)
    assert _wait_for(holds_something, a, timeout=120, poll=0.01), finish(a, 10).text[-3000:]
    os.killpg(a.pid, signal.SIGKILL)
    finish(a, 60)
    out = cli("train", *args, cwd=tmp_path)
    assert out.rc == 2, out.text[-3000:]
    line = out.error_line("train")
    assert f"{bad}:11" in line and "in use" not in line
    assert_no_run_left(tmp_path)


@pytest.mark.slow
def test_sigkill_mid_save_then_resume_finishes_past_the_stale_lock(cli, tmp_path):
    """SIGKILL while checkpoint-4 is being written (its folder exists, trainer_state.json not yet): the lock
    the killed run held is stale (dead pid), and resume continues from checkpoint-2 to the end."""
    run = tmp_path / "run"
    args = [*TINY, "train.max_steps=6", "train.eval_steps=2", "train.save_steps=2"]
    a = popen("train", *args, f"hydra.run.dir={run}", cwd=tmp_path)
    mid_save = lambda: (run / "checkpoints" / "checkpoint-4").is_dir() and not _complete_checkpoint(run, 4)  # noqa: E731
    hit = _wait_for(mid_save, a, poll=0.005)
    os.killpg(a.pid, signal.SIGKILL)
    finish(a, 60)
    if not hit:
        pytest.skip("the save was too fast to catch mid-way on this machine")
    out = cli("train", *args, f"train.resume={run}", cwd=tmp_path, timeout=600)
    assert out.rc == 0, out.text[-3000:]
    assert "from checkpoint-2" in out.stdout
    assert json.loads((run / "run.json").read_text())["global_step"] == 6
    assert _wandb_exit_recorded(run)[-1]


@pytest.mark.parametrize(
    ("sig", "rc"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGUSR1, 138)], ids=["int", "term", "usr1"]
)
def test_a_signal_at_start_up_leaves_no_run_and_no_traceback(sig, rc, base_dir, tmp_path):
    p = popen("train", *TINY, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    _wait_for(lambda: _catches(p.pid, signal.SIGTERM), p, timeout=20)  # the command's handlers are in place
    time.sleep(1)  # checking the command line, composing: before anything of the run is written
    os.killpg(p.pid, sig)
    out = finish(p, 60)
    assert out.rc in (rc, -sig), out.text[-3000:]
    assert "Traceback" not in out.text
    assert_no_run_left(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGUSR1], ids=["sigint", "sigusr1_slurm"])
def test_an_interrupt_mid_training_closes_wandb_and_prints_the_resume_command(sig, base_dir, tmp_path):
    run = tmp_path / "run"
    p = popen("train", *LONG, f"hydra.run.dir={run}", cwd=tmp_path)
    assert _wait_for(lambda: _complete_checkpoint(run, 2), p), finish(p, 10).text[-3000:]
    os.killpg(p.pid, sig)
    out = finish(p, 120)
    assert out.rc == 128 + sig, out.text[-3000:]
    assert "Traceback" not in out.text and f"train.resume={run}" in out.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["state"] == "interrupted" and record["signal"] == signal.Signals(sig).name
    assert _wandb_exit_recorded(run) == [True]


def test_two_sweeps_with_one_out_folder_get_their_own_folders(cli, tmp_path):
    """Not a fault: the cheap half of the concurrency class for sweeps (each invocation stamps its own folder)."""
    path = _sweep(tmp_path, "ok", _sweep_body(["${env}", "${interpreter}", "-m", "medqa.train", "${args_no_hyphens}"],
                                               parameters={"lora": {"values": ["nope"]}}))  # fmt: skip
    out = cli("sweep", path, "--out", tmp_path / "out", cwd=tmp_path)
    assert out.rc == 2 and "lora=nope" in out.error_line("sweep") and not (tmp_path / "out").exists()
