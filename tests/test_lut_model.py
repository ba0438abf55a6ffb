"""LUT engine: config validation, the table algebra (exhaustive and random, against numpy A @ W),
the paper's and T-MAC's identities, and the cycle model against a literal register-transfer model of
the contract (docs/lut.md) at every port every cycle, lockstep vs free running, compiled vs
interpreted."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tpesim.engines.lut import (LutConfig, LutModel, decode_weights, encode_weights, lookup,
                                plane_bits, reference, sym_table, table, weights_of)
from tpesim.errors import ConfigError, ConfigTypeError, WorkloadError
from tpesim.numerics import pack, unpack

FORMATS = [(b, i) for b in (1, 2, 3, 4) for i in ("signed", "unsigned", "pm1")] + [("ternary", "signed")]


# -- config ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, exc, msg", [
    ({"w_bits": 5}, ConfigError, "w_bits must be 1, 2, 3, 4 or 'ternary', not 5"),
    ({"w_bits": "two"}, ConfigTypeError, "w_bits must be an integer 1..4 or 'ternary', not 'two'"),
    ({"w_bits": "ternary", "w_interp": "pm1"}, ConfigError, "w_interp must be 'signed' for ternary"),
    ({"w_interp": "offset"}, ConfigError, "w_interp must be one of 'signed', 'unsigned', 'pm1', "
                                          "not 'offset'"),
    ({"tile_n": 0}, ConfigError, "tile_n must be a positive integer, not 0"),
    ({"group": 5}, ConfigError, "group must be at most 4, not 5"),
    ({"pipe_stages": 3}, ConfigError, "pipe_stages must be 1 or 2, not 3"),
    ({"acc": "fp16"}, ConfigError, "acc must be one of 'int32', not 'fp16'"),
    ({"act": "fp8"}, ConfigError, "act must be one of 'int8', 'fp16', not 'fp8'"),
    ({"sym": 1}, ConfigTypeError, "sym must be a bool, not 1"),
])
def test_config_errors(kw, exc, msg):
    with pytest.raises(exc) as e:
        LutConfig(**kw)
    assert msg in str(e.value)
    assert "\n" not in str(e.value)


def test_config_roundtrip_and_peak():
    from tpesim.config import config_from_json

    cfg = LutConfig(w_bits="ternary", pipe_stages=2, sym=False)
    assert config_from_json(cfg.to_json()) == cfg
    assert LutConfig().peak_macs_per_cycle == 2 * 64 * 4 // 2          # 256 MAC/cycle at W2
    assert LutConfig(w_bits=1).peak_macs_per_cycle == 512
    assert LutConfig(w_bits=3).peak_macs_per_cycle == pytest.approx(512 / 3)


def test_table_storage_claim():
    """Claim 10: 8 stored entries per (row, 4-group) with symmetrization vs 16 without; with M = 2
    and 11-bit integer entries (sums of four int8, +-512) that is 2 x 8 x 11 bits = 22 bytes, plus
    the per-row offset term when the interpretation has one (none for +-1 weights)."""
    assert LutConfig().entries == 8 and LutConfig(sym=False).entries == 16
    assert LutConfig(w_interp="pm1").table_bytes == (2 * 8 * 11 + 7) // 8
    assert LutConfig(w_interp="pm1", sym=False).table_bytes == (2 * 16 * 11 + 7) // 8


# -- algebra ---------------------------------------------------------------------------------------
def datapath(cfg: LutConfig, a: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The contract's integer datapath written out plainly: per K-group a table per row (stored
    half when symmetrized), per plane b the index from bit b of the group's codes (inverted on
    inverted planes), the looked-up entry shifted by e_b, the offset term o * sum(a) once per group,
    all into a 33-bit accumulator holding 2C; C = its bits 32..1 (int32)."""
    shifts, o, inv = plane_bits(cfg)
    g = cfg.group
    m, k = a.shape
    G = -(-k // g)
    ap = np.zeros((m, G * g), np.int64)
    ap[:, :k] = a
    cp = np.zeros((G * g, codes.shape[1]), np.int64)
    cp[:k] = codes
    acc = np.zeros((m, codes.shape[1]), np.int64)
    for q in range(G):
        grp = ap[:, q * g:(q + 1) * g]
        stored = sym_table(grp) if cfg.sym else table(grp)          # [m, entries]
        acc += o * grp.sum(axis=1, keepdims=True)
        for b in range(cfg.planes):
            bits = (cp[q * g:(q + 1) * g] >> b) & 1                  # [g, n]
            idx = (bits << np.arange(g)[:, None]).sum(axis=0)        # [n]
            if inv[b]:
                idx = ~idx & ((1 << g) - 1)
            ent = lookup(stored[:, None, :].repeat(len(idx), 1),
                         np.broadcast_to(idx[None, :, None], (m, len(idx), 1)), g, cfg.sym)[..., 0]
            acc += ent << shifts[b]
    acc &= (1 << 33) - 1
    c = acc >> 1
    return np.where(c >= 1 << 31, c - (1 << 32), c)


@pytest.mark.parametrize("w_bits, interp", FORMATS)
@pytest.mark.parametrize("sym", [True, False])
def test_algebra_exhaustive_one_group(w_bits, interp, sym):
    """Every combination of weight codes in one 4-group (up to 2^16), against activations with the
    extremes and random rows: the datapath equals numpy A @ W exactly."""
    cfg = LutConfig(tile_m=1, tile_n=1, w_bits=w_bits, w_interp=interp, sym=sym)
    B = cfg.code_bits
    combos = np.array(list(itertools.product(range(1 << B), repeat=4)), np.int64).T   # [4, n]
    acts = np.array([[-128, -128, -128, -128], [127, 127, 127, 127], [-128, 127, -1, 0],
                     [1, 2, 3, 4]] + np.random.default_rng(0).integers(-128, 128, (4, 4)).tolist())
    w = decode_weights(cfg, combos)
    assert np.array_equal(datapath(cfg, acts, combos), acts @ w)


@pytest.mark.parametrize("w_bits, interp", FORMATS)
def test_algebra_random_large(w_bits, interp, seed):
    """Random shapes with K not a multiple of g (the tail group padded with zeros), every g."""
    rng = np.random.default_rng(seed)
    for g in (1, 2, 3, 4):
        for sym in (True, False):
            cfg = LutConfig(w_bits=w_bits, w_interp=interp, group=g, sym=sym)
            m, k, n = 3, int(rng.integers(1, 70)), 17
            a = rng.integers(-128, 128, (m, k))
            codes = rng.integers(0, 1 << cfg.code_bits, (k, n))
            assert np.array_equal(datapath(cfg, a, codes), a @ decode_weights(cfg, codes)), \
                (g, sym, k)


def test_wraps_like_int32():
    """A K large enough to overflow int32: the reference and the cycle model give C mod 2^32
    (the contract's 33-bit accumulator of 2C has C mod 2^32 in its bits 32..1)."""
    cfg = LutConfig(tile_m=1, tile_n=1, w_bits=4, w_interp="pm1")
    k = 4 * 300_000
    a = np.full((1, k), -128)
    codes = np.zeros((k, 1), np.int64)                   # w = -15: C = 1920 k = 2.3e9 > 2^31
    exact = 128 * 15 * k
    want = (exact + (1 << 31)) % (1 << 32) - (1 << 31)
    assert exact > 2**31 - 1 and reference(cfg, a, codes)[0, 0] == want
    rows, _, _ = LutModel(cfg).run_beats(a.reshape(-1, 4), np.full((k // 4, 4), -15),
                                         np.r_[np.zeros(k // 4 - 1, np.int64), 1])
    assert rows[0, 0] == want


def test_symmetry_identity():
    """T[i] = -T[~i] for every index of every group size; the stored half is the entries with
    idx[0] = 0 and the lookup idx[0] ? -S[(~idx)>>1] : S[idx>>1] returns T[idx] (the published RTL
    left the inversion out: S[idx>>1] negated is wrong whenever idx[0] = 1)."""
    rng = np.random.default_rng(1)
    for g in (1, 2, 3, 4):
        a = rng.integers(-128, 128, (5, g))
        T = table(a)
        i = np.arange(1 << g)
        assert np.array_equal(T[:, i], -T[:, ~i & ((1 << g) - 1)])
        S = sym_table(a)
        assert S.shape == (5, 1 << (g - 1))
        idx = np.broadcast_to(i, (5, 1 << g))
        assert np.array_equal(lookup(S, idx, g, True), T)
        if g > 1:
            wrong = np.where(idx & 1, -np.take_along_axis(S, idx >> 1, -1),
                             np.take_along_axis(S, idx >> 1, -1))
            assert not np.array_equal(wrong, T)


def test_tmac_identity_signed4():
    """T-MAC: for signed 4-bit w and b' = +-1 bits of the offset code u = w + 8,
    w = 1/2 b0' + b1' + 2 b2' + 4 b3' - 1/2 (our signed planes: the MSB plane's index inverted)."""
    cfg = LutConfig(w_bits=4)
    shifts, o, inv = plane_bits(cfg)
    for w in range(-8, 8):
        u = w + 8
        bp = [2 * ((u >> b) & 1) - 1 for b in range(4)]
        assert 2 * w == bp[0] + 2 * bp[1] + 4 * bp[2] + 8 * bp[3] - 1
        code = int(encode_weights(cfg, np.array([w]))[0])
        s = [(1 if ((code >> b) & 1) ^ inv[b] else -1) for b in range(4)]
        assert 2 * w == sum(s[b] << shifts[b] for b in range(4)) + o


def test_paper_offset_identity_unsigned():
    """Paper: for unsigned B-bit weights sum_k a_k w_k = 1/2 (sum_b 2^b sum_k s_kb a_k +
    (2^B - 1) sum_k a_k) with s = 2 bit - 1."""
    rng = np.random.default_rng(2)
    for B in (1, 2, 3, 4):
        a = rng.integers(-128, 128, 4)
        w = rng.integers(0, 1 << B, 4)
        s = [2 * ((w >> b) & 1) - 1 for b in range(B)]
        assert 2 * int(a @ w) == sum((1 << b) * int(a @ s[b]) for b in range(B)) + \
            ((1 << B) - 1) * int(a.sum())


def test_weights_out_of_range():
    cfg = LutConfig(w_bits=2)
    with pytest.raises(WorkloadError, match=r"b weights must be in -2\.\.1 \(signed 2-bit\), not 2 at \[0, 1\]"):
        reference(cfg, np.zeros((1, 1), np.int64), np.array([[1, 2]]).T.reshape(1, 2))
    with pytest.raises(WorkloadError, match=r"weight codes must be in 0\.\.3 \(ternary\), not 4"):
        weights_of(LutConfig(w_bits="ternary"), np.array([[4]]))
    assert decode_weights(LutConfig(w_bits="ternary"), np.arange(4)).tolist() == [-1, 0, 0, 1]
    assert decode_weights(LutConfig(w_bits=2, w_interp="pm1"), np.arange(4)).tolist() == [-3, -1, 1, 3]


# -- cycle model vs a literal register-transfer model of the contract -------------------------------
class ContractModel:
    """docs/lut.md's registers, written plainly: the table register (stored entries and offset
    term), the weight-code register, the control, the stage-2 register, the accumulators (2C mod
    2^33) and the shadow bank. Ports in, ports out, one edge per call."""

    def __init__(self, cfg: LutConfig):
        self.cfg = cfg
        M, N = cfg.tile_m, cfg.tile_n
        self.full = self.b = self.tlast = self.tfirst = 0
        self.newtile = 1
        self.v2 = self.fin2 = self.sfull = self.rptr = 0
        self.stored = np.zeros((M, cfg.entries), np.int64)
        self.bias = np.zeros(M, np.int64)
        self.codes = np.zeros((cfg.group, N), np.int64)
        self.acc = np.zeros((M, N), np.int64)
        self.shadow = np.zeros((M, N), np.int64)
        self.r2 = (np.zeros((M, N), np.int64), np.zeros(M, np.int64), 0, 0)

    def _terms(self):
        cfg = self.cfg
        shifts, _, inv = plane_bits(cfg)
        g = cfg.group
        bits = (self.codes >> self.b) & 1
        idx = (bits << np.arange(g)[:, None]).sum(axis=0)
        if inv[self.b]:
            idx = ~idx & ((1 << g) - 1)
        M = cfg.tile_m
        ent = lookup(self.stored[:, None, :].repeat(len(idx), 1),
                     np.broadcast_to(idx[None, :, None], (M, len(idx), 1)), g, cfg.sym)[..., 0]
        return ent << shifts[self.b]

    def step(self, ins):
        cfg = self.cfg
        M, N, g, P = cfg.tile_m, cfg.tile_n, cfg.group, cfg.planes
        busy = self.sfull or (self.full and self.tlast) or (self.v2 and self.fin2)
        last_in = ins["in_last"]
        in_ready = int((not self.full or self.b == P - 1) and not (last_in and busy))
        outs = {"in_ready": in_ready, "out_valid": self.sfull,
                "out_last": int(self.sfull and self.rptr == M - 1),
                "out_c": pack(self.shadow[self.rptr] if self.sfull else [0] * N, 32)}
        fire_in = ins["in_valid"] and in_ready
        # the accumulate of this cycle (stage 1 directly, or stage 2's register)
        if cfg.pipe_stages == 1:
            if self.full:
                terms, bias, zero, wb = self._terms(), self.bias, self.tfirst and self.b == 0, \
                    self.b == 0
            final = self.full and self.b == P - 1 and self.tlast
            en = self.full
        else:
            terms, bias, zero, wb = self.r2
            en, final = self.v2, self.v2 and self.fin2
        if en:
            total = (0 if zero else self.acc) + (bias[:, None] if wb else 0) + terms
            total &= (1 << 33) - 1
            self.acc = total
            if final:
                c = total >> 1
                self.shadow = np.where(c >= 1 << 31, c - (1 << 32), c)
        if cfg.pipe_stages == 2:
            if self.full:
                self.r2 = (self._terms(), self.bias.copy(), int(self.tfirst and self.b == 0),
                           int(self.b == 0))
            self.fin2 = int(self.full and self.b == P - 1 and self.tlast)
            self.v2 = self.full
        if self.sfull and ins["out_ready"]:
            if self.rptr == M - 1:
                self.sfull, self.rptr = 0, 0
            else:
                self.rptr += 1
        if final:
            self.sfull, self.rptr = 1, 0
        if self.full:
            if self.b == P - 1:
                self.full = 0
            else:
                self.b += 1
        if fire_in:
            a = np.array(unpack(ins["in_a"], M * g, 8, True)).reshape(M, g)
            _, o, _ = plane_bits(cfg)
            self.stored = sym_table(a) if cfg.sym else table(a)
            self.bias = o * a.sum(axis=1)
            self.codes = np.array(unpack(ins["in_w"], g * N, cfg.code_bits, False)).reshape(g, N)
            self.full, self.b, self.tlast = 1, 0, ins["in_last"]
            self.tfirst, self.newtile = self.newtile, ins["in_last"]
        return outs


CONFIGS = [LutConfig(tile_m=2, tile_n=3), LutConfig(tile_m=3, tile_n=2, w_bits=3,
                                                   w_interp="unsigned", pipe_stages=2),
           LutConfig(tile_m=1, tile_n=4, w_bits="ternary", sym=False),
           LutConfig(tile_m=2, tile_n=2, w_bits=4, w_interp="pm1", group=3, pipe_stages=2),
           LutConfig(tile_m=2, tile_n=2, w_bits=1, group=1)]


def _stimulus(cfg, rng, cycles, p_valid, p_ready):
    """Per cycle: random ports (a held beat until accepted is the testbench's job; here any value
    on any cycle, including junk `last`, so every control path is exercised)."""
    M, N, g = cfg.tile_m, cfg.tile_n, cfg.group
    for _ in range(cycles):
        yield {"in_valid": int(rng.random() < p_valid),
               "in_a": pack(rng.integers(-128, 128, M * g), 8),
               "in_w": pack(rng.integers(0, 1 << cfg.code_bits, g * N), cfg.code_bits),
               "in_last": int(rng.random() < 0.3), "out_ready": int(rng.random() < p_ready)}


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
@pytest.mark.parametrize("interpreted", [False, True])
def test_model_equals_contract_every_cycle(cfg, interpreted, seed):
    rng = np.random.default_rng(seed)
    model = LutModel(cfg, interpreted=interpreted)
    ref = ContractModel(cfg)
    for t, ins in enumerate(_stimulus(cfg, rng, 600, 0.7, 0.6)):
        got, want = model.step(ins), ref.step(ins)
        assert got == want, f"cycle {t}: {got} != {want} (seed {seed})"


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_free_running_equals_lockstep(cfg, seed):
    """run_beats (compiled and interpreted) with valid gaps and ready stalls gives the rows and the
    cycles of the same stimulus stepped in lockstep."""
    rng = np.random.default_rng(seed)
    M, N, g = cfg.tile_m, cfg.tile_n, cfg.group
    nb = 40
    A = rng.integers(-128, 128, (nb, M * g))
    codes = rng.integers(0, 1 << cfg.code_bits, (nb, g * N))
    W = decode_weights(cfg, codes)
    lasts = (rng.random(nb) < 0.3).astype(np.int64)
    lasts[-1] = 1
    valid = (rng.random(2000) < 0.6).astype(np.uint8)
    ready = (rng.random(2000) < 0.5).astype(np.uint8)
    runs = [LutModel(cfg, interpreted=i).run_beats(A, W, lasts, valid=valid, ready=ready)
            for i in (False, True)]
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]
    m = LutModel(cfg)
    rows, stamps, bi, t = [], [], 0, 0
    while len(rows) < len(runs[0][0]):
        v = int(bi < nb and valid[t])
        ins = {"in_valid": v, "in_a": pack(A[min(bi, nb - 1)], 8),
               "in_w": pack(codes[min(bi, nb - 1)], cfg.code_bits),
               "in_last": int(lasts[min(bi, nb - 1)]), "out_ready": int(ready[t])}
        out = m.step(ins)
        if v and out["in_ready"]:
            bi += 1
        if out["out_valid"] and ready[t]:
            rows.append(unpack(out["out_c"], N, 32, True))
            stamps.append(t)
        t += 1
    assert np.array_equal(np.array(rows), runs[0][0]) and stamps == runs[0][1].tolist()
    # and the rows are the tiles' products
    ends = np.flatnonzero(lasts) + 1
    starts = np.concatenate([[0], ends[:-1]])
    want = [A[s:e].reshape(-1, M, g).transpose(1, 0, 2).reshape(M, -1)
            @ W[s:e].reshape(-1, g, N).reshape(-1, N) for s, e in zip(starts, ends)]
    assert np.array_equal(np.concatenate(want), runs[0][0])
