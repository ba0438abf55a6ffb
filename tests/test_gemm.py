"""GEMM on the systolic engine through the event kernel: values, cycles, input validation (OS in
detail; WS/IS through the same driver, their timing in tests/test_timing.py)."""

from __future__ import annotations

import numpy as np
import pytest
from closed_form import row_cycles, stationary_row_cycles, stationary_total_cycles, total_cycles
from hypothesis import given, settings
from hypothesis import strategies as st

import tpesim.kernels.gemm as gemm
from tpesim.kernels.gemm import GemmResult, random_operands, run_gemm, tile_beats, tile_grid
from tpesim.engines.systolic import SystolicConfig, SystolicModel, reference
from tpesim.errors import TpesimError, WorkloadError
from tpesim.memory import MemoryConfig


def ceil_div(a, b):
    return -(-a // b)


def check(cfg, m, n, k, seed, **kw) -> GemmResult:
    a, b = random_operands(cfg, m, n, k, seed)
    res = run_gemm(cfg, a, b, **kw)
    tiles = ceil_div(m, cfg.rows) * ceil_div(n, cfg.cols)
    ks = [k] * tiles
    assert res.matched
    np.testing.assert_array_equal(res.c, reference(cfg, a, b))
    assert res.c.shape == (m, n)
    assert res.blocks == tiles
    assert res.macs == m * n * k
    if kw.get("memory") is None:
        assert res.cycles == total_cycles(cfg.rows, cfg.cols, ks)
        assert res.out_cycles.tolist() == row_cycles(cfg.rows, cfg.cols, ks)
    assert res.compute_cycles == total_cycles(cfg.rows, cfg.cols, ks)
    assert res.utilization == pytest.approx(m * n * k / (res.cycles * cfg.rows * cfg.cols))
    assert 0 < res.utilization <= 1
    return res


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 9), m=st.integers(1, 30),
       n=st.integers(1, 30), k=st.integers(1, 40), in_bits=st.sampled_from([4, 8, 16]),
       signed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_random_shapes(rows, cols, m, n, k, in_bits, signed, seed):
    check(SystolicConfig(rows=rows, cols=cols, in_bits=in_bits, signed=signed), m, n, k, seed)


