"""The adder-tree engine's cycle model (sim/engines/_adder_tree_core.py) against docs/adder_tree.md.

(a) A literal register-transfer model, written plainly from the contract (every stage register:
    input, EN-T digit and vector registers, column forward, product, tree stages, shift-add, de-skew;
    the weight banks as shift registers; cnt/drain/lsel/rsel), runs beside AdderTreeModel.step on
    random stimulus (valid gaps on both input streams, junk on the data lines while valid is low,
    random out_ready stalls); every output port, and every column's result register, must agree
    every cycle, compiled and interpreted.
(b) Results equal numpy. (c) Stall-free latency, incl. the HPCA'25 figure (lanes 16 ent: column j's
result 8 + j cycles after its row). (d) run_folds equals stepping `step`. (e) The OPT2 overflow corner.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tpesim.engines.adder_tree import AdderTreeConfig, AdderTreeModel
from tpesim.numerics import pack, unpack, wrap

try:
    from tpesim.numerics import ent_digits
except ImportError:  # the contract's recoding, if sim.numerics does not have it (yet)
    def ent_digits(v):
        s = -1 if v < 0 else 1
        m, c, out = abs(int(v)), 0, []
        for i in range(4):
            x = ((m >> (2 * i)) & 3) + c
            c = 1 if x >= 3 else 0
            out.append(s * (x - 4 * c))
        return tuple(out)

MODES = [False, True]   # interpreted?


# -------------------------------------------------------------------------------------------------
# literal register-transfer model of docs/adder_tree.md
# -------------------------------------------------------------------------------------------------
def _reg(**payload):
    return {"v": 0, "l": 0, "bank": 0, **payload}


class LiteralAdderTree:
    """Every register of the contract, updated all at once at each clock edge (slow, plainly right).
    `tree_bits` overrides the EN-T bit-weight tree width (default 10 + ceil(log2 L))."""

    def __init__(self, cfg: AdderTreeConfig, tree_bits: int | None = None):
        self.cfg = cfg
        self.L, self.N, self.w = cfg.lanes, cfg.cols, cfg.in_bits
        self.ent = cfg.encoding == "ent"
        self.F = 3 if self.ent else 1
        d, n = 0, self.L
        while n > 1:
            n = -(-n // 4)
            d += 1
        self.D = d
        self.T = -(-d // cfg.levels_per_stage)
        clog = math.ceil(math.log2(self.L))
        self.tree_bits = tree_bits or (10 + clog if self.ent else cfg.result_bits)
        self.nb = 2 if cfg.double_buffer else 1
        self.reset()

    def reset(self):
        L, N = self.L, self.N
        zrow = [0] * L
        zdig = [[0] * 4 for _ in range(L)]
        self.inreg = _reg(a=list(zrow))
        self.digreg = _reg(x=[list(d) for d in zdig])
        self.vecreg = _reg(x=[list(d) for d in zdig])
        x0 = zdig if self.ent else zrow
        self.col = [_reg(x=[list(d) for d in x0] if self.ent else list(x0)) for _ in range(N)]
        if self.ent:
            self.prod = [_reg(p=[[0] * L for _ in range(4)]) for _ in range(N)]
        else:
            self.prod = [_reg(p=[0] * L) for _ in range(N)]
        self.tree = [[_reg(p=self._zero_stage(k + 1)) for k in range(self.T)] for _ in range(N)]
        self.sa = [_reg(r=0) for _ in range(N)]
        self.desk = [[_reg(r=0) for _ in range(N - 1 - j)] for j in range(N)]
        self.bank = [[[0] * N for _ in range(L)] for _ in range(self.nb)]
        self.cnt = [0] * self.nb
        self.drain = [0] * self.nb
        self.lsel = self.rsel = 0

    # -- combinational helpers -----------------------------------------------------------------
    def _levels(self, k):
        """Tree levels applied after tree stage k (0 = the product register)."""
        return min(self.D, k * self.cfg.levels_per_stage)

    def _zero_stage(self, k):
        n = self.L
        for _ in range(self._levels(k)):
            n = -(-n // 4)
        z = [0] * n
        return [list(z) for _ in range(4)] if self.ent else z

    def _reduce(self, vals, levels):
        for _ in range(levels):
            vals = [wrap(sum(vals[g:g + 4]), self.tree_bits, self.cfg.signed)
                    for g in range(0, len(vals), 4)]
        return vals

    def _tree_step(self, src, k_from, k_to):
        n = self._levels(k_to) - self._levels(k_from)
        if self.ent:
            return [self._reduce(list(src[b]), n) for b in range(4)]
        return self._reduce(list(src), n)

    def result_reg(self, j):
        """Column j's result register (value, valid, last)."""
        if self.ent:
            r = self.sa[j]
            return r["r"], r["v"], r["l"]
        src = self.tree[j][-1] if self.T else self.prod[j]
        return src["p"][0], src["v"], src["l"]

    def _result_value(self, j):
        """Next value of column j's shift-add register (ent): sum_b tree_b << 2b."""
        src = self.tree[j][-1] if self.T else self.prod[j]
        return wrap(sum(src["p"][b][0] << (2 * b) for b in range(4)), self.cfg.result_bits,
                    self.cfg.signed)

    def outputs(self, out_ready):
        N = self.N
        r, ov, ol = self.result_reg(N - 1)
        oc = [self.desk[j][-1]["r"] if j < N - 1 else r for j in range(N)]
        adv = int(not ov or out_ready)
        load_ready = int(self.cnt[self.lsel] < self.L and self.drain[self.lsel] == 0)
        in_ready = int(adv and self.cnt[self.rsel] == self.L)
        return load_ready, in_ready, ov, ol, oc, adv

    # -- one clock edge --------------------------------------------------------------------------
    def clock(self, load_valid, load_data, in_valid, in_data, in_last, out_ready):
        L, N, sg = self.L, self.N, self.cfg.signed
        load_ready, in_ready, _, _, _, adv = self.outputs(out_ready)
        fire_w = bool(load_valid and load_ready)
        fire_in = bool(in_valid and in_ready)
        if adv:
            # next values of every pipeline register, from this cycle's values
            if fire_in:
                inreg = _reg(a=list(in_data), v=1, l=int(bool(in_last)), bank=self.rsel)
            else:
                inreg = _reg(a=[0] * L)
            front = self.inreg
            if self.ent:
                digreg = dict(self.inreg, x=[list(ent_digits(a)) for a in self.inreg["a"]])
                digreg.pop("a")
                vecreg = dict(self.digreg)
                front = self.vecreg
                col = [dict(front)] + [dict(c) for c in self.col[:-1]]
            else:
                col = [_reg(x=list(front["a"]), v=front["v"], l=front["l"], bank=front["bank"])]
                col += [dict(c) for c in self.col[:-1]]
            prod = []
            for j, c in enumerate(self.col):
                wgt = self.bank[c["bank"]]
                if self.ent:
                    p = [[c["x"][i][b] * wgt[i][j] for i in range(L)] for b in range(4)]
                    p = [[wrap(v, self.w + 2, True) for v in pb] for pb in p]
                else:
                    p = [wrap(c["x"][i] * wgt[i][j], 2 * self.w, sg) for i in range(L)]
                prod.append(_reg(p=p, v=c["v"], l=c["l"], bank=c["bank"]))
            tree = []
            for j in range(N):
                stages = []
                for k in range(self.T):
                    src = self.prod[j] if k == 0 else self.tree[j][k - 1]
                    stages.append(_reg(p=self._tree_step(src["p"], k, k + 1), v=src["v"],
                                       l=src["l"], bank=src["bank"]))
                tree.append(stages)
            sa = []
            if self.ent:
                for j in range(N):
                    src = self.tree[j][-1] if self.T else self.prod[j]
                    sa.append(_reg(r=self._result_value(j), v=src["v"], l=src["l"]))
            desk = []
            for j in range(N):
                if N - 1 - j == 0:
                    desk.append([])
                    continue
                r, v, lb = self.result_reg(j)
                desk.append([_reg(r=r, v=v, l=lb)] + [dict(d) for d in self.desk[j][:-1]])
            self.inreg = inreg
            if self.ent:
                self.digreg, self.vecreg = digreg, vecreg
            self.col, self.prod, self.tree, self.desk = col, prod, tree, desk
            if self.ent:
                self.sa = sa
        # control (drain decrements only with adv, except a counter set this cycle)
        set_now = [False] * self.nb
        if fire_in and in_last:
            b = self.rsel
            self.cnt[b] = 0
            self.drain[b] = self.F + N
            set_now[b] = True
            if self.nb == 2:
                self.rsel ^= 1
        if adv:
            for b in range(self.nb):
                if self.drain[b] > 0 and not set_now[b]:
                    self.drain[b] -= 1
        if fire_w:
            b = self.lsel
            rows = self.bank[b]
            self.bank[b] = [list(rows[i + 1]) for i in range(L - 1)] + [list(load_data)]
            self.cnt[b] += 1
            if self.cnt[b] == L and self.nb == 2:
                self.lsel ^= 1
        return fire_w, fire_in


