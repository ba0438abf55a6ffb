"""IEEE binary16/binary32 arithmetic: the model (tpesim.fp16) against an exact integer reference, and
the RTL (tpesim.rtl.fp16) against the model under Amaranth's simulator, Icarus and Verilator."""

from __future__ import annotations

import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

import tpesim.fp16 as fp
from tpesim.errors import ConfigError
from tpesim.rtl import fp16 as rtl

# ------------------------------------------------------------------ exact reference (no floats)
# A binary value is an integer count of its format's smallest subnormal (2**-24 for binary16,
# 2**-149 for binary32). The sum of two values is then an exact integer; rounding it to the format
# is done below with integer arithmetic only, from the definition of RNE, independent of numpy's
# float types.

F16 = (5, 10)
F32 = (8, 23)


def _decode(bits: int, fmt) -> tuple[str, int]:
    """('nan'|'inf'|'num', signed value in units of the smallest subnormal); 'inf' carries +-1."""
    e_bits, m_bits = fmt
    sign = -1 if bits >> (e_bits + m_bits) else 1
    exp = (bits >> m_bits) & ((1 << e_bits) - 1)
    man = bits & ((1 << m_bits) - 1)
    if exp == (1 << e_bits) - 1:
        return ("nan", 0) if man else ("inf", sign)
    units = man if exp == 0 else (man | (1 << m_bits)) << (exp - 1)
    return "num", sign * units


def _encode(units: int, negative: bool, fmt) -> int:
    """RNE of an exact integer count of smallest subnormals (magnitude `units`) to the format."""
    e_bits, m_bits = fmt
    p = m_bits + 1
    sign = (1 << (e_bits + m_bits)) if negative else 0
    k = max(units.bit_length() - p, 0)          # bits below the format's ulp at this magnitude
    q, rem = units >> k, units & ((1 << k) - 1)
    if k and (rem > 1 << (k - 1) or (rem == 1 << (k - 1) and q & 1)):
        q += 1
    mag = q << k
    max_units = ((1 << p) - 1) << ((1 << e_bits) - 2 - 1)    # max normal / smallest subnormal
    if mag > max_units:
        return sign | (((1 << e_bits) - 1) << m_bits)
    if mag < 1 << m_bits:                        # subnormal (or zero): the fraction is the count
        return sign | mag
    exp = mag.bit_length() - p + 1
    return sign | (exp << m_bits) | ((mag >> (exp - 1)) & ((1 << m_bits) - 1))


def _nan(fmt) -> int:
    e_bits, m_bits = fmt
    return (((1 << e_bits) - 1) << m_bits) | (1 << (m_bits - 1))


def ref_add(a: int, b: int, fmt) -> int:
    ka, va = _decode(a, fmt)
    kb, vb = _decode(b, fmt)
    e_bits, m_bits = fmt
    inf = ((1 << e_bits) - 1) << m_bits
    sign_bit = 1 << (e_bits + m_bits)
    if "nan" in (ka, kb) or (ka == kb == "inf" and va != vb):
        return _nan(fmt)
    if ka == "inf" or kb == "inf":
        return inf | (sign_bit if (va if ka == "inf" else vb) < 0 else 0)
    s = va + vb
    if s == 0:
        # Exact zero: -0 only for -0 + -0 (IEEE 754 6.3, round to nearest).
        return sign_bit if (a & sign_bit and b & sign_bit) else 0
    return _encode(abs(s), s < 0, fmt)


def ref_pow2(x: int, e: int, fmt) -> int:
    kx, vx = _decode(x, fmt)
    if kx == "nan":
        return _nan(fmt)
    if kx == "inf" or vx == 0:
        return x
    if e >= 0:
        return _encode(abs(vx) << e, vx < 0, fmt)
    # |x| / 2^-e in units of the smallest subnormal: the quotient rounded to nearest even at the
    # unit (a normal result is an exact integer count; only a result below the normals rounds)
    q, rem = abs(vx) >> -e, abs(vx) & ((1 << -e) - 1)
    half = 1 << (-e - 1)
    if rem > half or (rem == half and q & 1):
        q += 1
    return _encode(q, vx < 0, fmt)


def ref_to32(x: int) -> int:
    kx, vx = _decode(x, F16)
    if kx == "nan":
        return _nan(F32)
    if kx == "inf":
        return 0x7F800000 | (0x80000000 if vx < 0 else 0)
    if vx == 0:
        return (x & 0x8000) << 16
    # 2**-24 = 2**125 units of 2**-149
    return _encode(abs(vx) << 125, vx < 0, F32)


def ref_from_float(f: float, fmt) -> int:
    """RNE of a float64 value to the format, by exact rational arithmetic."""
    e_bits, m_bits = fmt
    sign_bit = 1 << (e_bits + m_bits)
    if np.isnan(f):
        return _nan(fmt)
    neg = np.signbit(f)
    if abs(f) == float("inf"):
        return (((1 << e_bits) - 1) << m_bits) | (sign_bit if neg else 0)
    emin_sub = 2 - (1 << (e_bits - 1)) - m_bits
    # Scale so that the format's smallest subnormal is 1, then by 2**60 more so every float64 in
    # range is an integer: RNE of that integer at k + 60 dropped bits is the format's RNE.
    scaled = Fraction(abs(f)) / Fraction(2) ** (emin_sub - 60)
    assert scaled.denominator == 1 or abs(f) < 2.0 ** (emin_sub - 60)
    n = scaled.numerator // scaled.denominator
    sticky = scaled.numerator % scaled.denominator != 0
    p = m_bits + 1
    k = max(n.bit_length() - p, 60)            # never keep bits below the subnormal unit
    q, rem = n >> k, n & ((1 << k) - 1)
    half = 1 << (k - 1)
    if rem > half or (rem == half and (sticky or q & 1)):
        q += 1
    r = _encode(q << (k - 60), False, fmt)
    return r | (sign_bit if neg else 0)