@pytest.mark.regress
@settings(max_examples=500, deadline=None)
@given(rows=st.integers(1, 32), cols=st.integers(1, 32), m=st.integers(1, 200),
       n=st.integers(1, 200), k=st.integers(1, 200), in_bits=st.sampled_from([4, 8, 16]),
       signed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_sweep_shapes(rows, cols, m, n, k, in_bits, signed, seed):
    check(SystolicConfig(rows=rows, cols=cols, in_bits=in_bits, signed=signed), m, n, k, seed)


@pytest.mark.parametrize(("rows", "cols", "m", "n", "k"), [
    (8, 8, 40, 24, 33),   # the demo: M, N multiples, K > 2R+C
    (8, 8, 41, 23, 5),    # M, N not multiples of R, C; K < 2R+C
    (4, 4, 1, 1, 1),      # one padded tile
    (1, 1, 3, 4, 2),
    (1, 16, 5, 40, 7),
    (16, 1, 40, 5, 7),
    (16, 16, 17, 17, 64),
])
def test_shapes(rows, cols, m, n, k, seed):
    check(SystolicConfig(rows=rows, cols=cols), m, n, k, seed)


def test_demo_numbers():
    # 15 tiles of K=33 > 2R+C=24 stream back to back: 15*33 - 1 + 24 cycles
    res = check(SystolicConfig(rows=8, cols=8), 40, 24, 33, seed=0)
    assert res.cycles == 15 * 33 - 1 + 24
    assert res.utilization == pytest.approx(40 * 24 * 33 / (518 * 64))


def test_accumulator_wraps_in_gemm():
    cfg = SystolicConfig(rows=3, cols=2, acc_bits=16)
    a = np.full((4, 2), -128)
    b = np.full((2, 3), -128)
    res = run_gemm(cfg, a, b)
    assert res.matched and (res.c == -32768).all()


def test_chunked_equals_single_stream(seed):
    """One run_beats call per tile (the event-driven path) = one call over every beat."""
    cfg = SystolicConfig(rows=5, cols=3, in_bits=16, signed=False)
    m, n, k = 12, 10, 6
    a, b = random_operands(cfg, m, n, k, seed)
    res = run_gemm(cfg, a, b)
    gm, gn = tile_grid(cfg, m, n)
    streams = [tile_beats(cfg, a, b, mi, ni) for mi in range(gm) for ni in range(gn)]
    rows, stamps, cycles = SystolicModel(cfg).run_beats(
        *(np.concatenate([s[i] for s in streams]) for i in range(3)))
    assert res.cycles == cycles
    np.testing.assert_array_equal(res.out_cycles, stamps)
    # reassemble the single stream's rows (tile order mi-major) and compare with the GEMM's C
    c = np.zeros((gm * cfg.rows, gn * cfg.cols), np.int64)
    for t, (mi, ni) in enumerate((mi, ni) for mi in range(gm) for ni in range(gn)):
        c[mi * cfg.rows:(mi + 1) * cfg.rows, ni * cfg.cols:(ni + 1) * cfg.cols] = \
            rows[t * cfg.rows:(t + 1) * cfg.rows]
    np.testing.assert_array_equal(res.c, c[:m, :n])


def test_python_touched_once_per_tile(monkeypatch):
    calls = []
    real = SystolicModel.run_beats

    def spy(self, *args, **kw):
        calls.append((len(args[0]), kw.get("drain")))
        return real(self, *args, **kw)

    monkeypatch.setattr(SystolicModel, "run_beats", spy)
    cfg = SystolicConfig(rows=4, cols=4)
    check(cfg, 9, 7, 11, seed=3)
    # one call per tile, then one to drain the last tile's rows (its output space may be gated)
    assert calls == [(11, False)] * 6 + [(0, True)]


def test_tile_beats_padding():
    cfg = SystolicConfig(rows=4, cols=3)
    a = np.arange(6 * 2).reshape(6, 2) + 1
    b = np.arange(2 * 5).reshape(2, 5) + 1
    ba, bb, bl = tile_beats(cfg, a, b, 1, 1)
    assert ba.tolist() == [[a[4, 0], a[5, 0], 0, 0], [a[4, 1], a[5, 1], 0, 0]]
    assert bb.tolist() == [[b[0, 3], b[0, 4], 0], [b[1, 3], b[1, 4], 0]]
    assert bl.tolist() == [0, 1]


@pytest.mark.parametrize("interpreted", [False, True])
def test_interpreted_matches(interpreted):
    res = check(SystolicConfig(rows=3, cols=4, in_bits=4), 7, 9, 5, seed=11,
                interpreted=interpreted)
    assert res.matched


@pytest.mark.parametrize("memory", [None, MemoryConfig(dram_bw=1)])
def test_progress_bar_path(monkeypatch, memory):
    monkeypatch.setattr(gemm, "PROGRESS_AFTER_S", 0)
    check(SystolicConfig(rows=2, cols=2), 6, 6, 3, seed=1, progress=True, memory=memory)
    gemm.time_gemm(SystolicConfig(rows=2, cols=2), 6, 6, 3, progress=True, memory=memory)


# -- operands ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("in_bits", "signed"), [(4, True), (4, False), (8, True), (8, False),
                                                 (16, True), (16, False)])
def test_random_operands_full_range(in_bits, signed):
    cfg = SystolicConfig(in_bits=in_bits, signed=signed)
    a, b = random_operands(cfg, 5, 6, 7, seed=42)
    assert a.shape == (5, 7) and b.shape == (7, 6)
    assert a.dtype.kind == "i" and b.dtype.kind == "i"
    lo, hi = cfg.in_range
    for x in (a, b):
        assert x.min() == lo and x.max() == hi
    a2, b2 = random_operands(cfg, 5, 6, 7, seed=42)
    assert (a == a2).all() and (b == b2).all()


def test_random_operands_single_element():
    a, b = random_operands(SystolicConfig(), 1, 1, 1, seed=0)
    assert a.tolist() == [[-128]] and b.tolist() == [[-128]]


@pytest.mark.parametrize(("args", "message"), [
    ((0, 1, 1), "m must be a positive integer, not 0"),
    ((1, -2, 1), "n must be a positive integer, not -2"),
    ((1, 1, 2.5), "k must be an integer, not 2.5"),
])
def test_random_operands_validation(args, message):
    with pytest.raises(WorkloadError) as info:
        random_operands(SystolicConfig(), *args, seed=0)
    assert str(info.value) == message


# -- input validation ------------------------------------------------------------------------------
CFG = SystolicConfig(rows=2, cols=2)