CONFIGS = [
    dict(lanes=16, cols=16, encoding="ent"),
    dict(lanes=16, cols=16),
    dict(lanes=5, cols=3),
    dict(lanes=7, cols=1, levels_per_stage=2),
    dict(lanes=1, cols=4),
    dict(lanes=1, cols=2, encoding="ent"),
    dict(lanes=6, cols=5, in_bits=4),
    dict(lanes=3, cols=4, in_bits=4, signed=False),
    dict(lanes=9, cols=3, in_bits=16, signed=False),
    dict(lanes=4, cols=3, in_bits=16, signed=True, double_buffer=True),
    dict(lanes=20, cols=6, encoding="ent", double_buffer=True),
    dict(lanes=17, cols=2, encoding="ent", levels_per_stage=3),
    dict(lanes=12, cols=7, levels_per_stage=2, double_buffer=True),
]


def _cfg_id(d):
    return "-".join(f"{k}{v}" for k, v in d.items())


class Stimulus:
    """Random load blocks and row blocks; valid drops at random, junk data while valid is low."""

    def __init__(self, cfg, rng, blocks, p_load=0.7, p_in=0.7, p_ready=0.7):
        self.cfg, self.rng = cfg, rng
        lo, hi = cfg.in_range
        self.lo, self.hi = lo, hi
        L, N = cfg.lanes, cfg.cols
        self.ws = [rng.integers(lo, hi + 1, (L, N)) for _ in range(blocks)]
        self.ms = [int(rng.integers(1, 2 * L + cfg.cols + 4)) for _ in range(blocks)]
        self.xs = [rng.integers(lo, hi + 1, (m, L)) for m in self.ms]
        self.loads = np.concatenate(self.ws) if blocks else np.zeros((0, N), np.int64)
        self.rows = np.concatenate(self.xs) if blocks else np.zeros((0, L), np.int64)
        self.lasts = np.zeros(len(self.rows), np.int64)
        self.lasts[np.cumsum(self.ms) - 1] = 1
        self.p_load, self.p_in, self.p_ready = p_load, p_in, p_ready
        self.li = self.bi = 0

    def junk(self, n):
        return [int(v) for v in self.rng.integers(self.lo, self.hi + 1, n)]

    def inputs(self):
        cfg, rng = self.cfg, self.rng
        lv = self.li < len(self.loads) and rng.random() < self.p_load
        iv = self.bi < len(self.rows) and rng.random() < self.p_in
        wd = [int(v) for v in self.loads[self.li]] if lv else self.junk(cfg.cols)
        ad = [int(v) for v in self.rows[self.bi]] if iv else self.junk(cfg.lanes)
        last = int(self.lasts[self.bi]) if iv else int(rng.random() < 0.5)
        rdy = int(rng.random() < self.p_ready)
        return int(lv), wd, int(iv), ad, last, rdy

    def accepted(self, fire_w, fire_in):
        self.li += int(fire_w)
        self.bi += int(fire_in)

    def done(self):
        return self.li >= len(self.loads) and self.bi >= len(self.rows)


