"""How each fidelity level runs a GEMM (PyMTL3 style): every level returns (C, cycles); the
behavioural suite (tests/test_levels.py) says what must hold across them, for every engine.

functional: the registry's reference (cycles None). tile: tile-level timing, values from numpy
along the tile stream. cycle: the register-level cycle model computes C. RTL: the lockstep cosim
(cosim/) proves the cycle model equal to the RTL on every port every cycle, so the RTL's tensors
and cycles are the cycle level's; its own suite runs in cosim/test_engines.py.
"""

from __future__ import annotations

import numpy as np

from tpesim.kernels.gemm import run_gemm
from tpesim.registry import engine_of

LEVELS = ("functional", "tile", "cycle")


def run_level(level: str, cfg, a: np.ndarray, b: np.ndarray, memory=None):
    if level == "functional":
        return engine_of(cfg).load("reference")(cfg, a, b), None
    res = run_gemm(cfg, a, b, fidelity=level, memory=memory, verify=True)
    return res.c, res
