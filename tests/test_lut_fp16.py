"""LUT engine, fp16 activations (docs/lut.md "fp16"): the reference and the cycle model bit for bit
equal to a plain numpy float16/float32 program doing the same additions in the same order; the
error against the exact float64 product within the derived bound; subnormals exact; NaN and inf
inputs give the documented results; tile = cycle."""

from __future__ import annotations

import numpy as np
import pytest

from tpesim import fp16
from tpesim.engines.lut import LutConfig, fp_shifts, plane_bits, reference
from tpesim.errors import ConfigError
from tpesim.kernels.gemm import run_gemm

U16 = 2.0 ** -11     # unit roundoff of binary16
U32 = 2.0 ** -24


# The formats written out from docs/lut.md "Weight formats" (independently of sim/engines/lut.py):
# the fp16 datapath accumulates C = sum_b 2^(e_b - 1) s_b a + (o/2) S per group, with the integer
# identity 2w = sum_b 2^e_b s_b + o; s_b = +-1 from bit b of the code, the signed MSB inverted.
def _format(cfg: LutConfig):
    """(code of each weight value, scale exponent per plane, inverted planes, o/2 kind)."""
    B = cfg.planes
    if cfg.w_bits == "ternary":           # sorted code: -1 -> 00, 0 -> 01, +1 -> 11; 2w = s0 + s1
        return (lambda w: np.where(w > 0, 3, w + 1)), [-1, -1], [False, False], None
    if cfg.w_interp == "pm1":             # w = sum_b 2^b s_b
        return (lambda w: (w + (1 << B) - 1) >> 1), list(range(B)), [False] * B, None
    if cfg.w_interp == "unsigned":        # 2w = sum_b 2^b s_b + 2^B - 1
        return (lambda w: w), [b - 1 for b in range(B)], [False] * B, "unsigned"
    # two's complement: 2w = sum_b 2^b s'_b - 1 with the MSB's bit inverted (offset binary)
    return (lambda w: w & ((1 << B) - 1)), [b - 1 for b in range(B)], \
        [b == B - 1 for b in range(B)], "signed"


