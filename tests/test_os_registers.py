"""White-box check of the OS cycle model: every RTL register of every PE, every cycle.

The compiled core keeps an equivalent state (control stepped per cycle, per-tile sums, a beat ring)
and rebuilds registers on request (`OsCore.register`). Here a literal register-transfer model, written
plainly from rtl/systolic.py (skew lines, PE grid shifting a/b/last, acc/shadow, drain control),
runs beside it on random stimulus with valid gaps and ready stalls, and every register and port must
agree at every cycle, compiled and interpreted.
"""

import numpy as np
import pytest

from tpesim.engines import load_core
from tpesim.numerics import wrap


class LiteralOs:
    """The RTL's registers, shifted one by one (slow, obviously right)."""

    def __init__(self, R, C, acc_bits, signed):
        self.R, self.C, self.bits, self.signed = R, C, acc_bits, signed
        z = lambda r, c: [[0] * c for _ in range(r)]  # noqa: E731
        self.ask, self.lsk, self.bsk = z(R, R), z(R, R), z(C, C)
        self.pa, self.pb, self.pl = z(R, C), z(R, C), z(R, C)
        self.acc, self.shadow = z(R, C), z(R, C)
        self.pending = self.full = self.rptr = 0

    def outputs(self, in_last):
        in_ready = int(not in_last or not (self.pending or self.full))
        return in_ready, self.full, int(self.full and self.rptr == self.R - 1), list(self.shadow[self.rptr])

    def clock(self, fire_in, a, b, last, fire_out):
        R, C = self.R, self.C
        new_pa = [[0] * C for _ in range(R)]
        new_pb = [[0] * C for _ in range(R)]
        new_pl = [[0] * C for _ in range(R)]
        l_end = 0
        for i in range(R):
            for j in range(C):
                ain = self.ask[i][i] if j == 0 else self.pa[i][j - 1]
                lin = self.lsk[i][i] if j == 0 else self.pl[i][j - 1]
                bin_ = self.bsk[j][j] if i == 0 else self.pb[i - 1][j]
                total = wrap(self.acc[i][j] + ain * bin_, self.bits, self.signed)
                if lin:
                    self.shadow[i][j], self.acc[i][j] = total, 0
                else:
                    self.acc[i][j] = total
                new_pa[i][j], new_pb[i][j], new_pl[i][j] = ain, bin_, lin
                if i == R - 1 and j == C - 1:
                    l_end = lin
        self.pa, self.pb, self.pl = new_pa, new_pb, new_pl
        for i in range(R):
            self.ask[i] = [a[i] if fire_in else 0] + self.ask[i][:-1]
            self.lsk[i] = [int(fire_in and last)] + self.lsk[i][:-1]
        for j in range(C):
            self.bsk[j] = [b[j] if fire_in else 0] + self.bsk[j][:-1]
        if fire_out:
            if self.rptr == R - 1:
                self.rptr, self.full = 0, 0
            else:
                self.rptr += 1
        if l_end:
            self.full, self.pending = 1, 0
        if fire_in and last:
            self.pending = 1


@pytest.mark.parametrize("interpreted", [False, True])
@pytest.mark.parametrize("R,C,in_bits,signed,acc_bits", [
    (3, 2, 8, True, 32), (1, 4, 4, True, 9), (4, 1, 16, False, 33), (2, 3, 8, True, 64),
    (4, 4, 8, False, 17),
])
def test_every_register_every_cycle(R, C, in_bits, signed, acc_bits, interpreted, rng):
    core = load_core("_systolic_core", interpreted).OsCore(R, C, acc_bits, signed)
    ref = LiteralOs(R, C, acc_bits, signed)
    lo, hi = (-(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1) if signed else (0, (1 << in_bits) - 1)
    beats_left = 0
    for cycle in range(400):
        if beats_left == 0:
            beats_left = int(rng.integers(1, 2 * (R + C)))
        valid = int(rng.random() < 0.7)
        a = [int(x) for x in rng.integers(lo, hi + 1, R)]
        b = [int(x) for x in rng.integers(lo, hi + 1, C)]
        if cycle % 37 == 0:
            a[0], b[0] = lo, lo
        last = int(beats_left == 1) if valid else int(rng.random() < 0.5)
        ready = int(rng.random() < 0.6)
        want = ref.outputs(last)
        got = core.step(valid, a, b, last, ready)
        assert tuple(got[:3]) == want[:3] and list(got[3]) == want[3], f"ports at cycle {cycle}"
        fire_in = valid and want[0]
        ref.clock(fire_in, a, b, last, want[1] and ready)
        if fire_in:
            beats_left -= 1
        for i in range(R):
            for j in range(C):
                for name, regs in (("acc", ref.acc), ("shadow", ref.shadow), ("a", ref.pa),
                                   ("b", ref.pb), ("last", ref.pl)):
                    assert core.register(name, i, j) == regs[i][j], \
                        f"{name} of PE({i},{j}) after cycle {cycle}"
        assert (core.pending, core.full, core.rptr) == (ref.pending, ref.full, ref.rptr)