@pytest.mark.parametrize(("a", "b", "message"), [
    (np.zeros((2, 3), int), np.zeros((4, 2), int),
     "a columns must equal b rows (K), not 3 and 4 (a is 2x3, b is 4x2)"),
    (np.zeros((2, 3), float), np.zeros((3, 2), int), "a must have an integer dtype, not float64"),
    (np.zeros((2, 3), int), np.zeros((3, 2), bool), "b must have an integer dtype, not bool"),
    (np.zeros(3, int), np.zeros((3, 2), int), "a must be a 2-D matrix, not an array of shape (3,)"),
    (np.zeros((0, 3), int), np.zeros((3, 2), int),
     "a must have at least one row and one column, not shape (0, 3)"),
    (np.array([[1, 128]]), np.zeros((2, 2), int),
     "a values must be in -128..127 (signed 8-bit), not 128 at [0, 1]"),
    (np.zeros((2, 2), int), np.array([[0, 0], [-129, 0]]),
     "b values must be in -128..127 (signed 8-bit), not -129 at [1, 0]"),
    ([["x"]], [[1]], "a must have an integer dtype, not <U1"),
])
def test_validation_messages(a, b, message):
    with pytest.raises(WorkloadError) as info:
        run_gemm(CFG, a, b)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_validation_unsigned_range():
    cfg = SystolicConfig(rows=2, cols=2, in_bits=4, signed=False)
    with pytest.raises(WorkloadError, match=r"^a values must be in 0\.\.15 \(unsigned 4-bit\), "
                                            r"not -1 at \[0, 0\]$"):
        run_gemm(cfg, np.array([[-1]]), np.array([[1]]))


def test_accepts_lists_and_narrow_dtypes():
    res = run_gemm(CFG, [[1, 2], [3, 4]], np.array([[5, 6], [7, 8]], dtype=np.int8))
    assert res.matched and res.c.tolist() == [[19, 22], [43, 50]]
    res = run_gemm(SystolicConfig(in_bits=8, signed=False), np.array([[255]], np.uint8),
                   np.array([[255]], np.uint64))
    assert res.matched and res.c.tolist() == [[65025]]


def test_cfg_type_checked():
    with pytest.raises(WorkloadError, match=r"^cfg must be an engine config \(e.g. SystolicConfig\), not dict$"):
        run_gemm({"rows": 2}, [[1]], [[1]])


# -- fidelities, memory, conv ---------------------------------------------------------------------
def test_tile_fidelity_values_only_when_verified(seed):
    cfg = SystolicConfig(rows=4, cols=3)
    a, b = random_operands(cfg, 10, 7, 5, seed)
    cyc = run_gemm(cfg, a, b)
    til = run_gemm(cfg, a, b, fidelity="tile")
    assert til.fidelity == "tile" and til.c is None and til.matched is None
    assert (til.cycles, til.out_cycles.tolist()) == (cyc.cycles, cyc.out_cycles.tolist())
    ver = run_gemm(cfg, a, b, fidelity="tile", verify=True)
    assert ver.matched is True
    np.testing.assert_array_equal(ver.c, cyc.c)
    unchecked = run_gemm(cfg, a, b, verify=False)
    assert unchecked.matched is None and unchecked.c is not None


def test_time_gemm_needs_no_operands():
    res = gemm.time_gemm(SystolicConfig(rows=128, cols=128), 4096, 4096, 4096)
    assert res.c is None and res.matched is None and res.out_cycles is None
    assert res.cycles == 1024 * 4096 - 1 + 384 and res.blocks == 1024
    rows = gemm.time_gemm(SystolicConfig(rows=4, cols=4), 9, 7, 11, record_rows=True).out_cycles
    assert rows.tolist() == row_cycles(4, 4, [11] * 6)


def test_memory_stalls_at_cycle_level(seed):
    cfg = SystolicConfig(rows=4, cols=4)
    res = check(cfg, 16, 16, 8, seed, memory=MemoryConfig(dram_bw=2, sram_kib_b=0.0625))
    assert res.stall_cycles > 0 and res.cycles == res.compute_cycles + res.stall_cycles
    assert res.fidelity == "cycle"


@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"fidelity": "rtl"}, TpesimError, "fidelity must be one of 'cycle', 'tile', not 'rtl'"),
    ({"memory": {"dram_bw": 1}}, WorkloadError, "memory must be a MemoryConfig, not dict"),
])
def test_run_options_validated(kwargs, exc, message):
    with pytest.raises(exc) as info:
        run_gemm(CFG, [[1]], [[1]], **kwargs)
    assert str(info.value) == message


