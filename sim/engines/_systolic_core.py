"""Register-level OS systolic array: the hot path, in Cython pure-Python mode.

Compiled by `make setup` into an extension; the same file runs interpreted when
TPESIM_INTERPRETED=1 (see sim/engines/__init__.py). One call to `OsCore.run` advances many cycles
in C; `OsCore.step` is the per-cycle entry used by lockstep cosim.

Micro-architecture (identical to rtl/systolic.py, signal for signal):
  * skew lines: row i of A passes through i+1 registers (ask[i][0..i]), column j of B through j+1
    (bsk[j][0..j]); the tile's `last` marker rides with A (lsk). A cycle with no accepted beat shifts
    in zeros, which multiply to 0 where they meet, so input gaps need no valid bits in the array.
  * PE(i,j): a moves right, b moves down, last moves right with a. acc += a*b wrapped to acc_bits;
    when `last` passes, acc + a*b goes to the PE's shadow register and acc restarts from 0, so the
    next tile streams in behind the wavefront with no bubble.
  * drain: once the wavefront leaves PE(R-1,C-1) the shadow bank is `full`; rows leave one per
    accepted output beat through an R:1 row mux (out_c = shadow[rptr]), out_last on row R-1.
  * back-pressure: a beat carrying `last` is accepted only when no earlier wavefront is pending and
    the shadow bank is empty: in_ready = !in_last | !(pending | full).

Representation (why it is fast and still register-exact): every a/b/last register of the array is a
pure delay, so PE(i,j)'s input during cycle t is the beat accepted in cycle t-1-(i+j). The model keeps
the last R+C beats in a ring (ha, hbr, hl, hv) instead of shifting R*C registers, and stores the
accumulators by anti-diagonal s=i+j (accs[s, i] is PE(i, s-i)), so the PEs that see the same beat are
contiguous and the MAC loop vectorises. A diagonal holding a bubble is skipped (its PEs add 0*0).
`register(name, i, j)` reads any RTL register back from this representation.
"""

import cython
import numpy as np

i64 = cython.typedef(cython.longlong)


def wrap_consts(acc_bits: int, signed: bool):
    """(half, mask) for ((s + half) & mask) - half, valid both compiled (int64, -fwrapv) and interpreted."""
    if not signed:
        return 0, (1 << acc_bits) - 1
    if acc_bits == 64 and cython.compiled:
        return -(1 << 63), -1
    return 1 << (acc_bits - 1), (1 << acc_bits) - 1


@cython.cfunc
@cython.inline
@cython.exceptval(check=False)
def _mac_diag(acc: cython.pointer(i64), a: cython.pointer(i64), b: cython.pointer(i64),
              n: cython.int, half: i64, mask: i64) -> cython.void:
    """acc[k] = wrap(acc[k] + a[k]*b[k]) for the n PEs of one diagonal (compiled path only)."""
    k: cython.int
    for k in range(n):
        acc[k] = (((acc[k] + a[k] * b[k]) + half) & mask) - half


