"""Register-level multiplier-adder-tree engine (HPCA'25 OPT2), Cython pure-Python mode.

Notes and derivations: docs/internals.md, section `sim/engines/_adder_tree_core.py`.
"""

import cython
import numpy as np

i64 = cython.typedef(cython.longlong)
i32 = cython.typedef(cython.int)
i16 = cython.typedef(cython.short)
u8 = cython.typedef(cython.uchar)


@cython.cclass
class AdderTreeCore:
    L: cython.int
    N: cython.int
    lat: cython.int
    cl: cython.int
    dcy: cython.int
    nb: cython.int
    small: cython.int
    H: cython.int
    hm: i64
    qm: i64
    rp: u8[::1]
    rq: i64[::1]
    fifo: i64[:, ::1]
    wt: i64[:, ::1]
    w16: i16[:, ::1]
    a16: i16[::1]
    one_a: i64[:, ::1]
    one_w: i64[:, ::1]
    c0: cython.int
    c1: cython.int
    d0: cython.int
    d1: cython.int
    nadv: i64
    seq_in: i64
    seq_out: i64
    lsel = cython.declare(cython.int, visibility="readonly")
    rsel = cython.declare(cython.int, visibility="readonly")
    cycle = cython.declare(i64, visibility="readonly")

    def __init__(self, lanes: int, cols: int, result_bits: int, signed: bool, latency: int,
                 drain_cycles: int, banks: int):
        if banks not in (1, 2):
            raise ValueError(f"banks must be 1 or 2, not {banks!r}")
        if latency < cols or drain_cycles < 1:
            raise ValueError(f"latency {latency} / drain_cycles {drain_cycles} do not fit {cols} cols")
        self.L = lanes
        self.N = cols
        self.lat = latency
        self.cl = latency - (cols - 1)
        self.dcy = drain_cycles
        self.nb = banks
        # int16 operands and int32 sums are exact when every partial sum fits 24 bits
        self.small = 1 if result_bits <= 24 else 0
        h = 1
        while h < latency + 2:
            h *= 2
        self.H = h
        self.hm = h - 1
        self.qm = h - 1
        self.reset()

    def reset(self):
        L, N, H = self.L, self.N, self.H
        self.rp = np.zeros(H, dtype=np.uint8)
        self.rq = np.zeros(H, dtype=np.int64)
        self.fifo = np.zeros((H, N), dtype=np.int64)
        self.wt = np.zeros((self.nb * N, L), dtype=np.int64)
        self.w16 = np.zeros((self.nb * N, L), dtype=np.int16)
        self.a16 = np.zeros(L, dtype=np.int16)
        self.one_a = np.zeros((1, L), dtype=np.int64)
        self.one_w = np.zeros((1, N), dtype=np.int64)
        self.c0 = 0
        self.c1 = 0
        self.d0 = 0
        self.d1 = 0
        self.lsel = 0
        self.rsel = 0
        self.nadv = 0
        self.seq_in = 0
        self.seq_out = 0
        self.cycle = 0

    # -- state, read side --------------------------------------------------------------------------
    def cnt(self, b: int) -> int:
        """Weight rows loaded into bank b (0..L)."""
        return int(self.c1 if b else self.c0)

    def drain(self, b: int) -> int:
        """Advancing cycles before bank b may load again."""
        return int(self.d1 if b else self.d0)

    def weights(self, b: int) -> np.ndarray:
        """Bank b's rows as loaded (row i = the i-th load beat of its block), an L x N array."""
        N = self.N
        if cython.compiled and self.small:
            return np.asarray(self.w16)[b * N:(b + 1) * N].T.astype(np.int64)
        return np.asarray(self.wt)[b * N:(b + 1) * N].T.astype(np.int64)

    @cython.ccall
    def load_ready(self) -> cython.int:
        c: cython.int = self.c1 if self.lsel else self.c0
        d: cython.int = self.d1 if self.lsel else self.d0
        return 1 if (c < self.L and d == 0) else 0

    def out_valid(self) -> int:
        return int(self.rp[(self.nadv - self.lat + 1) & self.hm] & 1)

    def in_ready(self, out_ready: int) -> int:
        adv = self.out_valid() == 0 or bool(out_ready)
        c = self.c1 if self.rsel else self.c0
        return 1 if (adv and c == self.L) else 0

    def flight_exits(self) -> list:
        """The cycle in which each row still in flight will leave if the sink is ready from this
        cycle on (then every cycle advances), in stream order: the row that entered the input
        register at advancing edge e leaves e - (nadv - lat + 1) cycles from now."""
        out = []
        e0 = self.nadv - self.lat + 1
        for e in range(e0, self.nadv + 1):
            if self.rp[e & self.hm] & 1:
                out.append(int(self.cycle + (e - e0)))
        return out

    def _slot_row(self, s: int, j: int) -> int:
        if self.rp[s] & 1:
            return int(self.fifo[self.rq[s] & self.qm, j])
        return 0

    def out_row(self) -> list:
        s = (self.nadv - self.lat + 1) & self.hm
        return [self._slot_row(s, j) for j in range(self.N)]

    def column_result(self, j: int) -> int:
        """Column j's result register this cycle (the last tree stage, or the EN-T shift-add): the
        result, lane j, of the row that entered the input register column_latency - 1 + j advancing
        edges ago (0 for a bubble). Column N-1's is out_c[N-1]."""
        if not 0 <= j < self.N:
            raise IndexError(j)
        return self._slot_row((self.nadv - self.cl + 1 - j) & self.hm, j)

    # -- arithmetic ----------------------------------------------------------------------------------
    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _rows(self, src: i64[:, ::1], b0: i64, b1: i64, bank: cython.int, dst: i64[:, ::1],
              d0: i64) -> cython.void:
        """dst[d0 + m - b0] = src[m] . W(bank) for m in b0..b1-1."""
        L: cython.int = self.L
        N: cython.int = self.N
        m: i64
        i: cython.int
        j: cython.int
        s: i32
        s64: i64
        if b1 <= b0:
            return
        if cython.compiled:
            if self.small:
                # int16 operands, int32 dot products, four columns at a time (the inner loops become
                # pmaddwd reductions; four of them share each load of the row)
                # the block's rows are contiguous in src: narrow them in one loop
                nel: i64 = (b1 - b0) * L
                k: i64
                if self.a16.shape[0] < nel:
                    self.a16 = np.empty(max(nel, 2 * self.a16.shape[0]), dtype=np.int16)
                a0: cython.pointer(i16) = cython.address(self.a16[0])
                sp: cython.pointer(i64) = cython.address(src[b0, 0])
                for k in range(nel):
                    a0[k] = cython.cast(i16, sp[k])
                for m in range(b0, b1):
                    a: cython.pointer(i16) = a0 + (m - b0) * L
                    w0: cython.pointer(i16) = cython.address(self.w16[bank * N, 0])
                    dp: cython.pointer(i64) = cython.address(dst[d0 + m - b0, 0])
                    j = 0
                    while j + 4 <= N:
                        w1: cython.pointer(i16) = w0 + L
                        w2: cython.pointer(i16) = w1 + L
                        w3: cython.pointer(i16) = w2 + L
                        s = 0
                        t1: i32 = 0
                        t2: i32 = 0
                        t3: i32 = 0
                        for i in range(L):
                            x: i32 = a[i]
                            s += x * cython.cast(i32, w0[i])
                            t1 += x * cython.cast(i32, w1[i])
                            t2 += x * cython.cast(i32, w2[i])
                            t3 += x * cython.cast(i32, w3[i])
                        dp[j] = s
                        dp[j + 1] = t1
                        dp[j + 2] = t2
                        dp[j + 3] = t3
                        w0 = w3 + L
                        j += 4
                    while j < N:
                        s = 0
                        for i in range(L):
                            s += cython.cast(i32, a[i]) * cython.cast(i32, w0[i])
                        dp[j] = s
                        w0 += L
                        j += 1
            else:
                for m in range(b0, b1):
                    sq: cython.pointer(i64) = cython.address(src[m, 0])
                    wq: cython.pointer(i64) = cython.address(self.wt[bank * N, 0])
                    dq: cython.pointer(i64) = cython.address(dst[d0 + m - b0, 0])
                    for j in range(N):
                        s64 = 0
                        for i in range(L):
                            s64 += sq[i] * wq[i]
                        dq[j] = s64
                        wq += L
        else:
            w = np.asarray(self.wt)[bank * N:(bank + 1) * N]
            d = np.asarray(dst)
            d[d0:d0 + (b1 - b0)] = np.asarray(src)[b0:b1] @ w.T

    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _load(self, src: i64[:, ::1], r: i64, bank: cython.int, beat: cython.int) -> cython.void:
        """Load beat `beat` of bank `bank` (row `beat` of the block) from src[r]."""
        N: cython.int = self.N
        j: cython.int
        x: i64
        for j in range(N):
            x = src[r, j]
            self.wt[bank * N + j, beat] = x
            self.w16[bank * N + j, beat] = cython.cast(i16, x) if self.small else 0

    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _loadp(self, sp: cython.pointer(i64), bank: cython.int, beat: cython.int) -> cython.void:
        """`_load` from a pointer to the beat's N lanes (compiled mode)."""
        N: cython.int = self.N
        j: cython.int
        if self.small:
            for j in range(N):
                self.w16[bank * N + j, beat] = cython.cast(i16, sp[j])
        else:
            for j in range(N):
                self.wt[bank * N + j, beat] = sp[j]

    # -- lockstep --------------------------------------------------------------------------------------
    def step(self, load_valid: int, load_data, in_valid: int, in_data, in_last: int, out_ready: int):
        """One clock. Returns this cycle's outputs (before the edge):
        (load_ready, in_ready, out_valid, out_last, out_c row)."""
        L: cython.int = self.L
        so: i64 = (self.nadv - self.lat + 1) & self.hm
        f: cython.int = self.rp[so]
        ov: cython.int = f & 1
        ol: cython.int = (f >> 1) & 1
        oc = self.out_row()
        r: cython.int = 1 if out_ready else 0
        lr: cython.int = self.load_ready()
        adv: cython.int = 1 if (ov == 0 or r) else 0
        crs: cython.int = self.c1 if self.rsel else self.c0
        ir: cython.int = 1 if (adv and crs == L) else 0
        fw: cython.int = 1 if (load_valid and lr) else 0
        fi: cython.int = 1 if (in_valid and ir) else 0
        last: cython.int = 1 if in_last else 0
        if ov and r:
            self.rp[so] = 0
            self.seq_out += 1
        if fw:
            for j, v in enumerate(load_data):
                self.one_w[0, j] = int(v)
        if fi:
            for i, v in enumerate(in_data):
                self.one_a[0, i] = int(v)
        if adv:
            if self.d0 > 0:
                self.d0 -= 1
            if self.d1 > 0:
                self.d1 -= 1
            self.nadv += 1
            s: i64 = self.nadv & self.hm
            if fi:
                self._rows(self.one_a, 0, 1, self.rsel, self.fifo, self.seq_in & self.qm)
                self.rp[s] = 3 if last else 1
                self.rq[s] = self.seq_in
                self.seq_in += 1
                if last:
                    if self.rsel:
                        self.c1 = 0
                        self.d1 = self.dcy
                    else:
                        self.c0 = 0
                        self.d0 = self.dcy
                    if self.nb == 2:
                        self.rsel ^= 1
            else:
                self.rp[s] = 0
        if fw:
            if self.lsel:
                self._load(self.one_w, 0, 1, self.c1)
                self.c1 += 1
                if self.c1 == L and self.nb == 2:
                    self.lsel = 0
            else:
                self._load(self.one_w, 0, 0, self.c0)
                self.c0 += 1
                if self.c0 == L and self.nb == 2:
                    self.lsel = 1
        self.cycle += 1
        return int(lr), int(ir), int(ov), int(ol), oc

    # -- free running -------------------------------------------------------------------------------
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def run(self, loads: i64[:, ::1], ins: i64[:, ::1], lasts: i64[::1], out_c: i64[:, ::1],
            out_stamp: i64[::1], lavail: i64[::1], iavail: i64[::1],
            ready: cython.uchar[::1], max_cycles: i64, drain: cython.int,
            load_stamp: i64[::1]):
        """Free-running, with StationaryCore.run's contract: stream the load beats (block rows in load
        order) and stream beats (a source is valid once its next beat is available: from cycle
        `lavail[b]` / `iavail[b]`, absolute; empty = always), the sink ready unless `ready[t]` says 0
        (t counted from this call; empty = always). With `drain`, run until every beat is in and
        every result row is out; without, stop right after the last stream beat is taken (loads not
        yet taken are the caller's to offer again). Stops at max_cycles too. `load_stamp[b]`
        receives the cycle in which load beat b was taken (for as many as it has room for).
        out_c (and out_stamp) must have room for the rows in flight at the call plus one per
        stream beat. Returns (load beats taken, stream beats taken, rows written, cycles run).

        Cycles are stepped one by one, except (same registers, fewer decisions) runs of idle
        cycles (nothing in flight and no beat can be taken: skipped at once) and bursts (a run of
        consecutive non-last rows of one block, each available when reached, sink ready: only the
        ring, the output stamps and the loads are touched, the drain counters are advanced at the
        end and a load's readiness is a precomputed cycle)."""
        nl: i64 = loads.shape[0]
        ni: i64 = ins.shape[0]
        nlv: i64 = lavail.shape[0]
        niv: i64 = iavail.shape[0]
        nr: i64 = ready.shape[0]
        nls: i64 = load_stamp.shape[0]
        L: cython.int = self.L
        N: cython.int = self.N
        lat1: i64 = self.lat - 1
        hm: i64 = self.hm
        qm: i64 = self.qm
        dcy: cython.int = self.dcy
        two: cython.int = 1 if self.nb == 2 else 0
        rp: u8[::1] = self.rp
        rq: i64[::1] = self.rq
        never: i64 = 1 << 62
        li: i64 = 0
        bi: i64 = 0
        no: i64 = 0
        t: i64 = 0
        pc: i64 = 0           # rows [0, pc) of `ins` have their results in out_c
        e: i64
        k: i64
        x: i64
        kmax: i64
        nxt: i64
        ev: i64
        seq: i64
        lnext: i64
        dz0: i64
        dz1: i64
        j: cython.int
        so: i64
        s: i64
        f: cython.int
        lv: cython.int
        iv: cython.int
        r: cython.int
        adv: cython.int
        fw: cython.int
        fi: cython.int
        last: cython.int
        cl: cython.int
        crs: cython.int
        dls: cython.int
        # control registers and counters in locals for the loop
        c0: cython.int = self.c0
        c1: cython.int = self.c1
        d0: cython.int = self.d0
        d1: cython.int = self.d1
        lsel: cython.int = self.lsel
        rsel: cython.int = self.rsel
        nadv: i64 = self.nadv
        cyc: i64 = self.cycle
        s0: i64 = self.seq_out                 # sequence number of out_c[0]
        ncarry: i64 = self.seq_in - self.seq_out
        if ncarry + ni > out_c.shape[0] or ncarry + ni > out_stamp.shape[0]:
            raise IndexError("out_c is too small for the rows in flight plus the stream beats")
        for k in range(ncarry):
            for j in range(N):
                out_c[k, j] = self.fifo[(s0 + k) & qm, j]
        while t < max_cycles:
            if not drain and bi >= ni:
                break
            if li >= nl and bi >= ni and ncarry + bi == no:
                break          # nothing left to send and no row in flight
            so = (nadv - lat1) & hm
            f = rp[so]
            lv = 0
            if li < nl and (nlv == 0 or cyc >= lavail[li]):
                lv = 1
            iv = 0
            if bi < ni and (niv == 0 or cyc >= iavail[bi]):
                iv = 1
            r = 1
            if t < nr and ready[t] == 0:
                r = 0
            adv = 1 if ((f & 1) == 0 or r) else 0
            cl = c1 if lsel else c0
            dls = d1 if lsel else d0
            crs = c1 if rsel else c0
            fw = 1 if (lv and cl < L and dls == 0) else 0
            fi = 1 if (iv and adv and crs == L) else 0
            if fw == 0 and fi == 0 and ncarry + bi == no:
                # idle: nothing in flight (adv = 1) and no beat taken; the next cycle that can take
                # one is the first where a source becomes available or the load bank's drain ends
                nxt = max_cycles - t + cyc
                if bi < ni and crs == L:
                    nxt = iavail[bi]          # iavail nonempty: the row is not available yet
                if li < nl and cl < L:
                    ev = cyc + dls
                    if nlv > 0 and lavail[li] > ev:
                        ev = lavail[li]
                    if ev < nxt:
                        nxt = ev
                k = nxt - cyc
                if k < 1:
                    k = 1
                nadv += k
                cyc += k
                t += k
                d0 = d0 - k if d0 > k else 0
                d1 = d1 - k if d1 > k else 0
                continue
            if fi and bi >= pc:
                # first row of a block (or of this call): its results, up to the block's last row
                e = bi
                while e < ni - 1 and lasts[e] == 0:
                    e += 1
                self._rows(ins, bi, e + 1, rsel, out_c, ncarry + bi)
                pc = e + 1
            if fi and t >= nr and lasts[bi] == 0:
                # burst: rows bi .. bi+k-1 are not last and available when reached, the sink is
                # ready (adv = 1): one row in per cycle, the bank being read stays full, no drain
                # counter is set; a load fires once its beat is available, its bank not full and
                # that bank's drain over (from cycle dz)
                kmax = ni - bi
                if max_cycles - t < kmax:
                    kmax = max_cycles - t
                k = 1
                while k < kmax and lasts[bi + k] == 0 and (niv == 0 or iavail[bi + k] <= cyc + k):
                    k += 1
                dz0 = cyc + d0
                dz1 = cyc + d1
                lnext = never
                if li < nl and cl < L:
                    lnext = dz1 if lsel else dz0
                    if nlv > 0 and lavail[li] > lnext:
                        lnext = lavail[li]
                seq = s0 + ncarry + bi
                for x in range(k):
                    so = (nadv - lat1) & hm
                    if rp[so] & 1:
                        out_stamp[no] = cyc
                        no += 1
                        rp[so] = 0
                    if cyc >= lnext:
                        if li < nls:
                            load_stamp[li] = cyc
                        if lsel:
                            if cython.compiled:
                                self._loadp(cython.address(loads[li, 0]), 1, c1)
                            else:
                                self._load(loads, li, 1, c1)
                            c1 += 1
                            if c1 == L and two:
                                lsel = 0
                        else:
                            if cython.compiled:
                                self._loadp(cython.address(loads[li, 0]), 0, c0)
                            else:
                                self._load(loads, li, 0, c0)
                            c0 += 1
                            if c0 == L and two:
                                lsel = 1
                        li += 1
                        lnext = never
                        cl = c1 if lsel else c0
                        if li < nl and cl < L:
                            lnext = dz1 if lsel else dz0
                            if lnext <= cyc:
                                lnext = cyc + 1
                            if nlv > 0 and lavail[li] > lnext:
                                lnext = lavail[li]
                    nadv += 1
                    s = nadv & hm
                    rp[s] = 1
                    rq[s] = seq + x
                    cyc += 1
                bi += k
                t += k
                d0 = d0 - k if d0 > k else 0
                d1 = d1 - k if d1 > k else 0
                continue
            # one cycle
            if (f & 1) and r:
                out_stamp[no] = cyc
                no += 1
                rp[so] = 0
            if fw and li < nls:
                load_stamp[li] = cyc
            if adv:
                if d0 > 0:
                    d0 -= 1
                if d1 > 0:
                    d1 -= 1
                nadv += 1
                s = nadv & hm
                if fi:
                    last = 1 if lasts[bi] != 0 else 0
                    rp[s] = 1 + 2 * last
                    rq[s] = s0 + ncarry + bi
                    bi += 1
                    if last:
                        if rsel:
                            c1 = 0
                            d1 = dcy
                        else:
                            c0 = 0
                            d0 = dcy
                        if two:
                            rsel ^= 1
                else:
                    rp[s] = 0
            if fw:
                if lsel:
                    if cython.compiled:
                        self._loadp(cython.address(loads[li, 0]), 1, c1)
                    else:
                        self._load(loads, li, 1, c1)
                    c1 += 1
                    if c1 == L and two:
                        lsel = 0
                else:
                    if cython.compiled:
                        self._loadp(cython.address(loads[li, 0]), 0, c0)
                    else:
                        self._load(loads, li, 0, c0)
                    c0 += 1
                    if c0 == L and two:
                        lsel = 1
                li += 1
            cyc += 1
            t += 1
        # rows still in flight go back to the FIFO
        for k in range(no, ncarry + bi):
            for j in range(N):
                self.fifo[(s0 + k) & qm, j] = out_c[k, j]
        self.c0 = c0
        self.c1 = c1
        self.d0 = d0
        self.d1 = d1
        self.lsel = lsel
        self.rsel = rsel
        self.nadv = nadv
        self.cycle = cyc
        self.seq_out = s0 + no
        self.seq_in = s0 + ncarry + bi
        return li, bi, no, t
