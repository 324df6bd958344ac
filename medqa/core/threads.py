"""How torch's OpenMP worker threads wait between parallel regions, set before torch loads.

torch's CPU wheel runs its kernels on GNU OpenMP threads (one per core). By default an idle worker spins for a
while before it sleeps. On a 2-core machine where anything else runs (a second job, the W&B service, a browser),
a spinning worker takes the core that its descheduled sibling needs to finish the same kernel, and every one of the
thousands of small kernels of a training step pays a scheduler time slice: measured here with one other busy
process, a main-job training step went from 0.5 s to 3.0 s and five probe answers from 2 s to 84 s. With
OMP_WAIT_POLICY=PASSIVE an idle worker sleeps at once and gives the core back: 0.9 s and 2 s under the same load.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"


def passive_openmp_wait() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user set it (their value wins). Only effective before torch is
    imported: libgomp reads the variable once, when it loads; later it changes nothing, so it is left alone."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