def _ins(cfg, lv, wd, iv, ad, last, rdy):
    return {"load_valid": lv, "load_data": pack(wd, cfg.in_bits), "in_valid": iv,
            "in_data": pack(ad, cfg.in_bits), "in_last": last, "out_ready": rdy}


@pytest.mark.parametrize("interpreted", MODES, ids=["compiled", "interpreted"])
@pytest.mark.parametrize("spec", CONFIGS, ids=_cfg_id)
def test_literal_rtl_lockstep(spec, interpreted, rng):
    """Every output port and column result register, every cycle, against the literal model."""
    cfg = AdderTreeConfig(**spec)
    blocks = 3 if cfg.lanes * cfg.cols >= 200 else 5
    stim = Stimulus(cfg, rng, blocks, p_load=float(rng.uniform(0.3, 1)),
                    p_in=float(rng.uniform(0.3, 1)), p_ready=float(rng.uniform(0.3, 1)))
    ref = LiteralAdderTree(cfg)
    model = AdderTreeModel(cfg, interpreted=interpreted)
    rb, N = cfg.result_bits, cfg.cols
    got_rows = []
    total = len(stim.rows)
    idle = 0
    t = 0
    while idle < 3:
        lv, wd, iv, ad, last, rdy = stim.inputs()
        lr, ir, ov, ol, oc, _ = ref.outputs(rdy)
        for j in range(N):
            assert model.column_result(j) == ref.result_reg(j)[0], f"column {j} at cycle {t}"
        outs = model.step(_ins(cfg, lv, wd, iv, ad, last, rdy))
        exp = {"load_ready": lr, "in_ready": ir, "out_valid": ov, "out_last": ol,
               "out_c": pack(oc, rb)}
        assert outs == exp, (f"cycle {t}: model {outs} != literal {exp} "
                             f"(out_c model {unpack(outs['out_c'], N, rb, cfg.signed)} literal {oc})")
        if ov and rdy:
            got_rows.append(unpack(outs["out_c"], N, rb, cfg.signed))
        fw, fi = ref.clock(lv, wd, iv, ad, last, rdy)
        stim.accepted(fw, fi)
        idle = idle + 1 if (stim.done() and len(got_rows) == total) else 0
        t += 1
        assert t < 20000, "stimulus did not finish"
    exp_rows = np.concatenate([x @ w for x, w in zip(stim.xs, stim.ws)])
    assert np.array_equal(np.array(got_rows, np.int64).reshape(-1, N), exp_rows)   # (b)


