"""Register-level stationary-operand systolic array (WS and IS dataflows), Cython pure-Python mode.

The same hardware serves both dataflows; only the mapping differs (kernels/): in WS the stationary
tile is B[k, n] (rows = reduction, columns = outputs) and the stream carries rows of A; in IS the
stationary tile is A^T[k, m] and the stream carries columns of B, so each output beat is a column of C.

Micro-architecture (identical to rtl/systolic.py's stationary array, register for register):
  * load port: one row of the stationary tile per beat into a vertical shift chain (row 0 first in,
    so beats carry tile rows R-1, R-2, ..., 0). With `double_buffer` the chain is a shadow copy
    (`wsh`) that loads while the active weights (`wact`) compute; without it the chain is `wact`.
  * stream port: one R-lane row per beat; lane i passes i+1 skew registers, then moves right through
    the PEs of row i. `in_last` marks a fold's last row; its token travels with lane data.
  * PE(i,j): psum(i,j) <= psum(i-1,j) + a * wact(i,j) (psum(-1,j) = 0), wrapped to acc_bits. In
    double-buffer mode the token passing PE(i,j) also copies wsh(i,j) into wact(i,j) when the
    token was launched with a full shadow (`tok_swap`), so the next fold streams in right behind it.
  * outputs: column j of the bottom row passes C-1-j de-skew registers, so a whole output row leaves
    at once, R+C cycles after its input beat; a valid/last pipeline of R+C stages travels alongside.
  * one global stall: the compute pipeline advances only when `adv = !out_valid | out_ready`.
  * control: in_ready = adv & act_valid & (!in_last | !tok_flight);
      double buffer: load_ready = wcnt < R & !(tok_flight & tok_swap); a launched token swaps iff the
        shadow is full (then wcnt := 0), else act_valid := 0 and, once the token has left the array
        and the shadow is full, all PEs copy wsh -> wact at once;
      single buffer: load_ready = !act_valid & !tok_flight & wcnt < R; the R-th load beat sets
        act_valid; a launched token clears it.
"""

import cython
import numpy as np

from sim.numerics import wrap_consts

i64 = cython.typedef(cython.longlong)


