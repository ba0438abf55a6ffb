"""LUT engine, fp16 activations (docs/lut.md "fp16"): the reference and the cycle model bit for bit
equal to a plain numpy float16/float32 program doing the same additions in the same order; the
error against the exact float64 product within the derived bound; subnormals exact; NaN and inf
inputs give the documented results; tile = cycle."""

from __future__ import annotations

import numpy as np
import pytest

from tpesim import fp16
from tpesim.engines.lut import LutConfig, reference
from tpesim.errors import ConfigError
from tpesim.kernels.gemm import run_gemm

U16 = 2.0 ** -11     # unit roundoff of binary16
U32 = 2.0 ** -24


def numpy_order(cfg: LutConfig, a_bits: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The contract's order written with numpy scalars: per output (i, j), per K-group (zero-padded
    to g), per plane b: the table entry (+-a_0) + (+-a_1) + ... in float16 (the stored half when
    symmetrized: an index with bit 0 set reads the negated entry of its complement), times 2^b,
    added to an accumulator that starts at +0 (float16, or float32 after an exact promotion)."""
    f16 = a_bits.astype(np.uint16).view(np.float16)
    m, k = f16.shape
    n = w.shape[1]
    g, B = cfg.group, cfg.planes
    G = -(-k // g)
    ap = np.zeros((m, G * g), np.float16)
    ap[:, :k] = f16
    codes = np.zeros((G * g, n), np.int64)
    codes[:k] = (w + (1 << B) - 1) >> 1
    acc_t = np.float16 if cfg.acc == "fp16" else np.float32
    out = np.zeros((m, n), acc_t)

    def entry(row, idx):
        t = row[0] if idx & 1 else -row[0]
        for kk in range(1, g):
            t = np.float16(t + (row[kk] if (idx >> kk) & 1 else -row[kk]))
        return t

    with np.errstate(all="ignore"):
        for i in range(m):
            for j in range(n):
                acc = acc_t(0.0)
                for q in range(G):
                    row = ap[i, q * g:(q + 1) * g]
                    for b in range(B):
                        idx = sum((((codes[q * g + kk, j] >> b) & 1) << kk) for kk in range(g))
                        if cfg.sym and idx & 1:
                            e = -entry(row, ~idx & ((1 << g) - 1))
                        else:
                            e = entry(row, idx)
                        e = np.float16(e * np.float16(2.0 ** b))
                        acc = acc_t(acc + acc_t(e))
                out[i, j] = acc
    return out


def _bits_equal(cfg, got: np.ndarray, want: np.ndarray) -> bool:
    """Bit equality, any NaN equal to any NaN (numpy's NaN patterns are not canonical)."""
    if cfg.acc == "fp16":
        g = got.astype(np.uint16)
        wb = want.astype(np.float16).view(np.uint16)
        nan_g, nan_w = fp16.is_nan(g), np.isnan(want)
    else:
        g = got.astype(np.uint32)
        wb = want.astype(np.float32).view(np.uint32)
        nan_g, nan_w = fp16.is_nan32(g), np.isnan(want)
    return bool(np.array_equal(nan_g, nan_w) and np.array_equal(g[~nan_g], wb[~nan_w]))


CFGS = [LutConfig(tile_m=2, tile_n=3, act="fp16", w_interp="pm1"),
        LutConfig(tile_m=2, tile_n=4, act="fp16", w_interp="pm1", w_bits=4, sym=False),
        LutConfig(tile_m=3, tile_n=2, act="fp16", w_interp="pm1", w_bits=3, acc="fp32",
                  pipe_stages=2),
        LutConfig(tile_m=1, tile_n=2, act="fp16", w_interp="pm1", w_bits=1, group=3)]


def _operands(cfg, rng, m, n, k, scale=4.0):
    a = fp16.from_float(rng.uniform(-scale, scale, (m, k))).astype(np.int64)
    codes = rng.integers(0, 1 << cfg.code_bits, (k, n))
    return a, codes


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_bit_exact_against_numpy_order(cfg, seed):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        m, n, k = (int(x) for x in rng.integers(1, 9, 3))
        a, codes = _operands(cfg, rng, m, n, k)
        w = cfg.operand_as_used("b", codes)
        want = numpy_order(cfg, a, w)
        assert _bits_equal(cfg, reference(cfg, a, codes), want)
        res = run_gemm(cfg, a, codes, fidelity="cycle")
        assert res.matched and _bits_equal(cfg, res.c, want)
        tile = run_gemm(cfg, a, codes, fidelity="tile", verify=True)
        assert tile.matched and tile.cycles == res.cycles


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_error_bound_against_float64(cfg, seed):
    """Each output is a sum, in a fixed order, of n = G*P scaled entries, each entry a sum of g
    activations with g - 1 roundings; pow2 scaling is exact (no overflow here) and negation exact.
    By the standard bound for recursive summation (Higham, Accuracy and Stability, eq. 4.4) with
    every rounding relative error <= u (u = 2^-11, or 2^-24 for the fp32 accumulator's adds) plus
    at most 2^-25 absolute per fp16 add landing in the subnormals:
      |C - exact| <= (gamma16(g - 1) + gamma_acc(n) (1 + gamma16(g - 1))) * S + (g - 1 + n) 2^-25,
    with S = sum_k |a_k| (2^B - 1) >= sum over planes and k of |2^b a_k|, gamma(j) = j u/(1 - j u)."""
    rng = np.random.default_rng(seed)
    for _ in range(3):
        m, n, k = 3, 4, int(rng.integers(1, 60))
        a, codes = _operands(cfg, rng, m, n, k, scale=2.0)
        w = cfg.operand_as_used("b", codes)
        af = fp16.to_float(a.astype(np.uint16))
        exact = af @ w
        c = reference(cfg, a, codes)
        got = fp16.to_float(c.astype(np.uint16)) if cfg.acc == "fp16" else \
            fp16.to_float32(c.astype(np.uint32))
        G = -(-k // cfg.group)
        nadd = G * cfg.planes

        def gamma(j, u):
            return j * u / (1 - j * u)

        ua = U16 if cfg.acc == "fp16" else U32
        g1 = gamma(cfg.group - 1, U16)
        S = np.abs(af).sum(axis=1, keepdims=True) * ((1 << cfg.planes) - 1)
        bound = (g1 + gamma(nadd, ua) * (1 + g1)) * S + (cfg.group - 1 + nadd) * 2.0 ** -25
        assert np.all(np.abs(got - exact) <= bound), (np.abs(got - exact) - bound).max()


def test_fp32_accumulator_is_tighter(seed):
    """Same inputs, fp16 vs fp32 accumulator: over a long K the fp32 accumulator's error is smaller
    (its adds round at 2^-24)."""
    rng = np.random.default_rng(seed)
    c16 = LutConfig(tile_m=2, tile_n=4, act="fp16", w_interp="pm1", w_bits=2)
    c32 = LutConfig(tile_m=2, tile_n=4, act="fp16", w_interp="pm1", w_bits=2, acc="fp32")
    a, codes = _operands(c16, rng, 4, 8, 400, scale=1.0)
    exact = fp16.to_float(a.astype(np.uint16)) @ c16.operand_as_used("b", codes)
    e16 = np.abs(fp16.to_float(reference(c16, a, codes).astype(np.uint16)) - exact).mean()
    e32 = np.abs(fp16.to_float32(reference(c32, a, codes).astype(np.uint32)) - exact).mean()
    assert e32 < e16


def test_subnormals_exact():
    """Subnormal activations (multiples of 2^-24): every partial sum here is a multiple of 2^-24
    below 2^-13 in magnitude, so representable: the result is exact, including the x2^b scaling of
    subnormals that the published RTL got wrong (it adds b to the exponent field)."""
    cfg = LutConfig(tile_m=2, tile_n=3, act="fp16", w_interp="pm1", w_bits=3)
    rng = np.random.default_rng(5)
    ints = rng.integers(-3, 4, (2, 9))
    a = fp16.from_float(ints * 2.0 ** -24).astype(np.int64)
    assert np.all((a & 0x7C00) == 0)                        # all subnormal or zero
    codes = rng.integers(0, 8, (9, 3))
    w = cfg.operand_as_used("b", codes)
    got = fp16.to_float(run_gemm(cfg, a, codes).c.astype(np.uint16))
    assert np.array_equal(got, (ints @ w) * 2.0 ** -24)


def test_nan_and_inf_inputs():
    """A NaN activation makes every output of its row the canonical NaN 0x7E00 (it enters every
    table entry of its group); +inf against +-1 weights (w_bits = 1) gives +-inf in its row; inf
    entries of both signs in one column (w_bits = 2, mixed weight bits) give NaN; other rows are
    unaffected."""
    cfg = LutConfig(tile_m=2, tile_n=4, act="fp16", w_interp="pm1", w_bits=1)
    a = fp16.from_float(np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [0.5, 0.25, 1.0, 2.0, -1.0],
                                  [1.0, 1.0, 1.0, 1.0, 1.0]])).astype(np.int64)
    a[0, 1] = fp16.NAN
    a[1, 3] = fp16.POS_INF
    codes = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 1, 1], [0, 1, 0, 1], [1, 0, 0, 1]])
    c = run_gemm(cfg, a, codes).c
    assert np.all(c[0] == fp16.NAN)
    w = cfg.operand_as_used("b", codes)
    assert c[1].tolist() == [fp16.POS_INF if x > 0 else fp16.NEG_INF for x in w[3]]
    assert fp16.to_float(c[2].astype(np.uint16)).tolist() == (np.ones(5) @ w).tolist()
    cfg2 = LutConfig(tile_m=1, tile_n=2, act="fp16", w_interp="pm1", w_bits=2)
    a2 = fp16.from_float(np.array([[np.inf, 1.0]])).astype(np.int64)
    c2 = run_gemm(cfg2, a2, np.array([[1, 3], [0, 0]])).c       # w = -1 (bits 01) and +3 (11)
    assert c2[0, 0] == fp16.NAN and c2[0, 1] == fp16.POS_INF


def test_fp16_needs_pm1():
    with pytest.raises(ConfigError, match="w_interp must be 'pm1' with fp16 activations"):
        LutConfig(act="fp16")
    with pytest.raises(ConfigError, match="not ternary"):
        LutConfig(act="fp16", w_bits="ternary")