# -------------------------------------------------------------------------------------------------
# (b) numpy, (d) run_folds = step
# -------------------------------------------------------------------------------------------------
def _step_run(model, loads, rows, lasts, lavail, iavail, ready, max_cycles=200000):
    """Drive `step` with run_folds' source/sink rules; returns (rows, stamps, cycles, load stamps)."""
    cfg = model.cfg
    li = bi = 0
    out, stamps, lst = [], [], []
    t = 0
    start = model.cycle
    inflight = 0
    while t < max_cycles:
        c = model.cycle
        if li >= len(loads) and bi >= len(rows) and inflight == 0:
            break
        lv = int(li < len(loads) and c >= lavail[li])
        iv = int(bi < len(rows) and c >= iavail[bi])
        rdy = int(ready[t]) if t < len(ready) else 1
        wd = [int(v) for v in loads[li]] if li < len(loads) else [0] * cfg.cols
        ad = [int(v) for v in rows[bi]] if bi < len(rows) else [0] * cfg.lanes
        last = int(lasts[bi]) if bi < len(rows) else 0
        o = model.step(_ins(cfg, lv, wd, iv, ad, last, rdy))
        if o["out_valid"] and rdy:
            out.append(unpack(o["out_c"], cfg.cols, cfg.result_bits, cfg.signed))
            stamps.append(c)
            inflight -= 1
        if lv and o["load_ready"]:
            lst.append(c)
            li += 1
        if iv and o["in_ready"]:
            bi += 1
            inflight += 1
        t += 1
    return (np.array(out, np.int64).reshape(-1, cfg.cols), np.array(stamps, np.int64),
            model.cycle - start, np.array(lst, np.int64))


def _folds(cfg, rng, F, mmax=None):
    lo, hi = cfg.in_range
    L, N = cfg.lanes, cfg.cols
    mmax = mmax or 2 * L + N + 8
    ms = [int(rng.integers(1, mmax)) for _ in range(F)]
    ws = [rng.integers(lo, hi + 1, (L, N)) for _ in range(F)]
    xs = [rng.integers(lo, hi + 1, (m, L)) for m in ms]
    lasts = np.zeros(sum(ms), np.int64)
    lasts[np.cumsum(ms) - 1] = 1
    loads = np.concatenate([AdderTreeModel.load_order(w) for w in ws])
    return ms, ws, xs, loads, np.concatenate(xs), lasts


