"""medqa sets libgomp's wait policy before torch loads, and a user's own setting wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOW = "import medqa, os; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"


def _run(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env |= {"PYTHONPATH": str(ROOT), **extra}
    return subprocess.run([sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True).stdout


def test_short_spin_then_sleep_unless_the_user_chose():
    assert _run({}).split() == ["PASSIVE", "100000"]
    assert _run({"OMP_WAIT_POLICY": "ACTIVE"}).split() == ["ACTIVE", "None"]
    assert _run({"GOMP_SPINCOUNT": "0"}).split() == ["None", "0"]
