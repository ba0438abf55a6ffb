"""WS/IS stationary-operand array: the cycle model against numpy, against closed forms derived from
the micro-architecture (see sim/tile_stationary.py), and against the fold-level (tile) timing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpesim.kernels.gemm import run_gemm, time_gemm
from tpesim.kernels.stationary import plan
from tpesim.engines.systolic import SystolicConfig, SystolicModel, reference
from tpesim.numerics import pack, unpack
from tpesim.tile_stationary import stationary_fold_times


def folds(rng, cfg, ms):
    lo, hi = cfg.in_range
    ws = [rng.integers(lo, hi + 1, (cfg.rows, cfg.cols)) for _ in ms]
    xs = [rng.integers(lo, hi + 1, (m, cfg.rows)) for m in ms]
    loads = np.concatenate([w[::-1] for w in ws])
    rows = np.concatenate(xs)
    lasts = np.zeros(sum(ms), np.int64)
    lasts[np.cumsum(ms) - 1] = 1
    return ws, xs, loads, rows, lasts


@pytest.mark.parametrize("R,C,M,F", [(3, 2, 5, 1), (3, 2, 5, 3), (1, 1, 1, 4), (4, 4, 1, 2),
                                     (2, 7, 20, 3), (6, 1, 2, 5)])
def test_single_buffer_closed_form(R, C, M, F, rng):
    """Single buffer: R load cycles, M stream cycles, then the last row's token needs R+C-1 cycles to
    leave the array before the next load: each fold costs 2R+C+M-1 cycles, plus one cycle for the last
    result row's output register: F*(2R+C+M-1) + 1."""
    cfg = SystolicConfig(rows=R, cols=C, dataflow="ws")
    ws, xs, loads, rows, lasts = folds(rng, cfg, [M] * F)
    out, stamps, cycles = SystolicModel(cfg).run_folds(loads, rows, lasts)
    assert cycles == F * (2 * R + C + M - 1) + 1
    # the first fold's rows leave R + C cycles after they enter (cycles R .. R+M-1)
    assert stamps[:M].tolist() == [R + r + R + C for r in range(M)]
    assert np.array_equal(out, np.concatenate([x @ w for x, w in zip(xs, ws)]))


@pytest.mark.parametrize("R,C,F", [(3, 2, 4), (1, 1, 3), (4, 4, 2), (2, 5, 6)])
def test_double_buffer_closed_form(R, C, F, rng):
    """Double buffer with M >= 2R+C: the next tile loads while the current one streams and the token
    swaps it in, so after the first load (R cycles + 1 for the copy into the active registers) the
    array streams one row per cycle: F*M + 2R + C + 1 cycles."""
    M = 2 * R + C + int(rng.integers(0, 4))
    cfg = SystolicConfig(rows=R, cols=C, dataflow="ws", double_buffer=True)
    ws, xs, loads, rows, lasts = folds(rng, cfg, [M] * F)
    out, stamps, cycles = SystolicModel(cfg).run_folds(loads, rows, lasts)
    assert cycles == F * M + 2 * R + C + 1
    assert np.all(np.diff(stamps) == 1)  # no bubble between folds
    assert np.array_equal(out, np.concatenate([x @ w for x, w in zip(xs, ws)]))


@settings(max_examples=60, deadline=None)
@given(R=st.integers(1, 6), C=st.integers(1, 6), M=st.integers(1, 14), N=st.integers(1, 14),
       K=st.integers(1, 14), df=st.sampled_from(["ws", "is"]), db=st.booleans(),
       in_bits=st.sampled_from([4, 8, 16]), signed=st.booleans(), seed=st.integers(0, 2**31))
