"""Register-level OS systolic array: the hot path, in Cython pure-Python mode.

Notes and derivations: docs/internals.md, section `sim/engines/_systolic_core.py`.
"""

import cython
import numpy as np

from tpesim.numerics import wrap, wrap_consts

i64 = cython.typedef(cython.longlong)

NEVER = -(1 << 40)  # "no last accepted yet" (older than any ring slot or wavefront)
CHUNK = cython.declare(cython.int, 64)  # beats per block of the compiled 16-bit kernel (fits L1 at 16x16)


@cython.cfunc
@cython.exceptval(check=False)
def _sum64(T: cython.pointer(i64), A: cython.pointer(i64), B: cython.pointer(i64), lo: i64, hi: i64,
           R: cython.int, C: cython.int) -> cython.void:
    """T[i,j] += sum_k A[k,i]*B[k,j] for k in [lo, hi), mod 2**64 (compiled path only)."""
    k: i64
    i: cython.int
    j: cython.int
    x: i64
    a: cython.pointer(i64)
    b: cython.pointer(i64)
    t: cython.pointer(i64)
    for k in range(lo, hi):
        a = A + k * R
        b = B + k * C
        for i in range(R):
            x = a[i]
            t = T + i * C
            for j in range(C):
                t[j] += x * b[j]


@cython.cfunc
@cython.exceptval(check=False)
def _sum16(T: cython.pointer(i64), A: cython.pointer(i64), B: cython.pointer(i64), lo: i64, hi: i64,
           R: cython.int, C: cython.int, narrow: cython.int, at: cython.pointer(cython.short),
           bt: cython.pointer(cython.short)) -> i64:
    """T[i,j] += sum_k A[k,i]*B[k,j] for k in [lo, hi) through 16-bit operands and 32-bit sums, which
    vectorise (pmaddwd): exact mod 2**32 when every operand fits int16 (enough if `narrow`, i.e.
    acc_bits <= 32), exact outright when every operand is in [-2048, 2047] (|sum of CHUNK products|
    < 2**31). Each block of up to CHUNK beats is transposed to at[i][k], bt[j][k] and reduced per PE
    as a dot product over k, two rows by two columns at a time.
    Stops before the first block with an operand that does not qualify; returns where it stopped
    (hi when done). Scratch: at, bt of (R, C) * CHUNK shorts."""
    k0: i64 = lo
    n: cython.int
    k: cython.int
    i: cython.int
    j: cython.int
    x: i64
    s00: cython.int
    s01: cython.int
    s10: cython.int
    s11: cython.int
    orr: cython.ulonglong
    off: i64 = 32768 if narrow else 2048
    lim: cython.ulonglong = 65535 if narrow else 4095
    p0: cython.pointer(cython.short)
    p1: cython.pointer(cython.short)
    q0: cython.pointer(cython.short)
    q1: cython.pointer(cython.short)
    src: cython.pointer(i64)
    t0: cython.pointer(i64)
    t1: cython.pointer(i64)
    while k0 < hi:
        n = CHUNK if hi - k0 > CHUNK else cython.cast(cython.int, hi - k0)
        orr = 0
        for k in range(n):
            src = A + (k0 + k) * R
            for i in range(R):
                x = src[i]
                orr |= cython.cast(cython.ulonglong, x + off)
                at[i * CHUNK + k] = cython.cast(cython.short, x)
            src = B + (k0 + k) * C
            for j in range(C):
                x = src[j]
                orr |= cython.cast(cython.ulonglong, x + off)
                bt[j * CHUNK + k] = cython.cast(cython.short, x)
        if orr > lim:
            return k0
        i = 0
        while i < R:
            p0 = at + i * CHUNK
            p1 = at + (i + 1) * CHUNK if i + 1 < R else p0
            t0 = T + i * C
            t1 = T + (i + 1) * C
            j = 0
            while j < C:
                q0 = bt + j * CHUNK
                q1 = bt + (j + 1) * CHUNK if j + 1 < C else q0
                s00 = 0
                s01 = 0
                s10 = 0
                s11 = 0
                for k in range(n):
                    s00 += p0[k] * q0[k]
                    s01 += p0[k] * q1[k]
                    s10 += p1[k] * q0[k]
                    s11 += p1[k] * q1[k]
                t0[j] += s00
                if j + 1 < C:
                    t0[j + 1] += s01
                if i + 1 < R:
                    t1[j] += s10
                    if j + 1 < C:
                        t1[j + 1] += s11
                j += 2
            i += 2
        k0 += n
    return hi


