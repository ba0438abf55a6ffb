"""Lockstep cosim of the systolic engine: RTL (Icarus and Verilator) vs the cycle model, every port,
every cycle, random stimulus with random valid gaps and ready stalls; results also vs numpy.

`make test` runs small arrays; `make regress` adds larger arrays and more seeds.
"""

import pytest

from tpesim.cosim.runner import SIMULATORS, run_cosim
from tpesim.engines.systolic import SystolicConfig

# A square array, a non-square one, a 4-bit one, an unsigned 16-bit one with a narrow
# accumulator that wraps, and the degenerate 1xN / Nx1 shapes.
FAST = [
    SystolicConfig(rows=4, cols=4),
    SystolicConfig(rows=3, cols=5),
    SystolicConfig(rows=4, cols=3, in_bits=4),
    SystolicConfig(rows=2, cols=3, in_bits=16, signed=False, acc_bits=33),
    SystolicConfig(rows=1, cols=4, in_bits=8, acc_bits=17),
    SystolicConfig(rows=5, cols=1),
    # WS/IS: the stationary-operand array, with and without a double-buffered stationary operand
    SystolicConfig(rows=3, cols=2, dataflow="ws"),
    SystolicConfig(rows=4, cols=3, dataflow="ws", in_bits=4, double_buffer=True),
    SystolicConfig(rows=2, cols=4, dataflow="is", double_buffer=True),
    SystolicConfig(rows=3, cols=3, dataflow="is", in_bits=16, signed=False, acc_bits=40),
]
REGRESS = [
    SystolicConfig(rows=8, cols=8),
    SystolicConfig(rows=16, cols=16),
    SystolicConfig(rows=7, cols=12, in_bits=4),
    SystolicConfig(rows=12, cols=5, in_bits=16, acc_bits=64),
    SystolicConfig(rows=8, cols=8, dataflow="ws", double_buffer=True),
    SystolicConfig(rows=16, cols=16, dataflow="ws"),
    SystolicConfig(rows=6, cols=11, dataflow="is", double_buffer=True, in_bits=4),
    SystolicConfig(rows=1, cols=9, dataflow="is", acc_bits=16),
]
# (seed, tiles, p_valid, p_ready): random gaps and stalls, no stalls at all, heavy stalls
STIMULI = [(11, 4, 0.7, 0.7), (12, 3, 1.0, 1.0), (13, 5, 0.3, 0.25)]


def _id(cfg):
    return cfg.name


@pytest.mark.cosim
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("cfg", FAST, ids=_id)
def test_lockstep(cfg, sim):
    for seed, tiles, pv, pr in STIMULI:
        res = run_cosim(cfg, sim=sim, seed=seed, tiles=tiles, p_valid=pv, p_ready=pr)
        assert res.status == "pass"
        # every tile's R rows were received, so the run cannot be shorter than its result beats
        assert res.cycles >= tiles * cfg.rows


@pytest.mark.cosim
@pytest.mark.regress
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("cfg", REGRESS, ids=_id)
def test_lockstep_large(cfg, sim):
    for seed in range(100, 106):
        run_cosim(cfg, sim=sim, seed=seed, tiles=4, kmax=3 * (cfg.rows + cfg.cols), p_valid=0.6,
                  p_ready=0.6)
