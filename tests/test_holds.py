"""Long memory holds cost neither memory nor time (issue 7): the OS core skips frozen stretches, with
results, cycle stamps and every register equal to the same hold given as a per-cycle schedule."""

import numpy as np
import pytest

from tpesim.engines.systolic import SystolicConfig, SystolicModel
from tpesim.kernels.gemm import run_gemm
from tpesim.memory import MemoryConfig


def _registers(m: SystolicModel, cfg: SystolicConfig):
    return [m.core.register(name, i, j) for name in ("a", "b")
            for i in range(cfg.rows) for j in range(cfg.cols)]


@pytest.mark.parametrize("interpreted", [False, True])
def test_hold_skip_equals_schedule(seed, interpreted):
    rng = np.random.default_rng(seed)
    for _ in range(12):
        cfg = SystolicConfig(rows=int(rng.integers(1, 5)), cols=int(rng.integers(1, 5)))
        k = int(rng.integers(1, 9))
        tiles = int(rng.integers(1, 4))
        a = rng.integers(-128, 128, (k * tiles, cfg.rows))
        b = rng.integers(-128, 128, (k * tiles, cfg.cols))
        last = np.zeros(k * tiles, np.int64)
        last[k - 1::k] = 1
        vf, rf = int(rng.integers(0, 60)), int(rng.integers(0, 60))
        skip = SystolicModel(cfg, interpreted=interpreted)
        sched = SystolicModel(cfg, interpreted=interpreted)
        for call in range(2):  # a second call continues from the first's state
            got = skip.run_beats(a, b, last, valid_from=vf, ready_from=rf, drain=call == 1)
            want = sched.run_beats(a, b, last, valid=np.zeros(vf, np.uint8),
                                   ready=np.zeros(rf, np.uint8), drain=call == 1)
            ctx = f"seed {seed} {cfg.name} k={k} tiles={tiles} valid_from={vf} ready_from={rf}"
            assert got[2] == want[2], ctx
            np.testing.assert_array_equal(got[0], want[0], err_msg=ctx)
            np.testing.assert_array_equal(got[1], want[1], err_msg=ctx)
            assert skip.cycle == sched.cycle and skip.core.idle() == sched.core.idle(), ctx
            assert _registers(skip, cfg) == _registers(sched, cfg), ctx


def test_starved_dram_is_fast_and_bounded():
    """1e-9 B/cycle of DRAM bandwidth: ~2e11 stall cycles, simulated at cycle level without a
    per-cycle buffer (max_cycles raised past the default budget, which would refuse it); the cycles
    are at least the DRAM time of the bytes read (a roofline bound)."""
    cfg = SystolicConfig(rows=4, cols=4)
    rng = np.random.default_rng(0)
    a, b = rng.integers(-128, 128, (8, 8)), rng.integers(-128, 128, (8, 8))
    mem = MemoryConfig(dram_bw=1e-9)
    res = run_gemm(cfg, a, b, memory=mem, max_cycles=10**13)
    assert res.matched
    assert res.cycles >= (a.size + b.size) / 1e-9
    tile = run_gemm(cfg, a, b, memory=mem, fidelity="tile")
    assert tile.cycles == res.cycles
