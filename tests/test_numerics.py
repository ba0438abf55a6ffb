"""Two's-complement helpers (wrap, pack/unpack, the wrapped matmul) checked against Python ints."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpesim.numerics import (from_bits, matmul_wrapped, pack, to_bits, unpack, value_range, wrap,
                          wrap_array)


def py_wrap(x: int, bits: int, signed: bool) -> int:
    """Gold model, written differently from the helper: modular reduction then re-centring."""
    m = 1 << bits
    r = x % m
    if signed and r >= m // 2:
        r -= m
    return r


@pytest.mark.parametrize(("bits", "signed", "lo", "hi"), [
    (4, True, -8, 7), (4, False, 0, 15), (8, True, -128, 127), (8, False, 0, 255),
    (16, True, -32768, 32767), (16, False, 0, 65535),
    (64, True, -(1 << 63), (1 << 63) - 1), (63, False, 0, (1 << 63) - 1),
])
def test_value_range(bits, signed, lo, hi):
    assert value_range(bits, signed) == (lo, hi)


@pytest.mark.parametrize(("x", "bits", "signed", "expect"), [
    (7, 4, True, 7), (8, 4, True, -8), (-8, 4, True, -8), (-9, 4, True, 7), (15, 4, False, 15),
    (16, 4, False, 0), (-1, 4, False, 15),
    (127, 8, True, 127), (128, 8, True, -128), (-128, 8, True, -128), (-129, 8, True, 127),
    (255, 8, True, -1), (256, 8, True, 0), (255, 8, False, 255), (256, 8, False, 0),
    (-1, 8, False, 255), (32767, 16, True, 32767), (32768, 16, True, -32768),
    (65536 + 5, 16, False, 5),
    ((1 << 63) - 1, 64, True, (1 << 63) - 1), (1 << 63, 64, True, -(1 << 63)),
    (-(1 << 63) - 1, 64, True, (1 << 63) - 1), (1 << 64, 64, True, 0),
    (-1, 63, False, (1 << 63) - 1), (1 << 31, 32, True, -(1 << 31)),
])
def test_wrap_boundaries(x, bits, signed, expect):
    assert wrap(x, bits, signed) == expect
    assert py_wrap(x, bits, signed) == expect


@settings(max_examples=300, deadline=None)
@given(x=st.integers(-(1 << 70), 1 << 70), bits=st.integers(1, 64), signed=st.booleans())
def test_wrap_matches_modular_arithmetic(x, bits, signed):
    assert wrap(x, bits, signed) == py_wrap(x, bits, signed)


@settings(max_examples=200, deadline=None)
@given(xs=st.lists(st.integers(-(1 << 63), (1 << 63) - 1), min_size=1, max_size=20),
       bits=st.integers(2, 64), signed=st.booleans())
def test_wrap_array_matches_wrap(xs, bits, signed):
    if bits == 64 and not signed:
        return  # a 64-bit unsigned value does not fit the int64 the model uses
    got = wrap_array(np.array(xs, dtype=np.int64), bits, signed)
    assert [int(v) for v in got] == [py_wrap(x, bits, signed) for x in xs]


@pytest.mark.parametrize("bits", [4, 8, 16, 32, 64])
def test_bits_round_trip_at_extremes(bits):
    for signed in (True, False):
        lo, hi = value_range(bits, signed)
        for v in (lo, lo + 1, -1 if signed else 1, 0, hi - 1, hi):
            u = to_bits(v, bits)
            assert 0 <= u < (1 << bits)
            assert from_bits(u, bits, signed) == v
    assert to_bits(-(1 << (bits - 1)), bits) == 1 << (bits - 1)  # most negative: sign bit only
    assert to_bits(-1, bits) == (1 << bits) - 1


def test_pack_lane_order():
    assert pack([1, 2, 3], 8) == 0x030201  # lane 0 in the least significant bits, like Cat
    assert pack([-1, 0, -1, 0], 8) == 0x00FF00FF
    assert pack([-8, 7], 4) == 0x78
    assert pack([-32768, 1], 16) == 0x0001_8000
    assert unpack(0x030201, 3, 8, True) == [1, 2, 3]
    assert unpack(0x78, 2, 4, True) == [-8, 7]
    assert unpack(0xFF, 2, 8, False) == [255, 0]


@pytest.mark.parametrize("bits", [4, 8, 16, 32, 48, 64])
@pytest.mark.parametrize("signed", [True, False])
def test_pack_unpack_round_trip(bits, signed, seed):
    lo, hi = value_range(bits, signed)
    r = random.Random(seed)  # Python ints: a 64-bit unsigned lane does not fit numpy's int64
    lanes = [lo, hi, 0] + [r.randint(lo, hi) for _ in range(13)]
    word = pack(lanes, bits)
    assert 0 <= word < 1 << (bits * len(lanes))
    assert unpack(word, len(lanes), bits, signed) == lanes


def test_pack_wraps_out_of_range_lanes():
    # a lane wider than its field keeps only its low bits, as an RTL slice does
    assert pack([0x1FF, 0], 8) == 0xFF
    assert unpack(pack([300], 8), 1, 8, True) == [wrap(300, 8)]


def exact_matmul(a, b, acc_bits, signed):
    m, k = len(a), len(a[0])
    n = len(b[0])
    return [[py_wrap(sum(int(a[i][t]) * int(b[t][j]) for t in range(k)), acc_bits, signed)
             for j in range(n)] for i in range(m)]


@pytest.mark.parametrize(("in_bits", "signed", "acc_bits"), [
    (4, True, 8), (4, False, 8), (8, True, 16), (8, True, 17), (8, False, 16), (8, True, 32),
    (16, True, 32), (16, False, 32), (16, True, 48), (16, True, 64), (8, True, 64), (16, False, 63),
])
def test_matmul_wrapped_vs_python_ints(in_bits, signed, acc_bits, rng):
    lo, hi = value_range(in_bits, signed)
    m, k, n = 3, 37, 4
    a = rng.integers(lo, hi, size=(m, k), endpoint=True)
    b = rng.integers(lo, hi, size=(k, n), endpoint=True)
    a[0, :] = lo  # most negative (or 0 unsigned) times itself: the largest products
    b[:, 0] = lo
    a[1, :] = hi
    b[:, 1] = hi
    got = matmul_wrapped(a, b, acc_bits, signed)
    assert got.dtype == np.int64
    assert got.tolist() == exact_matmul(a.tolist(), b.tolist(), acc_bits, signed)


def test_matmul_wrapped_overflow_cases():
    # (-128)^2 * 2 = 32768 wraps to -32768 in a 16-bit accumulator
    a = np.full((1, 2), -128)
    assert matmul_wrapped(a, a.T, 16, True).tolist() == [[-32768]]
    assert matmul_wrapped(a, a.T, 17, True).tolist() == [[32768]]
    # 255*255*3 = 195075 = 0x2FA03 wraps to 0xFA03 in a 16-bit unsigned accumulator
    u = np.full((1, 3), 255)
    assert matmul_wrapped(u, u.T, 16, False).tolist() == [[0xFA03]]
    # (-32768)^2 * 2 = 2^31 wraps to -2^31 in 32 bits
    w = np.full((1, 2), -32768)
    assert matmul_wrapped(w, w.T, 32, True).tolist() == [[-(1 << 31)]]


# (64, unsigned) is left out: its results do not fit the int64 the model uses
@pytest.mark.parametrize(("acc_bits", "signed"), [(40, True), (40, False), (63, True), (63, False),
                                                  (64, True)])
def test_matmul_wrapped_beyond_int64(acc_bits, signed, rng):
    # operands this large take the exact (Python int) path: the int64 product would overflow
    a = rng.integers(-(1 << 40), 1 << 40, size=(3, 5))
    b = rng.integers(-(1 << 40), 1 << 40, size=(5, 2))
    a[0, 0] = -(1 << 62)
    b[0, 0] = -(1 << 62)
    got = matmul_wrapped(a, b, acc_bits, signed)
    assert got.tolist() == exact_matmul(a.tolist(), b.tolist(), acc_bits, signed)


def test_matmul_wrapped_64_signed_wraps_like_int64():
    a = np.array([[(1 << 31)] * 4], dtype=np.int64)  # 4 * 2^62 = 2^64 -> 0
    assert matmul_wrapped(a, a.T, 64, True).tolist() == [[0]]
    a = np.array([[(1 << 31)] * 2], dtype=np.int64)  # 2 * 2^62 = 2^63 -> -2^63
    assert matmul_wrapped(a, a.T, 64, True).tolist() == [[-(1 << 63)]]


@pytest.mark.parametrize("bits,k", [(8, 2048), (16, 5000), (25, 100), (27, 64), (31, 3)])
def test_exact_matmul_through_float64_chunks(bits, k, seed):
    """The BLAS fast path is exact: chunks of K keep every float64 partial sum an integer below
    2**53 (25-bit operands: 2**50 per product, chunks of 8; 31-bit: one product per chunk is
    2**62 > 2**53, so the int64 path); checked against Python-int products."""
    from tpesim.numerics import exact_matmul_int64

    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    a = rng.integers(lo, hi, (7, k))
    b = rng.integers(lo, hi, (k, 5))
    a[0, :] = lo
    b[:, 0] = lo                     # the largest products, all of one sign
    exact = a.astype(object) @ b.astype(object)
    assert int(np.abs(exact).max()) < 1 << 62        # the caller's precondition
    got = exact_matmul_int64(a, b, (1 << (bits - 1)) ** 2)
    assert (got.astype(object) == exact).all(), f"seed {seed}"
