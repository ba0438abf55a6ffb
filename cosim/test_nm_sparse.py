"""Lockstep cosim of the N:M sparse engine: RTL (Icarus and Verilator) vs the cycle model, every
output port (out_err included) every cycle, random valid gaps on both input streams and random ready
stalls, blocks back to back in random modes, some with broken metadata (load "dense": a beat whose
mode differs from its block's, the only metadata the port carries); rows also vs numpy."""

import numpy as np
import pytest

from tpesim.cosim.runner import SIMULATORS, run_cosim
from tpesim.cosim.stimulus.nm_sparse import make_blocks
from tpesim.engines.nm_sparse import NmSparseConfig

FAST = [
    NmSparseConfig(rows=3, cols=2, sparsity="2:8"),
    NmSparseConfig(rows=3, cols=3, sparsity="dense"),
    NmSparseConfig(rows=5, cols=2, sparsity="2:4", mode="bp", double_buffer=True),  # rows not 2^k
    NmSparseConfig(rows=2, cols=2, sparsity="3:6", mode="wg", in_bits=16),          # 3-bit idx
    # the compressors in front of the banks (dense M-groups on the load port)
    NmSparseConfig(rows=3, cols=2, sparsity="2:4", double_buffer=True, load="dense"),
]
REGRESS = [
    NmSparseConfig(rows=8, cols=8, sparsity="2:8"),
    NmSparseConfig(rows=6, cols=5, sparsity="1:4", double_buffer=True),
    NmSparseConfig(rows=4, cols=4, sparsity="4:8", in_bits=16, acc_bits=64),
    NmSparseConfig(rows=5, cols=3, sparsity="2:8", in_bits=16, load="dense"),
]
# (seed, blocks, p_valid, p_ready): random gaps and stalls, heavy ones (no stalls at all:
# tests/test_nm_sparse_rtl.py under the Amaranth simulator)
STIMULI = [(31, 5, 0.7, 0.7), (33, 5, 0.3, 0.25)]


def _broken_blocks(cfg, seed, blocks):
    """How many blocks of the case cosim/lockstep.py builds for this seed have broken metadata
    (the testbench draws the case first from default_rng(seed))."""
    from tpesim.cosim.stimulus.nm_sparse import default_max_rows

    rng = np.random.default_rng(seed)
    return sum(b.err for b in make_blocks(cfg, rng, blocks, default_max_rows(cfg)))


@pytest.mark.cosim
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("cfg", FAST, ids=lambda c: c.name)
def test_lockstep(cfg, sim):
    broken = 0
    for seed, blocks, pv, pr in STIMULI:
        res = run_cosim(cfg, sim=sim, seed=seed, tiles=blocks, p_valid=pv, p_ready=pr)
        assert res.status == "pass"
        # every block loads `rows` lanes and delivers at least one result row
        assert res.cycles >= blocks * (cfg.rows + 1)
        broken += _broken_blocks(cfg, seed, blocks)
    # the RTL met invalid metadata (its out_err and zeroed out_c compared every cycle)
    assert broken >= 1


@pytest.mark.cosim
@pytest.mark.regress
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("cfg", REGRESS, ids=lambda c: c.name)
def test_lockstep_large(cfg, sim):
    for seed in range(300, 304):
        run_cosim(cfg, sim=sim, seed=seed, tiles=5, p_valid=0.6, p_ready=0.6)
