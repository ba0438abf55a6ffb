"""Two's-complement helpers: the one place where widths, masks and wrap-around are defined.

The RTL wraps every register at its declared width; the cycle model and the functional
reference call these helpers so all three wrap identically.
"""

from __future__ import annotations

import numpy as np

__all__ = ["value_range", "wrap", "wrap_consts", "wrap_array", "to_bits", "from_bits", "pack", "unpack",
           "matmul_wrapped", "ent_digits", "ent_digit_array"]


def value_range(bits: int, signed: bool) -> tuple[int, int]:
    """Inclusive (min, max) of a `bits`-wide integer."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def wrap(x: int, bits: int, signed: bool = True) -> int:
    """Wrap a Python int to `bits` bits, as a register of that width does."""
    x &= (1 << bits) - 1
    if signed and x >> (bits - 1):
        x -= 1 << bits
    return x


def wrap_consts(bits: int, signed: bool, c_int64: bool) -> tuple[int, int]:
    """(half, mask) such that ((s + half) & mask) - half wraps s to `bits` bits (signed), or
    s & mask (unsigned, half = 0). With `c_int64` the constants are for C int64 arithmetic compiled
    with -fwrapv (a 64-bit signed wrap is then the identity: half = INT64_MIN, mask = -1); otherwise
    for Python ints."""
    if not signed:
        return 0, (1 << bits) - 1
    if bits == 64 and c_int64:
        return -(1 << 63), -1
    return 1 << (bits - 1), (1 << bits) - 1


def wrap_array(x: np.ndarray, bits: int, signed: bool = True) -> np.ndarray:
    """Element-wise `wrap` of an int64 array (bits <= 64)."""
    x = np.asarray(x)
    if bits >= 64:
        return x.astype(np.int64) if signed else x.astype(np.uint64)
    u = x.astype(np.uint64) & np.uint64((1 << bits) - 1)
    if not signed:
        return u.astype(np.int64)
    sign = np.uint64(1 << (bits - 1))
    return (u ^ sign).astype(np.int64) - np.int64(1 << (bits - 1))


def to_bits(x: int, bits: int) -> int:
    """Raw bit pattern (non-negative int) of `x` in a `bits`-wide field."""
    return int(x) & ((1 << bits) - 1)


def from_bits(u: int, bits: int, signed: bool) -> int:
    """Integer value of a `bits`-wide bit pattern."""
    return wrap(int(u), bits, signed)


def pack(values, bits: int) -> int:
    """Concatenate lanes into one bit vector, lane 0 in the least significant bits (Amaranth `Cat`)."""
    out = 0
    mask = (1 << bits) - 1
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (i * bits)
    return out


def unpack(u: int, lanes: int, bits: int, signed: bool) -> list[int]:
    """Split a bit vector into `lanes` integers of `bits` bits (inverse of `pack`)."""
    mask = (1 << bits) - 1
    return [from_bits((int(u) >> (i * bits)) & mask, bits, signed) for i in range(lanes)]


def exact_matmul_int64(a: np.ndarray, b: np.ndarray, pmax: int) -> np.ndarray:
    """Exact int64 A @ B through float64 BLAS, given |a_ik * b_kj| <= pmax and every sum < 2**62.

    K is cut into chunks of at most 2**53 // pmax: every partial sum of a chunk, in any order the
    BLAS adds (FMA included), is an integer below 2**53, so float64 holds it exactly; the chunks'
    results are added in int64. (numpy's own int64 matmul has no BLAS: ~50x slower.)"""
    k = a.shape[1]
    if pmax == 0 or k == 0:
        return np.zeros((a.shape[0], b.shape[1]), np.int64)
    step = max(1, (1 << 53) // pmax)
    if step == 1 and pmax >= (1 << 53):
        return a @ b                    # a single product may not fit float64: int64 matmul
    out = None
    for k0 in range(0, k, step):
        part = (a[:, k0:k0 + step].astype(np.float64) @ b[k0:k0 + step].astype(np.float64))
        part = part.astype(np.int64)
        out = part if out is None else out + part
    return out


def matmul_wrapped(a: np.ndarray, b: np.ndarray, acc_bits: int, signed: bool = True) -> np.ndarray:
    """Exact integer A @ B, wrapped to an `acc_bits` accumulator (the functional reference).

    Wrap-around is a ring homomorphism, so wrapping the exact product equals wrapping after every MAC,
    which is what the hardware does. Exact products are formed in Python ints when int64 could overflow.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    k = a.shape[1] if a.ndim == 2 else 0
    amax = int(np.abs(a).max(initial=0))
    bmax = int(np.abs(b).max(initial=0))
    if amax * bmax * max(k, 1) < (1 << 62):
        return wrap_array(exact_matmul_int64(a, b, amax * bmax), acc_bits, signed)
    exact = a.astype(object) @ b.astype(object)
    out = np.vectorize(lambda v: wrap(int(v), acc_bits, signed), otypes=[object])(exact)
    return out.astype(np.int64)


# -- EN-T radix-4 recoding (docs/adder_tree.md "Numerics") -----------------------------------------
ENT_DIGITS = 4  # radix-4 digits of an int8


def ent_digits(v: int) -> tuple[int, int, int, int]:
    """EN-T digits (d_0, d_1, d_2, d_3) of a signed int8, low digit first, each in -2..2.

    v = s * m in sign-magnitude (m in 0..128); m's 2-bit pairs p_i (low first) with carry c_0 = 0:
    x = p_i + c_i, e_i = x - 4 c_{i+1}, c_{i+1} = (x >= 3); d_i = s * e_i; v = sum d_i 4^i.
    """
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"v must be an integer, not {v!r}")
    v = int(v)
    if not -128 <= v <= 127:
        raise ValueError(f"v must be a signed 8-bit integer (-128..127), not {v}")
    s = -1 if v < 0 else 1
    m = abs(v)
    c = 0
    out = []
    for i in range(ENT_DIGITS):
        x = ((m >> (2 * i)) & 3) + c
        c = 1 if x >= 3 else 0
        out.append(s * (x - 4 * c))
    return tuple(out)


def ent_digit_array(x: np.ndarray) -> np.ndarray:
    """Vectorised `ent_digits`: an int array of shape x.shape + (4,), digit i in [..., i]."""
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"x must be an integer array, not dtype {x.dtype}")
    x = x.astype(np.int64)
    if x.size and (x.min() < -128 or x.max() > 127):
        raise ValueError(f"x must hold signed 8-bit integers (-128..127), not range "
                         f"{int(x.min())}..{int(x.max())}")
    s = np.where(x < 0, -1, 1)
    m = np.abs(x)
    c = np.zeros_like(m)
    out = np.empty(x.shape + (ENT_DIGITS,), dtype=np.int64)
    for i in range(ENT_DIGITS):
        xi = ((m >> (2 * i)) & 3) + c
        c = (xi >= 3).astype(np.int64)
        out[..., i] = s * (xi - 4 * c)
    return out