@cython.cclass
class OsCore:
    R: cython.int
    C: cython.int
    H: cython.int
    half: i64
    mask: i64
    ha: i64[:, ::1]
    hbr: i64[:, ::1]
    hl: i64[::1]
    hv: i64[::1]
    accs: i64[:, ::1]
    shs: i64[:, ::1]
    head: cython.int
    pending = cython.declare(cython.int, visibility="readonly")
    full = cython.declare(cython.int, visibility="readonly")
    rptr = cython.declare(cython.int, visibility="readonly")
    cycle = cython.declare(i64, visibility="readonly")
    src_a: i64[:, ::1]
    src_b: i64[:, ::1]

    def __init__(self, rows: int, cols: int, acc_bits: int, signed: bool):
        self.R = rows
        self.C = cols
        self.H = rows + cols
        self.half, self.mask = wrap_consts(acc_bits, signed)
        self.reset()

    def reset(self):
        R, C, H = self.R, self.C, self.H
        # interpreted, the arrays hold Python ints so a 64-bit wrap cannot overflow numpy's int64
        dt = np.int64 if cython.compiled else object
        self.ha = np.zeros((H, R), dtype=dt)
        self.hbr = np.zeros((H, C), dtype=dt)
        self.hl = np.zeros(H, dtype=np.int64)
        self.hv = np.zeros(H, dtype=np.int64)
        self.accs = np.zeros((R + C - 1, R), dtype=dt)
        self.shs = np.zeros((R + C - 1, R), dtype=dt)
        self.head = 0
        self.pending = 0
        self.full = 0
        self.rptr = 0
        self.cycle = 0

    # -- views of RTL registers (for VCD dumps and white-box tests) ----------------------------
    def _slot(self, s: int, now: int = 0) -> int:
        return (self.head - 1 - s - now) % self.H

    def register(self, name: str, i: int, j: int = 0) -> int:
        """Value of an RTL register during the current cycle: 'acc', 'shadow' of PE(i,j);
        'a', 'b', 'last' registers of PE(i,j) (its outputs to the right/down neighbour)."""
        if name == "acc":
            return int(self.accs[i + j, i])
        if name == "shadow":
            return int(self.shs[i + j, i])
        # PE(i,j)'s output registers hold what its inputs held one cycle earlier: diagonal s+1
        d = self._slot(i + j + 1)
        if name == "a":
            return int(self.ha[d, i])
        if name == "b":
            return int(self.hbr[d, self.C - 1 - j])
        if name == "last":
            return int(self.hl[d])
        raise KeyError(name)

    def shadow_row(self, r: int):
        return [int(self.shs[r + j, r]) for j in range(self.C)]

    @cython.ccall
    def in_ready(self, in_last: cython.int) -> cython.int:
        return 1 if (in_last == 0 or (self.pending == 0 and self.full == 0)) else 0

    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _edge(self, fire_in: cython.int, row: i64, last: cython.int,
              fire_out: cython.int) -> cython.void:
        # Memoryviews are used through `self.` only: a local copy would cost an atomic refcount.
        R: cython.int = self.R
        C: cython.int = self.C
        H: cython.int = self.H
        half: i64 = self.half
        mask: i64 = self.mask
        head: cython.int = self.head
        i: cython.int
        j: cython.int
        s: cython.int
        d: cython.int
        i0: cython.int
        i1: cython.int
        off: cython.int
        v: i64
        # the wavefront at PE(R-1, C-1) this cycle (diagonal R+C-2)
        d = head - 1 - (R + C - 2)
        if d < 0:
            d += H
        l_end: i64 = self.hl[d]
        for s in range(R + C - 1):
            d = head - 1 - s
            if d < 0:
                d += H
            if self.hv[d] == 0:
                continue  # a bubble: every PE on this diagonal adds 0*0
            i0 = s - C + 1 if s - C + 1 > 0 else 0
            i1 = s if s < R - 1 else R - 1
            off = C - 1 - s
            if self.hl[d]:
                for i in range(i0, i1 + 1):
                    v = (((self.accs[s, i] + self.ha[d, i] * self.hbr[d, off + i]) + half) & mask) - half
                    self.shs[s, i] = v
                    self.accs[s, i] = 0
            elif cython.compiled:
                _mac_diag(cython.address(self.accs[s, i0]), cython.address(self.ha[d, i0]),
                          cython.address(self.hbr[d, off + i0]), i1 - i0 + 1, half, mask)
            else:
                for i in range(i0, i1 + 1):
                    self.accs[s, i] = (((self.accs[s, i] + self.ha[d, i] * self.hbr[d, off + i]) + half) & mask) - half
        # this cycle's beat enters the skew lines (the ring slot `head`)
        if fire_in:
            for i in range(R):
                self.ha[head, i] = self.src_a[row, i]
            for j in range(C):
                self.hbr[head, C - 1 - j] = self.src_b[row, j]
            self.hl[head] = last
            self.hv[head] = 1
        else:
            for i in range(R):
                self.ha[head, i] = 0
            for j in range(C):
                self.hbr[head, j] = 0
            self.hl[head] = 0
            self.hv[head] = 0
        head += 1
        if head == H:
            head = 0
        self.head = head
        # control
        if fire_out:
            if self.rptr == R - 1:
                self.rptr = 0
                self.full = 0
            else:
                self.rptr += 1
        if l_end:
            self.full = 1
            self.pending = 0
        if fire_in and last:
            self.pending = 1
        self.cycle += 1

    def step(self, in_valid: int, in_a, in_b, in_last: int, out_ready: int):
        """One clock. Returns the outputs seen during this cycle (before the edge):
        (in_ready, out_valid, out_last, out_c row as a list)."""
        in_last = 1 if in_last else 0
        rdy = self.in_ready(in_last)
        ov = self.full
        ol = 1 if (self.full and self.rptr == self.R - 1) else 0
        oc = self.shadow_row(self.rptr)
        fire_in = 1 if (in_valid and rdy) else 0
        fire_out = 1 if (ov and out_ready) else 0
        dt = np.int64 if cython.compiled else object
        self.src_a = np.array([[int(v) for v in in_a]], dtype=dt).reshape(1, self.R)
        self.src_b = np.array([[int(v) for v in in_b]], dtype=dt).reshape(1, self.C)
        self._edge(fire_in, 0, in_last, fire_out)
        return rdy, ov, ol, oc

    def idle(self) -> bool:
        return self.pending == 0 and self.full == 0

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def run(self, beats_a: i64[:, ::1], beats_b: i64[:, ::1], beats_last: i64[:], first: i64,
            out_c: i64[:, :], out_stamp: i64[:], nout: i64, valid: cython.uchar[:],
            ready: cython.uchar[:], max_cycles: i64, drain: cython.int):
        """Free-running: stream beats[first:] (source valid unless `valid[t]` says 0), sink always
        ready unless `ready[t]` says 0 (schedules indexed by cycles since this call; empty = always).
        Stops after max_cycles, or when every beat is in and (if drain) the engine is idle.
        Output rows are written to out_c[nout:], their cycle numbers to out_stamp.
        Returns (next beat index, number of output rows written, cycles run)."""
        nbeats: i64 = beats_a.shape[0]
        bi: i64 = first
        no: i64 = nout
        t: i64 = 0
        nv: i64 = valid.shape[0]
        nr: i64 = ready.shape[0]
        C: cython.int = self.C
        j: cython.int
        v: cython.int
        r: cython.int
        last: cython.int
        rdy: cython.int
        fire_in: cython.int
        fire_out: cython.int
        if cython.compiled:
            self.src_a = beats_a
            self.src_b = beats_b
        else:
            self.src_a = np.asarray(beats_a).astype(object)
            self.src_b = np.asarray(beats_b).astype(object)
        while t < max_cycles:
            if bi >= nbeats and (not drain or (self.pending == 0 and self.full == 0)):
                break
            v = 1 if bi < nbeats else 0
            if v and nv > 0 and t < nv and valid[t] == 0:
                v = 0
            r = 1
            if nr > 0 and t < nr and ready[t] == 0:
                r = 0
            last = beats_last[bi] if bi < nbeats else 0
            rdy = 1 if (last == 0 or (self.pending == 0 and self.full == 0)) else 0
            fire_in = 1 if (v and rdy) else 0
            fire_out = 1 if (self.full and r) else 0
            if fire_out:
                if no >= out_c.shape[0]:
                    raise IndexError("out_c is too small for the rows leaving in this run")
                for j in range(C):
                    out_c[no, j] = self.shs[self.rptr + j, self.rptr]
                out_stamp[no] = self.cycle
                no += 1
            if fire_in:
                self._edge(1, bi, last, fire_out)
                bi += 1
            else:
                self._edge(0, 0, 0, fire_out)
            t += 1
        return bi, no - nout, t
