"""The LUT engine's cycle backend gives memory holds to the core as the cycle they end (issue 7's
bounded work): frozen stretches skipped, equal to the same holds as per-cycle schedules."""

import numpy as np
import pytest

from tpesim.engines.lut import LutConfig, LutModel, decode_weights
from tpesim.kernels.gemm import random_operands, run_gemm, time_gemm
from tpesim.memory import MemoryConfig, static_traffic
from tpesim.tile_lut import LutTiming

CONFIGS = [LutConfig(tile_m=2, tile_n=3), LutConfig(tile_m=3, tile_n=2, w_bits=3,
                                                   w_interp="unsigned", pipe_stages=2),
           LutConfig(tile_m=1, tile_n=4, w_bits="ternary", sym=False),
           LutConfig(tile_m=2, tile_n=2, w_bits=4, w_interp="pm1", group=3, pipe_stages=2),
           LutConfig(tile_m=2, tile_n=2, act="fp16", w_interp="pm1")]
REGISTERS = ("full", "b", "tlast", "v2", "fin2", "sfull", "rptr", "cycle")


def _beats(cfg, rng, nb):
    M, N, g = cfg.tile_m, cfg.tile_n, cfg.group
    if cfg.int_mode:
        A = rng.integers(-128, 128, (nb, M * g))
    else:  # fp16 bit patterns of finite values
        A = np.frombuffer(rng.normal(0, 4, nb * M * g).astype(np.float16).tobytes(),
                          np.uint16).astype(np.int64).reshape(nb, M * g)
    W = decode_weights(cfg, rng.integers(0, 1 << cfg.code_bits, (nb, g * N)))
    return A, W


@pytest.mark.parametrize("interpreted", [False, True])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_hold_skip_equals_schedule(cfg, interpreted, seed):
    """valid_from/ready_from (skipped in one step) against the same holds as zero schedules of
    that length (stepped cycle by cycle): equal rows, stamps, cycles and control registers, over
    two calls (the second continues from the first's state, as tile after tile does)."""
    rng = np.random.default_rng(seed)
    for _ in range(8):
        tiles, G = int(rng.integers(1, 4)), int(rng.integers(1, 5))
        A, W = _beats(cfg, rng, tiles * G)
        last = np.zeros(tiles * G, np.int64)
        last[G - 1::G] = 1
        skip = LutModel(cfg, interpreted=interpreted)
        sched = LutModel(cfg, interpreted=interpreted)
        for call in range(2):
            vf, rf = int(rng.integers(0, 60)), int(rng.integers(0, 60))
            hold = {"valid_from": vf, "ready_from": rf}
            zeros = {"valid": np.zeros(vf, np.uint8), "ready": np.zeros(rf, np.uint8)}
            assert _run(skip, A, W, last, call == 1, hold) == _run(sched, A, W, last, call == 1,
                                                                   zeros), (
                f"seed {seed} {cfg.name} G={G} tiles={tiles} valid_from={vf} ready_from={rf}")


def _run(model, A, W, last, drain, holds):
    """(cycles, rows, stamps, control registers after the call) of one run_beats call."""
    rows, stamps, cycles = model.run_beats(A, W, last, drain=drain, **holds)
    return cycles, rows.tolist(), stamps.tolist(), [getattr(model.core, r) for r in REGISTERS]


def test_starved_dram_is_fast_and_exact():
    """DRAM at 1e-6 bytes/cycle, one output tile, interpreted core (a cycle-by-cycle Python loop
    would take hours for its ~1e8 stall cycles): the run ends at once with the exact stall.

    Closed form (unbounded SRAM, no DRAM latency, one FIFO link): A's block arrives at
    xa = ceil(A bytes / bw), B's after it at xa + xb; the tile starts there and, stall free,
    its last row leaves G P + S + M - 1 cycles later; C's write-back then takes xc, so
    cycles = compute_cycles + xa + xb + xc and stall_cycles = xa + xb + xc."""
    cfg = LutConfig(tile_m=2, tile_n=8, w_bits=3, pipe_stages=2)
    m, n, k = 2, 8, 12
    a, b = random_operands(cfg, m, n, k, 5)
    bw = 1e-6
    mem = MemoryConfig(dram_bw=bw)
    res = run_gemm(cfg, a, b, memory=mem, interpreted=True, max_cycles=10**12)
    assert res.matched
    # bytes of the one tile's blocks: int8 activations, 3-bit weight codes, out_bits results
    na, nb, nc = m * k, -(-n * k * 3 // 8), m * n * cfg.out_bits // 8
    tr = static_traffic(LutTiming(cfg).gemm_stream(m, n, k))
    assert (tr["dram_read_bytes_a"], tr["dram_read_bytes_b"], tr["dram_write_bytes_c"]) == (
        na, nb, nc)
    xa, xb, xc = na * 10**6, nb * 10**6, nc * 10**6         # ceil(bytes / 1e-6)
    G = -(-k // cfg.group)
    assert res.compute_cycles == G * cfg.planes + cfg.pipe_stages + cfg.tile_m
    assert res.stall_cycles == xa + xb + xc
    assert res.cycles == time_gemm(cfg, m, n, k, memory=mem).cycles



def test_os_closed_form_equals_recurrence(seed):
    """One OS tile recurrence for every OS engine (sim/tile_stream.py): its stall-free closed form
    (os_ideal) equals the recurrence run tile by tile, for unequal tiles and any beat period,
    latency and rows; the systolic OS array (P 1, lat R + C) and the LUT engine (P planes, lat
    P + stages) are instances of it."""
    from tpesim.tile_stream import OsTileRecurrence, os_ideal
    from tpesim.tile_systolic import OsTileBackend

    rng = np.random.default_rng(seed)
    for _ in range(40):
        P, lat, M = int(rng.integers(1, 5)), int(rng.integers(1, 12)), int(rng.integers(1, 9))
        beats = rng.integers(1, 15, int(rng.integers(1, 12)))
        rec = OsTileRecurrence(beats, rows=M, period=P, latency=lat, record_rows=True)
        now = 0
        for t in range(len(beats)):
            now = rec.stream(t, now, (0, 0), 0)[2]
        done = rec.drain(now, 0)
        cycles, rows = os_ideal(beats, rows=M, period=P, latency=lat, record_rows=True)
        assert cycles == done + 1, f"seed {seed}"
        np.testing.assert_array_equal(rows, rec.row_cycles())
    # the systolic instance: K = 3 beats, stall free, one tile: last beat 2, rows from 2 + R + C
    sysb = OsTileBackend(2, 3, [3], record_rows=True)
    assert sysb.stream(0, 0, (0, 0), 0) == (2, -1, 3) and sysb.drain(3, 0) == 2 + 5 + 1
