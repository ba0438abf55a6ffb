"""White-box check of the WS/IS cycle model: every RTL register, every cycle.

The core keeps an equivalent state (control and load chain stepped per cycle, a ring of the last
advancing edges with each beat's result row computed when it is fired, weight-version snapshots) and
rebuilds the registers on request (`StationaryCore.register`). Here a literal register-transfer
model, written plainly from rtl/systolic.py's PreloadArray (skew lines, PE grid shifting a/last,
psums, de-skew lines, valid/last pipe, load chain, token swap, control), runs beside it on random
stimulus with valid gaps, ready stalls and loads at any time, and every register and port must agree
at every cycle, compiled and interpreted, single- and double-buffered.
"""

import pytest

from tpesim.engines import load_core
from tpesim.numerics import wrap


class LiteralWs:
    """The RTL's registers, shifted one by one (slow, obviously right)."""

    def __init__(self, R, C, acc_bits, signed, dbuf):
        self.R, self.C, self.L, self.bits, self.signed, self.dbuf = R, C, R + C, acc_bits, signed, dbuf
        z = lambda r, c: [[0] * c for _ in range(r)]  # noqa: E731
        self.ask, self.lsk = [[0] * (i + 1) for i in range(R)], [[0] * (i + 1) for i in range(R)]
        self.pa, self.pl, self.ps = z(R, C), z(R, C), z(R, C)
        self.wact = z(R, C)
        self.wsh = z(R, C) if dbuf else self.wact
        self.dsk = [[0] * (C - 1 - j) for j in range(C)]
        self.vp, self.lp = [0] * self.L, [0] * self.L
        self.wcnt = self.act_valid = self.tok_flight = self.tok_swap = 0

    def outputs(self, in_last, out_ready):
        R, C, L = self.R, self.C, self.L
        adv = int(not self.vp[L - 1] or out_ready)
        in_ready = int(adv and self.act_valid and (not in_last or not self.tok_flight))
        if self.dbuf:
            load_ready = int(self.wcnt < R and not (self.tok_flight and self.tok_swap))
        else:
            load_ready = int(not self.act_valid and not self.tok_flight and self.wcnt < R)
        oc = [self.dsk[j][C - 2 - j] if j < C - 1 else self.ps[R - 1][C - 1] for j in range(C)]
        return load_ready, in_ready, self.vp[L - 1], self.lp[L - 1], oc, adv

    def clock(self, fire_w, wdata, fire_in, adata, in_last, adv):
        R, C, L = self.R, self.C, self.L
        launch = int(fire_in and in_last)
        wfull = int(self.wcnt == R)
        l_end = 0
        # every register's next value from this cycle's values, then all at once (nonblocking)
        wact = [row[:] for row in self.wact]
        wsh = [row[:] for row in self.wsh] if self.dbuf else wact
        if fire_w:
            for i in range(R - 1, 0, -1):
                wsh[i] = list(self.wsh[i - 1])
            wsh[0] = list(wdata)
        if adv:
            lin_of = lambda i, j: self.lsk[i][i] if j == 0 else self.pl[i][j - 1]  # noqa: E731
            ain_of = lambda i, j: self.ask[i][i] if j == 0 else self.pa[i][j - 1]  # noqa: E731
            l_end = lin_of(R - 1, C - 1)
            dsk = [[self.ps[R - 1][j]] + self.dsk[j][:-1] if self.dsk[j] else [] for j in range(C)]
            ps = [[wrap((self.ps[i - 1][j] if i else 0) + ain_of(i, j) * self.wact[i][j], self.bits,
                        self.signed) for j in range(C)] for i in range(R)]
            pa = [[ain_of(i, j) for j in range(C)] for i in range(R)]
            pl = [[lin_of(i, j) for j in range(C)] for i in range(R)]
            if self.dbuf:
                for i in range(R):
                    for j in range(C):
                        if pl[i][j] and self.tok_swap:
                            wact[i][j] = self.wsh[i][j]
            ask = [[adata[i] if fire_in else 0] + self.ask[i][:-1] for i in range(R)]
            lsk = [[launch] + self.lsk[i][:-1] for i in range(R)]
            self.vp = [int(fire_in)] + self.vp[:-1]
            self.lp = [launch] + self.lp[:-1]
            self.ps, self.pa, self.pl, self.ask, self.lsk, self.dsk = ps, pa, pl, ask, lsk, dsk
        # control, in the RTL's order (later assignments win)
        act_valid, wcnt, tok_flight, tok_swap = self.act_valid, self.wcnt, self.tok_flight, self.tok_swap
        if self.dbuf:
            if not self.act_valid and wfull and not self.tok_flight:
                wact = [row[:] for row in self.wsh]
                act_valid, wcnt = 1, 0
            if fire_w:
                wcnt = self.wcnt + 1
        elif fire_w:
            if self.wcnt == R - 1:
                act_valid, wcnt = 1, 0
            else:
                wcnt = self.wcnt + 1
        if adv and l_end:
            tok_flight = 0
        if launch:
            tok_flight = 1
            if self.dbuf:
                tok_swap = wfull
                if wfull:
                    wcnt = 0
                else:
                    act_valid = 0
            else:
                act_valid = 0
        self.wact = wact
        self.wsh = wsh if self.dbuf else wact
        self.act_valid, self.wcnt, self.tok_flight, self.tok_swap = act_valid, wcnt, tok_flight, tok_swap


