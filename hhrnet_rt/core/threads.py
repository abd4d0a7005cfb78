"""Thread settings that must be in place before torch is imported (one home for them).

torch's CPU kernels run on an OpenMP pool whose idle workers spin-wait (``OMP_WAIT_POLICY=ACTIVE``
behaviour) for a while after each parallel region. When the cores are shared -- the pipeline's decode and
draw threads, ONNX Runtime's pool, other processes -- the spinning workers and the threads doing real work
take turns on the same cores, and a forward pass on 2 shared cores was measured 5-13x slower than on one
thread (issue 13; ``tests/conftest.py`` records 14 s vs 0.15 s for one tiny-model call). ``PASSIVE``
makes idle workers sleep instead. libgomp reads the variable once, when it is loaded with torch, so this
runs on ``import hhrnet_rt`` (the CLI's entry point imports the package first).

The trade-off, measured here (W32 random init, torch CPU forward at 256x256, 2 threads, 2-core Xeon,
medians of 3; ``benchmarks/results/bench_cpu.md``): with one other busy process on the machine PASSIVE
took 0.57 s and ACTIVE 3.78 s (6.6x); with the machine nearly idle (load ~1.2) ACTIVE was faster, 0.15 s
against 0.30 s. PASSIVE is the default because the pipeline always shares the cores (decode and draw
threads) and the collapse is far larger than the idle-machine cost; the default CPU backend is ONNX
Runtime, whose own pool does not use OpenMP, so this mostly concerns ``--backend torch`` on the CPU.

A value the user already set is kept: ``OMP_WAIT_POLICY=ACTIVE hhrt ...`` restores spinning (faster on an
otherwise idle machine, see above).
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
DEFAULT_WAIT_POLICY = "PASSIVE"


def configure_threads() -> bool:
    """Default ``OMP_WAIT_POLICY`` to PASSIVE; True when it can still take effect (torch not loaded yet)."""
    os.environ.setdefault(WAIT_POLICY_ENV, DEFAULT_WAIT_POLICY)
    return "torch" not in sys.modules