def _bit_length(x: np.ndarray) -> np.ndarray:
    """int.bit_length element-wise for 0 <= x < 2**53 (frexp is exact there: x = f * 2**e,
    0.5 <= f < 1)."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64)


def _ref16_add_vec(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ref_add for binary16 vectorised over int64 (the exact sum fits: |s| < 2**42 units)."""
    def dec(x):
        x = x.astype(np.int64)
        exp, man = (x >> 10) & 31, x & 1023
        units = np.where(exp == 0, man, (man | 1024) << np.maximum(exp - 1, 0))
        return np.where(x >> 15, -units, units), exp == 31, man
    va, sa_sp, ma = dec(a)
    vb, sb_sp, mb = dec(b)
    s = va + vb
    mag = np.abs(s)
    k = np.maximum(_bit_length(mag) - 11, 0)
    q, rem = mag >> k, mag & ((np.int64(1) << k) - 1)
    half = np.where(k > 0, np.int64(1) << np.maximum(k - 1, 0), 0)
    q = q + ((k > 0) & ((rem > half) | ((rem == half) & (q & 1 == 1))))
    m2 = q << k
    over = m2 > (2047 << 29)
    e2 = _bit_length(m2) - 10
    normal = np.where(m2 >= 1024, (e2 << 10) | ((m2 >> np.maximum(e2 - 1, 0)) & 1023), m2)
    out = np.where(over, 0x7C00, normal) | np.where(s < 0, 0x8000, 0)
    zero = s == 0
    out = np.where(zero, np.where((a >> 15 == 1) & (b >> 15 == 1), 0x8000, 0), out)
    inf_a, inf_b = sa_sp & (ma == 0), sb_sp & (mb == 0)
    nan_in = (sa_sp & (ma != 0)) | (sb_sp & (mb != 0))
    out = np.where(inf_a, np.where(a >> 15 == 1, 0xFC00, 0x7C00), out)
    out = np.where(inf_b & ~inf_a, np.where(b >> 15 == 1, 0xFC00, 0x7C00), out)
    opposite_inf = inf_a & inf_b & ((a >> 15) != (b >> 15))
    out = np.where(nan_in | opposite_inf, 0x7E00, out)
    return out.astype(np.uint16)


ALL16 = np.arange(1 << 16, dtype=np.uint16)


def _corner16() -> list[int]:
    """Every class a binary16 adder has to get right: zeros, subnormals (smallest, largest),
    normals at the edges of the range and around 1, max normal, inf, NaNs (canonical, signalling,
    negative), both signs of each."""
    pos = [0x0000, 0x0001, 0x0002, 0x0003, 0x01FF, 0x0200, 0x03FE, 0x03FF, 0x0400, 0x0401, 0x07FF,
           0x0800, 0x3BFF, 0x3C00, 0x3C01, 0x3E00, 0x4000, 0x5800, 0x63FF, 0x6400, 0x7800, 0x7BFE,
           0x7BFF, 0x7C00, 0x7C01, 0x7E00, 0x7FFF, 0x7D55]
    return pos + [p | 0x8000 for p in pos]


def _corner32() -> list[int]:
    pos = [0x00000000, 0x00000001, 0x00000003, 0x003FFFFF, 0x00400000, 0x007FFFFF, 0x00800000,
           0x00800001, 0x3F7FFFFF, 0x3F800000, 0x3F800001, 0x3FFFFFFF, 0x4B000000, 0x4B7FFFFF,
           0x7F000000, 0x7F7FFFFE, 0x7F7FFFFF, 0x7F800000, 0x7F800001, 0x7FC00000, 0x7FFFFFFF]
    return pos + [p | 0x80000000 for p in pos]


