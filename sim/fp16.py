"""IEEE binary16 and binary32 arithmetic on raw bit patterns (RNE, subnormals, inf, canonical NaN):
the reference every fp16 datapath (the LUT engine's cycle model, rtl/fp16.py) must equal bit for bit."""

from __future__ import annotations

import numpy as np

from tpesim.errors import ConfigError

# Conventions. Operands and results are unsigned bit patterns (uint16 for binary16, uint32 for
# binary32) in numpy arrays; Python ints and numpy scalars work too (a 0-d input gives a numpy
# scalar). Rounding is round-to-nearest-even everywhere, subnormals are supported as inputs and
# outputs (no flush to zero), overflow rounds to infinity, and every NaN a function *produces* is
# the canonical quiet NaN (NAN = 0x7E00, NAN32 = 0x7FC00000), so a result is one bit pattern that a
# comparison can check.
#
# Why the numpy route is exact. `add` computes in float32 and rounds the float32 sum to float16:
# two roundings. Figueroa ("When is double rounding innocuous?", ACM SIGNUM Newsletter 30(3), 1995)
# proves that rounding to nearest first to p' bits, then to p bits, equals rounding once to p bits
# for +, -, *, / and sqrt whenever p' >= 2p + 2 (2p + 1 suffices for +). binary16 has p = 11 and
# binary32 p' = 24 >= 24, and float32's exponent range holds every binary16 sum and every binary16
# subnormal exactly, so the float32 route is the correctly rounded binary16 sum. Likewise `add32`
# goes through float64 (p' = 53 >= 2 * 24 + 2 = 50). The conversions float32 -> float16 and
# float64 -> float32 that numpy performs round to nearest even with overflow to infinity.
# tests/test_fp16.py checks all of this against an exact integer reference, not against numpy.
#
# NaN sign and `neg`. IEEE 754-2019 5.5.1 defines negate as a sign-bit flip that is not an
# arithmetic operation: it does not canonicalise, so neg(NAN) is 0xFE00. Every arithmetic consumer
# (add, pow2, to32, add32, pow2_32) maps any NaN input, whatever its sign or payload, to the
# canonical NaN, so a flipped NaN sign is never visible after the next operation. In hardware `neg`
# is one XOR gate (the LUT engine's signed 8:1 mux).

__all__ = ["NAN", "POS_INF", "NEG_INF", "NEG_ZERO", "MAX_NORMAL", "MIN_NORMAL", "MIN_SUBNORMAL",
           "NAN32", "POS_INF32", "NEG_INF32", "EXP_STEPS", "EXP_MIN",
           "add", "pow2", "neg", "is_nan", "from_float", "to_float",
           "to32", "add32", "pow2_32", "neg32", "is_nan32", "from_float32", "to_float32"]

NAN = 0x7E00            # canonical quiet NaN of every binary16 result
POS_INF = 0x7C00
NEG_INF = 0xFC00
NEG_ZERO = 0x8000
MAX_NORMAL = 0x7BFF     # 65504
MIN_NORMAL = 0x0400     # 2**-14
MIN_SUBNORMAL = 0x0001  # 2**-24

NAN32 = 0x7FC00000
POS_INF32 = 0x7F800000
NEG_INF32 = 0xFF800000

EXP_STEPS = 4           # pow2 scales by 2**e for e in EXP_MIN .. EXP_STEPS - 1
EXP_MIN = -4            # (a 3-bit two's-complement exponent step; 0..3 is the unsigned 2-bit one)


def _bits(x, dtype) -> np.ndarray:
    """`x` as an array of bit patterns of `dtype`; a value outside the field is an error."""
    arr = np.asarray(x)
    if arr.dtype == dtype:
        return arr
    if arr.dtype.kind not in "iub":
        raise ConfigError(f"fp bit patterns must be integers, not dtype {arr.dtype}")
    width = np.dtype(dtype).itemsize * 8
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= 1 << width):
        raise ConfigError(f"fp bit patterns must be in 0..{(1 << width) - 1}, "
                          f"not {int(arr.min()) if int(arr.min()) < 0 else int(arr.max())}")
    return arr.astype(dtype)


def _out(arr: np.ndarray):
    """A 0-d result as a numpy scalar, anything else as the array."""
    return arr[()] if arr.ndim == 0 else arr


def _canon(bits: np.ndarray, nan_mask: np.ndarray, nan) -> np.ndarray:
    return np.where(nan_mask, bits.dtype.type(nan), bits)


