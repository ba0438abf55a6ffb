"""Bounded work (issue 7): the tile level refuses, up front, a GEMM with more blocks than its memory
budget; the cycle level refuses a run bound to exceed max_cycles. Both for every registered engine."""

import math

import numpy as np
import pytest

from tpesim.errors import WorkloadError
from tpesim.kernels.gemm import check_cycle_budget, random_operands, run_gemm, time_gemm
from tpesim.memory import MemoryConfig, static_traffic
from tpesim.registry import ENGINES
from tpesim.tile_stream import MAX_BLOCKS

CONFIGS = [pytest.param(e.config(**ex), id=e.config(**ex).name)
           for e in ENGINES.values() for ex in e.examples]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_block_count_without_the_stream(cfg):
    timing = next(e for e in ENGINES.values() if e.name == cfg.engine).load("timing")(cfg)
    for m, n, k in [(1, 1, 1), (5, 7, 9), (17, 3, 40), (33, 65, 12), (64, 64, 64)]:
        assert timing.blocks(m, n, k) == timing.gemm_stream(m, n, k).ntiles, (m, n, k)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_tile_level_refuses_too_many_blocks(cfg):
    timing = next(e for e in ENGINES.values() if e.name == cfg.engine).load("timing")(cfg)
    # the smallest square GEMM past the budget (block counts grow with every dim)
    d = 1
    while timing.blocks(d, d, d) <= MAX_BLOCKS:
        d *= 2
    with pytest.raises(WorkloadError) as e:
        time_gemm(cfg, d, d, d)
    msg = str(e.value)
    assert "\n" not in msg and f"at most {MAX_BLOCKS:,}" in msg and f"{timing.blocks(d, d, d):,}" in msg


@pytest.mark.parametrize("cfg", CONFIGS)
def test_cycle_budget_is_a_lower_bound(cfg, seed):
    """The bound the cycle level checks is never above the cycles a run takes (so it refuses only
    runs that must exceed max_cycles), and a max_cycles below it is refused with the bound named."""
    rng = np.random.default_rng(seed)
    m, n, k = (int(x) for x in rng.integers(1, 20, 3))
    mem = MemoryConfig(dram_bw=float(rng.choice([0.25, 1.0, 3.0])))
    a, b = random_operands(cfg, m, n, k, seed)
    res = run_gemm(cfg, a, b, memory=mem, fidelity="tile")
    timing = next(e for e in ENGINES.values() if e.name == cfg.engine).load("timing")(cfg)
    stream = timing.gemm_stream(m, n, k)
    dram = sum(v for f, v in static_traffic(stream).items() if f.startswith("dram_"))
    compute, link = -(-m * n * k // timing.peak_macs_per_cycle), math.ceil(dram / mem.dram_bw)
    bound = max(compute, link)
    assert res.cycles >= bound, f"seed {seed}"
    check_cycle_budget(timing, stream, mem, m * n * k, bound)      # at the bound: accepted
    why = (f"dram_bw must let the run end within max_cycles {bound - 1:,}" if link > compute else
           f"max_cycles must be at least the run's {bound:,} cycles")
    with pytest.raises(WorkloadError, match=why):
        check_cycle_budget(timing, stream, mem, m * n * k, bound - 1)


def test_starved_dram_refused_at_cycle_level_and_timed_at_tile_level():
    from tpesim.engines.systolic import SystolicConfig

    cfg = SystolicConfig(rows=4, cols=4, dataflow="ws")
    a, b = random_operands(cfg, 8, 8, 8, 0)
    mem = MemoryConfig(dram_bw=1e-9)
    with pytest.raises(WorkloadError, match="use fidelity 'tile'"):
        run_gemm(cfg, a, b, memory=mem)
    assert run_gemm(cfg, a, b, memory=mem, fidelity="tile").cycles >= (64 + 64 + 256) / 1e-9