@pytest.mark.parametrize("interpreted", MODES, ids=["compiled", "interpreted"])
@pytest.mark.parametrize("spec", CONFIGS, ids=_cfg_id)
@pytest.mark.parametrize("rep", range(4))
def test_run_folds_equals_step(spec, interpreted, rep, rng):
    cfg = AdderTreeConfig(**spec)
    F = int(rng.integers(1, 6))
    ms, ws, xs, loads, rows, lasts = _folds(cfg, rng, F)
    # availability: per fold (as the memory gives it) or per beat, increasing or not; a ready
    # schedule with stalls
    n = len(rows)
    kind = int(rng.integers(0, 3))
    if kind == 0:
        la = np.repeat(np.sort(rng.integers(0, 60, F)), cfg.lanes)
        ia = np.repeat(rng.integers(0, 120, F), ms)
    elif kind == 1:
        la = np.sort(rng.integers(0, 30 * F, len(loads)))
        ia = np.sort(rng.integers(0, 40 * F, n))
    else:
        la = rng.integers(0, 30 * F, len(loads))
        ia = rng.integers(0, 40 * F, n)
    ready = None
    if rep == 2:
        ready = (rng.random(int(rng.integers(0, 400))) < rng.uniform(0.3, 1)).astype(np.uint8)
    m1 = AdderTreeModel(cfg, interpreted=interpreted)
    out, st, cyc, lst = m1.run_folds(loads, rows, lasts, load_avail=la, in_avail=ia, ready=ready,
                                     load_stamps=True)
    m2 = AdderTreeModel(cfg, interpreted=interpreted)
    out2, st2, cyc2, lst2 = _step_run(m2, loads, rows, lasts, la, ia, [] if ready is None else ready)
    assert cyc == cyc2
    assert np.array_equal(st, st2)
    assert np.array_equal(lst, lst2)
    assert np.array_equal(out, out2)
    assert np.array_equal(out, np.concatenate([x @ w for x, w in zip(xs, ws)]))


@pytest.mark.parametrize("interpreted", MODES, ids=["compiled", "interpreted"])
@pytest.mark.parametrize("spec", [CONFIGS[9], CONFIGS[10], CONFIGS[12],
                                  dict(lanes=2, cols=1, double_buffer=True)], ids=_cfg_id)
def test_run_folds_equals_step_loads_trickle_during_rows(spec, interpreted, rng):
    """Two banks, long blocks of rows always available, the next blocks' load beats arriving one
    by one with gaps of 1..3 cycles (each beat's availability its own): loads interleave with a
    long run of rows."""
    cfg = AdderTreeConfig(**spec)
    F = 4
    ms, ws, xs, loads, rows, lasts = _folds(cfg, rng, F, mmax=6 * cfg.lanes + 3 * cfg.cols + 20)
    la = np.cumsum(rng.integers(1, 4, len(loads)))
    ia = np.zeros(len(rows), np.int64)
    m1 = AdderTreeModel(cfg, interpreted=interpreted)
    res1 = m1.run_folds(loads, rows, lasts, load_avail=la, in_avail=ia, load_stamps=True)
    res2 = _step_run(AdderTreeModel(cfg, interpreted=interpreted), loads, rows, lasts, la, ia, [])
    assert res1[2] == res2[2]
    for a, b in zip((res1[0], res1[1], res1[3]), (res2[0], res2[1], res2[3])):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("interpreted", MODES, ids=["compiled", "interpreted"])
