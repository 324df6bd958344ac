"""medqa installs as a plain (non-editable) wheel: configs, presets and shipped data travel inside the package, so
the main job runs from any folder. The wheel goes into a fresh venv whose only link to this checkout is the
already-installed dependencies (a .pth line to their site-packages), never the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _wheel(tmp_path: Path) -> Path:
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = out.glob("medqa-*.whl")
    return wheel


def test_wheel_ships_configs_presets_and_data(tmp_path):
    names = set(zipfile.ZipFile(_wheel(tmp_path)).namelist())
    for needed in (
        "medqa/conf/config.yaml",
        "medqa/conf/model/tiny.yaml",
        "medqa/conf/experiment/week4_fix_tiny.yaml",
        "medqa/conf/probes/seed5.yaml",
        "medqa/conf/hydra/launcher/slurm.yaml",
        "medqa/assets/knowledge.yaml",
        "medqa/assets/embedded/chatdoctor.jsonl",
        "medqa/cli/train.py",
    ):
        assert needed in names, needed
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_fresh_venv_runs_the_main_job_from_another_folder(tmp_path, shrink_overrides, base_dir):
    wheel = _wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)]
    subprocess.run(cmd, check=True, timeout=300)
    # The dependencies come from this interpreter's site-packages, added after the venv's own (so medqa is the
    # wheel's copy, and this checkout's editable install, whose finder is a .pth hook, is not loaded).
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WANDB_SERVICE")}
    where = subprocess.check_output([python, "-c", "import medqa; print(medqa.__file__)"], text=True, cwd=elsewhere)
    assert where.startswith(str(site)), where
    args = [*shrink_overrides, "train=smoke", "data.total=40", "decoding.max_new_tokens=16", "tracking=none"]
    proc = subprocess.run(
        [python, "-m", "medqa.train", *args, "hydra.run.dir=run"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (elsewhere / "run" / "run.json").is_file() and (elsewhere / "run" / "adapter").is_dir()
    assert "eval loss" in proc.stdout
