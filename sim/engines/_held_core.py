"""Bank control, pipeline ring and free-running loop of a held-block engine (Cython pure-Python mode),
shared by the cores that derive from it (docs/internals.md, `sim/engines/_adder_tree_core.py`)."""

import cython
import numpy as np

i64 = cython.typedef(cython.longlong)
u8 = cython.typedef(cython.uchar)


@cython.cclass
class HeldBlockCore:
    """Banks of `depth` load beats each (one or two), a pipeline of `latency` registers under one
    global enable, `drain_cycles` advancing edges before a bank read by a block's last row may load
    again. A derived core implements `_load` (write one load beat into a bank), `_rows` (the result
    rows of stream beats against a bank) and `_flag` (a per-bank bit carried with each row read
    from it, 0 unless the engine has one), and calls `_setup` from its constructor.

    `write_latency` (0 or more) is the number of cycles from a load beat taken to its lane written
    (a register on the load path, e.g. a compressor): a row may read a bank only from the cycle
    after its last lane is written, i.e. from write_latency + 1 cycles after its last beat was
    taken (0: from the next cycle, as soon as the bank is full)."""

    def _setup(self, depth: int, width: int, latency: int, drain_cycles: int, banks: int,
               load_lanes: int, row_lanes: int, write_latency: int = 0):
        if banks not in (1, 2):
            raise ValueError(f"banks must be 1 or 2, not {banks!r}")
        self.depth = depth
        self.width = width
        self.lat = latency
        self.dcy = drain_cycles
        self.nb = banks
        self.wlat = write_latency
        h = 1
        while h < latency + 2:
            h *= 2
        self.H = h
        self.hm = h - 1
        self.qm = h - 1
        self.one_w = np.zeros((1, load_lanes), dtype=np.int64)
        self.one_a = np.zeros((1, row_lanes), dtype=np.int64)

    def _reset_control(self):
        self.rp = np.zeros(self.H, dtype=np.uint8)
        self.rq = np.zeros(self.H, dtype=np.int64)
        self.fifo = np.zeros((self.H, self.width), dtype=np.int64)
        self.c0 = 0
        self.c1 = 0
        self.d0 = 0
        self.d1 = 0
        self.f0 = -1
        self.f1 = -1
        self.lsel = 0
        self.rsel = 0
        self.nadv = 0
        self.seq_in = 0
        self.seq_out = 0
        self.cycle = 0
        self.flag_rows = 0

    # -- hooks of the derived core (no exceptions: nothing is checked after each call) -------------
    @cython.cfunc
    @cython.exceptval(check=False)
    def _rows(self, src: i64[:, ::1], b0: i64, b1: i64, bank: cython.int, dst: i64[:, ::1],
              d0: i64) -> cython.void:
        """dst[d0 + m - b0] = the result row of stream beat src[m] against bank `bank`, b0 <= m < b1."""

    @cython.cfunc
    @cython.exceptval(check=False)
    def _load(self, sp: cython.pointer(i64), bank: cython.int, beat: cython.int) -> cython.void:
        """Write load beat `beat` of bank `bank`; `sp` points at its lanes (interpreted: the row)."""

    @cython.cfunc
    @cython.exceptval(check=False)
    def _flag(self, bank: cython.int) -> cython.int:
        return 0

    @cython.cfunc
    @cython.inline
    @cython.exceptval(check=False)
    def _take(self, loads: i64[:, ::1], r: i64, bank: cython.int, beat: cython.int) -> cython.void:
        """Load beat loads[r] into bank `bank` as its beat `beat` (by pointer, compiled)."""
        if cython.compiled:
            self._load(cython.address(loads[r, 0]), bank, beat)
        else:
            self._load(loads[r], bank, beat)

    # -- state, read side --------------------------------------------------------------------------
    def cnt(self, b: int) -> int:
        """Load beats in bank b (0..depth)."""
        return int(self.c1 if b else self.c0)

    def drain(self, b: int) -> int:
        """Advancing cycles before bank b may load again."""
        return int(self.d1 if b else self.d0)

    @cython.ccall
    def load_ready(self) -> cython.int:
        c: cython.int = self.c1 if self.lsel else self.c0
        d: cython.int = self.d1 if self.lsel else self.d0
        return 1 if (c < self.depth and d == 0) else 0

    def out_valid(self) -> int:
        return int(self.rp[(self.nadv - self.lat + 1) & self.hm] & 1)

    @cython.ccall
    def readable(self) -> cython.int:
        """Bank rsel is full and its last lane written: rows may read it this cycle."""
        c: cython.int = self.c1 if self.rsel else self.c0
        f: i64 = self.f1 if self.rsel else self.f0
        return 1 if (c == self.depth and self.cycle > f + self.wlat) else 0

    def in_ready(self, out_ready: int) -> int:
        adv = self.out_valid() == 0 or bool(out_ready)
        return 1 if (adv and self.readable()) else 0

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

    def _slot_row(self, s: int, j: int) -> int:
        if self.rp[s] & 1:
            return int(self.fifo[self.rq[s] & self.qm, j])
        return 0

    def out_row(self) -> list:
        s = (self.nadv - self.lat + 1) & self.hm
        return [self._slot_row(s, j) for j in range(self.width)]

    # -- lockstep --------------------------------------------------------------------------------------
    def _step(self, load_valid: int, load_beat, in_valid: int, in_data, in_last: int, out_ready: int):
        """One clock. Returns this cycle's outputs (before the edge):
        (load_ready, in_ready, out_valid, out_last, out_flag, out_c row)."""
        D: cython.int = self.depth
        so: i64 = (self.nadv - self.lat + 1) & self.hm
        f: cython.int = self.rp[so]
        ov: cython.int = f & 1
        ol: cython.int = (f >> 1) & 1
        oe: cython.int = (f >> 2) & 1
        oc = self.out_row()
        r: cython.int = 1 if out_ready else 0
        lr: cython.int = self.load_ready()
        adv: cython.int = 1 if (ov == 0 or r) else 0
        ir: cython.int = 1 if (adv and self.readable()) else 0
        fw: cython.int = 1 if (load_valid and lr) else 0
        fi: cython.int = 1 if (in_valid and ir) else 0
        last: cython.int = 1 if in_last else 0
        if ov and r:
            self.rp[so] = 0
            self.seq_out += 1
            self.flag_rows += oe
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
                eb: cython.int = self._flag(self.rsel)
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
                self._take(self.one_w, 0, 1, self.c1)
                self.c1 += 1
                if self.c1 == D:
                    self.f1 = self.cycle
                    if self.nb == 2:
                        self.lsel = 0
            else:
                self._take(self.one_w, 0, 0, self.c0)
                self.c0 += 1
                if self.c0 == D:
                    self.f0 = self.cycle
                    if self.nb == 2:
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
        """Free-running, with StationaryCore.run's contract: stream the load beats (in load order)
        and stream beats (a source is valid once its next beat is available: from cycle
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
        D: cython.int = self.depth
        W: cython.int = self.width
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
        rd: cython.int
        wl: i64 = self.wlat
        nflag: i64 = 0
        # control registers and counters in locals for the loop
        c0: cython.int = self.c0
        c1: cython.int = self.c1
        d0: cython.int = self.d0
        d1: cython.int = self.d1
        f0: i64 = self.f0
        f1: i64 = self.f1
        lsel: cython.int = self.lsel
        rsel: cython.int = self.rsel
        nadv: i64 = self.nadv
        cyc: i64 = self.cycle
        s0: i64 = self.seq_out                 # sequence number of out_c[0]
        ncarry: i64 = self.seq_in - self.seq_out
        if ncarry + ni > out_c.shape[0] or ncarry + ni > out_stamp.shape[0]:
            raise IndexError("out_c is too small for the rows in flight plus the stream beats")
        if ni and ins.shape[1] != self.one_a.shape[1]:
            raise ValueError(f"stream beats must have {self.one_a.shape[1]} lanes, not {ins.shape[1]}")
        if nl and loads.shape[1] != self.one_w.shape[1]:
            raise ValueError(f"load beats must have {self.one_w.shape[1]} lanes, not {loads.shape[1]}")
        for k in range(ncarry):
            for j in range(W):
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
            # bank rsel readable: full, and its last lane written (write_latency after its last beat)
            rd = 1 if (crs == D and cyc > (f1 if rsel else f0) + wl) else 0
            fw = 1 if (lv and cl < D and dls == 0) else 0
            fi = 1 if (iv and adv and rd) else 0
            if fw == 0 and fi == 0 and ncarry + bi == no:
                # idle: nothing in flight (adv = 1) and no beat taken; the next cycle that can take
                # one is the first where a source becomes available or the load bank's drain ends
                nxt = max_cycles - t + cyc
                if bi < ni and crs == D:
                    # the row is not available yet, or the bank's last lane not yet written
                    nxt = (f1 if rsel else f0) + wl + 1
                    if niv > 0 and iavail[bi] > nxt:
                        nxt = iavail[bi]
                if li < nl and cl < D:
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
                eb = self._flag(rsel)
                kmax = ni - bi
                if max_cycles - t < kmax:
                    kmax = max_cycles - t
                k = 1
                while k < kmax and lasts[bi + k] == 0 and (niv == 0 or iavail[bi + k] <= cyc + k):
                    k += 1
                dz0 = cyc + d0
                dz1 = cyc + d1
                lnext = never
                if li < nl and cl < D:
                    lnext = dz1 if lsel else dz0
                    if nlv > 0 and lavail[li] > lnext:
                        lnext = lavail[li]
                seq = s0 + ncarry + bi
                for x in range(k):
                    so = (nadv - lat1) & hm
                    if rp[so] & 1:
                        out_stamp[no] = cyc
                        no += 1
                        nflag += (rp[so] >> 2) & 1
                        rp[so] = 0
                    if cyc >= lnext:
                        if li < nls:
                            load_stamp[li] = cyc
                        if lsel:
                            self._take(loads, li, 1, c1)
                            c1 += 1
                            if c1 == D:
                                f1 = cyc
                                if two:
                                    lsel = 0
                        else:
                            self._take(loads, li, 0, c0)
                            c0 += 1
                            if c0 == D:
                                f0 = cyc
                                if two:
                                    lsel = 1
                        li += 1
                        lnext = never
                        cl = c1 if lsel else c0
                        if li < nl and cl < D:
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
                nflag += (f >> 2) & 1
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
                    rp[s] = 1 + 2 * last + 4 * self._flag(rsel)
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
                    self._take(loads, li, 1, c1)
                    c1 += 1
                    if c1 == D:
                        f1 = cyc
                        if two:
                            lsel = 0
                else:
                    self._take(loads, li, 0, c0)
                    c0 += 1
                    if c0 == D:
                        f0 = cyc
                        if two:
                            lsel = 1
                li += 1
            cyc += 1
            t += 1
        # rows still in flight go back to the FIFO
        for k in range(no, ncarry + bi):
            for j in range(W):
                self.fifo[(s0 + k) & qm, j] = out_c[k, j]
        self.c0 = c0
        self.c1 = c1
        self.d0 = d0
        self.d1 = d1
        self.f0 = f0
        self.f1 = f1
        self.lsel = lsel
        self.rsel = rsel
        self.nadv = nadv
        self.cycle = cyc
        self.seq_out = s0 + no
        self.seq_in = s0 + ncarry + bi
        self.flag_rows += nflag
        return li, bi, no, t
