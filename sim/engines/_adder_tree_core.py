"""Register-level multiplier-adder-tree engine (HPCA'25 OPT2), Cython pure-Python mode.

Notes and derivations: docs/internals.md, section `sim/engines/_adder_tree_core.py`.
"""

import cython
import numpy as np

if not cython.compiled:
    # compiled, the base type comes from the cimport in _adder_tree_core.pxd (a Python-level name
    # here would hide it); interpreted, the base's source runs too
    from tpesim.engines import load_core as _load_core

    globals()["HeldBlockCore"] = _load_core("_held_core", True, record=False).HeldBlockCore

i64 = cython.typedef(cython.longlong)
i32 = cython.typedef(cython.int)
i16 = cython.typedef(cython.short)
u8 = cython.typedef(cython.uchar)


@cython.cclass
class AdderTreeCore(HeldBlockCore):  # noqa: F821
    """Bank control, ring and free-running loop: HeldBlockCore (sim/engines/_held_core.py); here the
    weight banks and the column arithmetic."""

    def __init__(self, lanes: int, cols: int, result_bits: int, signed: bool, latency: int,
                 drain_cycles: int, banks: int):
        if latency < cols or drain_cycles < 1:
            raise ValueError(f"latency {latency} / drain_cycles {drain_cycles} do not fit {cols} cols")
        self._setup(lanes, cols, latency, drain_cycles, banks, cols, lanes)
        self.L = lanes
        self.N = cols
        self.cl = latency - (cols - 1)
        # int16 operands and int32 sums are exact when every partial sum fits 24 bits
        self.small = 1 if result_bits <= 24 else 0
        self.reset()

    def reset(self):
        L, N = self.L, self.N
        self._reset_control()
        self.wt = np.zeros((self.nb * N, L), dtype=np.int64)
        self.w16 = np.zeros((self.nb * N, L), dtype=np.int16)
        self.a16 = np.zeros(L, dtype=np.int16)

    # -- state, read side --------------------------------------------------------------------------
    def weights(self, b: int) -> np.ndarray:
        """Bank b's rows as loaded (row i = the i-th load beat of its block), an L x N array."""
        N = self.N
        if cython.compiled and self.small:
            return np.asarray(self.w16)[b * N:(b + 1) * N].T.astype(np.int64)
        return np.asarray(self.wt)[b * N:(b + 1) * N].T.astype(np.int64)

    def column_result(self, j: int) -> int:
        """Column j's result register this cycle (the last tree stage, or the EN-T shift-add): the
        result, lane j, of the row that entered the input register column_latency - 1 + j advancing
        edges ago (0 for a bubble). Column N-1's is out_c[N-1]."""
        if not 0 <= j < self.N:
            raise IndexError(j)
        return self._slot_row((self.nadv - self.cl + 1 - j) & self.hm, j)

    # -- arithmetic ----------------------------------------------------------------------------------
    @cython.cfunc
    @cython.exceptval(check=False)
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
    @cython.exceptval(check=False)
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def _load(self, sp: cython.pointer(i64), bank: cython.int, beat: cython.int) -> cython.void:
        """Write load beat `beat` of bank `bank` (row `beat` of the block) from its N lanes at sp."""
        N: cython.int = self.N
        j: cython.int
        if cython.compiled and self.small:
            for j in range(N):
                self.w16[bank * N + j, beat] = cython.cast(i16, sp[j])
        else:
            for j in range(N):
                self.wt[bank * N + j, beat] = sp[j]

    # -- lockstep --------------------------------------------------------------------------------------
    def step(self, load_valid: int, load_data, in_valid: int, in_data, in_last: int, out_ready: int):
        """One clock. Returns this cycle's outputs (before the edge):
        (load_ready, in_ready, out_valid, out_last, out_c row)."""
        lr, ir, ov, ol, _, oc = self._step(load_valid, load_data, in_valid, in_data, in_last,
                                           out_ready)
        return lr, ir, ov, ol, oc
