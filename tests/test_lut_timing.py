"""Tile-level timing of the LUT engine (sim/tile_lut.py) against its cycle model, and the timing
claims: one LMMA (a tile_m x tile_n x group step) per w_bits cycles, +1 cycle of latency with two
pipeline stages, utilization against tile_m*tile_n*group/w_bits MAC/cycle."""

from __future__ import annotations

import numpy as np
import pytest

from tpesim.engines.lut import LutConfig, LutModel
from tpesim.kernels.lut_backend import LutCycleBackend
from tpesim.tile_lut import LutTileBackend, LutTiming, lut_tile_times


def _beats(cfg, groups, rng):
    M, N, g = cfg.tile_m, cfg.tile_n, cfg.group
    A = rng.integers(-128, 128, (groups, M * g))
    W = rng.integers(-1, 1, (groups, g * N)) if cfg.w_interp == "signed" else \
        rng.integers(0, 2, (groups, g * N))
    lasts = np.zeros(groups, np.int64)
    lasts[-1] = 1
    return A, W, lasts


@pytest.mark.parametrize("planes", [1, 2, 3, 4])
@pytest.mark.parametrize("stages", [1, 2])
def test_one_lmma_per_w_bits_cycles(planes, stages):
    """A tile of G K-groups with a source always valid and a sink always ready: beat q is accepted
    in cycle q*P (one LMMA every P = w_bits cycles: the stage-1 register takes the next beat in the
    cycle its last plane executes), the last plane of the last beat executes in cycle G*P, the
    accumulator's final write is S - 1 cycles later, and row r leaves at G*P + S + r (the shadow
    bank is full the cycle after the final write). So cycles = G*P + S + M."""
    cfg = LutConfig(tile_m=2, tile_n=5, w_bits=planes, pipe_stages=stages)
    for G in (1, 2, 7):
        A, W, lasts = _beats(cfg, G, np.random.default_rng(G))
        rows, stamps, cycles = LutModel(cfg).run_beats(A, W, lasts)
        assert stamps.tolist() == [G * planes + stages + r for r in range(cfg.tile_m)]
        assert cycles == G * planes + stages + cfg.tile_m
        # the same from lockstep: in_ready high exactly in cycles q*P until the last beat is in
        m = LutModel(cfg)
        taken = []
        q = 0
        for t in range(G * planes + 1):
            out = m.step({"in_valid": int(q < G), "in_a": 0, "in_w": 0,
                          "in_last": int(q == G - 1), "out_ready": 1})
            if q < G and out["in_ready"]:
                taken.append(t)
                q += 1
        assert taken == [q * planes for q in range(G)]


def test_steady_state_throughput_and_utilization():
    """Back-to-back tiles of G groups: period max(G*P, P + S + M) (a tile's last beat waits for the
    previous tile to leave), so a long K reaches the peak tile_m*tile_n*group/w_bits MAC/cycle."""
    from tpesim.kernels.gemm import time_gemm

    cfg = LutConfig()                      # M2 N64 K4 W2: 256 MAC/cycle
    r = time_gemm(cfg, 2, 64 * 8, 4096)
    G = 4096 // 4
    # 8 tiles: L_7 = (G-1) P + 7 G P, D_7 = L_7 + P + S, cycles = D_7 + M = 8 G P + S + M
    assert r.cycles == 8 * G * 2 + 1 + 2
    assert r.utilization == pytest.approx(2 * 64 * 8 * 4096 / (r.cycles * 256))
    assert r.utilization > 0.999


@pytest.mark.parametrize("cfg", [LutConfig(tile_m=2, tile_n=3), LutConfig(tile_m=3, tile_n=2,
                                                                         w_bits=3, pipe_stages=2),
                                 LutConfig(tile_m=1, tile_n=2, w_bits=1),
                                 LutConfig(tile_m=4, tile_n=2, w_bits=4, pipe_stages=2)],
                         ids=lambda c: c.name)
def test_tile_backend_equals_cycle_backend(cfg, seed):
    """LutTileBackend and LutCycleBackend called tile by tile as sim.timing.TileEngine calls them,
    with random operand-ready and output-free cycles (memory stalls): identical releases,
    prev_done, wake-up cycles, row cycles and drain."""
    rng = np.random.default_rng(seed)
    for trial in range(20):
        m, n, k = (int(x) for x in rng.integers(1, 14, 3))
        cyc = LutCycleBackend(cfg, m, n, k)
        tiles = cyc.gm * cyc.gn
        tb = LutTileBackend(cfg.planes, cfg.pipe_stages, cfg.tile_m,
                            np.full(tiles, cyc.G), record_rows=True)
        now = 0
        for t in range(tiles):
            ready = (now + int(rng.integers(0, 12)) * int(rng.random() < 0.5),
                     now + int(rng.integers(0, 12)) * int(rng.random() < 0.5))
            free = now + int(rng.integers(0, 15)) * int(rng.random() < 0.5)
            got = cyc.stream(t, now, ready, free)
            want = tb.stream(t, now, ready, free)
            assert got == want, (trial, t, got, want)
            now = got[2]
        free = now + int(rng.integers(0, 9))
        assert cyc.drain(now, free) == tb.drain(now, free)
        assert np.array_equal(cyc.row_cycles(), tb.row_cycles())


def test_ideal_closed_form_equals_recurrence():
    """LutTiming.ideal (closed form for equal tiles) against the recurrence run tile by tile."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        P, S, M = int(rng.integers(1, 5)), int(rng.integers(1, 3)), int(rng.integers(1, 9))
        G, T = int(rng.integers(1, 12)), int(rng.integers(1, 30))
        cfg = LutConfig(tile_m=M, tile_n=2, w_bits=P, pipe_stages=S)
        timing = LutTiming(cfg)
        stream = timing.gemm_stream(M * T, 2, G * cfg.group)
        cycles, rows = timing.ideal(stream, record_rows=True)
        ds = lut_tile_times(P, S, M, [G] * T)
        assert cycles == int(ds[-1]) + M
        assert np.array_equal(rows, (ds[:, None] + np.arange(M)).reshape(-1))


def test_table_fields():
    cfg = LutConfig()
    timing = LutTiming(cfg)
    f = timing.table_fields(timing.gemm_stream(4, 128, 30))
    # 2 x 2 tiles, 8 K-groups each (30 padded to 32): one precompute cycle per beat
    assert f["table_precompute_cycles"] == 4 * 8
    assert f["table_bytes"] == cfg.table_bytes