def test_unsupported_cycle_dataflow(monkeypatch):
    monkeypatch.delitem(gemm.CYCLE_BACKENDS, "os")
    with pytest.raises(TpesimError, match=r"^dataflow 'os' is not supported at cycle level"):
        run_gemm(CFG, [[1]], [[1]])


def test_conv_both_fidelities(seed):
    from tpesim.kernels.conv import ConvLayer, conv2d_direct
    from tpesim.kernels.conv import random_operands as conv_operands

    layer = ConvLayer(in_h=7, in_w=6, in_channels=3, out_channels=5, kernel_h=3, kernel_w=2,
                      stride_h=2, pad_w=1, dilation_h=2, batch=2)
    cfg = SystolicConfig(rows=4, cols=3)
    x, w = conv_operands(layer, np.random.default_rng(seed), *cfg.in_range)
    mem = MemoryConfig(dram_bw=3, sram_kib_a=1)
    cyc = gemm.run_conv(cfg, layer, x, w, memory=mem)
    assert cyc.matched is True and cyc.c.shape == layer.output_shape
    np.testing.assert_array_equal(cyc.c, conv2d_direct(x, w, layer))
    assert (cyc.m, cyc.n, cyc.k) == layer.gemm_shape()
    til = gemm.run_conv(cfg, layer, x, w, fidelity="tile", memory=mem)
    assert til.c is None and til.matched is None
    assert (til.cycles, til.stall_cycles) == (cyc.cycles, cyc.stall_cycles)
    ver = gemm.run_conv(cfg, layer, x, w, fidelity="tile", memory=mem, verify=True)
    assert ver.matched is True
    np.testing.assert_array_equal(ver.c, cyc.c)
    assert gemm.time_conv(cfg, layer, memory=mem).cycles == cyc.cycles


# -- WS / IS through the same driver ---------------------------------------------------------------
STATIONARY = [("ws", False), ("ws", True), ("is", False), ("is", True)]


def check_stationary(cfg, m, n, k, seed, **kw) -> GemmResult:
    a, b = random_operands(cfg, m, n, k, seed)
    res = run_gemm(cfg, a, b, **kw)
    R, C = cfg.rows, cfg.cols
    T, outer = (m, ceil_div(n, C)) if cfg.dataflow == "ws" else (n, ceil_div(m, C))
    folds = ceil_div(k, R) * outer
    assert res.matched is True and res.dataflow == cfg.dataflow
    np.testing.assert_array_equal(res.c, reference(cfg, a, b))
    assert res.blocks == folds and res.macs == m * n * k
    ideal = stationary_total_cycles(R, C, T, folds, cfg.double_buffer)
    if kw.get("memory") is None:
        assert res.cycles == ideal
        assert res.out_cycles.tolist() == stationary_row_cycles(R, C, T, folds, cfg.double_buffer)
    assert res.compute_cycles == ideal
    return res


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 9), cols=st.integers(1, 9), m=st.integers(1, 30),
       n=st.integers(1, 30), k=st.integers(1, 40), in_bits=st.sampled_from([4, 8, 16]),
       signed=st.booleans(), df=st.sampled_from(STATIONARY), seed=st.integers(0, 2**32 - 1))
def test_stationary_random_shapes(rows, cols, m, n, k, in_bits, signed, df, seed):
    cfg = SystolicConfig(rows=rows, cols=cols, in_bits=in_bits, signed=signed, dataflow=df[0],
                         double_buffer=df[1])
    check_stationary(cfg, m, n, k, seed)


@pytest.mark.regress
@settings(max_examples=400, deadline=None)
@given(rows=st.integers(1, 24), cols=st.integers(1, 24), m=st.integers(1, 120),
       n=st.integers(1, 120), k=st.integers(1, 120), in_bits=st.sampled_from([4, 8, 16]),
       signed=st.booleans(), df=st.sampled_from(STATIONARY), seed=st.integers(0, 2**32 - 1))
def test_stationary_sweep_shapes(rows, cols, m, n, k, in_bits, signed, df, seed):
    cfg = SystolicConfig(rows=rows, cols=cols, in_bits=in_bits, signed=signed, dataflow=df[0],
                         double_buffer=df[1])
    check_stationary(cfg, m, n, k, seed)


