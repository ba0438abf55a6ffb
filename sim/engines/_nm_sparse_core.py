"""Register-level N:M sparse engine (Cython pure-Python mode): control stepped every cycle, arithmetic
once per accepted row; contract and why it is register-exact: docs/nm_sparse.md ("The cycle model")."""

import cython
import numpy as np

i64 = cython.typedef(cython.longlong)
i32 = cython.typedef(cython.int)
i16 = cython.typedef(cython.short)
u8 = cython.typedef(cython.uchar)


@cython.cclass
class NmSparseCore:
    R: cython.int
    C: cython.int
    N: cython.int
    M: cython.int
    RN: cython.int
    lat: cython.int
    dcy: cython.int
    nb: cython.int
    small: cython.int
    H: cython.int
    hm: i64
    qm: i64
    rp: u8[::1]
    rq: i64[::1]
    fifo: i64[:, ::1]
    vals: i64[:, ::1]
    wd: i16[:, ::1]
    gix: i32[:, ::1]
    a16: i16[::1]
    one_a: i64[:, ::1]
    one_w: i64[:, ::1]
    c0: cython.int
    c1: cython.int
    d0: cython.int
    d1: cython.int
    m0: cython.int
    m1: cython.int
    e0: cython.int
    e1: cython.int
    nadv: i64
    seq_in: i64
    seq_out: i64
    lsel = cython.declare(cython.int, visibility="readonly")
    rsel = cython.declare(cython.int, visibility="readonly")
    cycle = cython.declare(i64, visibility="readonly")
    err_rows = cython.declare(i64, visibility="readonly")

    def __init__(self, rows: int, cols: int, keep: int, group: int, result_bits: int,
                 latency: int, drain_cycles: int, banks: int):
        if banks not in (1, 2):
            raise ValueError(f"banks must be 1 or 2, not {banks!r}")
        if latency < 2 or drain_cycles < 1:
            raise ValueError(f"latency {latency} / drain_cycles {drain_cycles} too small")
        self.R = rows
        self.C = cols
        self.N = keep
        self.M = group
        self.RN = rows * keep
        self.lat = latency
        self.dcy = drain_cycles
        self.nb = banks
        self.small = 1 if result_bits <= 31 else 0
        h = 1
        while h < latency + 2:
            h *= 2
        self.H = h
        self.hm = h - 1
        self.qm = h - 1
        self.reset()

    def reset(self):
        R, C, H, RN = self.R, self.C, self.H, self.RN
        self.rp = np.zeros(H, dtype=np.uint8)
        self.rq = np.zeros(H, dtype=np.int64)
        self.fifo = np.zeros((H, C), dtype=np.int64)
        self.vals = np.zeros((self.nb * C, RN), dtype=np.int64)
        # int8 operands: each bank column also as a dense R*M-long int16 vector (zeros where no
        # kept weight sits), so a row's column result is a plain dot product the compiler vectorises
        self.wd = np.zeros((self.nb * C, R * self.M), dtype=np.int16)
        self.gix = np.zeros((self.nb * C, RN), dtype=np.int32)
        self.a16 = np.zeros(R * self.M, dtype=np.int16)
        self.one_a = np.zeros((1, R * self.M), dtype=np.int64)
        self.one_w = np.zeros((1, 2 * C * self.N + 1), dtype=np.int64)
        self.c0 = 0
        self.c1 = 0
        self.d0 = 0
        self.d1 = 0
        self.m0 = 0
        self.m1 = 0
        self.e0 = 0
        self.e1 = 0
        self.lsel = 0
        self.rsel = 0
        self.nadv = 0
        self.seq_in = 0
        self.seq_out = 0
        self.cycle = 0
        self.err_rows = 0

    # -- state, read side --------------------------------------------------------------------------
    def cnt(self, b: int) -> int:
        """Lanes loaded into bank b (0..R)."""
        return int(self.c1 if b else self.c0)

    def drain(self, b: int) -> int:
        return int(self.d1 if b else self.d0)

    def dense(self, b: int) -> int:
        """Bank b's mode register (1 = dense: the index muxes are bypassed)."""
        return int(self.m1 if b else self.m0)

    def err(self, b: int) -> int:
        """Bank b's error register (its block had invalid metadata)."""
        return int(self.e1 if b else self.e0)

    def weights(self, b: int) -> np.ndarray:
        """Bank b as the lanes multiply it: (C, R*N) values and the A lane each one reads."""
        C = self.C
        return (np.asarray(self.vals)[b * C:(b + 1) * C].copy(),
                np.asarray(self.gix)[b * C:(b + 1) * C].astype(np.int64))

    @cython.ccall
    def load_ready(self) -> cython.int:
        c: cython.int = self.c1 if self.lsel else self.c0
        d: cython.int = self.d1 if self.lsel else self.d0
        return 1 if (c < self.R and d == 0) else 0

    def out_valid(self) -> int:
        return int(self.rp[(self.nadv - self.lat + 1) & self.hm] & 1)

    def _slot_row(self, s: int, j: int) -> int:
        if self.rp[s] & 1:
            return int(self.fifo[self.rq[s] & self.qm, j])
        return 0

    def out_row(self) -> list:
        s = (self.nadv - self.lat + 1) & self.hm
        return [self._slot_row(s, j) for j in range(self.C)]

    def flight_exits(self) -> list:
        """The cycle in which each row still in flight will leave if the sink is ready from this
        cycle on (then every cycle advances), in stream order: the row that entered the input
        register at advancing edge e leaves e - (nadv - latency + 1) cycles from now."""
        out = []
        e0 = self.nadv - self.lat + 1
        for e in range(e0, self.nadv + 1):
            if self.rp[e & self.hm] & 1:
                out.append(int(self.cycle + (e - e0)))
        return out

    # -- arithmetic ----------------------------------------------------------------------------------
    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _rows(self, src: i64[:, ::1], b0: i64, b1: i64, bank: cython.int, dst: i64[:, ::1],
              d0: i64) -> cython.void:
        """dst[d0 + m - b0, j] = sum_p src[m, gix[j, p]] * vals[j, p] (bank's columns), m in b0..b1-1;
        all zeros when the bank's block had invalid metadata."""
        C: cython.int = self.C
        RN: cython.int = self.RN
        AW: cython.int = self.R * self.M
        m: i64
        p: cython.int
        j: cython.int
        s: i32
        s64: i64
        bad: cython.int = self.e1 if bank else self.e0
        if b1 <= b0:
            return
        if bad:
            for m in range(b0, b1):
                for j in range(C):
                    dst[d0 + m - b0, j] = 0
            return
        if cython.compiled:
            if self.small:
                # int16 operands, int32 sums, four columns at a time over the dense R*M vector
                a: cython.pointer(i16) = cython.address(self.a16[0])
                for m in range(b0, b1):
                    sp: cython.pointer(i64) = cython.address(src[m, 0])
                    for p in range(AW):
                        a[p] = cython.cast(i16, sp[p])
                    w0: cython.pointer(i16) = cython.address(self.wd[bank * C, 0])
                    dp: cython.pointer(i64) = cython.address(dst[d0 + m - b0, 0])
                    j = 0
                    while j + 4 <= C:
                        w1: cython.pointer(i16) = w0 + AW
                        w2: cython.pointer(i16) = w1 + AW
                        w3: cython.pointer(i16) = w2 + AW
                        s = 0
                        t1: i32 = 0
                        t2: i32 = 0
                        t3: i32 = 0
                        for p in range(AW):
                            x: i32 = a[p]
                            s += x * cython.cast(i32, w0[p])
                            t1 += x * cython.cast(i32, w1[p])
                            t2 += x * cython.cast(i32, w2[p])
                            t3 += x * cython.cast(i32, w3[p])
                        dp[j] = s
                        dp[j + 1] = t1
                        dp[j + 2] = t2
                        dp[j + 3] = t3
                        w0 = w3 + AW
                        j += 4
                    while j < C:
                        s = 0
                        for p in range(AW):
                            s += cython.cast(i32, a[p]) * cython.cast(i32, w0[p])
                        dp[j] = s
                        w0 += AW
                        j += 1
            else:
                for m in range(b0, b1):
                    sq: cython.pointer(i64) = cython.address(src[m, 0])
                    wq: cython.pointer(i64) = cython.address(self.vals[bank * C, 0])
                    gq: cython.pointer(i32) = cython.address(self.gix[bank * C, 0])
                    dq: cython.pointer(i64) = cython.address(dst[d0 + m - b0, 0])
                    for j in range(C):
                        s64 = 0
                        for p in range(RN):
                            s64 += sq[gq[p]] * wq[p]
                        dq[j] = s64
                        wq += RN
                        gq += RN
        else:
            w = np.asarray(self.vals)[bank * C:(bank + 1) * C]
            g = np.asarray(self.gix)[bank * C:(bank + 1) * C]
            x = np.asarray(src)[b0:b1]
            d = np.asarray(dst)
            d[d0:d0 + (b1 - b0)] = (x[:, g] * w[None]).sum(axis=2)

    @cython.cfunc
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _load(self, src: i64[:, ::1], r: i64, bank: cython.int, lane: cython.int) -> cython.void:
        """Load beat src[r] into lane `lane` of bank `bank`: [values (C*N), indices (C*N), dense].
        The block's first beat sets the bank's mode; a beat is bad if its mode differs from the
        bank's or (sparse) an index of a column is >= M or not above the previous one."""
        C: cython.int = self.C
        N: cython.int = self.N
        M: cython.int = self.M
        j: cython.int
        s: cython.int
        x: i64
        prev: i64
        bit: cython.int = 1 if src[r, 2 * C * N] != 0 else 0
        first: cython.int = 1 if lane == 0 else 0     # lane = the bank's count: its block's first beat
        mode: cython.int = bit if first else (self.m1 if bank else self.m0)
        bad: cython.int = 0 if (first or bit == mode) else 1
        for j in range(C):
            if self.small:
                for s in range(M):
                    self.wd[bank * C + j, lane * M + s] = 0
            prev = -1
            for s in range(N):
                x = src[r, C * N + j * N + s]
                if mode == 0 and (x >= M or x <= prev):
                    bad = 1
                prev = x
                self.vals[bank * C + j, lane * N + s] = src[r, j * N + s]
                # the A lane this multiplier reads; an out-of-range index reads lane i*M (its
                # product is never seen: the bank's rows leave as err with zeros)
                if mode:
                    self.gix[bank * C + j, lane * N + s] = lane * M + s
                elif x < M:
                    self.gix[bank * C + j, lane * N + s] = lane * M + cython.cast(cython.int, x)
                else:
                    self.gix[bank * C + j, lane * N + s] = lane * M
                if self.small and (mode or x < M):
                    # the dense vector: the weight at the lane it multiplies (a duplicate index adds:
                    # the bank is then err and its rows leave as zeros)
                    self.wd[bank * C + j, self.gix[bank * C + j, lane * N + s]] += cython.cast(
                        i16, src[r, j * N + s])
        if bank:
            self.m1 = mode
            self.e1 = bad if first else (self.e1 | bad)
        else:
            self.m0 = mode
            self.e0 = bad if first else (self.e0 | bad)

    # -- lockstep --------------------------------------------------------------------------------------
    def step(self, load_valid: int, load_beat, in_valid: int, in_data, in_last: int, out_ready: int):
        """One clock. `load_beat` = C*N values, C*N indices, the dense bit. Returns this cycle's
        outputs (before the edge): (load_ready, in_ready, out_valid, out_last, out_err, out_c row)."""
        R: cython.int = self.R
        so: i64 = (self.nadv - self.lat + 1) & self.hm
        f: cython.int = self.rp[so]
        ov: cython.int = f & 1
        ol: cython.int = (f >> 1) & 1
        oe: cython.int = (f >> 2) & 1
        oc = self.out_row()
        r: cython.int = 1 if out_ready else 0
        lr: cython.int = self.load_ready()
        adv: cython.int = 1 if (ov == 0 or r) else 0
        crs: cython.int = self.c1 if self.rsel else self.c0
        ir: cython.int = 1 if (adv and crs == R) else 0
        fw: cython.int = 1 if (load_valid and lr) else 0
        fi: cython.int = 1 if (in_valid and ir) else 0
        last: cython.int = 1 if in_last else 0
        if ov and r:
            self.rp[so] = 0
            self.seq_out += 1
            self.err_rows += oe
        if fw:
            for j, v in enumerate(load_beat):
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
                eb: cython.int = self.e1 if self.rsel else self.e0
                self._rows(self.one_a, 0, 1, self.rsel, self.fifo, self.seq_in & self.qm)
                self.rp[s] = 1 + 2 * last + 4 * eb
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
                if self.c1 == R and self.nb == 2:
                    self.lsel = 0
            else:
                self._load(self.one_w, 0, 0, self.c0)
                self.c0 += 1
                if self.c0 == R and self.nb == 2:
                    self.lsel = 1
        self.cycle += 1
        return int(lr), int(ir), int(ov), int(ol), int(oe), oc

    # -- free running -------------------------------------------------------------------------------
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def run(self, loads: i64[:, ::1], ins: i64[:, ::1], lasts: i64[::1], out_c: i64[:, ::1],
            out_stamp: i64[::1], lavail: i64[::1], iavail: i64[::1],
            ready: cython.uchar[::1], max_cycles: i64, drain: cython.int,
            load_stamp: i64[::1]):
        """Free-running, with StationaryCore.run's contract (see AdderTreeCore.run): load beats
        (C*N values, C*N indices, dense bit each) and stream beats (R*M lanes) offered from their
        availability cycles, the sink ready unless `ready[t]` is 0. Returns (load beats taken,
        stream beats taken, rows written, cycles run). Idle runs are skipped at once and bursts of
        non-last rows (sink ready) touch only the ring, the output stamps and the loads."""
        nl: i64 = loads.shape[0]
        ni: i64 = ins.shape[0]
        nlv: i64 = lavail.shape[0]
        niv: i64 = iavail.shape[0]
        nr: i64 = ready.shape[0]
        nls: i64 = load_stamp.shape[0]
        R: cython.int = self.R
        C: cython.int = self.C
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
        eb: cython.int
        nerr: i64 = 0
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
        if ni and ins.shape[1] != R * self.M:
            raise ValueError(f"stream beats must have {R * self.M} lanes, not {ins.shape[1]}")
        if nl and loads.shape[1] != 2 * C * self.N + 1:
            raise ValueError(f"load beats must have {2 * C * self.N + 1} lanes, not {loads.shape[1]}")
        for k in range(ncarry):
            for j in range(C):
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
            fw = 1 if (lv and cl < R and dls == 0) else 0
            fi = 1 if (iv and adv and crs == R) else 0
            if fw == 0 and fi == 0 and ncarry + bi == no:
                # idle: nothing in flight (adv = 1) and no beat taken; jump to the next cycle at
                # which a source becomes available or the load bank's drain ends
                nxt = max_cycles - t + cyc
                if bi < ni and crs == R:
                    nxt = iavail[bi]
                if li < nl and cl < R:
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
            eb = self.e1 if rsel else self.e0
            if fi and t >= nr and lasts[bi] == 0:
                # burst: rows bi .. bi+k-1 are not last and available when reached, the sink is
                # ready (adv = 1): one row in per cycle, the bank being read stays full; a load
                # fires once its beat is available, its bank not full and that bank's drain over
                kmax = ni - bi
                if max_cycles - t < kmax:
                    kmax = max_cycles - t
                k = 1
                while k < kmax and lasts[bi + k] == 0 and (niv == 0 or iavail[bi + k] <= cyc + k):
                    k += 1
                dz0 = cyc + d0
                dz1 = cyc + d1
                lnext = never
                if li < nl and cl < R:
                    lnext = dz1 if lsel else dz0
                    if nlv > 0 and lavail[li] > lnext:
                        lnext = lavail[li]
                seq = s0 + ncarry + bi
                for x in range(k):
                    so = (nadv - lat1) & hm
                    if rp[so] & 1:
                        out_stamp[no] = cyc
                        no += 1
                        nerr += (rp[so] >> 2) & 1
                        rp[so] = 0
                    if cyc >= lnext:
                        if li < nls:
                            load_stamp[li] = cyc
                        if lsel:
                            self._load(loads, li, 1, c1)
                            c1 += 1
                            if c1 == R and two:
                                lsel = 0
                        else:
                            self._load(loads, li, 0, c0)
                            c0 += 1
                            if c0 == R and two:
                                lsel = 1
                        li += 1
                        lnext = never
                        cl = c1 if lsel else c0
                        if li < nl and cl < R:
                            lnext = dz1 if lsel else dz0
                            if lnext <= cyc:
                                lnext = cyc + 1
                            if nlv > 0 and lavail[li] > lnext:
                                lnext = lavail[li]
                    nadv += 1
                    s = nadv & hm
                    rp[s] = 1 + 4 * eb
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
                nerr += (f >> 2) & 1
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
                    rp[s] = 1 + 2 * last + 4 * eb
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
                    self._load(loads, li, 1, c1)
                    c1 += 1
                    if c1 == R and two:
                        lsel = 0
                else:
                    self._load(loads, li, 0, c0)
                    c0 += 1
                    if c0 == R and two:
                        lsel = 1
                li += 1
            cyc += 1
            t += 1
        # rows still in flight go back to the FIFO
        for k in range(no, ncarry + bi):
            for j in range(C):
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
        self.err_rows += nerr
        return li, bi, no, t