@cython.cclass
class StationaryCore:
    R: cython.int
    C: cython.int
    L: cython.int
    dbuf: cython.int
    half: i64
    mask: i64
    ask: i64[:, ::1]
    lsk: i64[:, ::1]
    pa: i64[:, ::1]
    pl: i64[:, ::1]
    ps: i64[:, ::1]
    wsh: i64[:, ::1]
    wact: i64[:, ::1]
    dsk: i64[:, ::1]
    vp: i64[::1]
    lp: i64[::1]
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
        self.dbuf = 1 if double_buffer else 0
        self.half, self.mask = wrap_consts(acc_bits, signed, cython.compiled)
        self.reset()

    def reset(self):
        R, C = self.R, self.C
        dt = np.int64 if cython.compiled else object
        self.ask = np.zeros((R, R), dtype=dt)
        self.lsk = np.zeros((R, R), dtype=np.int64)
        self.pa = np.zeros((R, C), dtype=dt)
        self.pl = np.zeros((R, C), dtype=np.int64)
        self.ps = np.zeros((R, C), dtype=dt)
        self.wsh = np.zeros((R, C), dtype=dt)
        self.wact = np.zeros((R, C), dtype=dt)
        self.dsk = np.zeros((C, C), dtype=dt)
        self.vp = np.zeros(R + C, dtype=np.int64)
        self.lp = np.zeros(R + C, dtype=np.int64)
        self.wcnt = 0
        self.act_valid = 0
        self.tok_flight = 0
        self.tok_swap = 0
        self.cycle = 0

    # -- combinational outputs -------------------------------------------------------------------
    @cython.ccall
    def out_valid(self) -> cython.int:
        return self.vp[self.L - 1]

    @cython.ccall
    def load_ready(self) -> cython.int:
        if self.dbuf:
            return 1 if (self.wcnt < self.R and not (self.tok_flight and self.tok_swap)) else 0
        return 1 if (not self.act_valid and not self.tok_flight and self.wcnt < self.R) else 0

    @cython.ccall
    def in_ready(self, in_last: cython.int, out_ready: cython.int) -> cython.int:
        adv: cython.int = 1 if (self.vp[self.L - 1] == 0 or out_ready) else 0
        return 1 if (adv and self.act_valid and (in_last == 0 or self.tok_flight == 0)) else 0

    @cython.ccall
    def out_lane(self, j: cython.int) -> i64:
        if j == self.C - 1:
            return self.ps[self.R - 1, self.C - 1]
        return self.dsk[j, self.C - 2 - j]

    def out_row(self):
        return [int(self.out_lane(j)) for j in range(self.C)]

    def register(self, name: str, i: int, j: int = 0) -> int:
        """Value of an RTL register this cycle: 'psum', 'a', 'last', 'w' (active), 'w_shadow' of PE(i,j)."""
        table = {"psum": self.ps, "a": self.pa, "last": self.pl, "w": self.wact, "w_shadow": self.wsh}
        return int(table[name][i, j])

    # -- one clock edge --------------------------------------------------------------------------
    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _edge(self, fire_w: cython.int, wrow: i64, fire_in: cython.int, arow: i64,
              last: cython.int, adv: cython.int) -> cython.void:
        R: cython.int = self.R
        C: cython.int = self.C
        L: cython.int = self.L
        half: i64 = self.half
        mask: i64 = self.mask
        i: cython.int
        j: cython.int
        d: cython.int
        ain: i64
        lin: i64
        psin: i64
        l_end: i64 = 0
        launch: cython.int = 1 if (fire_in and last) else 0
        swap: cython.int = self.tok_swap
        if adv:
            l_end = self.lsk[R - 1, R - 1] if C == 1 else self.pl[R - 1, C - 2]
            # de-skew registers take the bottom row's current psums (before the PEs update)
            for j in range(C - 1):
                for d in range(C - 2 - j, 0, -1):
                    self.dsk[j, d] = self.dsk[j, d - 1]
                self.dsk[j, 0] = self.ps[R - 1, j]
            # PEs in reverse order: each reads its neighbours' registers before they update
            for i in range(R - 1, -1, -1):
                for j in range(C - 1, -1, -1):
                    if j == 0:
                        ain = self.ask[i, i]
                        lin = self.lsk[i, i]
                    else:
                        ain = self.pa[i, j - 1]
                        lin = self.pl[i, j - 1]
                    psin = self.ps[i - 1, j] if i > 0 else 0
                    self.ps[i, j] = (((psin + ain * self.wact[i, j]) + half) & mask) - half
                    if lin and self.dbuf and swap:
                        self.wact[i, j] = self.wsh[i, j]
                    self.pa[i, j] = ain
                    self.pl[i, j] = lin
            # skew lines and the valid/last pipeline
            for i in range(R):
                for d in range(i, 0, -1):
                    self.ask[i, d] = self.ask[i, d - 1]
                    self.lsk[i, d] = self.lsk[i, d - 1]
                if fire_in:
                    self.ask[i, 0] = self.src_a[arow, i]
                    self.lsk[i, 0] = last
                else:
                    self.ask[i, 0] = 0
                    self.lsk[i, 0] = 0
            for d in range(L - 1, 0, -1):
                self.vp[d] = self.vp[d - 1]
                self.lp[d] = self.lp[d - 1]
            self.vp[0] = fire_in
            self.lp[0] = launch
        # load chain
        if fire_w:
            if self.dbuf:
                for i in range(R - 1, 0, -1):
                    for j in range(C):
                        self.wsh[i, j] = self.wsh[i - 1, j]
                for j in range(C):
                    self.wsh[0, j] = self.src_w[wrow, j]
            else:
                for i in range(R - 1, 0, -1):
                    for j in range(C):
                        self.wact[i, j] = self.wact[i - 1, j]
                for j in range(C):
                    self.wact[0, j] = self.src_w[wrow, j]
        # control (decisions use this cycle's register values)
        wfull: cython.int = 1 if self.wcnt == R else 0
        global_load: cython.int = 1 if (self.dbuf and not self.act_valid and wfull
                                        and not self.tok_flight) else 0
        if global_load:
            for i in range(R):
                for j in range(C):
                    self.wact[i, j] = self.wsh[i, j]
            self.act_valid = 1
            self.wcnt = 0
        if fire_w:
            self.wcnt += 1
            if not self.dbuf and self.wcnt == R:
                self.act_valid = 1
                self.wcnt = 0
        if l_end:
            self.tok_flight = 0
        if launch:
            self.tok_flight = 1
            if self.dbuf:
                self.tok_swap = wfull
                if wfull:
                    self.wcnt = 0
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
        ov = self.vp[self.L - 1]
        ol = self.lp[self.L - 1]
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
            ov = self.vp[L - 1]
            if li >= nl and bi >= ni and ov == 0:
                # nothing left to send; done once the pipeline holds no valid row
                empty: cython.int = 1
                for j in range(L):
                    if self.vp[j]:
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
                for j in range(C):
                    out_c[no, j] = self.out_lane(j)
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