@cython.cclass
class OsCore:
    R: cython.int
    C: cython.int
    H: cython.int
    acc_bits: cython.int
    sgn: cython.int
    narrow: cython.int
    half: i64
    mask: i64
    ha: i64[:, ::1]
    hb: i64[:, ::1]
    hidx: i64[::1]
    T: i64[:, ::1]
    res: i64[:, :, ::1]
    at: cython.short[::1]
    bt: cython.short[::1]
    cur: cython.int
    tl: i64
    head: cython.int
    pending = cython.declare(cython.int, visibility="readonly")
    full = cython.declare(cython.int, visibility="readonly")
    rptr = cython.declare(cython.int, visibility="readonly")
    cycle = cython.declare(i64, visibility="readonly")

    def __init__(self, rows: int, cols: int, acc_bits: int, signed: bool):
        self.R = rows
        self.C = cols
        self.H = rows + cols
        self.acc_bits = acc_bits
        self.sgn = 1 if signed else 0
        self.narrow = 1 if acc_bits <= 32 else 0
        self.half, self.mask = wrap_consts(acc_bits, signed, cython.compiled)
        self.at = np.zeros(rows * CHUNK, dtype=np.int16)
        self.bt = np.zeros(cols * CHUNK, dtype=np.int16)
        self.reset()

    def reset(self):
        R, C, H = self.R, self.C, self.H
        # interpreted, the arrays hold Python ints so a 64-bit wrap cannot overflow numpy's int64
        dt = np.int64 if cython.compiled else object
        self.ha = np.zeros((H, R), dtype=dt)
        self.hb = np.zeros((H, C), dtype=dt)
        self.hidx = np.zeros(H, dtype=np.int64)
        self.T = np.zeros((R, C), dtype=dt)
        self.res = np.zeros((2, R, C), dtype=dt)
        self.cur = 0
        self.tl = NEVER
        self.head = 0
        self.pending = 0
        self.full = 0
        self.rptr = 0
        self.cycle = 0

    # -- views of RTL registers (for VCD dumps and white-box tests) ----------------------------
    def _beat_prod(self, e, i: int, j: int):
        """a_i*b_j of the beat accepted in cycle e (0 for a cycle without one), e in the ring."""
        if e < 0:
            return 0
        d = e % self.H
        return int(self.ha[d, i]) * int(self.hb[d, j])

    def _shadow(self, i: int, j: int):
        c = self.cur if self.cycle >= self.tl + 2 + i + j else self.cur ^ 1
        return int(self.res[c, i, j])

    def register(self, name: str, i: int, j: int = 0) -> int:
        """Value of an RTL register during the current cycle: 'acc', 'shadow' of PE(i,j);
        'a', 'b', 'last' registers of PE(i,j) (its outputs to the right/down neighbour)."""
        t = int(self.cycle)
        s = i + j
        if name == "acc":
            lo = t - 1 - s          # beats accepted in cycles lo..t-1 have not reached PE(i,j) yet
            tl = int(self.tl)
            if tl >= lo:            # nor has the last beat of the tile that closed in cycle tl
                x = int(self.res[self.cur, i, j])
                hi = tl
            else:
                x = int(self.T[i, j])
                hi = t - 1
            for e in range(lo, hi + 1):
                x -= self._beat_prod(e, i, j)
            return wrap(x, self.acc_bits, self.sgn)
        if name == "shadow":
            return self._shadow(i, j)
        # PE(i,j)'s output registers hold what its inputs held one cycle earlier: the beat of t-2-s
        e = t - 2 - s
        if name == "last":
            return 1 if e == self.tl else 0
        if name == "a":
            return int(self.ha[e % self.H, i]) if e >= 0 else 0
        if name == "b":
            return int(self.hb[e % self.H, j]) if e >= 0 else 0
        raise KeyError(name)

    @cython.ccall
    def shadow_row(self, r: cython.int) -> list:
        row: list = []
        j: cython.int
        c: cython.int
        for j in range(self.C):
            c = self.cur if self.cycle >= self.tl + 2 + r + j else self.cur ^ 1
            row.append(int(self.res[c, r, j]))
        return row

    @cython.ccall
    def in_ready(self, in_last: cython.int) -> cython.int:
        return 1 if (in_last == 0 or (self.pending == 0 and self.full == 0)) else 0

    @cython.cfunc
    def _close_tile(self, tl: i64) -> cython.void:
        """The `last` beat of the open tile (already summed into T) was accepted in cycle tl."""
        half: i64 = self.half
        mask: i64 = self.mask
        c: cython.int = self.cur ^ 1
        i: cython.int
        j: cython.int
        for i in range(self.R):
            for j in range(self.C):
                self.res[c, i, j] = ((self.T[i, j] + half) & mask) - half
                self.T[i, j] = 0
        self.cur = c
        self.tl = tl

    @cython.cfunc
    def _sum_beats(self, A: i64[:, ::1], B: i64[:, ::1], lo: i64, hi: i64) -> cython.void:
        """T += the products of beats lo..hi-1 of A, B."""
        if hi <= lo:
            return
        k: i64
        i: cython.int
        j: cython.int
        x: object
        if cython.compiled:
            lo = _sum16(cython.address(self.T[0, 0]), cython.address(A[0, 0]),
                        cython.address(B[0, 0]), lo, hi, self.R, self.C, self.narrow,
                        cython.address(self.at[0]), cython.address(self.bt[0]))
            if lo < hi:
                _sum64(cython.address(self.T[0, 0]), cython.address(A[0, 0]), cython.address(B[0, 0]),
                       lo, hi, self.R, self.C)
        else:
            for k in range(lo, hi):
                for i in range(self.R):
                    x = int(A[k, i])
                    for j in range(self.C):
                        self.T[i, j] += x * int(B[k, j])

    def step(self, in_valid: int, in_a, in_b, in_last: int, out_ready: int):
        """One clock. Returns the outputs seen during this cycle (before the edge):
        (in_ready, out_valid, out_last, out_c row as a list)."""
        R: cython.int = self.R
        C: cython.int = self.C
        i: cython.int
        h: cython.int = self.head
        in_last = 1 if in_last else 0
        rdy = self.in_ready(in_last)
        ov = self.full
        ol = 1 if (self.full and self.rptr == R - 1) else 0
        oc = self.shadow_row(self.rptr)
        fire_in = 1 if (in_valid and rdy) else 0
        fire_out = 1 if (ov and out_ready) else 0
        # this cycle's beat (or zeros) enters the ring slot of this cycle
        for i in range(R):
            self.ha[h, i] = int(in_a[i]) if fire_in else 0
        for i in range(C):
            self.hb[h, i] = int(in_b[i]) if fire_in else 0
        if fire_in:
            self._sum_beats(self.ha, self.hb, h, h + 1)
            if in_last:
                self._close_tile(self.cycle)
        self._control(fire_in, in_last, fire_out)
        return rdy, ov, ol, oc

    @cython.cfunc
    def _control(self, fire_in: cython.int, last: cython.int, fire_out: cython.int) -> cython.void:
        """The clock edge of the control registers (the beat, if any, is already in T and the ring)."""
        if fire_out:
            if self.rptr == self.R - 1:
                self.rptr = 0
                self.full = 0
            else:
                self.rptr += 1
        if self.pending and self.cycle == self.tl + self.R + self.C - 1:
            self.full = 1  # the wavefront leaves PE(R-1, C-1) at this edge
            self.pending = 0
        if fire_in and last:
            self.pending = 1
        self.head += 1
        if self.head == self.H:
            self.head = 0
        self.cycle += 1

    def idle(self) -> bool:
        return self.pending == 0 and self.full == 0

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def run(self, beats_a: i64[:, ::1], beats_b: i64[:, ::1], beats_last: i64[:], first: i64,
            out_c: i64[:, :], out_stamp: i64[:], nout: i64, valid: cython.uchar[:],
            ready: cython.uchar[:], max_cycles: i64, drain: cython.int, valid_from: i64 = 0,
            ready_from: i64 = 0):
        """Free-running: stream beats[first:] (source valid from cycle `valid_from` on, unless
        `valid[t]` says 0), sink ready from cycle `ready_from` on, unless `ready[t]` says 0 (cycles
        since this call; empty schedules = always). Stretches in which nothing can change (no beat
        can move, no wavefront lands, no schedule entry left) are skipped in one step, so a long
        hold costs neither memory nor time.
        Stops after max_cycles, or when every beat is in and (if drain) the engine is idle.
        Output rows are written to out_c[nout:], their cycle numbers to out_stamp.
        Returns (next beat index, number of output rows written, cycles run)."""
        nbeats: i64 = beats_a.shape[0]
        bi: i64 = first
        no: i64 = nout
        t: i64 = 0
        nv: i64 = valid.shape[0]
        nr: i64 = ready.shape[0]
        R: cython.int = self.R
        C: cython.int = self.C
        H: cython.int = self.H
        j: cython.int
        v: cython.int
        r: cython.int
        last: cython.int
        rdy: cython.int
        fire_in: cython.int
        fire_out: cython.int
        q: cython.int
        d: cython.int
        idx: i64
        nxt: i64
        n: i64
        # the control registers live in locals for the loop, written back at the end
        cyc: i64 = self.cycle
        pending: cython.int = self.pending
        full: cython.int = self.full
        rptr: cython.int = self.rptr
        cur: cython.int = self.cur
        head: cython.int = self.head
        lend: i64 = self.tl + R + C - 1   # the edge at which the pending wavefront fills the bank
        from_: i64 = first                # beats[from_:bi] are accepted but not yet summed into T
        while t < max_cycles:
            if bi >= nbeats and (not drain or (pending == 0 and full == 0)):
                break
            v = 1 if (bi < nbeats and t >= valid_from) else 0
            if v and nv > 0 and t < nv and valid[t] == 0:
                v = 0
            r = 1 if t >= ready_from else 0
            if nr > 0 and t < nr and ready[t] == 0:
                r = 0
            last = 1 if (bi < nbeats and beats_last[bi] != 0) else 0
            rdy = 1 if (last == 0 or (pending == 0 and full == 0)) else 0
            fire_in = 1 if (v and rdy) else 0
            fire_out = 1 if (full and r) else 0
            if fire_in == 0 and fire_out == 0 and t >= nv and t >= nr:
                # frozen until the next hold ends or the pending wavefront lands (cycle lend)
                nxt = max_cycles
                if t < valid_from and valid_from < nxt:
                    nxt = valid_from
                if t < ready_from and ready_from < nxt:
                    nxt = ready_from
                if pending:
                    if lend <= cyc:
                        nxt = t
                    elif t + (lend - cyc) < nxt:
                        nxt = t + (lend - cyc)
                if nxt > t + 1:
                    n = nxt - t
                    for q in range(n if n < H else H):
                        self.hidx[head] = -1
                        head += 1
                        if head == H:
                            head = 0
                    if n > H:
                        head = (head + (n - H)) % H
                    cyc += n
                    t += n
                    continue
            if fire_out:
                if no >= out_c.shape[0]:
                    self.cycle, self.pending, self.full, self.rptr, self.head = cyc, pending, full, rptr, head
                    raise IndexError("out_c is too small for the rows leaving in this run")
                for j in range(C):
                    out_c[no, j] = self.res[cur, rptr, j]
                out_stamp[no] = cyc
                no += 1
            if fire_in:
                self.hidx[head] = bi
                bi += 1
                if last:
                    self._sum_beats(beats_a, beats_b, from_, bi)
                    from_ = bi
                    self._close_tile(cyc)
                    cur = self.cur
                    lend = cyc + R + C - 1
            else:
                self.hidx[head] = -1
            head += 1
            if head == H:
                head = 0
            # control edge, in the RTL's order
            if fire_out:
                if rptr == R - 1:
                    rptr = 0
                    full = 0
                else:
                    rptr += 1
            if pending and cyc == lend:
                full = 1
                pending = 0
            if fire_in and last:
                pending = 1
            cyc += 1
            t += 1
        self._sum_beats(beats_a, beats_b, from_, bi)
        # the ring slots of this call's last cycles get the beats' values (or zeros)
        for q in range(t if t < H else H):
            d = head - 1 - q
            if d < 0:
                d += H
            idx = self.hidx[d]
            for j in range(R):
                self.ha[d, j] = beats_a[idx, j] if idx >= 0 else 0
            for j in range(C):
                self.hb[d, j] = beats_b[idx, j] if idx >= 0 else 0
        self.cycle = cyc
        self.pending = pending
        self.full = full
        self.rptr = rptr
        self.head = head
        return bi, no - nout, t