def test_gemm_matches_numpy_and_tile_level(R, C, M, N, K, df, db, in_bits, signed, seed):
    cfg = SystolicConfig(rows=R, cols=C, dataflow=df, double_buffer=db, in_bits=in_bits,
                         signed=signed, acc_bits=2 * in_bits + 3)
    rng = np.random.default_rng(seed)
    lo, hi = cfg.in_range
    a = rng.integers(lo, hi + 1, (M, K))
    b = rng.integers(lo, hi + 1, (K, N))
    res = run_gemm(cfg, a, b)
    p = plan(cfg, M, N, K)
    assert np.array_equal(res.c, reference(cfg, a, b))
    assert res.cycles == time_gemm(cfg, M, N, K).cycles
    assert len(res.out_cycles) == p.folds * p.rows


@settings(max_examples=80, deadline=None)
@given(R=st.integers(1, 5), C=st.integers(1, 5), db=st.booleans(),
       ms=st.lists(st.integers(1, 20), min_size=1, max_size=5), seed=st.integers(0, 2**31),
       gated=st.booleans())
def test_tile_level_equals_cycle_level_with_availability(R, C, db, ms, seed, gated):
    """Memory availability (fold f's loads / rows offered from given cycles) at both fidelities."""
    cfg = SystolicConfig(rows=R, cols=C, dataflow="ws", double_buffer=db)
    rng = np.random.default_rng(seed)
    _, _, loads, rows, lasts = folds(rng, cfg, ms)
    la = ra = lav = iav = None
    if gated:
        la = np.maximum.accumulate(rng.integers(0, 80, len(ms)))
        ra = np.maximum.accumulate(rng.integers(0, 80, len(ms)))
        lav, iav = np.repeat(la, R), np.repeat(ra, ms)
    _, stamps, cycles = SystolicModel(cfg).run_folds(loads, rows, lasts, load_avail=lav, in_avail=iav)
    ft = stationary_fold_times(R, C, ms, double_buffer=db, load_avail=la, row_avail=ra)
    assert cycles == ft.cycles
    # every row leaves R+C cycles after its beat: the first/last beats of each fold line up
    firsts = np.concatenate([[0], np.cumsum(ms)[:-1]])
    assert np.array_equal(stamps[firsts], ft.first + R + C)
    assert np.array_equal(stamps[np.cumsum(ms) - 1], ft.last + R + C)


@pytest.mark.parametrize("db", [False, True])
def test_lockstep_step_equals_free_run(db, rng):
    """step() driven with always-valid sources and a ready sink gives the same rows and cycles."""
    cfg = SystolicConfig(rows=3, cols=4, dataflow="is", double_buffer=db, in_bits=4)
    ms = [5, 1, 9]
    _, _, loads, rows, lasts = folds(rng, cfg, ms)
    ref_rows, ref_stamps, ref_cycles = SystolicModel(cfg).run_folds(loads, rows, lasts)
    m = SystolicModel(cfg)
    li = bi = 0
    got, when = [], []
    for cycle in range(10_000):
        if len(got) == len(rows):
            break
        ins = {"load_valid": int(li < len(loads)), "in_valid": int(bi < len(rows)), "out_ready": 1,
               "load_data": pack(loads[min(li, len(loads) - 1)], 4),
               "in_data": pack(rows[min(bi, len(rows) - 1)], 4),
               "in_last": int(lasts[min(bi, len(rows) - 1)])}
        outs = m.step(ins)
        li += ins["load_valid"] and outs["load_ready"]
        bi += ins["in_valid"] and outs["in_ready"]
        if outs["out_valid"]:
            got.append(unpack(outs["out_c"], cfg.cols, cfg.acc_bits, True))
            when.append(cycle)
    assert np.array_equal(np.array(got), ref_rows) and when == ref_stamps.tolist()
    assert when[-1] + 1 == ref_cycles


@pytest.mark.parametrize("df", ["ws", "is"])
def test_compiled_equals_interpreted(df, rng):
    cfg = SystolicConfig(rows=3, cols=2, dataflow=df, double_buffer=True, acc_bits=64, in_bits=16)
    lo, hi = cfg.in_range
    a = rng.integers(lo, hi + 1, (7, 5))
    b = rng.integers(lo, hi + 1, (5, 4))
    r1 = run_gemm(cfg, a, b, interpreted=False)
    r2 = run_gemm(cfg, a, b, interpreted=True)
    assert np.array_equal(r1.c, r2.c) and r1.cycles == r2.cycles
    assert np.array_equal(r1.out_cycles, r2.out_cycles)
    assert np.array_equal(r1.c, reference(cfg, a, b))


