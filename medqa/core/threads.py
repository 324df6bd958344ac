"""How torch's OpenMP worker threads wait between parallel regions, set before torch loads.

torch's CPU wheel runs its kernels on GNU OpenMP threads (one per core). By default an idle worker spins for a
while before it sleeps. On a 2-core machine where anything else runs (a second job, the W&B service, a browser),
a spinning worker takes the core that its descheduled sibling needs to finish the same kernel, and every one of the
thousands of small kernels of a training step pays a scheduler time slice: measured here with one other busy
process, a main-job training step went from 0.5 s to 3.0 s and five probe answers from 2 s to 84 s. With
OMP_WAIT_POLICY=PASSIVE an idle worker sleeps at once and gives the core back: 0.9 s and 2 s under the same load.
Sleeping at once costs on an idle machine, where the next kernel follows within microseconds: there the main job
took 137.6 s passive, 100.6 s with OMP_WAIT_POLICY=ACTIVE, and 83.6 s passive with a short spin first
(GOMP_SPINCOUNT=100000). Under two busy processes the short spin costs a little: 20 smoke steps took 37.8 s against
25.2 s fully passive (and 3-6 s a step with libgomp's default spin). The short spin is chosen for the idle machine
the main job is meant for; both variables are set only when the user set neither.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"
SPIN_COUNT = "100000"  # spin this many iterations before sleeping (libgomp's own default is 300000, ACTIVE 3e10)


def passive_openmp_wait() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE and GOMP_SPINCOUNT=100000 unless the user set either (their values win). Only
    effective before torch is imported: libgomp reads them once, when it loads; later it changes nothing."""
    if "torch" not in sys.modules and not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ):
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