def _exp(e) -> np.ndarray:
    e = np.asarray(e)
    if e.dtype.kind not in "iub":
        raise ConfigError(f"pow2 exponent must be an integer, not dtype {e.dtype}")
    if e.size and (int(e.min()) < EXP_MIN or int(e.max()) >= EXP_STEPS):
        bad = int(e.min()) if int(e.min()) < EXP_MIN else int(e.max())
        raise ConfigError(f"pow2 exponent must be in {EXP_MIN}..{EXP_STEPS - 1}, not {bad}")
    return e.astype(np.int32)


# ---------------------------------------------------------------- binary16

def is_nan(x) -> np.ndarray:
    """True where the binary16 pattern is a NaN (exponent all ones, fraction non-zero)."""
    x = _bits(x, np.uint16)
    return _out((x & 0x7FFF) > 0x7C00)


def add(a, b):
    """Correctly rounded binary16 sum a + b (RNE; inf + -inf and NaN inputs give `NAN`;
    x + -x = +0; -0 + -0 = -0)."""
    a = _bits(a, np.uint16)
    b = _bits(b, np.uint16)
    with np.errstate(over="ignore", invalid="ignore"):
        s = (a.view(np.float16).astype(np.float32) + b.view(np.float16).astype(np.float32))
        r = s.astype(np.float16)
    return _out(_canon(r.view(np.uint16), np.isnan(r), NAN))


def pow2(x, e):
    """x * 2**e for e in -4..3: exact (a subnormal scales into the normals) except overflow to
    +-inf and, for e < 0, a result below the normals, which is rounded to nearest even (the exact
    float32 product rounded once); +-0 and +-inf unchanged; NaN gives `NAN`."""
    x = _bits(x, np.uint16)
    e = _exp(e)
    with np.errstate(over="ignore", invalid="ignore"):
        r = (x.view(np.float16).astype(np.float32) * np.exp2(e).astype(np.float32)).astype(np.float16)
    return _out(_canon(r.view(np.uint16), np.isnan(r), NAN))


def neg(x):
    """-x: the sign bit flipped (IEEE negate; a NaN keeps its payload, see the module docstring)."""
    x = _bits(x, np.uint16)
    return _out(x ^ np.uint16(0x8000))


def from_float(f):
    """Binary16 pattern of the real value(s) `f`, rounded to nearest even (NaN gives `NAN`)."""
    f = np.asarray(f, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        r = f.astype(np.float16)   # numpy rounds float64 -> float16 once (no float32 step)
    return _out(_canon(r.view(np.uint16), np.isnan(r), NAN))


def to_float(x):
    """The value(s) of binary16 patterns as float64 (exact)."""
    x = _bits(x, np.uint16)
    return _out(x.view(np.float16).astype(np.float64))


# ---------------------------------------------------------------- binary32 (fp32 accumulator)

def is_nan32(x) -> np.ndarray:
    """True where the binary32 pattern is a NaN."""
    x = _bits(x, np.uint32)
    return _out((x & 0x7FFFFFFF) > 0x7F800000)


def to32(x):
    """Exact promotion of binary16 patterns to binary32 patterns (uint32); NaN gives `NAN32`."""
    x = _bits(x, np.uint16)
    r = x.view(np.float16).astype(np.float32)
    return _out(_canon(r.view(np.uint32), np.isnan(r), NAN32))


def add32(a, b):
    """Correctly rounded binary32 sum (RNE, subnormals, overflow to inf, NaN gives `NAN32`)."""
    a = _bits(a, np.uint32)
    b = _bits(b, np.uint32)
    with np.errstate(over="ignore", invalid="ignore"):
        s = a.view(np.float32).astype(np.float64) + b.view(np.float32).astype(np.float64)
        r = s.astype(np.float32)
    return _out(_canon(r.view(np.uint32), np.isnan(r), NAN32))


def pow2_32(x, e):
    """Binary32 x * 2**e for e in -4..3 (exact except overflow to +-inf and RNE of a result below
    the normals; NaN gives `NAN32`)."""
    x = _bits(x, np.uint32)
    e = _exp(e)
    with np.errstate(over="ignore", invalid="ignore"):
        r = (x.view(np.float32).astype(np.float64) * np.exp2(e)).astype(np.float32)
    return _out(_canon(r.view(np.uint32), np.isnan(r), NAN32))


def neg32(x):
    """-x for binary32 patterns: the sign bit flipped."""
    x = _bits(x, np.uint32)
    return _out(x ^ np.uint32(0x80000000))


def from_float32(f):
    """Binary32 pattern of the real value(s) `f`, rounded to nearest even (NaN gives `NAN32`)."""
    f = np.asarray(f, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        r = f.astype(np.float32)
    return _out(_canon(r.view(np.uint32), np.isnan(r), NAN32))


def to_float32(x):
    """The value(s) of binary32 patterns as float64 (exact)."""
    x = _bits(x, np.uint32)
    return _out(x.view(np.float32).astype(np.float64))
