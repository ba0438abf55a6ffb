"""EN-T radix-4 recoding of int8 (sim.numerics.ent_digits / ent_digit_array), exhaustively: every
value reconstructs, digits stay in -2..2, and the non-zero-digit statistics are the published and
measured ones (../shared/engines.md §2.2: 747 non-zero digits over the 256 values, 2.918 per value,
distribution of 0..4 non-zero digits 1, 15, 60, 108, 72)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from tpesim.numerics import ent_digit_array, ent_digits, wrap_array

VALUES = range(-128, 128)


def test_reconstructs_every_int8():
    for v in VALUES:
        d = ent_digits(v)
        assert len(d) == 4
        assert sum(di * 4 ** i for i, di in enumerate(d)) == v, v


def test_digits_in_range():
    assert {di for v in VALUES for di in ent_digits(v)} == {-2, -1, 0, 1, 2}


def test_sign_symmetry():
    """Sign-magnitude recoding: d(-v) = -d(v) (v = -128 has no positive twin)."""
    for v in range(-127, 128):
        assert ent_digits(-v) == tuple(-d for d in ent_digits(v))
    assert ent_digits(-128) == (0, 0, 0, -2)


def test_nonzero_digit_statistics():
    counts = [sum(1 for d in ent_digits(v) if d) for v in VALUES]
    assert sum(counts) == 747
    assert round(sum(counts) / 256, 3) == 2.918
    hist = Counter(counts)
    assert tuple(hist[k] for k in range(5)) == (1, 15, 60, 108, 72)


def test_examples():
    assert ent_digits(0) == (0, 0, 0, 0)
    assert ent_digits(3) == (-1, 1, 0, 0)       # 3 = -1 + 4
    assert ent_digits(127) == (-1, 0, 0, 2)     # 127 = -1 + 2*64
    assert ent_digits(-1) == (-1, 0, 0, 0)


def test_array_matches_scalar():
    x = np.arange(-128, 128)
    got = ent_digit_array(x)
    assert got.shape == (256, 4)
    assert np.array_equal(got, np.array([ent_digits(v) for v in x]))
    grid = x.reshape(16, 4, 4)
    assert ent_digit_array(grid).shape == (16, 4, 4, 4)
    assert np.array_equal(ent_digit_array(grid).reshape(256, 4), got)
    assert np.array_equal(ent_digit_array(np.int8(-128)), np.array(ent_digits(-128)))
    assert np.array_equal(ent_digit_array(x.astype(np.int8)), got)


def test_rejects_out_of_range():
    for bad in (128, -129, 1000):
        with pytest.raises(ValueError):
            ent_digits(bad)
        with pytest.raises(ValueError):
            ent_digit_array(np.array([0, bad]))
    with pytest.raises(TypeError):
        ent_digits(1.5)
    with pytest.raises(TypeError):
        ent_digit_array(np.array([0.5]))


def test_published_13_bit_trees_overflow():
    """Why our bit-weight trees are 10 + ceil(log2 L) bits: summing each bit weight's 16 partial
    products d_b(v) * (-128) in 13 bits (the published OPT2 RTL) gets all -128 x all -128 wrong
    (-262144 for +262144) and 88 of the 256 all-v rows against an all -128 column; 14 bits get
    them all."""
    d = ent_digit_array(np.arange(-128, 128))                   # (256, 4)
    per_weight = 16 * d * -128                                  # each bit weight's tree sum
    weights = 4 ** np.arange(4)
    exact = 16 * np.arange(-128, 128) * -128
    assert np.array_equal(per_weight @ weights, exact)
    thirteen = wrap_array(per_weight, 13) @ weights
    assert thirteen[0] == -262144 and exact[0] == 262144
    assert int(np.sum(thirteen != exact)) == 88
    assert np.array_equal(wrap_array(per_weight, 14) @ weights, exact)