@pytest.mark.parametrize("spec", [CONFIGS[0], CONFIGS[2], CONFIGS[9], CONFIGS[10]], ids=_cfg_id)
def test_chunked_run_folds_and_step_handoff(spec, interpreted, rng):
    """Per-fold run_folds calls with drain=False (loads not taken offered again, rows in flight
    carried over), with `step` cycles in between, give the rows and cycles of one long call."""
    cfg = AdderTreeConfig(**spec)
    F = 5
    ms, ws, xs, loads, rows, lasts = _folds(cfg, rng, F)
    one = AdderTreeModel(cfg, interpreted=interpreted)
    out1, st1, cyc1 = one.run_folds(loads, rows, lasts)
    m = AdderTreeModel(cfg, interpreted=interpreted)
    outs, sts = [], []
    r0 = 0
    pending = loads
    for f in range(F):
        x = rows[r0:r0 + ms[f]]
        lf = lasts[r0:r0 + ms[f]]
        final = f == F - 1
        res = m.run_folds(pending, x, lf, drain=final)
        outs.append(res[0])
        sts.append(res[1])
        if not final:
            pending = pending[res[3]:]
        r0 += ms[f]
    assert m.cycle == cyc1
    assert np.array_equal(np.concatenate(outs), out1)
    assert np.array_equal(np.concatenate(sts), st1)
    # a step in the middle of a stream: run_folds hands its state (rows in flight included) over
    m3 = AdderTreeModel(cfg, interpreted=interpreted)
    k = ms[0] // 2 + 1
    res = m3.run_folds(loads[:cfg.lanes], rows[:k], lasts[:k], drain=False)
    taken = res[3]
    got = [res[0]]
    o = m3.step({"out_ready": 1})                       # one idle cycle by hand
    extra = [unpack(o["out_c"], cfg.cols, cfg.result_bits, cfg.signed)] if o["out_valid"] else []
    res2 = m3.run_folds(loads[taken:], rows[k:], lasts[k:])
    got = np.concatenate([got[0], np.array(extra, np.int64).reshape(-1, cfg.cols), res2[0]])
    assert np.array_equal(got, out1)


# -------------------------------------------------------------------------------------------------
# (c) latency
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", CONFIGS, ids=_cfg_id)
def test_stall_free_latency(spec, rng):
    """A row accepted in cycle t leaves in cycle t + latency; column j's result register holds it
    from t + column_latency + j (and not a cycle earlier)."""
    cfg = AdderTreeConfig(**spec)
    lo, hi = cfg.in_range
    w = rng.integers(lo, hi + 1, (cfg.lanes, cfg.cols))
    x = rng.integers(lo, hi + 1, cfg.lanes)
    want = x @ w
    m = AdderTreeModel(cfg)
    for row in w:
        m.step({"load_valid": 1, "load_data": pack(row, cfg.in_bits), "out_ready": 1})
    t = m.cycle
    o = m.step({"in_valid": 1, "in_data": pack(x, cfg.in_bits), "in_last": 1, "out_ready": 1})
    assert o["in_ready"] == 1
    left = []
    for c in range(t + 1, t + cfg.latency + 3):
        for j in range(cfg.cols):
            at = t + cfg.column_latency + j
            assert m.column_result(j) == (want[j] if c == at else 0), (c, j)
        o = m.step({"out_ready": 1})
        if o["out_valid"]:
            left.append(c)
            assert unpack(o["out_c"], cfg.cols, cfg.result_bits, cfg.signed) == want.tolist()
    assert left == [t + cfg.latency]


def test_hpca25_latency_figure():
    """lanes 16 int8 'ent' (the HPCA'25 OPT2 RTL): column j's result 8 + j cycles after its row."""
    cfg = AdderTreeConfig(lanes=16, cols=16, encoding="ent")
    assert cfg.column_latency == 8 and cfg.latency == 8 + 15
    m = AdderTreeModel(cfg)
    w = np.arange(1, 17)[None, :] * np.ones((16, 1), np.int64)   # column j of W = j + 1
    for row in w:
        m.step({"load_valid": 1, "load_data": pack(row, 8), "out_ready": 1})
    t = m.cycle
    m.step({"in_valid": 1, "in_data": pack([1] * 16, 8), "in_last": 1, "out_ready": 1})
    for c in range(t + 1, t + 8 + 16 + 2):
        for j in range(16):
            assert m.column_result(j) == (16 * (j + 1) if c == t + 8 + j else 0), (c, j)
        o = m.step({"out_ready": 1})
        assert o["out_valid"] == int(c == t + 8 + 15)


def test_stalls_add_one_cycle_each(rng):
    """Each cycle of out_valid & ~out_ready adds one cycle to every row in flight."""
    cfg = AdderTreeConfig(lanes=4, cols=3)
    ms, ws, xs, loads, rows, lasts = _folds(cfg, rng, 1, mmax=2)
    stall = np.ones(100, np.uint8)
    k = cfg.lanes + cfg.latency                  # the row's first output cycle
    stall[k:k + 5] = 0
    out, st, cyc = AdderTreeModel(cfg).run_folds(loads, rows, lasts, ready=stall)
    assert st[0] == k + 5