def test_plan_matches_scalesim_fold_counts():
    """Fold counts follow SCALE-Sim's mapping: WS ceil(K/R)*ceil(N/C) folds of M rows, IS
    ceil(K/R)*ceil(M/C) folds of N rows."""
    ws = plan(SystolicConfig(rows=8, cols=4, dataflow="ws"), m=30, n=9, k=17)
    assert (ws.folds, ws.rows) == (3 * 3, 30)
    is_ = plan(SystolicConfig(rows=8, cols=4, dataflow="is"), m=30, n=9, k=17)
    assert (is_.folds, is_.rows) == (3 * 8, 9)


# -- the fold-level recurrence in its incremental and stall-free forms -----------------------------
@settings(max_examples=150, deadline=None)
@given(R=st.integers(1, 9), C=st.integers(1, 9), db=st.booleans(), F=st.integers(1, 30),
       M=st.integers(1, 40), uneven=st.booleans(), seed=st.integers(0, 2**31))
def test_ideal_fold_times_equals_recurrence(R, C, db, F, M, uneven, seed):
    """The periodic shortcut of the stall-free form gives the recurrence's every fold."""
    from tpesim.tile_stationary import ideal_fold_times

    ms = np.random.default_rng(seed).integers(1, 40, F) if uneven else np.full(F, M)
    ft = stationary_fold_times(R, C, ms, double_buffer=db)
    S, L = ideal_fold_times(R, C, ms, db)
    assert L.tolist() == ft.last.tolist()
    assert np.where(ms > 1, S, L).tolist() == ft.first.tolist()


@pytest.mark.parametrize("db", [False, True])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 9, 10, 11, 12, 30])
def test_closed_forms_all_regimes(db, T):
    """tests/closed_form.py's derivation (single buffer; double buffer with M <= R, R < M < 2R+C
    where swaps and global copies alternate, M >= 2R+C) against the register model, R=4, C=2."""
    from closed_form import stationary_row_cycles, stationary_total_cycles

    R, C, F = 4, 2, 5
    cfg = SystolicConfig(rows=R, cols=C, dataflow="ws", double_buffer=db)
    lasts = np.zeros(F * T, np.int64)
    lasts[T - 1::T] = 1
    _, stamps, cycles = SystolicModel(cfg).run_folds(np.zeros((F * R, C)), np.zeros((F * T, R)),
                                                     lasts)
    assert cycles == stationary_total_cycles(R, C, T, F, db)
    assert stamps.tolist() == stationary_row_cycles(R, C, T, F, db)


@pytest.mark.parametrize("db", [False, True])
def test_load_stamps(db):
    """run_folds(load_stamps=True) reports the cycle of every load beat taken: single buffer,
    fold f loads right after fold f-1's token has left; double buffer, fold 1 loads right after
    fold 0's global copy."""
    R, C, M = 3, 2, 4
    cfg = SystolicConfig(rows=R, cols=C, dataflow="is", double_buffer=db)
    lasts = np.array([0, 0, 0, 1] * 2)
    res = SystolicModel(cfg).run_folds(np.ones((2 * R, C)), np.ones((2 * M, R)), lasts,
                                       load_stamps=True)
    loads = res[3].tolist()
    if db:
        assert loads == [0, 1, 2, 4, 5, 6]          # copy at 3
    else:
        L0 = R + M - 1
        assert loads == [0, 1, 2] + [L0 + R + C + i for i in range(R)]
    # chunked: only the beats taken in this call
    res = SystolicModel(cfg).run_folds(np.ones((2 * R, C)), np.ones((M, R)), lasts[:M],
                                       drain=False, load_stamps=True)
    assert len(res[4]) == res[3] and res[4].tolist() == loads[:res[3]]