@pytest.mark.parametrize("interpreted", [False, True])
@pytest.mark.parametrize("dbuf", [False, True])
@pytest.mark.parametrize("R,C,in_bits,signed,acc_bits", [
    (3, 2, 8, True, 32), (1, 4, 4, True, 9), (4, 1, 16, False, 33), (2, 3, 8, True, 64),
    (4, 4, 8, False, 17), (1, 1, 8, True, 16),
])
def test_every_register_every_cycle(R, C, in_bits, signed, acc_bits, dbuf, interpreted, rng):
    core = load_core("_preload_core", interpreted).StationaryCore(R, C, acc_bits, signed, dbuf)
    ref = LiteralWs(R, C, acc_bits, signed, dbuf)
    lo, hi = (-(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1) if signed else (0, (1 << in_bits) - 1)
    rows_left = 0
    for cycle in range(600):
        if rows_left == 0:
            rows_left = int(rng.integers(1, 2 * (R + C)))
        lv = int(rng.random() < 0.6)
        iv = int(rng.random() < 0.7)
        w = [int(x) for x in rng.integers(lo, hi + 1, C)]
        a = [int(x) for x in rng.integers(lo, hi + 1, R)]
        if cycle % 37 == 0:
            a[0], w[0] = lo, lo
        last = int(rows_left == 1) if iv else int(rng.random() < 0.5)
        ready = int(rng.random() < 0.7)
        lr, ir, ov, ol, oc, adv = ref.outputs(last, ready)
        got = core.step(lv, w, iv, a, last, ready)
        assert tuple(got[:4]) == (lr, ir, ov, ol) and list(got[4]) == oc, f"ports at cycle {cycle}"
        fire_in = int(iv and ir)
        ref.clock(int(lv and lr), w, fire_in, a, last, adv)
        if fire_in:
            rows_left -= 1
        for i in range(R):
            for j in range(C):
                for name, regs in (("psum", ref.ps), ("a", ref.pa), ("last", ref.pl), ("w", ref.wact),
                                   ("w_shadow", ref.wsh if dbuf else [[0] * C for _ in range(R)])):
                    assert core.register(name, i, j) == regs[i][j], \
                        f"{name} of PE({i},{j}) after cycle {cycle}"
            for d in range(i + 1):
                assert core.register("a_skew", i, d) == ref.ask[i][d], f"a_skew {i},{d} after {cycle}"
                assert core.register("last_skew", i, d) == ref.lsk[i][d], f"last_skew {i},{d} after {cycle}"
        for j in range(C):
            for d in range(C - 1 - j):
                assert core.register("deskew", j, d) == ref.dsk[j][d], f"deskew {j},{d} after {cycle}"
        for d in range(R + C):
            assert core.register("valid_pipe", d) == ref.vp[d], f"valid_pipe {d} after {cycle}"
            assert core.register("last_pipe", d) == ref.lp[d], f"last_pipe {d} after {cycle}"
        assert (core.wcnt, core.act_valid, core.tok_flight, core.tok_swap) == \
            (ref.wcnt, ref.act_valid, ref.tok_flight, ref.tok_swap), f"control after cycle {cycle}"