@pytest.mark.parametrize(("dataflow", "db"), STATIONARY)
def test_stationary_python_touched_once_per_fold(monkeypatch, dataflow, db):
    from tpesim.engines.systolic import PreloadModel

    calls = []
    real = PreloadModel.run_folds

    def spy(self, loads, rows, lasts, **kw):
        calls.append((len(loads), len(rows), kw.get("drain")))
        return real(self, loads, rows, lasts, **kw)

    monkeypatch.setattr(PreloadModel, "run_folds", spy)
    cfg = SystolicConfig(rows=4, cols=3, dataflow=dataflow, double_buffer=db)
    check_stationary(cfg, 9, 7, 11, seed=3)
    T = 9 if dataflow == "ws" else 7
    folds = 3 * 3  # ceil(K/R) K-slices times 3 output blocks (WS: ceil(7/3), IS: ceil(9/3))
    # one call per fold (its stream beats, the loads not yet taken), then one to drain
    assert [c[1:] for c in calls] == [(T, False)] * folds + [(0, True)]
    assert sum(c[0] for c in calls) >= folds * 4
    assert calls[-1][0] == 0


@pytest.mark.parametrize(("dataflow", "db"), STATIONARY)
def test_stationary_memory_at_both_fidelities(dataflow, db, seed):
    cfg = SystolicConfig(rows=4, cols=3, dataflow=dataflow, double_buffer=db, in_bits=4)
    mem = MemoryConfig(dram_bw=2, dram_latency=7, sram_kib_c=1)
    res = check_stationary(cfg, 13, 11, 10, seed, memory=mem)
    assert res.stall_cycles > 0 and res.fidelity == "cycle"
    a, b = random_operands(cfg, 13, 11, 10, seed)
    til = run_gemm(cfg, a, b, memory=mem, fidelity="tile", verify=True)
    assert til.matched is True and til.cycles == res.cycles
    assert til.out_cycles.tolist() == res.out_cycles.tolist()
    assert gemm.time_gemm(cfg, 13, 11, 10, memory=mem).cycles == res.cycles


@pytest.mark.parametrize("interpreted", [False, True])
def test_stationary_interpreted_matches(interpreted):
    cfg = SystolicConfig(rows=3, cols=2, dataflow="is", double_buffer=True, in_bits=16,
                         acc_bits=64)
    res = check_stationary(cfg, 5, 7, 8, seed=2, interpreted=interpreted,
                           memory=MemoryConfig(dram_bw=3))
    assert res.stall_cycles > 0


@pytest.mark.parametrize(("dataflow", "db"), [("os", False), *STATIONARY])
def test_conv_on_every_dataflow(dataflow, db, seed):
    from tpesim.kernels.conv import ConvLayer, conv2d_direct
    from tpesim.kernels.conv import random_operands as conv_operands

    layer = ConvLayer(in_h=6, in_w=7, in_channels=3, out_channels=4, kernel_h=3, kernel_w=2,
                      stride_h=1, stride_w=2, pad_h=1, pad_w=1, dilation_w=2, batch=2)
    cfg = SystolicConfig(rows=4, cols=3, dataflow=dataflow, double_buffer=db)
    x, w = conv_operands(layer, np.random.default_rng(seed), *cfg.in_range)
    mem = MemoryConfig(dram_bw=3, dram_latency=5)
    cyc = gemm.run_conv(cfg, layer, x, w, memory=mem)
    assert cyc.matched is True and cyc.dataflow == dataflow
    np.testing.assert_array_equal(cyc.c, conv2d_direct(x, w, layer))
    ver = gemm.run_conv(cfg, layer, x, w, fidelity="tile", memory=mem, verify=True)
    assert ver.matched is True
    np.testing.assert_array_equal(ver.c, cyc.c)
    assert (ver.cycles, ver.stall_cycles) == (cyc.cycles, cyc.stall_cycles)
    assert gemm.time_conv(cfg, layer, memory=mem).cycles == cyc.cycles


@pytest.mark.parametrize(("shape", "message"), [
    ((8, 8, 4611686018427387904), "k must be at most 2147483647 (2**31 - 1), not 4611686018427387904"),
    ((2**63, 8, 4), "m must be at most 2147483647 (2**31 - 1), not 9223372036854775808"),
    ((10**6, 10**6, 10**6), "m*n*k must be at most 2**52 (cycle and byte counts stay exact), not "
                            "1000000*1000000*1000000 = 1.000e+18"),
])
def test_huge_workloads_refused_not_wrapped(shape, message):
    """int64 cycle/MAC/byte counts must never wrap silently (issue 7 item 4)."""
    with pytest.raises(WorkloadError) as ei:
        gemm.time_gemm(CFG, *shape)
    assert str(ei.value) == message
