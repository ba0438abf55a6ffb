"""Lockstep cosim of the adder-tree engine: RTL (Icarus and Verilator) vs the cycle model, every
output port every cycle, random stimulus with random valid gaps on both input streams and random
ready stalls, blocks back to back; results also vs numpy (the first block carries the OPT2
overflow corner: a column of -128 weights against a row of -128 activations)."""

import pytest

from tpesim.cosim.runner import SIMULATORS, run_cosim
from tpesim.engines.adder_tree import AdderTreeConfig

FAST = [
    AdderTreeConfig(lanes=4, cols=3),
    AdderTreeConfig(lanes=16, cols=4, encoding="ent"),                        # the HPCA'25 K
    AdderTreeConfig(lanes=5, cols=3, encoding="ent", double_buffer=True),     # non-power-of-two
    AdderTreeConfig(lanes=7, cols=2, in_bits=4, signed=False),                # 4-bit
    AdderTreeConfig(lanes=3, cols=2, in_bits=16, levels_per_stage=2, double_buffer=True,
                    acc_bits=40),
]
REGRESS = [
    AdderTreeConfig(lanes=16, cols=16, encoding="ent", double_buffer=True),
    AdderTreeConfig(lanes=16, cols=8, encoding="plain", levels_per_stage=2),
    AdderTreeConfig(lanes=13, cols=6, in_bits=4, double_buffer=True),
]
# (seed, blocks, p_valid, p_ready): random gaps and stalls, none, heavy
STIMULI = [(21, 4, 0.7, 0.7), (22, 3, 1.0, 1.0), (23, 4, 0.3, 0.25)]


@pytest.mark.cosim
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("cfg", FAST, ids=lambda c: c.name)
def test_lockstep(cfg, sim):
    for seed, blocks, pv, pr in STIMULI:
        res = run_cosim(cfg, sim=sim, seed=seed, tiles=blocks, p_valid=pv, p_ready=pr)
        assert res.status == "pass"
        # every block loads `lanes` weight rows and delivers at least one result row
        assert res.cycles >= blocks * (cfg.lanes + 1)


@pytest.mark.cosim
@pytest.mark.regress
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("cfg", REGRESS, ids=lambda c: c.name)
def test_lockstep_large(cfg, sim):
    for seed in range(200, 204):
        run_cosim(cfg, sim=sim, seed=seed, tiles=4, p_valid=0.6, p_ready=0.6)
