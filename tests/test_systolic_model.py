"""The OS systolic cycle model against numpy (values) and the closed-form timing (cycles).

Timing expectations come from tests/closed_form.py, derived from the micro-architecture
independently of the model's code; values come from the functional reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from closed_form import row_cycles, total_cycles
from hypothesis import given, settings
from hypothesis import strategies as st

from tpesim.engines import is_compiled, load_core
from tpesim.engines.systolic import SystolicConfig, SystolicModel, reference
from tpesim.numerics import pack, unpack

COMPILED = is_compiled(load_core("_systolic_core", interpreted=False))


# -- stimulus helpers ------------------------------------------------------------------------------
def operands(cfg: SystolicConfig, ks: list[int], rng: np.random.Generator):
    """One (A_t: R x K_t, B_t: K_t x C) pair per tile, full range with both extremes present."""
    lo, hi = cfg.in_range
    tiles = []
    for k in ks:
        a = rng.integers(lo, hi, size=(cfg.rows, k), endpoint=True)
        b = rng.integers(lo, hi, size=(k, cfg.cols), endpoint=True)
        a.flat[rng.integers(a.size)] = lo
        b.flat[rng.integers(b.size)] = lo
        a.flat[rng.integers(a.size)] = hi
        tiles.append((a, b))
    return tiles


def beats(tiles):
    """Stream beats of a tile sequence: beat k of a tile is (A[:, k], B[k, :]), `last` on its
    final beat."""
    beats_a = np.concatenate([a.T for a, _ in tiles])
    beats_b = np.concatenate([b for _, b in tiles])
    beats_last = np.concatenate([np.eye(1, a.shape[1], a.shape[1] - 1, dtype=np.int64)[0]
                                 for a, _ in tiles])
    return beats_a, beats_b, beats_last


def expected_rows(cfg, tiles):
    return np.concatenate([reference(cfg, a, b) for a, b in tiles])


def check_free_run(cfg, tiles, *, interpreted=False):
    ks = [a.shape[1] for a, _ in tiles]
    model = SystolicModel(cfg, interpreted=interpreted)
    rows, stamps, cycles = model.run_beats(*beats(tiles))
    np.testing.assert_array_equal(rows, expected_rows(cfg, tiles))
    assert stamps.tolist() == row_cycles(cfg.rows, cfg.cols, ks)
    assert cycles == total_cycles(cfg.rows, cfg.cols, ks)
    return rows, stamps, cycles


@st.composite
def configs(draw, max_dim: int = 8):
    in_bits = draw(st.sampled_from([4, 8, 16]))
    signed = draw(st.booleans())
    acc_bits = draw(st.one_of(st.none(), st.integers(2 * in_bits, 64 if signed else 63)))
    return SystolicConfig(rows=draw(st.integers(1, max_dim)), cols=draw(st.integers(1, max_dim)),
                          in_bits=in_bits, signed=signed, acc_bits=acc_bits)


# -- free-running: values and closed-form timing --------------------------------------------------
def test_worked_example():
    """R=3, C=2, K=5: 12 cycles, rows leave in cycles 9, 10, 11."""
    cfg = SystolicConfig(rows=3, cols=2)
    a = np.arange(15).reshape(3, 5) - 7
    b = np.arange(10).reshape(5, 2) - 4
    rows, stamps, cycles = SystolicModel(cfg).run_beats(*beats([(a, b)]))
    np.testing.assert_array_equal(rows, a @ b)
    assert stamps.tolist() == [9, 10, 11]
    assert cycles == 12


@settings(max_examples=150, deadline=None)
@given(cfg=configs(), ks=st.lists(st.integers(1, 24), min_size=1, max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_random_configs_vs_numpy_and_closed_form(cfg, ks, seed):
    check_free_run(cfg, operands(cfg, ks, np.random.default_rng(seed)))


@pytest.mark.regress
@settings(max_examples=3000, deadline=None)
@given(cfg=configs(max_dim=40), ks=st.lists(st.integers(1, 100), min_size=1, max_size=8),
       seed=st.integers(0, 2**32 - 1))
def test_sweep_vs_numpy_and_closed_form(cfg, ks, seed):
    check_free_run(cfg, operands(cfg, ks, np.random.default_rng(seed)))


@pytest.mark.parametrize(("rows", "cols", "ks"), [
    (1, 1, [1]), (1, 1, [1, 1, 1]), (1, 16, [7, 1, 20]), (16, 1, [7, 1, 20]), (1, 32, [3]),
    (32, 1, [3]), (4, 4, [1] * 6), (5, 3, [1, 40, 1, 2]), (16, 16, [16, 64, 5]), (8, 24, [2, 2]),
    (24, 8, [100]),
])
@pytest.mark.parametrize(("in_bits", "signed"), [(4, True), (8, True), (8, False), (16, True),
                                                 (16, False)])
def test_shapes(rows, cols, ks, in_bits, signed, rng):
    cfg = SystolicConfig(rows=rows, cols=cols, in_bits=in_bits, signed=signed)
    check_free_run(cfg, operands(cfg, ks, rng))


@pytest.mark.parametrize(("rows", "cols", "ks", "total"), [
    # K >= 2R+C: tiles stream back to back with no bubble, L_t = sum(K) - 1
    (4, 4, [30, 30, 30], 89 + 12),
    # K < 2R+C: each `last` waits 2R+C cycles after the previous one
    (4, 4, [1, 1, 1], 0 + 2 * 12 + 12),
    (3, 2, [5], 12),
    (2, 3, [7, 7], 6 + 7 + 7),
])
def test_back_to_back_tiles(rows, cols, ks, total, rng):
    cfg = SystolicConfig(rows=rows, cols=cols)
    assert total_cycles(rows, cols, ks) == total  # the closed form itself, worked by hand
    _, _, cycles = check_free_run(cfg, operands(cfg, ks, rng))
    assert cycles == total


# -- accumulator wrap-around ----------------------------------------------------------------------
@pytest.mark.parametrize(("in_bits", "signed", "acc_bits", "fill", "k", "expect"), [
    (8, True, 16, -128, 2, -32768),      # 2 * 16384 = 32768 -> -32768
    (8, True, 16, -128, 3, -16384),      # 49152 -> -16384
    (8, True, 16, -128, 4, 0),           # 65536 -> 0
    (8, True, 17, -128, 2, 32768),       # one more bit: no wrap
    (8, False, 16, 255, 3, 0xFA03),      # 195075 mod 65536
    (4, True, 8, -8, 2, -128),           # 128 -> -128
    (4, False, 8, 15, 2, 194),           # 450 mod 256
    (16, True, 32, -32768, 2, -(1 << 31)),
    (16, True, 33, -32768, 2, 1 << 31),
    (16, False, 32, 65535, 2, (2 * 65535 * 65535) % (1 << 32)),
    (16, True, 64, -32768, 5, 5 << 30),
])
def test_accumulator_wraps(in_bits, signed, acc_bits, fill, k, expect):
    cfg = SystolicConfig(rows=2, cols=3, in_bits=in_bits, signed=signed, acc_bits=acc_bits)
    a = np.full((2, k), fill)
    b = np.full((k, 3), fill)
    rows, _, _ = check_free_run(cfg, [(a, b), (a, b)])
    assert (rows == expect).all()


def test_wrap_mixed_signs_16bit_acc(rng):
    cfg = SystolicConfig(rows=4, cols=4, in_bits=8, acc_bits=16)
    # long K with extreme values: every accumulator wraps many times
    a = rng.choice([-128, 127], size=(4, 200))
    b = rng.choice([-128, 127], size=(200, 4))
    check_free_run(cfg, [(a, b)])


# -- compiled vs interpreted ----------------------------------------------------------------------
@pytest.mark.skipif(not COMPILED, reason="the engine extension is not built")
@pytest.mark.parametrize("cfg", [
    SystolicConfig(rows=3, cols=4),
    SystolicConfig(rows=1, cols=5, in_bits=4, signed=False, acc_bits=9),
    SystolicConfig(rows=4, cols=2, in_bits=16, acc_bits=64),
    SystolicConfig(rows=4, cols=2, in_bits=16, acc_bits=63),
    SystolicConfig(rows=3, cols=3, in_bits=16, signed=False, acc_bits=63),
    SystolicConfig(rows=2, cols=2, in_bits=8, acc_bits=16),
])
def test_compiled_equals_interpreted(cfg, rng):
    tiles = operands(cfg, [1, 9, 3, 17], rng)
    ref = check_free_run(cfg, tiles, interpreted=False)
    got = check_free_run(cfg, tiles, interpreted=True)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])
    assert got[2] == ref[2]
    # and with stalls on both sides
    ba, bb, bl = beats(tiles)
    valid = (rng.random(400) < 0.6).astype(np.uint8)
    ready = (rng.random(400) < 0.5).astype(np.uint8)
    outs = [SystolicModel(cfg, interpreted=i).run_beats(ba, bb, bl, valid=valid, ready=ready)
            for i in (False, True)]
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    assert outs[0][2] == outs[1][2]


# -- chunked free running stays cycle-exact -------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(cfg=configs(max_dim=6), ks=st.lists(st.integers(1, 20), min_size=1, max_size=5),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_chunked_run_beats_is_cycle_exact(cfg, ks, seed, data):
    """Split the stream anywhere (mid-tile too): drain=False chunks then a draining one."""
    tiles = operands(cfg, ks, np.random.default_rng(seed))
    ba, bb, bl = beats(tiles)
    n = len(bl)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=4)) if n > 1 else []))
    bounds = [0, *cuts, n]
    model = SystolicModel(cfg)
    rows, stamps, cycles = [], [], 0
    for i, (s, e) in enumerate(zip(bounds, bounds[1:])):
        r, st_, c = model.run_beats(ba[s:e], bb[s:e], bl[s:e], drain=(e == n))
        rows.append(r)
        stamps.append(st_)
        cycles += c
    np.testing.assert_array_equal(np.concatenate(rows), expected_rows(cfg, tiles))
    assert np.concatenate(stamps).tolist() == row_cycles(cfg.rows, cfg.cols, ks)
    assert cycles == total_cycles(cfg.rows, cfg.cols, ks)


def test_reset_restarts_from_cycle_zero(rng):
    cfg = SystolicConfig(rows=3, cols=5)
    tiles = operands(cfg, [4, 11], rng)
    model = SystolicModel(cfg)
    first = model.run_beats(*beats(tiles[:1]), drain=False)  # leave a tile in flight
    assert first[0].shape[0] == 0
    model.reset()
    rows, stamps, cycles = model.run_beats(*beats(tiles))
    np.testing.assert_array_equal(rows, expected_rows(cfg, tiles))
    assert stamps.tolist() == row_cycles(3, 5, [4, 11])
    assert cycles == total_cycles(3, 5, [4, 11])


# -- free running with valid/ready stalls ---------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(cfg=configs(max_dim=6), ks=st.lists(st.integers(1, 12), min_size=1, max_size=4),
       seed=st.integers(0, 2**32 - 1), p_valid=st.sampled_from([0.2, 0.5, 0.9]),
       p_ready=st.sampled_from([0.1, 0.5, 0.9]))
def test_stalls_keep_values(cfg, ks, seed, p_valid, p_ready):
    rng = np.random.default_rng(seed)
    tiles = operands(cfg, ks, rng)
    horizon = 50 * (sum(ks) + len(ks) * (2 * cfg.rows + cfg.cols))
    valid = (rng.random(horizon) < p_valid).astype(np.uint8)
    ready = (rng.random(horizon) < p_ready).astype(np.uint8)
    rows, stamps, cycles = SystolicModel(cfg).run_beats(*beats(tiles), valid=valid, ready=ready)
    np.testing.assert_array_equal(rows, expected_rows(cfg, tiles))
    assert (np.diff(stamps) > 0).all() and stamps[-1] < cycles
    assert cycles >= total_cycles(cfg.rows, cfg.cols, ks)  # stalls never make it faster
    assert all(ready[s] for s in stamps if s < horizon)  # a row leaves only when the sink is ready


# -- lockstep, beat by beat ----------------------------------------------------------------------
def drive_lockstep(model, cfg, tiles, rng, p_valid, p_ready):
    """A stream source and sink around `step()`, obeying valid/ready: a beat, once offered, stays
    offered (unchanged) until accepted. Returns rows, stamps, out_last flags, cycles, and the
    per-cycle valid/ready that were applied."""
    ba, bb, bl = beats(tiles)
    n = len(bl)
    R, C, w = cfg.rows, cfg.cols, cfg.in_bits
    want = len(tiles) * R
    rows, stamps, lasts, valid_hist, ready_hist = [], [], [], [], []
    bi = 0
    offering = False
    prev = None  # (out_valid, out_c) of a row the sink refused
    t = 0
    while len(rows) < want:
        assert t < 100_000, "lockstep run did not finish"
        if not offering and bi < n:
            offering = bool(rng.random() < p_valid)
        ready = int(rng.random() < p_ready)
        if offering:
            ins = {"in_valid": 1, "in_a": pack(ba[bi], w), "in_b": pack(bb[bi], w),
                   "in_last": int(bl[bi])}
        else:  # garbage on the data wires while valid is low: it must not matter
            ins = {"in_valid": 0, "in_a": int(rng.integers(1 << 62)) & ((1 << (R * w)) - 1),
                   "in_b": int(rng.integers(1 << 62)) & ((1 << (C * w)) - 1),
                   "in_last": int(rng.integers(2))}
        ins["out_ready"] = ready
        out = model.step(ins)
        assert set(out) == {"in_ready", "out_valid", "out_last", "out_c"}
        if prev is not None:  # the output stream may not withdraw or change a refused row
            assert out["out_valid"] == 1 and out["out_c"] == prev
        prev = None
        valid_hist.append(int(offering))
        ready_hist.append(ready)
        if offering and out["in_ready"]:
            bi += 1
            offering = False
        if out["out_valid"]:
            if ready:
                rows.append(unpack(out["out_c"], C, cfg.acc_bits, cfg.signed))
                stamps.append(t)
                lasts.append(out["out_last"])
            else:
                prev = out["out_c"]
        t += 1
    assert bi == n
    return (np.array(rows, dtype=np.int64), stamps, lasts, t,
            np.array(valid_hist, np.uint8), np.array(ready_hist, np.uint8))


@pytest.fixture(params=["compiled", "interpreted"])
def interpreted(request):
    if request.param == "compiled":
        if not COMPILED:
            pytest.fail("the engine extension is not built (run `make setup`)")
        return False
    return True


@pytest.mark.parametrize(("rows", "cols", "in_bits", "signed", "ks", "p_valid", "p_ready"), [
    (3, 2, 8, True, [5, 1, 7], 1.0, 1.0),
    (3, 2, 8, True, [5, 1, 7], 0.5, 0.5),
    (4, 4, 4, True, [2, 9, 1, 1], 0.3, 0.8),
    (1, 5, 16, False, [3, 3, 6], 0.7, 0.2),
    (5, 1, 8, False, [1, 8], 0.9, 0.4),
    (2, 3, 16, True, [12, 1], 0.6, 0.6),
])
def test_lockstep_step_with_stalls(interpreted, rows, cols, in_bits, signed, ks, p_valid, p_ready,
                                   rng):
    cfg = SystolicConfig(rows=rows, cols=cols, in_bits=in_bits, signed=signed)
    tiles = operands(cfg, ks, rng)
    model = SystolicModel(cfg, interpreted=interpreted)
    got, stamps, lasts, cycles, valid, ready = drive_lockstep(model, cfg, tiles, rng, p_valid,
                                                              p_ready)
    np.testing.assert_array_equal(got, expected_rows(cfg, tiles))
    assert lasts == [int(r == rows - 1) for _ in ks for r in range(rows)]
    assert model.cycle == cycles
    if p_valid == 1.0 and p_ready == 1.0:
        assert stamps == row_cycles(rows, cols, ks)
        assert cycles == total_cycles(rows, cols, ks)
    # the free-running path, given the same per-cycle valid/ready, is the same machine
    f_rows, f_stamps, f_cycles = SystolicModel(cfg, interpreted=interpreted).run_beats(
        *beats(tiles), valid=valid, ready=ready)
    np.testing.assert_array_equal(f_rows, got)
    assert f_stamps.tolist() == stamps
    assert f_cycles == cycles