def numpy_order(cfg: LutConfig, a_bits: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The contract's order written with numpy scalars: per output (i, j), per K-group (zero-padded
    to g), first the offset term (signed: T[0]/2; unsigned: T[0]/2 - 2^(B-1) T[0], with T[0] = -a_0
    - ... - a_{g-1} the all-minus entry; none for pm1 and ternary), then per plane b: the table
    entry (+-a_0) + (+-a_1) + ... in float16 (the stored half when symmetrized: an index with bit 0
    set reads the negated entry of its complement), times 2^(e_b - 1) (a float16 product: correctly
    rounded, so a halving below the normals rounds to nearest even), each added to an accumulator
    that starts at +0 (float16, or float32 after an exact promotion)."""
    f16 = a_bits.astype(np.uint16).view(np.float16)
    m, k = f16.shape
    n = w.shape[1]
    g, B = cfg.group, cfg.planes
    code_of, scale, inv, off_kind = _format(cfg)
    G = -(-k // g)
    ap = np.zeros((m, G * g), np.float16)
    ap[:, :k] = f16
    codes = np.zeros((G * g, n), np.int64)
    codes[:k] = code_of(np.asarray(w, np.int64))
    acc_t = np.float16 if cfg.acc == "fp16" else np.float32
    out = np.zeros((m, n), acc_t)
    h = np.float16(0.5)

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
                    t0 = entry(row, 0)
                    if off_kind == "signed":
                        acc = acc_t(acc + acc_t(np.float16(t0 * h)))
                    elif off_kind == "unsigned":
                        big = np.float16(t0 * np.float16(2.0 ** (B - 1)))
                        off = np.float16(np.float16(t0 * h) - big)
                        acc = acc_t(acc + acc_t(off))
                    for b in range(B):
                        idx = sum((((codes[q * g + kk, j] >> b) & 1) << kk) for kk in range(g))
                        if inv[b]:
                            idx = ~idx & ((1 << g) - 1)
                        if cfg.sym and idx & 1:
                            e = -entry(row, ~idx & ((1 << g) - 1))
                        else:
                            e = entry(row, idx)
                        e = np.float16(e * np.float16(2.0 ** scale[b]))
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
        LutConfig(tile_m=1, tile_n=2, act="fp16", w_interp="pm1", w_bits=1, group=3),
        LutConfig(tile_m=2, tile_n=3, act="fp16", w_interp="signed", w_bits=4),
        LutConfig(tile_m=2, tile_n=4, act="fp16", w_interp="unsigned", w_bits=3, sym=False,
                  pipe_stages=2),
        LutConfig(tile_m=3, tile_n=2, act="fp16", w_bits="ternary", acc="fp32"),
        LutConfig(tile_m=2, tile_n=2, act="fp16", w_interp="signed", w_bits=1, group=3,
                  acc="fp32", sym=False)]

# every format x w_bits x sym x accumulator x pipeline stages (104 configs)
FORMATS = [(b, i) for i in ("signed", "unsigned", "pm1") for b in (1, 2, 3, 4)] + \
    [("ternary", "signed")]
ALL = [LutConfig(tile_m=2, tile_n=3, act="fp16", w_bits=b, w_interp=i, sym=sym, acc=acc,
                 pipe_stages=st)
       for b, i in FORMATS for sym in (True, False) for acc in ("fp16", "fp32") for st in (1, 2)]


def _b_operand(cfg, rng, shape):
    """The GEMM's B operand: every value (signed, unsigned) or every code (pm1, ternary) of the
    format, uniformly."""
    op = cfg.operands()[1]
    lo = -(1 << (op.bits - 1)) if op.signed else 0
    return rng.integers(lo, lo + (1 << op.bits), shape)


def _operands(cfg, rng, m, n, k, scale=4.0):
    a = fp16.from_float(rng.uniform(-scale, scale, (m, k))).astype(np.int64)
    return a, _b_operand(cfg, rng, (k, n))


def _small_acts(rng, shape):
    """binary16 patterns of mixed magnitude with subnormals (whose halving rounds) and zeros."""
    vals = rng.uniform(-4, 4, shape) * np.exp2(rng.integers(-16, 5, shape))
    a = fp16.from_float(vals).astype(np.int64)
    sub = rng.integers(0, 0x400, shape) | (rng.integers(0, 2, shape) << 15)
    return np.where(rng.random(shape) < 0.3, sub, a)


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_bit_exact_against_numpy_order(cfg, seed):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        m, n, k = (int(x) for x in rng.integers(1, 9, 3))
        a, b = _operands(cfg, rng, m, n, k)
        w = cfg.operand_as_used("b", b)
        want = numpy_order(cfg, a, w)
        assert _bits_equal(cfg, reference(cfg, a, b), want)
        res = run_gemm(cfg, a, b, fidelity="cycle")
        assert res.matched and _bits_equal(cfg, res.c, want)
        tile = run_gemm(cfg, a, b, fidelity="tile", verify=True)
        assert tile.matched and tile.cycles == res.cycles


@pytest.mark.parametrize("cfg", ALL, ids=lambda c: c.name)
def test_every_format_bit_exact(cfg, seed):
    """Reference and cycle model = the numpy float16 program, for every format, w_bits, sym,
    accumulator and pipeline depth, on activations with subnormals (halvings that round) and a
    ragged K."""
    rng = np.random.default_rng(seed)
    a = _small_acts(rng, (3, 7))
    b = _b_operand(cfg, rng, (7, 4))
    want = numpy_order(cfg, a, cfg.operand_as_used("b", b))
    assert _bits_equal(cfg, reference(cfg, a, b), want)
    res = run_gemm(cfg, a, b, fidelity="cycle")
    assert res.matched and _bits_equal(cfg, res.c, want)


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_error_bound_against_float64(cfg, seed):
    """Per K-group the accumulator takes the offset term (signed, unsigned) and P scaled entries;
    every entry is a sum of g activations with g - 1 roundings (relative error <= gamma16(g - 1) of
    sum_k |a_k|, Higham, Accuracy and Stability, eq. 4.4; an fp16 sum landing in the subnormals is
    exact); a scaling by 2^(e_b - 1) >= 1 is exact (no overflow here), a halving is exact unless
    its result is below the normals, then off by <= 2^-25 (half the smallest subnormal); negation
    is exact. With A = sum_k |a_k| over K and W = sum_b 2^(e_b - 1) + |o|/2 (the weight of the
    terms: 2^(B-1) signed, 2^B - 1 unsigned and pm1, 1 ternary):
      entries and offset inputs:  gamma16(g - 1) W A
      halvings:                   h G 2^-25, h = halved planes + (1 if the format has an offset)
      unsigned offset's subtraction T0/2 - 2^(B-1) T0: one rounding,
                                  <= u 2^(B-1)(1 + gamma16(g - 1)) A
      accumulation of n = G (P + [offset]) terms: gamma_acc(n) times the sum of the computed
        terms' magnitudes <= (1 + gamma16(g - 1))(1 + u) W A + h G 2^-25
    (u = 2^-11, gamma(j) = j u / (1 - j u); the accumulator's gamma with 2^-24 for fp32 adds)."""
    rng = np.random.default_rng(seed)
    shifts, o = fp_shifts(cfg), plane_bits(cfg)[1]
    for _ in range(3):
        m, n, k = 3, 4, int(rng.integers(1, 60))
        a, b = _operands(cfg, rng, m, n, k, scale=2.0)
        a[0, : k // 2] = _small_acts(rng, (k // 2,))     # a row with subnormals: halvings round
        w = cfg.operand_as_used("b", b)
        af = fp16.to_float(a.astype(np.uint16))
        exact = af @ w
        c = reference(cfg, a, b)
        got = fp16.to_float(c.astype(np.uint16)) if cfg.acc == "fp16" else \
            fp16.to_float32(c.astype(np.uint32))
        G = -(-k // cfg.group)
        nadd = G * (cfg.planes + (o != 0))

        def gamma(j, u):
            return j * u / (1 - j * u)

        ua = U16 if cfg.acc == "fp16" else U32
        g1 = gamma(cfg.group - 1, U16)
        W = sum(2.0 ** e for e in shifts) + abs(o) / 2
        h = sum(e < 0 for e in shifts) + (o != 0)
        A = np.abs(af).sum(axis=1, keepdims=True)
        sub = U16 * 2.0 ** (cfg.planes - 1) * (1 + g1) * A if o > 0 else 0.0
        halv = h * G * 2.0 ** -25
        bound = g1 * W * A + halv + sub + gamma(nadd, ua) * ((1 + g1) * (1 + U16) * W * A + halv)
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


def test_halving_rounds_subnormal_terms():
    """Signed, unsigned and ternary weights halve (w = sum_b 2^(e_b - 1) s_b + o/2): a halving below
    the normals rounds to nearest even, the documented cost of the format. Worked by hand for one
    activation a = 3 * 2^-24 (u = 2^-24), g = 1: T[0] = -3u, T[1] = 3u; 3u/2 = 1.5u rounds to 2u.
    signed W2 (offset T[0]/2 = -2u; plane 0 term +-2u, plane 1 (MSB, inverted) +-3u):
      w = 1 (01): -2 + 2 + 3 = 3u;  0 (00): -2 - 2 + 3 = -1u;  -1 (11): -2 + 2 - 3 = -3u;
      -2 (10): -2 - 2 - 3 = -7u  (exact: 3, 0, -3, -6 u);
    ternary (both planes halve: +-2u each): +1 -> 4u, 0 -> 0, -1 -> -4u; and a = u (a tie at 0.5u,
    to even 0): every ternary result is +0."""
    u = 2.0 ** -24
    sig = LutConfig(tile_m=1, tile_n=4, act="fp16", w_interp="signed", w_bits=2, group=1)
    c = run_gemm(sig, np.array([[0x0003]]), np.array([[1, 0, -1, -2]])).c
    assert (fp16.to_float(c.astype(np.uint16)) / u).tolist() == [[3, -1, -3, -7]]
    ter = LutConfig(tile_m=2, tile_n=3, act="fp16", w_bits="ternary", group=1)
    c = run_gemm(ter, np.array([[0x0003], [0x0001]]), np.array([[3, 1, 0]])).c
    assert (fp16.to_float(c.astype(np.uint16)) / u).tolist() == [[4, 0, -4], [0, 0, 0]]
    assert c[1].tolist() == [0, 0, 0]                      # +0: the accumulator never holds -0


def test_nan_and_inf_with_offsets_and_halvings():
    """Every format: a NaN activation makes its row the canonical NaN. +inf (g = 1): ternary gives
    +inf, -inf for w = +1, -1 and NaN for 0 (terms +inf/2 and -inf/2 meet, as IEEE's inf * 0);
    signed W2: the offset T[0]/2 = -inf meets a +inf term unless every s_b = -1, i.e. w = -2 gives
    -inf and every other w NaN; unsigned: the offset T[0]/2 - 2 T[0] is -inf + inf = NaN, so the
    row is NaN."""
    for kw in ({"w_interp": "signed", "w_bits": 3}, {"w_interp": "unsigned", "w_bits": 2},
               {"w_bits": "ternary"}, {"w_interp": "pm1", "w_bits": 2}):
        cfg = LutConfig(tile_m=2, tile_n=3, act="fp16", **kw)
        a = fp16.from_float(np.ones((2, 5))).astype(np.int64)
        a[1, 2] = fp16.NAN
        code = 3 if kw.get("w_bits") == "ternary" else 1               # w = +1 (signed W3: 1)
        c = run_gemm(cfg, a, np.full((5, 3), code)).c
        assert np.all(c[1] == fp16.NAN) and not np.any(c[0] == fp16.NAN)
    inf = np.array([[fp16.POS_INF]])
    ter = LutConfig(tile_m=1, tile_n=3, act="fp16", w_bits="ternary", group=1)
    assert run_gemm(ter, inf, np.array([[3, 0, 1]])).c.tolist() == [[fp16.POS_INF, fp16.NEG_INF,
                                                                       fp16.NAN]]
    sig = LutConfig(tile_m=1, tile_n=4, act="fp16", w_interp="signed", w_bits=2, group=1)
    assert run_gemm(sig, inf, np.array([[-2, -1, 0, 1]])).c.tolist() == \
        [[fp16.NEG_INF] + [fp16.NAN] * 3]
    uns = LutConfig(tile_m=1, tile_n=4, act="fp16", w_interp="unsigned", w_bits=2, group=1)
    assert run_gemm(uns, inf, np.array([[0, 1, 2, 3]])).c.tolist() == [[fp16.NAN] * 4]


def test_fp16_takes_every_format():
    """fp16 activations take every weight format; the accumulator must still be fp16 or fp32."""
    for w_bits, interp in FORMATS:
        assert LutConfig(act="fp16", w_bits=w_bits, w_interp=interp).acc == "fp16"
    with pytest.raises(ConfigError, match="acc must be one of 'fp16', 'fp32', not 'int32'"):
        LutConfig(act="fp16", w_interp="signed", acc="int32")
