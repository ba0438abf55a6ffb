"""Register-level N:M sparse engine (Cython pure-Python mode): control stepped every cycle, arithmetic
once per accepted row; contract and why it is register-exact: docs/nm_sparse.md ("The cycle model")."""

import cython
import numpy as np

if not cython.compiled:
    # compiled, the base type comes from the cimport in _nm_sparse_core.pxd (a Python-level name
    # here would hide it); interpreted, the base's source runs too
    from tpesim.engines import load_core as _load_core

    globals()["HeldBlockCore"] = _load_core("_held_core", True, record=False).HeldBlockCore

i64 = cython.typedef(cython.longlong)
i32 = cython.typedef(cython.int)
i16 = cython.typedef(cython.short)
u8 = cython.typedef(cython.uchar)


@cython.cclass
class NmSparseCore(HeldBlockCore):  # noqa: F821
    """Bank control, ring and free-running loop: HeldBlockCore (sim/engines/_held_core.py); here the
    sparse lanes' banks, the mode and error registers and the column arithmetic. A load beat is
    C*N values, C*N indices and the dense bit; a stream beat R*M lanes. With `compress`, a load
    beat is C*M dense values (column j's M-group at j*M..j*M+M-1) and the dense bit, pruned and
    compressed by the column's NMCompressor (one register: write latency 1) on its way in."""

    def __init__(self, rows: int, cols: int, keep: int, group: int, result_bits: int,
                 latency: int, drain_cycles: int, banks: int, compress: bool = False):
        if latency < 2 or drain_cycles < 1:
            raise ValueError(f"latency {latency} / drain_cycles {drain_cycles} too small")
        self.cz = 1 if compress else 0
        self._setup(rows, cols, latency, drain_cycles, banks,
                    cols * group + 1 if compress else 2 * cols * keep + 1, rows * group,
                    1 if compress else 0)
        self.cv = np.zeros(keep, dtype=np.int64)
        self.ci = np.zeros(keep, dtype=np.int64)
        self.R = rows
        self.C = cols
        self.N = keep
        self.M = group
        self.RN = rows * keep
        self.small = 1 if result_bits <= 31 else 0
        self.reset()

    def reset(self):
        R, C, RN = self.R, self.C, self.RN
        self._reset_control()
        self.vals = np.zeros((self.nb * C, RN), dtype=np.int64)
        # int8 operands: each bank column also as a dense R*M-long int16 vector (zeros where no
        # kept weight sits), so a row's column result is a plain dot product the compiler vectorises
        self.wd = np.zeros((self.nb * C, R * self.M), dtype=np.int16)
        self.gix = np.zeros((self.nb * C, RN), dtype=np.int32)
        self.a16 = np.zeros(R * self.M, dtype=np.int16)
        self.m0 = 0
        self.m1 = 0
        self.e0 = 0
        self.e1 = 0

    # -- state, read side --------------------------------------------------------------------------
    def dense(self, b: int) -> int:
        """Bank b's mode register (1 = dense: the index muxes are bypassed)."""
        return int(self.m1 if b else self.m0)

    def err(self, b: int) -> int:
        """Bank b's error register (its block had invalid metadata)."""
        return int(self.e1 if b else self.e0)

    @property
    def err_rows(self) -> int:
        """Rows delivered so far with out_err set."""
        return int(self.flag_rows)

    def weights(self, b: int) -> np.ndarray:
        """Bank b as the lanes multiply it: (C, R*N) values and the A lane each one reads."""
        C = self.C
        return (np.asarray(self.vals)[b * C:(b + 1) * C].copy(),
                np.asarray(self.gix)[b * C:(b + 1) * C].astype(np.int64))

    @cython.cfunc
    @cython.exceptval(check=False)
    def _flag(self, bank: cython.int) -> cython.int:
        """The row flag: bank's error register (rows read from it leave with out_err)."""
        return self.e1 if bank else self.e0

    # -- arithmetic ----------------------------------------------------------------------------------
    @cython.cfunc
    @cython.exceptval(check=False)
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
    @cython.exceptval(check=False)
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _compress(self, sp: cython.pointer(i64), g: cython.int, bit: cython.int) -> cython.void:
        """NMCompressor on the M-group at sp[g..g+M-1] into cv/ci (N slots): element i is kept when
        fewer than N elements beat it (|x_j| > |x_i|, or equal with j < i); slot s takes the kept
        element with s kept ones before it. A dense beat (bit) bypasses the values: slot s = x_s;
        the indices are the compressor's either way (rtl/nm_sparse.py)."""
        N: cython.int = self.N
        M: cython.int = self.M
        i: cython.int
        k: cython.int
        rank: cython.int
        s: cython.int = 0
        a: i64
        b: i64
        for i in range(M):
            a = sp[g + i]
            if a < 0:
                a = -a
            rank = 0
            for k in range(M):
                b = sp[g + k]
                if b < 0:
                    b = -b
                if b > a or (b == a and k < i):
                    rank += 1
            if rank < N:
                self.ci[s] = i
                self.cv[s] = sp[g + s] if bit else sp[g + i]
                s += 1

    @cython.cfunc
    @cython.exceptval(check=False)
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _load(self, sp: cython.pointer(i64), bank: cython.int, lane: cython.int) -> cython.void:
        """Load the beat at sp into lane `lane` of bank `bank`: [values (C*N), indices (C*N), dense]
        (with `compress`: [dense values (C*M), dense], compressed first). The block's first beat
        sets the bank's mode; a beat is bad if its mode differs from the bank's or (sparse) an
        index of a column is >= M or not above the previous one."""
        C: cython.int = self.C
        N: cython.int = self.N
        M: cython.int = self.M
        j: cython.int
        s: cython.int
        x: i64
        v: i64
        prev: i64
        cz: cython.int = self.cz
        bit: cython.int = 1 if sp[C * M if cz else 2 * C * N] != 0 else 0
        first: cython.int = 1 if lane == 0 else 0     # lane = the bank's count: its block's first beat
        mode: cython.int = bit if first else (self.m1 if bank else self.m0)
        bad: cython.int = 0 if (first or bit == mode) else 1
        for j in range(C):
            if self.small:
                for s in range(M):
                    self.wd[bank * C + j, lane * M + s] = 0
            if cz:
                self._compress(sp, j * M, bit)
            prev = -1
            for s in range(N):
                if cz:
                    x = self.ci[s]
                    v = self.cv[s]
                else:
                    x = sp[C * N + j * N + s]
                    v = sp[j * N + s]
                if mode == 0 and (x >= M or x <= prev):
                    bad = 1
                prev = x
                self.vals[bank * C + j, lane * N + s] = v
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
                        i16, v)
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
        return self._step(load_valid, load_beat, in_valid, in_data, in_last, out_ready)