def _near_pairs(rng, n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Random pairs whose exponents are close (alignment, cancellation and ties are exercised;
    fully random pairs mostly differ by many binades)."""
    dt = np.uint16 if width == 16 else np.uint32
    a = rng.integers(0, 1 << width, n, dtype=np.uint64)
    spread = 1 << (width - 6)
    b = (a.astype(np.int64) + rng.integers(-spread, spread, n)) % (1 << width)
    flip = rng.integers(0, 2, n).astype(np.uint64) << np.uint64(width - 1)
    return a.astype(dt), (b.astype(np.uint64) ^ flip).astype(dt)


# ------------------------------------------------------------------ model vs the exact reference

def test_reference_self_check():
    """The integer reference itself on hand-derived values (so the sweeps below test the model
    against something known to be right)."""
    assert ref_add(0x3C00, 0x3C00, F16) == 0x4000            # 1 + 1 = 2
    assert ref_add(0x3C00, 0x1000, F16) == 0x3C00            # 1 + 2**-11: a tie, to even (1)
    assert ref_add(0x3C01, 0x1000, F16) == 0x3C02            # 1+2**-10 + 2**-11: tie, to even up
    assert ref_add(0x7BFF, 0x4C00, F16) == 0x7C00            # 65504 + 16 = 65520: tie -> inf
    assert ref_add(0x7BFF, 0x4BFF, F16) == 0x7BFF            # 65504 + 15.99 -> 65504
    assert ref_add(0x0400, 0x8001, F16) == 0x03FF            # 2**-14 - 2**-24: subnormal out
    assert _ref16_add_vec(np.array([0x3C00, 0x7BFF, 0x0400]),
                          np.array([0x1000, 0x4C00, 0x8001])).tolist() == [0x3C00, 0x7C00, 0x03FF]


def test_add_exhaustive_a_sampled_b(rng):
    """Every binary16 a against 64 values of b (the 56 corner values and 8 random patterns): the
    model equals the exact integer reference bit for bit (4.2 M sums)."""
    bs = np.concatenate([np.array(_corner16(), dtype=np.uint16),
                         rng.integers(0, 1 << 16, 8, dtype=np.uint16)])
    a = np.tile(ALL16, len(bs))
    b = np.repeat(bs, len(ALL16))
    got = fp.add(a, b)
    want = _ref16_add_vec(a, b)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]


def test_add_vector_reference_matches_scalar(rng):
    """The vectorised reference equals the scalar one (random and near-exponent pairs)."""
    a, b = _near_pairs(rng, 3000, 16)
    a = np.concatenate([a, rng.integers(0, 1 << 16, 3000, dtype=np.uint16)])
    b = np.concatenate([b, rng.integers(0, 1 << 16, 3000, dtype=np.uint16)])
    vec = _ref16_add_vec(a, b)
    assert all(int(v) == ref_add(int(x), int(y), F16) for x, y, v in zip(a, b, vec))


@pytest.mark.regress
def test_add_exhaustive_regress(rng):
    """Every a against 1,024 random b (67 M sums)."""
    bs = rng.integers(0, 1 << 16, 1024, dtype=np.uint16)
    for chunk in np.array_split(bs, 64):
        a = np.tile(ALL16, len(chunk))
        b = np.repeat(chunk, len(ALL16))
        assert np.array_equal(fp.add(a, b), _ref16_add_vec(a, b))


def test_add_commutes_and_corners_pairwise():
    """All pairs of corner values, both orders, against the scalar reference."""
    c = _corner16()
    for x in c:
        for y in c:
            assert int(fp.add(x, y)) == ref_add(x, y, F16), (hex(x), hex(y))


def test_add_signed_zeros():
    assert fp.add(0x0000, 0x0000) == 0x0000
    assert fp.add(0x8000, 0x8000) == 0x8000          # -0 + -0 = -0
    assert fp.add(0x0000, 0x8000) == 0x0000
    assert fp.add(0x8000, 0x0000) == 0x0000
    assert fp.add(0x4248, 0xC248) == 0x0000          # x + -x = +0 under RNE
    assert fp.add(0x8001, 0x0001) == 0x0000
    assert fp.add(0x8000, 0x3C00) == 0x3C00          # -0 is an additive identity


def test_add_inf_rules():
    assert fp.add(fp.POS_INF, fp.NEG_INF) == fp.NAN
    assert fp.add(fp.NEG_INF, fp.POS_INF) == fp.NAN
    assert fp.add(fp.POS_INF, fp.POS_INF) == fp.POS_INF
    assert fp.add(fp.NEG_INF, fp.NEG_INF) == fp.NEG_INF
    assert fp.add(fp.POS_INF, 0xFBFF) == fp.POS_INF
    assert fp.add(0x3C00, fp.NEG_INF) == fp.NEG_INF


def test_add_nan_is_canonical():
    """Every NaN pattern (both signs, every payload) as either operand gives 0x7E00."""
    nans = ALL16[fp.is_nan(ALL16)]
    assert nans.size == 2 * 1023
    for other in (0x0000, 0x3C00, fp.POS_INF, fp.NEG_INF, 0xFE01):
        assert np.all(fp.add(nans, other) == fp.NAN)
        assert np.all(fp.add(other, nans) == fp.NAN)


def test_add_overflow_to_inf():
    assert fp.add(fp.MAX_NORMAL, fp.MAX_NORMAL) == fp.POS_INF
    assert fp.add(0xFBFF, 0xFBFF) == fp.NEG_INF
    assert fp.add(fp.MAX_NORMAL, 0x4C00) == fp.POS_INF        # 65504 + 16 = 65520, the tie: inf
    assert fp.add(fp.MAX_NORMAL, 0x4BFF) == fp.MAX_NORMAL     # just below the tie


def test_add_subnormals_in_and_out():
    assert fp.add(0x0001, 0x0001) == 0x0002                   # 2**-24 + 2**-24
    assert fp.add(0x03FF, 0x0001) == 0x0400                   # largest subnormal + 1 ulp: normal
    assert fp.add(0x0400, 0x8001) == 0x03FF                   # normal - ulp: subnormal
    assert fp.add(0x0401, 0x8400) == 0x0001                   # cancellation to the smallest
    assert fp.add(0x3C00, 0x0001) == 0x3C00                   # far below the ulp of 1


def test_add_ties_to_even():
    assert fp.add(0x3C00, 0x1000) == 0x3C00     # 1 + 2**-11 (half an ulp): stays at even 1
    assert fp.add(0x3C01, 0x1000) == 0x3C02     # odd + half ulp: up to even
    assert fp.add(0x3C00, 0x1001) == 0x3C01     # just above half: up
    assert fp.add(0x4000, 0x8C00) == 0x4000     # 2 - 2**-12: nearer 2 than 2 - 2**-10
    assert fp.add(0x4000, 0x9000) == 0x4000     # 2 - 2**-11: tie of 0x3FFF and 2, to even (2)
    assert fp.add(0x3FFE, 0x1000) == 0x3FFE     # even + half an ulp: stays


POW2_E = range(fp.EXP_MIN, fp.EXP_STEPS)      # -4 .. 3


def test_pow2_exhaustive():
    """All 65,536 patterns x e = -4..3 against the exact reference (e < 0: RNE below normals)."""
    for e in POW2_E:
        got = fp.pow2(ALL16, e)
        want = np.array([ref_pow2(int(x), e, F16) for x in ALL16], dtype=np.uint16)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (e, [(hex(ALL16[i]), hex(got[i]), hex(want[i])) for i in bad[:5]])


# The published LUT Tensor Core RTL scales by adding b to the exponent field; engines.md 3.2 lists
# where that is wrong. Each of those corners, named:
def test_pow2_zero_stays_zero():
    for e in POW2_E:
        assert fp.pow2(0x0000, e) == 0x0000     # not 2**-14 * 2**e
        assert fp.pow2(0x8000, e) == 0x8000


def test_pow2_subnormals_scale_exactly():
    assert fp.pow2(0x0001, 3) == 0x0008         # 2**-24 * 8 = 2**-21, still subnormal
    assert fp.pow2(0x0200, 1) == 0x0400         # 2**-15 * 2 = 2**-14, the smallest normal
    assert fp.pow2(0x03FF, 1) == 0x07FE         # largest subnormal * 2: a normal, exact
    assert fp.pow2(0x83FF, 3) == 0x8FFE         # sign kept
    assert fp.to_float(fp.pow2(0x0155, 2)) == fp.to_float(0x0155) * 4


def test_pow2_halving_rounds_to_nearest_even():
    """x * 2^-1 (the LUT engine's halving for signed, unsigned and ternary weights): exact for a
    normal result, RNE below the normals, ties to even, sign kept."""
    assert fp.pow2(0x3C00, -1) == 0x3800        # 1 / 2
    assert fp.pow2(0x0800, -1) == 0x0400        # 2^-13 / 2 = 2^-14, the smallest normal
    assert fp.pow2(0x07FF, -1) == 0x0400        # (2^-14)(2 - 2^-10) / 2: 0x3FF.8 rounds up (odd)
    assert fp.pow2(0x07FE, -1) == 0x03FF        # exact: 0x3FF
    assert fp.pow2(0x0401, -1) == 0x0200        # 0x200.8: a tie, to even (0x200)
    assert fp.pow2(0x0403, -1) == 0x0202        # 0x201.8: a tie, to even (0x202)
    assert fp.pow2(0x0001, -1) == 0x0000        # 2^-25: a tie between 0 and 2^-24, to even 0
    assert fp.pow2(0x0003, -1) == 0x0002        # 1.5 units: tie, to even 2
    assert fp.pow2(0x8003, -1) == 0x8002 and fp.pow2(0x8001, -1) == 0x8000   # -0 keeps the sign
    assert fp.pow2(0x0007, -2) == 0x0002        # 1.75 units: nearest 2
    assert fp.pow2(0x7BFF, -4) == 0x6BFF        # a normal result: exact


def test_pow2_overflow_is_inf_not_nan():
    assert fp.pow2(fp.MAX_NORMAL, 1) == fp.POS_INF
    assert fp.pow2(0xFBFF, 3) == fp.NEG_INF
    assert fp.pow2(0x7800, 1) == fp.POS_INF     # 32768 * 2
    assert fp.pow2(0x7400, 1) == 0x7800         # 16384 * 2 = 32768 still finite


def test_pow2_inf_unchanged():
    for e in POW2_E:
        assert fp.pow2(fp.POS_INF, e) == fp.POS_INF
        assert fp.pow2(fp.NEG_INF, e) == fp.NEG_INF


def test_pow2_nan_is_canonical():
    nans = ALL16[fp.is_nan(ALL16)]
    for e in POW2_E:
        assert np.all(fp.pow2(nans, e) == fp.NAN)   # not 0x0200


def test_neg():
    assert np.array_equal(fp.neg(ALL16), ALL16 ^ 0x8000)
    assert fp.neg(0x0000) == 0x8000 and fp.neg(fp.NAN) == 0xFE00
    assert fp.add(fp.neg(fp.NAN), 0x3C00) == fp.NAN       # the next operation canonicalises


def test_to32_exhaustive():
    got = fp.to32(ALL16)
    want = np.array([ref_to32(int(x)) for x in ALL16], dtype=np.uint32)
    assert np.array_equal(got, want)


def test_add32_against_reference(rng):
    a, b = _near_pairs(rng, 4000, 32)
    ra = rng.integers(0, 1 << 32, 2000, dtype=np.uint32)
    rb = rng.integers(0, 1 << 32, 2000, dtype=np.uint32)
    c = np.array(_corner32(), dtype=np.uint32)
    ca, cb = np.repeat(c, len(c)), np.tile(c, len(c))
    a, b = np.concatenate([a, ra, ca]), np.concatenate([b, rb, cb])
    got = fp.add32(a, b)
    for x, y, g in zip(a.tolist(), b.tolist(), got.tolist()):
        assert g == ref_add(x, y, F32), (hex(x), hex(y), hex(g))


def test_add32_corners():
    assert fp.add32(0x7F7FFFFF, 0x7F7FFFFF) == fp.POS_INF32
    assert fp.add32(fp.POS_INF32, fp.NEG_INF32) == fp.NAN32
    assert fp.add32(0x80000000, 0x80000000) == 0x80000000
    assert fp.add32(0x3F800000, 0xBF800000) == 0x00000000
    assert fp.add32(0x00800000, 0x80000001) == 0x007FFFFF
    assert fp.add32(0x3F800000, 0x33800000) == 0x3F800000     # 1 + 2**-24: tie to even


def test_pow2_32(rng):
    x = np.concatenate([np.array(_corner32(), dtype=np.uint32),
                        rng.integers(0, 1 << 32, 3000, dtype=np.uint32)])
    for e in POW2_E:
        got = fp.pow2_32(x, e)
        assert got.tolist() == [ref_pow2(v, e, F32) for v in x.tolist()]


def test_from_float_rne(rng):
    """from_float against exact rational rounding: every binary16 value, every midpoint between
    neighbours (the ties) and the float64 values just either side of each midpoint."""
    finite = ALL16[(ALL16 & 0x7C00) != 0x7C00]
    vals = fp.to_float(finite)
    pos = np.sort(vals[vals >= 0])
    mids = (pos[:-1] + pos[1:]) / 2
    mids = np.concatenate([mids, [65520.0, 2.0 ** -25, 3 * 2.0 ** -26]])
    probe = np.concatenate([vals, mids, -mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf),
                            rng.normal(0, 100, 2000), [np.inf, -np.inf, 1e9, -0.0, 1e-30]])
    got = fp.from_float(probe)
    for f, g in zip(probe.tolist(), got.tolist()):
        assert g == ref_from_float(f, F16), (f, hex(g))
    assert fp.from_float(np.nan) == fp.NAN
    assert np.array_equal(fp.from_float(fp.to_float(finite)), finite)   # round trip


def test_from_float32_rne(rng):
    probe = np.concatenate([rng.normal(0, 1e3, 500), rng.normal(0, 1e-40, 200),
                            np.nextafter(np.float64(2.0 ** -149) / 2, [0, 1]),
                            [3.4028235677973366e38, 3.4028235677973366e38 * (1 + 2 ** -25), -0.0]])
    got = fp.from_float32(probe)
    for f, g in zip(probe.tolist(), got.tolist()):
        assert g == ref_from_float(f, F32), (f, hex(g))
    assert fp.to_float32(fp.from_float32(1.5)) == 1.5


def test_scalar_in_scalar_out():
    r = fp.add(0x3C00, 0x3C00)
    assert np.ndim(r) == 0 and r == 0x4000
    assert fp.add(np.array([0x3C00]), 0x3C00).shape == (1,)


@pytest.mark.parametrize("call, message", [
    (lambda: fp.pow2(0x3C00, 4), "pow2 exponent must be in -4..3, not 4"),
    (lambda: fp.pow2(0x3C00, -5), "pow2 exponent must be in -4..3, not -5"),
    (lambda: fp.pow2(0x3C00, 1.0), "pow2 exponent must be an integer, not dtype float64"),
    (lambda: fp.add(0x10000, 0), "fp bit patterns must be in 0..65535, not 65536"),
    (lambda: fp.add(-1, 0), "fp bit patterns must be in 0..65535, not -1"),
    (lambda: fp.add(1.5, 0), "fp bit patterns must be integers, not dtype float64"),
    (lambda: fp.add32(1 << 32, 0), "fp bit patterns must be in 0..4294967295, not 4294967296"),
])
def test_bad_input(call, message):
    with pytest.raises(ConfigError) as exc:
        call()
    assert str(exc.value) == message


# ------------------------------------------------------------------ RTL vs model (Amaranth sim)

def _simulate(dut, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
    """Drive the combinational `dut` with each input vector in turn; its settled output."""
    out = []
    names = list(inputs)
    cols = [np.asarray(inputs[n]).tolist() for n in names]

    async def tb(ctx):
        for row in zip(*cols):
            for n, v in zip(names, row):
                ctx.set(getattr(dut, n), v)
            out.append(ctx.get(getattr(dut, output)))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    return np.array(out, dtype=np.uint64)


def _assert_equal(got, want, *ins):
    want = np.asarray(want).astype(np.uint64)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [tuple(hex(int(x[i])) for x in ins) + (hex(int(got[i])), hex(int(want[i])))
                           for i in bad[:5]]


def test_rtl_fp16_add(rng):
    """Fp16Add = fp.add on every pair of corner values and 3,000 random / near-exponent pairs."""
    c = np.array(_corner16(), dtype=np.uint16)
    a1, b1 = _near_pairs(rng, 1500, 16)
    a = np.concatenate([np.repeat(c, len(c)), a1, rng.integers(0, 1 << 16, 1500, dtype=np.uint16)])
    b = np.concatenate([np.tile(c, len(c)), b1, rng.integers(0, 1 << 16, 1500, dtype=np.uint16)])
    _assert_equal(_simulate(rtl.Fp16Add(), {"a": a, "b": b}, "s"), fp.add(a, b), a, b)


def test_rtl_fp32_add(rng):
    c = np.array(_corner32(), dtype=np.uint32)
    a1, b1 = _near_pairs(rng, 1200, 32)
    a = np.concatenate([np.repeat(c, len(c)), a1, rng.integers(0, 1 << 32, 800, dtype=np.uint32)])
    b = np.concatenate([np.tile(c, len(c)), b1, rng.integers(0, 1 << 32, 800, dtype=np.uint32)])
    _assert_equal(_simulate(rtl.Fp32Add(), {"a": a, "b": b}, "s"), fp.add32(a, b), a, b)


def test_rtl_fp16_pow2_corners(rng):
    """Every corner class x every e in the Amaranth simulator (the exhaustive sweep runs on Icarus
    below)."""
    x = np.concatenate([np.array(_corner16(), dtype=np.uint16),
                        rng.integers(0, 1 << 16, 500, dtype=np.uint16)])
    xs, es = np.repeat(x, 4), np.tile(np.arange(4), len(x))
    _assert_equal(_simulate(rtl.Fp16Pow2(), {"x": xs, "e": es}, "y"), fp.pow2(xs, es), xs, es)


def test_rtl_fp16_pow2_signed_corners(rng):
    """The signed-step scaler (e in -4..3: the halving of the LUT engine's signed, unsigned and
    ternary formats) on every corner class, every e, and random patterns."""
    x = np.concatenate([np.array(_corner16(), dtype=np.uint16),
                        rng.integers(0, 1 << 16, 400, dtype=np.uint16)])
    e = np.arange(fp.EXP_MIN, fp.EXP_STEPS)
    xs, es = np.repeat(x, len(e)), np.tile(e, len(x))
    _assert_equal(_simulate(rtl.Fp16Pow2Signed(), {"x": xs, "e": es}, "y"), fp.pow2(xs, es), xs, es)


def test_rtl_fp16_halving_exhaustive():
    """Fp16Pow2Signed at e = -1 on all 65,536 patterns in Amaranth's simulator, against the exact
    integer reference (RNE of x/2 below the normals: the corner published RTLs get wrong)."""
    got = _simulate(rtl.Fp16Pow2Signed(), {"x": ALL16, "e": np.full(len(ALL16), -1)}, "y")
    want = np.array([ref_pow2(int(x), -1, F16) for x in ALL16], dtype=np.uint16)
    _assert_equal(got, want, ALL16)


def test_rtl_fp32_pow2(rng):
    x = np.concatenate([np.array(_corner32(), dtype=np.uint32),
                        rng.integers(0, 1 << 32, 400, dtype=np.uint32)])
    xs, es = np.repeat(x, 4), np.tile(np.arange(4), len(x))
    _assert_equal(_simulate(rtl.Fp32Pow2(), {"x": xs, "e": es}, "y"), fp.pow2_32(xs, es), xs, es)
    e = np.arange(fp.EXP_MIN, fp.EXP_STEPS)
    xs, es = np.repeat(x, len(e)), np.tile(e, len(x))
    _assert_equal(_simulate(rtl.Fp32Pow2Signed(), {"x": xs, "e": es}, "y"), fp.pow2_32(xs, es),
                  xs, es)


def test_rtl_fp16_to_fp32_corners(rng):
    x = np.concatenate([np.array(_corner16(), dtype=np.uint16),
                        rng.integers(0, 1 << 16, 500, dtype=np.uint16)])
    _assert_equal(_simulate(rtl.Fp16ToFp32(), {"x": x}, "y"), fp.to32(x), x)


def test_rtl_bad_block_name():
    with pytest.raises(ConfigError, match="block must be one of fp16_add, .*, not 'fp8_add'"):
        rtl.to_verilog("fp8_add")


# ------------------------------------------------------------------ Verilog under Icarus / Verilator
# A plain Verilog testbench reads input vectors from a hex file, applies one per time step and
# writes the output: the generated Verilog is proven to compile and to compute the model's values
# in both simulators (the exhaustive pow2 and fp16 -> fp32 sweeps run here, where they are cheap).

def _tool(name: str) -> str:
    venv = Path(sys.executable).parent / name
    path = str(venv) if venv.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"no {name} (run `make setup`)")
    return path


def _testbench(block: str, ports: dict[str, int], out: tuple[str, int], n: int) -> str:
    names = list(ports)
    total = sum(ports.values())
    decl = "\n".join(f"  reg [{w - 1}:0] {p};" for p, w in ports.items())
    conn = ", ".join(f".{p}({p})" for p in names + [out[0]])
    return f"""module tb;
  reg [{total - 1}:0] mem [0:{n - 1}];
{decl}
  wire [{out[1] - 1}:0] {out[0]};
  integer i, fd;
  {block} dut({conn});
  initial begin
    $readmemh("in.hex", mem);
    fd = $fopen("out.hex", "w");
    for (i = 0; i < {n}; i = i + 1) begin
      {{{", ".join(names)}}} = mem[i]; #1;
      $fdisplay(fd, "%h", {out[0]});
    end
    $fclose(fd);
    $finish;
  end
endmodule
"""


def _run_hdl(sim: str, block: str, ports: dict[str, int], out: tuple[str, int],
             vectors: dict[str, np.ndarray], workdir: Path) -> np.ndarray:
    """Run `block`'s Verilog over the input vectors in Icarus or Verilator; the outputs."""
    n = len(next(iter(vectors.values())))
    packed = np.zeros(n, dtype=object)
    shift = 0
    for p in reversed(list(ports)):                 # the first port is the top of the concat
        packed = packed + (np.asarray(vectors[p]).astype(object) << shift)
        shift += ports[p]
    digits = (shift + 3) // 4
    (workdir / "in.hex").write_text("\n".join(f"{int(v):0{digits}x}" for v in packed) + "\n")
    (workdir / f"{block}.v").write_text(rtl.to_verilog(block))
    (workdir / "tb.v").write_text(_testbench(block, ports, out, n))
    if sim == "icarus":
        subprocess.run([_tool("iverilog"), "-g2012", "-o", "tb.vvp", "tb.v", f"{block}.v"],
                       cwd=workdir, check=True, capture_output=True)
        subprocess.run([_tool("vvp"), "-n", "tb.vvp"], cwd=workdir, check=True, capture_output=True)
    else:
        subprocess.run([_tool("verilator"), "--binary", "--timing", "-Wno-fatal", "-Wno-WIDTHEXPAND",
                        "--top-module", "tb", "-o", "vtb", "tb.v", f"{block}.v"],
                       cwd=workdir, check=True, capture_output=True)
        subprocess.run([str(workdir / "obj_dir" / "vtb")], cwd=workdir, check=True,
                       capture_output=True)
    text = (workdir / "out.hex").read_text().split()
    assert len(text) == n
    return np.array([int(t, 16) for t in text], dtype=np.uint64)


@pytest.mark.cosim
@pytest.mark.parametrize("block", ["fp16_add", "fp32_add", "fp16_pow2", "fp32_pow2", "fp16_pow2s",
                                   "fp32_pow2s", "fp16_to_fp32"])
def test_verilator_lint(block, tmp_path):
    path = tmp_path / f"{block}.v"
    path.write_text(rtl.to_verilog(block))
    # WIDTHEXPAND: Amaranth relies on Verilog's context-determined widening in sums.
    r = subprocess.run([_tool("verilator"), "--lint-only", "-Wno-WIDTHEXPAND", str(path)],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr


@pytest.mark.cosim
def test_icarus_fp16_pow2_exhaustive(tmp_path):
    """The generated Verilog of Fp16Pow2 equals fp.pow2 on all 65,536 x 4 inputs under Icarus."""
    xs, es = np.tile(ALL16, 4), np.repeat(np.arange(4), len(ALL16))
    got = _run_hdl("icarus", "fp16_pow2", {"e": 2, "x": 16}, ("y", 16), {"x": xs, "e": es}, tmp_path)
    _assert_equal(got, fp.pow2(xs, es), xs, es)


@pytest.mark.cosim
def test_icarus_fp16_pow2_signed_exhaustive(tmp_path):
    """The generated Verilog of the signed-step Fp16Pow2 on all 65,536 x 8 inputs (e = -4..3)
    under Icarus, against the exact integer reference."""
    e = np.arange(fp.EXP_MIN, fp.EXP_STEPS)
    xs, es = np.tile(ALL16, len(e)), np.repeat(e, len(ALL16))
    got = _run_hdl("icarus", "fp16_pow2s", {"e": 3, "x": 16}, ("y", 16), {"x": xs, "e": es & 7},
                   tmp_path)
    want = np.array([ref_pow2(x, ev, F16) for x, ev in zip(xs.tolist(), es.tolist())], np.uint16)
    _assert_equal(got, want, xs, es)


@pytest.mark.cosim
def test_icarus_fp16_to_fp32_exhaustive(tmp_path):
    got = _run_hdl("icarus", "fp16_to_fp32", {"x": 16}, ("y", 32), {"x": ALL16}, tmp_path)
    _assert_equal(got, fp.to32(ALL16), ALL16)


@pytest.mark.cosim
def test_icarus_fp_add(rng, tmp_path):
    """Fp16Add and Fp32Add Verilog under Icarus: corner pairs and random / near-exponent pairs."""
    c = np.array(_corner16(), dtype=np.uint16)
    a1, b1 = _near_pairs(rng, 20000, 16)
    a = np.concatenate([np.repeat(c, len(c)), a1, rng.integers(0, 1 << 16, 20000, dtype=np.uint16)])
    b = np.concatenate([np.tile(c, len(c)), b1, rng.integers(0, 1 << 16, 20000, dtype=np.uint16)])
    got = _run_hdl("icarus", "fp16_add", {"a": 16, "b": 16}, ("s", 16), {"a": a, "b": b}, tmp_path)
    _assert_equal(got, fp.add(a, b), a, b)
    a, b = _near_pairs(rng, 10000, 32)
    (tmp_path / "32").mkdir()
    got = _run_hdl("icarus", "fp32_add", {"a": 32, "b": 32}, ("s", 32), {"a": a, "b": b},
                   tmp_path / "32")
    _assert_equal(got, fp.add32(a, b), a, b)


# Verilator C++ sweeps: the generated adder against IEEE arithmetic done by the C++ compiler
# (binary16: the float sum of the two operands rounded to _Float16, exact by the double-rounding
# bound in sim/fp16.py; binary32: the double sum rounded to float), an oracle independent of numpy
# and of tpesim.fp16. Any mismatch is printed with both values.
_HARNESS = r"""
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "V{block}.h"
#include "verilated.h"

static uint16_t ref16(uint16_t a, uint16_t b) {{
    _Float16 ha, hb;
    memcpy(&ha, &a, 2);
    memcpy(&hb, &b, 2);
    _Float16 s = (_Float16)((float)ha + (float)hb);
    uint16_t r;
    memcpy(&r, &s, 2);
    return (r & 0x7FFF) > 0x7C00 ? 0x7E00 : r;
}}

static uint32_t ref32(uint32_t a, uint32_t b) {{
    float fa, fb;
    memcpy(&fa, &a, 4);
    memcpy(&fb, &b, 4);
    float s = (float)((double)fa + (double)fb);
    uint32_t r;
    memcpy(&r, &s, 4);
    return (r & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC00000u : r;
}}

static uint64_t bad = 0, n = 0;
static void check(V{block}& dut, uint32_t a, uint32_t b) {{
    dut.a = a;
    dut.b = b;
    dut.eval();
    uint32_t want = {ref}(a, b);
    ++n;
    if (dut.s != want) {{
        if (bad < 10) printf("MISMATCH a=%x b=%x rtl=%x ieee=%x\n", a, b, (unsigned)dut.s, want);
        ++bad;
    }}
}}

int main(int argc, char** argv) {{
    VerilatedContext ctx;
    V{block} dut(&ctx);
    // argv: binary16: a_start a_step (every b for each a); binary32: a count of random pairs
    uint64_t x = 88172645463325252ull;      // xorshift64
    auto next = [&]() {{ x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }};
    if ({width} == 16) {{
        uint32_t a0 = strtoul(argv[1], 0, 0), step = strtoul(argv[2], 0, 0);
        for (uint32_t a = a0; a < 65536; a += step)
            for (uint32_t b = 0; b < 65536; ++b) check(dut, a, b);
    }} else {{
        uint64_t count = strtoull(argv[1], 0, 0);
        for (uint64_t i = 0; i < count; ++i) {{
            uint32_t a = (uint32_t)next(), b;
            // half the pairs within 2**20 ulps of each other (alignment, cancellation, ties)
            b = (i & 1) ? (uint32_t)next() : ((a + (uint32_t)(next() % (1u << 21)) - (1u << 20))
                                             ^ ((uint32_t)(next() & 1) << 31));
            check(dut, a, b);
        }}
    }}
    printf("checked %llu pairs, %llu mismatches\n", (unsigned long long)n,
           (unsigned long long)bad);
    return bad != 0;
}}
"""


def _cpp_sweep(block: str, width: int, args: list[str], workdir: Path) -> str:
    (workdir / f"{block}.v").write_text(rtl.to_verilog(block))
    (workdir / "harness.cpp").write_text(_HARNESS.format(
        block=block, width=width, ref="ref16" if width == 16 else "ref32"))
    subprocess.run([_tool("verilator"), "--cc", f"{block}.v", "--exe", "harness.cpp", "--build",
                    "-Wno-fatal", "-Wno-WIDTHEXPAND", "-MAKEFLAGS", "OPT_FAST=-O2"],
                   cwd=workdir, check=True, capture_output=True)
    r = subprocess.run([str(workdir / "obj_dir" / f"V{block}"), *args], cwd=workdir,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.cosim
def test_verilator_fp16_add_every_b(tmp_path):
    """Fp16Add under Verilator: every 64th a (every exponent, both signs) against every b, 67 M
    sums, equal to the compiler's IEEE binary16 sum."""
    out = _cpp_sweep("fp16_add", 16, ["0x0011", "64"], tmp_path)
    assert "checked 67108864 pairs, 0 mismatches" in out


@pytest.mark.cosim
@pytest.mark.regress
def test_verilator_fp16_add_exhaustive(tmp_path):
    """Every one of the 2**32 binary16 pairs (about 4 minutes)."""
    out = _cpp_sweep("fp16_add", 16, ["0", "1"], tmp_path)
    assert "checked 4294967296 pairs, 0 mismatches" in out


@pytest.mark.cosim
@pytest.mark.regress
def test_verilator_fp32_add_sweep(tmp_path):
    """Fp32Add under Verilator: 200 M random and near-exponent pairs against the double sum rounded
    to float."""
    out = _cpp_sweep("fp32_add", 32, ["200000000"], tmp_path)
    assert "checked 200000000 pairs, 0 mismatches" in out
