"""Markers shared by test modules."""

from __future__ import annotations

import os

import pytest

# torch.compile's inductor kernels on CPU under a forced capability (ATEN_CPU_CAPABILITY=avx2) abort or segfault after
# another compile in the same process (torch 2.13; seen forcing AVX2 on an AVX-512 machine): not a medqa path.
INDUCTOR_ON_CPU = pytest.mark.skipif(
    os.environ.get("ATEN_CPU_CAPABILITY", "").lower() in ("avx2", "default"),
    reason="torch.compile under a forced CPU capability (ATEN_CPU_CAPABILITY) crashes inductor's kernels after "
    "another compile in the same process (torch 2.13): not a medqa path",
)
