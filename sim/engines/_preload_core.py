"""Register-level preload systolic array (WS and IS dataflows), Cython pure-Python mode.

Notes and derivations: docs/internals.md, section `sim/engines/_preload_core.py`.
"""

import cython
import numpy as np

from tpesim.numerics import wrap_consts

i64 = cython.typedef(cython.longlong)

NV = cython.declare(cython.int, 4)   # weight-version snapshots kept


def _wrap(x, half, mask):
    """Wrap a Python int to acc_bits with the core's constants (cold paths and interpreted mode)."""
    return ((x + half) & mask) - half


@cython.cclass
class StationaryCore:
    R: cython.int
    C: cython.int
    L: cython.int
    H: cython.int
    hm: i64
    dbuf: cython.int
    bits: cython.int
    sgn: cython.int
    half: i64
    mask: i64
    wsh: i64[:, ::1]
    wact: i64[:, ::1]
    ra: i64[:, ::1]
    ro: i64[:, ::1]
    rf: i64[::1]
    rl: i64[::1]
    rv: i64[::1]
    snap: i64[:, ::1]
    vcur: cython.int
    vold: cython.int
    ntok: i64
    nadv: i64
    src_a: i64[:, ::1]
    src_w: i64[:, ::1]
    wcnt = cython.declare(cython.int, visibility="readonly")
    act_valid = cython.declare(cython.int, visibility="readonly")
    tok_flight = cython.declare(cython.int, visibility="readonly")
    tok_swap = cython.declare(cython.int, visibility="readonly")
    cycle = cython.declare(i64, visibility="readonly")

    def __init__(self, rows: int, cols: int, acc_bits: int, signed: bool, double_buffer: bool):
        self.R = rows
        self.C = cols
        self.L = rows + cols
        h = 1
        while h < rows + cols + 1:
            h *= 2
        self.H = h
        self.hm = h - 1
        self.dbuf = 1 if double_buffer else 0
        self.bits = acc_bits
        self.sgn = 1 if signed else 0
        self.half, self.mask = wrap_consts(acc_bits, signed, cython.compiled)
        self.reset()

    def reset(self):
        R, C, H = self.R, self.C, self.H
        dt = np.int64 if cython.compiled else object
        self.wsh = np.zeros((R, C), dtype=dt)
        self.wact = np.zeros((R, C), dtype=dt)
        self.ra = np.zeros((H, R), dtype=dt)
        self.ro = np.zeros((H, C), dtype=dt)
        self.rf = np.zeros(H, dtype=np.int64)
        self.rl = np.zeros(H, dtype=np.int64)
        self.rv = np.zeros(H, dtype=np.int64)
        self.snap = np.zeros((NV, R * C), dtype=dt)
        self.vcur = 0
        self.vold = 0
        self.ntok = -(1 << 40)
        self.nadv = 0
        self.wcnt = 0
        self.act_valid = 0
        self.tok_flight = 0
        self.tok_swap = 0
        self.cycle = 0

    # -- combinational outputs -------------------------------------------------------------------
    @cython.ccall
    def out_valid(self) -> cython.int:
        return self.rf[(self.nadv - self.L + 1) & self.hm]

    @cython.ccall
    def load_ready(self) -> cython.int:
        if self.dbuf:
            return 1 if (self.wcnt < self.R and not (self.tok_flight and self.tok_swap)) else 0
        return 1 if (not self.act_valid and not self.tok_flight and self.wcnt < self.R) else 0

    @cython.ccall
    def in_ready(self, in_last: cython.int, out_ready: cython.int) -> cython.int:
        adv: cython.int = 1 if (self.out_valid() == 0 or out_ready) else 0
        return 1 if (adv and self.act_valid and (in_last == 0 or self.tok_flight == 0)) else 0

    @cython.ccall
    def out_lane(self, j: cython.int) -> i64:
        return self.ro[(self.nadv - self.L + 1) & self.hm, j]

    def out_row(self):
        return [int(self.out_lane(j)) for j in range(self.C)]

    def register(self, name: str, i: int, j: int = 0) -> int:
        """Value of an RTL register this cycle: 'psum', 'a', 'last', 'w' (active), 'w_shadow' of PE(i,j);
        'a_skew' / 'last_skew' (lane i, stage j), 'deskew' (column i, stage j), 'valid_pipe' /
        'last_pipe' (stage i)."""
        n = int(self.nadv)
        R, C, hm = self.R, self.C, int(self.hm)
        if name in ("psum", "a", "last"):
            s = (n - 1 - i - j) & hm
            if name == "a":
                return int(self.ra[s, i])
            if name == "last":
                return int(self.rl[s])
            v = int(self.rv[s])
            acc = 0
            for k in range(i + 1):
                acc += int(self.ra[s, k]) * int(self.snap[v, k * C + j])
            h, m = wrap_consts(self.bits, bool(self.sgn), False)
            return _wrap(acc, h, m)
        if name == "w":
            if not self.dbuf:
                return int(self.wact[i, j])
            if self.tok_flight and self.tok_swap and int(self.ntok) + 1 + i + j > n:
                return int(self.snap[self.vold, i * C + j])
            return int(self.snap[self.vcur, i * C + j])
        if name == "w_shadow":
            return int(self.wsh[i, j])
        if name == "a_skew":
            return int(self.ra[(n - j) & hm, i])
        if name == "last_skew":
            return int(self.rl[(n - j) & hm])
        if name == "deskew":
            return int(self.ro[(n - 1 - R - i - j) & hm, i])
        if name == "valid_pipe":
            return int(self.rf[(n - i) & hm])
        if name == "last_pipe":
            return int(self.rl[(n - i) & hm])
        raise KeyError(f"no register {name!r}")

    # -- one clock edge --------------------------------------------------------------------------
    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _snapshot(self, src: i64[:, ::1]) -> cython.void:
        """A new weight version: a copy of `src` (the active tile from the next beat on)."""
        v: cython.int = (self.vcur + 1) % NV
        i: cython.int
        j: cython.int
        C: cython.int = self.C
        for i in range(self.R):
            for j in range(C):
                self.snap[v, i * C + j] = src[i, j]
        self.vcur = v

    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _edge(self, fire_w: cython.int, wrow: i64, fire_in: cython.int, arow: i64,
              last: cython.int, adv: cython.int) -> cython.void:
        R: cython.int = self.R
        C: cython.int = self.C
        half: i64 = self.half
        mask: i64 = self.mask
        i: cython.int
        j: cython.int
        s: i64
        x: i64
        l_end: i64 = 0
        chain: i64[:, ::1]
        launch: cython.int = 1 if (fire_in and last) else 0
        if adv:
            l_end = self.rl[(self.nadv - self.L + 2) & self.hm]
            self.nadv += 1
            s = self.nadv & self.hm
            if fire_in:
                if cython.compiled:
                    o: cython.pointer(i64) = cython.address(self.ro[s, 0])
                    a: cython.pointer(i64) = cython.address(self.ra[s, 0])
                    sa: cython.pointer(i64) = cython.address(self.src_a[arow, 0])
                    w: cython.pointer(i64) = cython.address(self.snap[self.vcur, 0])
                    for j in range(C):
                        o[j] = 0
                    for i in range(R):
                        x = sa[i]
                        a[i] = x
                        for j in range(C):
                            o[j] += x * w[j]
                        w += C
                    for j in range(C):
                        o[j] = ((o[j] + half) & mask) - half
                else:
                    v = self.vcur
                    for i in range(R):
                        self.ra[s, i] = int(self.src_a[arow, i])
                    for j in range(C):
                        acc = 0
                        for i in range(R):
                            acc += int(self.ra[s, i]) * int(self.snap[v, i * C + j])
                        self.ro[s, j] = _wrap(acc, half, mask)
                self.rf[s] = 1
                self.rl[s] = launch
                self.rv[s] = self.vcur
            else:
                for i in range(R):
                    self.ra[s, i] = 0
                for j in range(C):
                    self.ro[s, j] = 0
                self.rf[s] = 0
                self.rl[s] = 0
                self.rv[s] = self.vcur
        # load chain
        if fire_w:
            chain = self.wsh if self.dbuf else self.wact
            for i in range(R - 1, 0, -1):
                for j in range(C):
                    chain[i, j] = chain[i - 1, j]
            for j in range(C):
                chain[0, j] = self.src_w[wrow, j]
        # control (decisions use this cycle's register values)
        wfull: cython.int = 1 if self.wcnt == R else 0
        if self.dbuf and not self.act_valid and wfull and not self.tok_flight:
            self._snapshot(self.wsh)
            self.act_valid = 1
            self.wcnt = 0
        if fire_w:
            self.wcnt += 1
            if not self.dbuf and self.wcnt == R:
                self.act_valid = 1
                self.wcnt = 0
                self._snapshot(self.wact)
        if l_end:
            self.tok_flight = 0
        if launch:
            self.tok_flight = 1
            if self.dbuf:
                self.tok_swap = wfull
                if wfull:
                    self.wcnt = 0
                    self.vold = self.vcur
                    self.ntok = self.nadv
                    self._snapshot(self.wsh)
                else:
                    self.act_valid = 0
            else:
                self.act_valid = 0
        self.cycle += 1

    def step(self, load_valid: int, load_data, in_valid: int, in_data, in_last: int,
             out_ready: int):
        """One clock. Returns this cycle's outputs (before the edge):
        (load_ready, in_ready, out_valid, out_last, out_c row)."""
        in_last = 1 if in_last else 0
        lr = self.load_ready()
        ir = self.in_ready(in_last, 1 if out_ready else 0)
        so = (self.nadv - self.L + 1) & self.hm
        ov = self.rf[so]
        ol = self.rl[so]
        oc = self.out_row()
        adv = 1 if (ov == 0 or out_ready) else 0
        dt = np.int64 if cython.compiled else object
        self.src_a = np.array([[int(v) for v in in_data]], dtype=dt).reshape(1, self.R)
        self.src_w = np.array([[int(v) for v in load_data]], dtype=dt).reshape(1, self.C)
        self._edge(1 if (load_valid and lr) else 0, 0, 1 if (in_valid and ir) else 0, 0, in_last,
                   adv)
        return lr, ir, int(ov), int(ol), oc

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def run(self, loads: i64[:, ::1], ins: i64[:, ::1], lasts: i64[::1], out_c: i64[:, ::1],
            out_stamp: i64[::1], lavail: i64[::1], iavail: i64[::1],
            ready: cython.uchar[::1], max_cycles: i64, drain: cython.int,
            load_stamp: i64[::1]):
        """Free-running: stream the load beats and stream beats (a source is valid once its next beat
        is available: from cycle `lavail[b]` / `iavail[b]`, absolute; empty = always), the sink
        ready unless `ready[t]` says 0 (t counted from this call; empty = always). With `drain`, run until every beat is in and every result row is out; without,
        stop right after the last stream beat is taken (loads not yet taken are the caller's to
        offer again in the next call, so chunked runs are cycle-exact). Stops at max_cycles too.
        `load_stamp[b]` receives the cycle in which load beat b was taken (for as many beats as
        it has room for; empty = not recorded).
        Returns (load beats taken, stream beats taken, rows written, cycles run)."""
        nl: i64 = loads.shape[0]
        ni: i64 = ins.shape[0]
        nlv: i64 = lavail.shape[0]
        niv: i64 = iavail.shape[0]
        nr: i64 = ready.shape[0]
        nls: i64 = load_stamp.shape[0]
        li: i64 = 0
        bi: i64 = 0
        no: i64 = 0
        t: i64 = 0
        C: cython.int = self.C
        L: cython.int = self.L
        j: cython.int
        lv: cython.int
        iv: cython.int
        r: cython.int
        last: cython.int
        ov: cython.int
        adv: cython.int
        fw: cython.int
        fi: cython.int
        if cython.compiled:
            self.src_a = ins
            self.src_w = loads
        else:
            self.src_a = np.asarray(ins).astype(object)
            self.src_w = np.asarray(loads).astype(object)
        while t < max_cycles:
            if not drain and bi >= ni:
                break
            ov = self.rf[(self.nadv - L + 1) & self.hm]
            if li >= nl and bi >= ni and ov == 0:
                # nothing left to send; done once the pipeline holds no valid row
                empty: cython.int = 1
                for j in range(L):
                    if self.rf[(self.nadv - j) & self.hm]:
                        empty = 0
                        break
                if empty:
                    break
            lv = 1 if li < nl else 0
            if lv and nlv > 0 and self.cycle < lavail[li]:
                lv = 0
            iv = 1 if bi < ni else 0
            if iv and niv > 0 and self.cycle < iavail[bi]:
                iv = 0
            r = 1
            if nr > 0 and t < nr and ready[t] == 0:
                r = 0
            last = lasts[bi] if bi < ni else 0
            adv = 1 if (ov == 0 or r) else 0
            fw = 1 if (lv and self.load_ready()) else 0
            fi = 1 if (iv and adv and self.act_valid and (last == 0 or self.tok_flight == 0)) else 0
            if ov and r:
                if no >= out_c.shape[0]:
                    raise IndexError("out_c is too small for the rows leaving in this run")
                so: i64 = (self.nadv - L + 1) & self.hm
                for j in range(C):
                    out_c[no, j] = self.ro[so, j]
                out_stamp[no] = self.cycle
                no += 1
            if fw and li < nls:
                load_stamp[li] = self.cycle
            self._edge(fw, li if fw else 0, fi, bi if fi else 0, last if fi else 0, adv)
            if fw:
                li += 1
            if fi:
                bi += 1
            t += 1
        return li, bi, no, t