# -------------------------------------------------------------------------------------------------
# (e) the OPT2 overflow corner
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("interpreted", MODES, ids=["compiled", "interpreted"])
def test_adder_tree_opt2_overflow_corner(interpreted):
    """All -128 x all -128 on lanes 16 ent: +262144 per column (the published 13-bit bit-weight
    trees give -262144: 16 partial products of +256 at bit weight 3 are 4096)."""
    cfg = AdderTreeConfig(lanes=16, cols=16, encoding="ent")
    w = np.full((16, 16), -128, np.int64)
    x = np.full((3, 16), -128, np.int64)
    lasts = np.array([0, 0, 1])
    out, st, cyc = AdderTreeModel(cfg, interpreted=interpreted).run_folds(w, x, lasts)
    assert (out == 262144).all()
    assert cfg.result_bits == 20 and 262144 < 1 << 19
    # the literal model with the contract's tree width, and with the published 13 bits
    for bits, want in ((None, 262144), (13, -262144)):
        ref = LiteralAdderTree(cfg, tree_bits=bits)
        got = None
        for c in range(60):
            lv = int(c < 16)
            iv = int(c == 16)
            r = ref.outputs(1)
            if r[2]:
                got = r[4]
                break
            ref.clock(lv, [-128] * 16, iv, [-128] * 16, iv, 1)
        assert got == [want] * 16
    # and step() agrees
    m = AdderTreeModel(cfg, interpreted=interpreted)
    for c in range(60):
        o = m.step({"load_valid": int(c < 16), "load_data": pack([-128] * 16, 8),
                    "in_valid": int(c == 16), "in_data": pack([-128] * 16, 8), "in_last": 1,
                    "out_ready": 1})
        if o["out_valid"]:
            assert unpack(o["out_c"], 16, 20, True) == [262144] * 16
            break
    else:
        raise AssertionError("no output")


def test_ent_digits_contract():
    """EN-T digits as the contract defines them: v = sum d_i 4^i, d_i in -2..2, 747 non-zero."""
    nz = 0
    for v in range(-128, 128):
        d = ent_digits(v)
        assert sum(di * 4 ** i for i, di in enumerate(d)) == v
        assert all(-2 <= di <= 2 for di in d)
        nz += sum(1 for di in d if di)
    assert nz == 747


# -------------------------------------------------------------------------------------------------
# misc API
# -------------------------------------------------------------------------------------------------
def test_ports_reset_vcd_and_load_order(tmp_path, rng):
    cfg = AdderTreeConfig(lanes=3, cols=2, double_buffer=True)
    names = {p.name for p in cfg.ports()}
    m = AdderTreeModel(cfg, vcd_path=tmp_path / "w.vcd")
    o = m.step({})
    assert set(o) | {"load_valid", "load_data", "in_valid", "in_data", "in_last",
                     "out_ready"} == names
    assert o == {"load_ready": 1, "in_ready": 0, "out_valid": 0, "out_last": 0, "out_c": 0}
    m.close()
    assert "load_ready" in (tmp_path / "w.vcd").read_text()
    w = rng.integers(-5, 5, (3, 2))
    assert np.array_equal(AdderTreeModel.load_order(w), w)
    m.reset()
    assert m.core.cnt(0) == 0 and m.core.lsel == 0 and m.core.rsel == 0


def test_run_folds_errors():
    from tpesim.errors import WorkloadError

    cfg = AdderTreeConfig(lanes=2, cols=2)
    m = AdderTreeModel(cfg)
    # more load beats than blocks: the second block can never load into the single bank
    with pytest.raises(WorkloadError):
        m.run_folds(np.zeros((6, 2)), np.zeros((1, 2)), np.array([1]), max_cycles=1000)
    # rows without weights
    m = AdderTreeModel(cfg)
    with pytest.raises(WorkloadError):
        m.run_folds(np.zeros((0, 2)), np.zeros((1, 2)), np.array([1]), max_cycles=1000)
