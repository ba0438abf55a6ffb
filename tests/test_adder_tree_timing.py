"""Tile-level timing of the adder-tree engine (sim/tile_adder_tree.py) against its cycle model.

Random fold sequences (lanes, cols, encoding, levels_per_stage, double_buffer, rows per fold, load
and row availability, output space) run through AdderTreeModel.run_folds and through
AdderTreeTileBackend, called fold by fold as sim.timing.TileEngine calls it; per-row output cycles,
load stamps, total cycles, releases, prev_done and the wake-up cycles must agree. Examples come from
hypothesis (derandomized by conftest's "fixed" profile); a failure prints the drawn example,
including the numpy seed of the operand values.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpesim.engines.adder_tree import AdderTreeConfig, AdderTreeModel
from tpesim.tile_adder_tree import (AdderTreeTileBackend, adder_tree_fold_times, fold_row_cycles,
                                 ideal_cycles, ideal_fold_times)


def _stream(cfg, ms, seed):
    rng = np.random.default_rng(seed)
    lo, hi = cfg.in_range
    ws = [rng.integers(lo, hi + 1, (cfg.lanes, cfg.cols)) for _ in ms]
    xs = [rng.integers(lo, hi + 1, (m, cfg.lanes)) for m in ms]
    loads = np.concatenate([AdderTreeModel.load_order(w) for w in ws])
    lasts = np.zeros(sum(ms), np.int64)
    lasts[np.cumsum(ms) - 1] = 1
    return ws, xs, loads, np.concatenate(xs), lasts


def _chunked_cycle_run(cfg, loads, rows, lasts, ms, ready_a, ready_b, out_free):
    """The cycle model driven as a cycle-level TileEngine backend would drive it: one run_folds
    call per fold (drain=False), offering fold t's loads (from ready_b[t]) and, with two banks,
    fold t+1's (looked ahead) the first time; untaken loads offered again. Returns (row stamps,
    load stamps, cycles)."""
    L, F = cfg.lanes, len(ms)
    m = AdderTreeModel(cfg)
    pend = np.zeros((0, cfg.cols), np.int64)
    pav = np.zeros(0, np.int64)
    offered = 0
    stamps, lst = [], []
    r0 = 0
    for t in range(F):
        while offered < min(F, t + (2 if cfg.double_buffer else 1)):
            pend = np.concatenate([pend, loads[offered * L:(offered + 1) * L]])
            pav = np.concatenate([pav, np.full(L, ready_b[offered], np.int64)])
            offered += 1
        x = rows[r0:r0 + ms[t]]
        iav = np.full(ms[t], max(ready_a[t], out_free[t]), np.int64)
        out, st_, cyc, taken, ls = m.run_folds(pend, x, lasts[r0:r0 + ms[t]], load_avail=pav,
                                              in_avail=iav, drain=False, load_stamps=True)
        stamps.append(st_)
        lst.append(ls)
        pend, pav = pend[taken:], pav[taken:]
        r0 += ms[t]
    assert len(pend) == 0
    out, st_, cyc = m.run_folds(np.zeros((0, cfg.cols)), np.zeros((0, cfg.lanes)),
                                np.zeros(0, np.int64))
    stamps.append(st_)
    return np.concatenate(stamps), np.concatenate(lst), m.cycle


@settings(max_examples=300, deadline=None)
@given(lanes=st.integers(1, 20), cols=st.integers(1, 12), ent=st.booleans(),
       lps=st.integers(1, 3), db=st.booleans(),
       ms=st.lists(st.integers(1, 45), min_size=1, max_size=6),
       spread=st.sampled_from([0, 20, 80, 300]), sorted_loads=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_tile_backend_equals_cycle_model(lanes, cols, ent, lps, db, ms, spread, sorted_loads, seed):
    cfg = AdderTreeConfig(lanes=lanes, cols=cols, encoding="ent" if ent else "plain",
                          levels_per_stage=lps, double_buffer=db)
    F = len(ms)
    rng = np.random.default_rng(seed)
    ready_a = rng.integers(0, spread + 1, F)
    ready_b = rng.integers(0, spread + 1, F)
    if sorted_loads:
        ready_b = np.sort(ready_b)
    out_free = rng.integers(0, spread + 1, F)
    ws, xs, loads, rows, lasts = _stream(cfg, ms, seed)
    L, lat = cfg.lanes, cfg.latency

    # cycle model, one call, each beat's availability its fold's
    lav = np.repeat(ready_b, L)
    iav = np.repeat(np.maximum(ready_a, out_free), ms)
    out, st_, cyc, ls = AdderTreeModel(cfg).run_folds(loads, rows, lasts, load_avail=lav,
                                                      in_avail=iav, load_stamps=True)
    assert np.array_equal(out, np.concatenate([x @ w for x, w in zip(xs, ws)]))

    # tile backend, fold by fold, as TileEngine calls it
    be = AdderTreeTileBackend(cfg, np.array(ms), record_rows=True)
    assert be.ahead == ((1,) if db else ()) and be.out_tile == 0
    now = 0
    firsts = np.concatenate(([0], np.cumsum(ms)[:-1]))
    X = firsts + np.array(ms) - 1                       # index of each fold's last row
    Xc = st_[X] - lat                                   # its cycle, from the cycle model
    W = ls[L - 1::L]                                    # each fold's last load beat
    for t in range(F):
        ready = (int(ready_a[t]), int(ready_b[t]))
        if db:
            ready += (int(ready_b[t + 1]) if t + 1 < F else 0,)
        rel, prev_done, nxt = be.stream(t, now, ready, int(out_free[t]))
        assert nxt == Xc[t] + 1
        assert prev_done == (st_[X[t - 1]] if t else -1)
        lo = Xc[t - 1] + 1 if t else 0
        want = [(f, 1, int(W[f])) for f in range(F) if lo <= W[f] <= Xc[t]] + [(t, 0, int(Xc[t]))]
        assert sorted(rel) == sorted(want), (t, rel, want)
        assert all(c >= now for _, _, c in rel)
        now = nxt
    assert be.drain(now, 0) == st_[-1] and cyc == st_[-1] + 1
    assert np.array_equal(be.row_cycles(), st_)
    assert np.array_equal(be.load_cycles(), ls)

    # the recurrence in batch form
    ft = adder_tree_fold_times(cfg, ms, load_avail=ready_b, row_avail=np.maximum(ready_a, out_free))
    assert ft.cycles == cyc
    assert np.array_equal(fold_row_cycles(cfg, ms, ft.first), st_)

    # the cycle model chunked per fold (drain=False), as a cycle-level backend drives it
    st2, ls2, cyc2 = _chunked_cycle_run(cfg, loads, rows, lasts, ms, ready_a, ready_b, out_free)
    assert cyc2 == cyc and np.array_equal(st2, st_) and np.array_equal(ls2, ls)


@settings(max_examples=200, deadline=None)
@given(lanes=st.integers(1, 24), cols=st.integers(1, 24), ent=st.booleans(), db=st.booleans(),
       m=st.integers(1, 80), folds=st.integers(1, 9))
def test_ideal_closed_form_equals_cycle_model(lanes, cols, ent, db, m, folds):
    cfg = AdderTreeConfig(lanes=lanes, cols=cols, encoding="ent" if ent else "plain",
                          double_buffer=db)
    ws, xs, loads, rows, lasts = _stream(cfg, [m] * folds, 1)
    out, st_, cyc = AdderTreeModel(cfg).run_folds(loads, rows, lasts)
    S, X = ideal_fold_times(cfg, m, folds)
    assert np.array_equal(X - S, np.full(folds, m - 1))
    cycles, rows_c = ideal_cycles(cfg, m, folds, record_rows=True)
    assert cycles == cyc
    assert np.array_equal(rows_c, st_)


@settings(max_examples=300, deadline=None)
@given(lanes=st.integers(1, 256), cols=st.integers(1, 256), ent=st.booleans(), db=st.booleans(),
       lps=st.integers(1, 8), m=st.integers(1, 3000), folds=st.integers(1, 60))
def test_ideal_closed_form_equals_recurrence(lanes, cols, ent, db, lps, m, folds):
    """The closed form (periodic from fold 2 on) against the fold recurrence, at any size."""
    cfg = AdderTreeConfig(lanes=lanes, cols=cols, encoding="ent" if ent else "plain",
                          double_buffer=db, levels_per_stage=lps)
    S, X = ideal_fold_times(cfg, m, folds)
    ft = adder_tree_fold_times(cfg, [m] * folds)
    assert np.array_equal(S, ft.first) and np.array_equal(X, ft.last)
    # non-uniform folds go through the recurrence
    ms = [m, m + 1] * folds
    S2, X2 = ideal_fold_times(cfg, ms)
    ft2 = adder_tree_fold_times(cfg, ms)
    assert np.array_equal(S2, ft2.first) and np.array_equal(X2, ft2.last)


@pytest.mark.parametrize("lanes,cols,ent", [(16, 16, True), (4, 3, False), (7, 2, True)])
def test_period_per_fold(lanes, cols, ent):
    """Stall-free cycles per fold: one bank L + M + D; two banks max(L, M, (L + M + D) / 2), so
    blocks stream back to back (the load and the previous bank's drain hidden) iff M >= L + D."""
    L, D = lanes, (3 if ent else 1) + cols
    for db in (False, True):
        cfg = AdderTreeConfig(lanes=lanes, cols=cols, encoding="ent" if ent else "plain",
                              double_buffer=db)
        assert cfg.drain_cycles == D
        for m in range(1, 2 * (L + D) + 3):
            S, _ = ideal_fold_times(cfg, m, 12)
            per2 = int(S[11] - S[9])
            want2 = max(2 * L, 2 * m, L + m + D) if db else 2 * (L + m + D)
            assert per2 == want2, (db, m)
            if db:
                assert (np.diff(S[2:]) == m).all() == (m >= L + D)


@pytest.mark.parametrize("db", [False, True])
def test_registry_timing_face(db):
    """`adder_tree_timing(cfg)` (the registry's `timing` face): the closed form equals the per-fold
    backend run by sim.timing's event-driven engine, and both equal the cycle model."""
    from tpesim.memory import MemoryConfig
    from tpesim.tile_adder_tree import adder_tree_timing
    from tpesim.timing import run_stream

    cfg = AdderTreeConfig(lanes=5, cols=3, encoding="ent", double_buffer=db)
    tm = adder_tree_timing(cfg)
    stream = tm.gemm_stream(37, 10, 12)          # 4 column blocks x 3 K-folds of 37 rows
    cycles, rows = tm.ideal(stream, record_rows=True)
    be = tm.backend(stream, record_rows=True)
    run = run_stream(stream, be, MemoryConfig())
    assert run.cycles == cycles and np.array_equal(be.row_cycles(), rows)
    ms = [37] * 12
    ws, xs, loads, arows, lasts = _stream(cfg, ms, 3)
    out, st_, cyc = AdderTreeModel(cfg).run_folds(loads, arows, lasts)
    assert cyc == cycles and np.array_equal(st_, rows)


@pytest.mark.parametrize("interpreted", [False, True])
@pytest.mark.parametrize("fields", [{"lanes": 4, "cols": 3, "double_buffer": True},
                                    {"lanes": 16, "cols": 3, "encoding": "ent", "double_buffer": True}])
def test_folds_shorter_than_the_latency(fields, interpreted, seed):
    """Double-buffered folds of fewer rows than the tree's latency: the next fold's last row is
    taken while this fold's last row is still in the tree (the cycle backend asks the model when it
    will leave: flight_exits). Tile = cycle and the result = numpy, ideal and stalling memory."""
    from tpesim.engines.adder_tree import AdderTreeConfig
    from tpesim.kernels.gemm import run_gemm
    from tpesim.memory import MemoryConfig

    cfg = AdderTreeConfig(**fields)
    rng = np.random.default_rng(seed)
    for m in (1, 2, 3):
        a = rng.integers(-128, 128, (m, 37))
        b = rng.integers(-128, 128, (37, 5))
        for mem in (MemoryConfig(), MemoryConfig(dram_bw=2)):
            cyc = run_gemm(cfg, a, b, memory=mem, interpreted=interpreted)
            tile = run_gemm(cfg, a, b, memory=mem, fidelity="tile")
            assert cyc.matched and cyc.cycles == tile.cycles, f"m={m} {mem} seed {seed}"
            assert cyc.out_cycles.tolist() == tile.out_cycles.tolist()
