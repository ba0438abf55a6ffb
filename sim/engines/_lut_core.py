"""Register-level LUT engine, Cython pure-Python mode: the control stepped every cycle as in docs/lut.md,
a tile's values summed as its beats are accepted (docs/lut.md "Cycle model" says why that is exact)."""

import cython
import numpy as np

i64 = cython.typedef(cython.longlong)
i32 = cython.typedef(cython.int)
i16 = cython.typedef(cython.short)

SLOTS = cython.declare(cython.int, 4)   # tile slots of the accumulator ring (a power of two)


@cython.cfunc
@cython.inline
@cython.boundscheck(False)
@cython.wraparound(False)
def _madd(dst: cython.pointer(i32), src: cython.pointer(i16), a: i32, n: cython.int) -> cython.void:
    # int16 weights into int32 sums: different types cannot alias, so the loop vectorizes (SSE2)
    j: cython.int
    for j in range(n):
        dst[j] += a * src[j]


def _wrap32(x):
    """Python int -> int32 two's complement (the interpreted path's view of -fwrapv)."""
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@cython.cclass
class LutCore:
    M: cython.int
    N: cython.int
    G: cython.int
    P: cython.int
    S: cython.int
    fp: cython.int
    beat_fn: object
    acc: i32[:, :, ::1]
    fresh: cython.uchar[::1]
    seq_in: i64
    seq_com: i64
    full = cython.declare(cython.int, visibility="readonly")
    b = cython.declare(cython.int, visibility="readonly")
    tlast = cython.declare(cython.int, visibility="readonly")
    v2 = cython.declare(cython.int, visibility="readonly")
    fin2 = cython.declare(cython.int, visibility="readonly")
    sfull = cython.declare(cython.int, visibility="readonly")
    rptr = cython.declare(cython.int, visibility="readonly")
    cycle = cython.declare(i64, visibility="readonly")

    def __init__(self, tile_m: int, tile_n: int, group: int, planes: int, stages: int,
                 beat_fn=None):
        if stages not in (1, 2):
            raise ValueError(f"stages must be 1 or 2, not {stages!r}")
        self.M = tile_m
        self.N = tile_n
        self.G = group
        self.P = planes
        self.S = stages
        self.fp = 0 if beat_fn is None else 1
        self.beat_fn = beat_fn
        self.reset()

    def reset(self):
        self.acc = np.zeros((SLOTS, self.M, self.N), dtype=np.int32)
        self.fresh = np.ones(SLOTS, dtype=np.uint8)
        self.seq_in = 0
        self.seq_com = 0
        self.full = 0
        self.b = 0
        self.tlast = 0
        self.v2 = 0
        self.fin2 = 0
        self.sfull = 0
        self.rptr = 0
        self.cycle = 0

    # -- values --------------------------------------------------------------------------------
    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _beat(self, A: i32[:, ::1], W: i16[:, ::1], r: i64, last: cython.int) -> cython.void:
        """Accumulate beat r (A[r]: M*G activations, row-major [m][k]; W[r]: G*N weight values,
        [k][n], int16) into the tile slot receiving beats; close the slot if it is the tile's last."""
        M: cython.int = self.M
        N: cython.int = self.N
        G: cython.int = self.G
        s: cython.int = self.seq_in & (SLOTS - 1)
        m: cython.int
        k: cython.int
        n: cython.int
        a: i32
        if self.fp:
            self.beat_fn(np.asarray(self.acc[s]), np.asarray(A[r]).reshape(M, G),
                         np.asarray(W[r]).reshape(G, N), bool(self.fresh[s]))
        elif cython.compiled:
            # raw pointers: a contiguous int32 multiply-add over N lanes that the C compiler
            # vectorizes (wrapping is exact: -fwrapv, and the result is C mod 2^32)
            for m in range(M):
                dst: cython.pointer(i32) = cython.address(self.acc[s, m, 0])
                for k in range(G):
                    a = A[r, m * G + k]
                    if a != 0:
                        _madd(dst, cython.address(W[r, k * N]), a, N)
        else:
            for m in range(M):
                for k in range(G):
                    a = A[r, m * G + k]
                    if a != 0:
                        for n in range(N):
                            self.acc[s, m, n] = _wrap32(int(self.acc[s, m, n]) + int(a) * int(W[r, k * N + n]))
        self.fresh[s] = 0
        if last:
            self.seq_in += 1
            s = self.seq_in & (SLOTS - 1)
            self.fresh[s] = 1
            for m in range(M):
                for n in range(N):
                    self.acc[s, m, n] = 0

    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _beatp(self, ap: cython.pointer(i32), wp: cython.pointer(i16), last: cython.int) -> cython.void:
        """`_beat` (integer mode, compiled) from pointers to the beat's activations and weights
        (no memoryview slice is acquired per beat)."""
        M: cython.int = self.M
        N: cython.int = self.N
        G: cython.int = self.G
        s: cython.int = self.seq_in & (SLOTS - 1)
        m: cython.int
        k: cython.int
        n: cython.int
        a: i32
        for m in range(M):
            dst: cython.pointer(i32) = cython.address(self.acc[s, m, 0])
            for k in range(G):
                a = ap[m * G + k]
                if a != 0:
                    _madd(dst, wp + k * N, a, N)
        self.fresh[s] = 0
        if last:
            self.seq_in += 1
            s = self.seq_in & (SLOTS - 1)
            self.fresh[s] = 1
            for m in range(M):
                for n in range(N):
                    self.acc[s, m, n] = 0

    def shadow_row(self, r: int) -> list:
        s: cython.int = (self.seq_com - 1) & (SLOTS - 1)
        return [int(self.acc[s, r, n]) for n in range(self.N)]

    # -- lockstep --------------------------------------------------------------------------------
    def step(self, in_valid: int, in_a, in_w, in_last: int, out_ready: int):
        """One clock with this cycle's inputs (in_a: M*G activation values, in_w: G*N weight
        values). Returns this cycle's outputs (before the edge):
        (in_ready, out_valid, out_last, out_c row)."""
        P: cython.int = self.P
        fin: cython.int = 0
        if self.S == 1:
            fin = 1 if (self.full and self.b == P - 1 and self.tlast) else 0
        elif self.v2 and self.fin2:
            fin = 1
        busy: cython.int = 1 if (self.sfull or (self.full and self.tlast) or
                                 (self.v2 and self.fin2)) else 0
        ir: cython.int = 1 if ((not self.full or self.b == P - 1) and
                               not (in_last and busy)) else 0
        ov: cython.int = self.sfull
        ol: cython.int = 1 if (ov and self.rptr == self.M - 1) else 0
        oc = self.shadow_row(self.rptr) if ov else [0] * self.N
        fire_in: cython.int = 1 if (in_valid and ir) else 0
        if ov and out_ready:
            if self.rptr == self.M - 1:
                self.rptr = 0
                self.sfull = 0
            else:
                self.rptr += 1
        if fin:
            self.seq_com += 1
            self.sfull = 1
            self.rptr = 0
        if self.S == 2:
            self.v2 = self.full
            self.fin2 = 1 if (self.full and self.b == P - 1 and self.tlast) else 0
        if self.full:
            if self.b == P - 1:
                self.full = 0
            else:
                self.b += 1
        if fire_in:
            self.full = 1
            self.b = 0
            self.tlast = 1 if in_last else 0
            A = np.asarray(in_a, dtype=np.int32).reshape(1, -1)
            W = np.asarray(in_w, dtype=np.int16).reshape(1, -1)
            self._beat(A, W, 0, self.tlast)
        self.cycle += 1
        return int(ir), int(ov), int(ol), oc

    # -- free running ------------------------------------------------------------------------------
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def run(self, A: i32[:, ::1], W: i16[:, ::1], lasts: i64[::1], out_c: i32[:, ::1],
            out_stamp: i64[::1], valid: cython.uchar[::1], ready: cython.uchar[::1],
            max_cycles: i64, drain: cython.int, valid_from: i64 = 0, ready_from: i64 = 0):
        """Free-running: stream beats A[i], W[i], lasts[i] (source valid from cycle `valid_from`
        on, unless `valid[t]` says 0), sink ready from cycle `ready_from` on, unless `ready[t]` says
        0 (t counted from this call; empty schedules = always). Stretches in which nothing can
        change (no beat in flight, none can be taken, no row can leave, no schedule entry left)
        are skipped in one step, so a long hold costs neither memory nor time.
        Without `drain`, stop right after the cycle that takes the last beat; with it, run until
        the engine is idle. Stops at max_cycles too. Result rows go to out_c (their cycles to
        out_stamp). Returns (beats taken, rows written, cycles run)."""
        nb: i64 = A.shape[0]
        nv: i64 = valid.shape[0]
        nr: i64 = ready.shape[0]
        P: cython.int = self.P
        M: cython.int = self.M
        N: cython.int = self.N
        S: cython.int = self.S
        bi: i64 = 0
        no: i64 = 0
        t: i64 = 0
        n: cython.int
        s: cython.int
        fin: cython.int
        ir: cython.int
        v: cython.int
        r: cython.int
        nxt: i64
        full: cython.int = self.full
        b: cython.int = self.b
        tlast: cython.int = self.tlast
        v2: cython.int = self.v2
        fin2: cython.int = self.fin2
        sfull: cython.int = self.sfull
        rptr: cython.int = self.rptr
        cyc: i64 = self.cycle
        while t < max_cycles:
            if bi >= nb:
                if not drain:
                    break
                if full == 0 and v2 == 0 and sfull == 0:
                    break
            fin = 0
            if S == 1:
                if full and b == P - 1 and tlast:
                    fin = 1
            elif v2 and fin2:
                fin = 1
            ir = 1 if (full == 0 or b == P - 1) else 0
            if ir and bi < nb and lasts[bi] != 0 and (sfull or (full and tlast) or (v2 and fin2)):
                ir = 0
            v = 1 if (bi < nb and t >= valid_from) else 0
            if v and t < nv and valid[t] == 0:
                v = 0
            r = 1 if t >= ready_from else 0
            if t < nr and ready[t] == 0:
                r = 0
            if (full == 0 and v2 == 0 and not (v and ir) and not (sfull and r)
                    and t >= nv and t >= nr):
                # frozen (nothing in flight, nothing moves) until the next hold ends
                nxt = max_cycles
                if bi < nb and t < valid_from and valid_from < nxt:
                    nxt = valid_from
                if sfull and t < ready_from and ready_from < nxt:
                    nxt = ready_from
                if nxt > t + 1:
                    cyc += nxt - t
                    t = nxt
                    continue
            if sfull and r:
                if no >= out_c.shape[0]:
                    raise IndexError("out_c is too small for the rows leaving in this run")
                s = (self.seq_com - 1) & (SLOTS - 1)
                for n in range(N):
                    out_c[no, n] = self.acc[s, rptr, n]
                out_stamp[no] = cyc
                no += 1
                if rptr == M - 1:
                    rptr = 0
                    sfull = 0
                else:
                    rptr += 1
            if fin:
                self.seq_com += 1
                sfull = 1
                rptr = 0
            if S == 2:
                fin2 = 1 if (full and b == P - 1 and tlast) else 0
                v2 = full
            if full:
                if b == P - 1:
                    full = 0
                else:
                    b += 1
            if v and ir:
                full = 1
                b = 0
                tlast = 1 if lasts[bi] != 0 else 0
                if cython.compiled and not self.fp:
                    self._beatp(cython.address(A[bi, 0]), cython.address(W[bi, 0]), tlast)
                else:
                    self._beat(A, W, bi, tlast)
                bi += 1
            cyc += 1
            t += 1
        self.full = full
        self.b = b
        self.tlast = tlast
        self.v2 = v2
        self.fin2 = fin2
        self.sfull = sfull
        self.rptr = rptr
        self.cycle = cyc
        return bi, no, t
