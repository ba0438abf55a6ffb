"""GEMM on the stationary-operand array: the WS and IS mappings, at cycle and tile fidelity.

WS: fold (nf, kf) holds B[kf*R:(kf+1)*R, nf*C:(nf+1)*C] in the PEs and streams the M rows of
    A[:, kf*R:(kf+1)*R]; output row r is the partial C[r, nf*C:(nf+1)*C] of that K-slice.
IS: fold (mf, kf) holds A[mf*C:(mf+1)*C, kf*R:(kf+1)*R]^T and streams the N columns of
    B[kf*R:(kf+1)*R, :]; output beat n is the partial column C[mf*C:(mf+1)*C, n].
Partial results of the K-folds are summed outside the array (an accumulator buffer, as in a TPU),
wrapped to acc_bits like the PE registers. Folds are ordered output block by output block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.engines.systolic import SystolicConfig, SystolicModel, reference
from sim.kernel import Simulator
from sim.numerics import matmul_wrapped, wrap_array
from sim.tile_stationary import stationary_fold_times

__all__ = ["FoldPlan", "plan", "fold_operands", "run_stationary_gemm", "stationary_tile_cycles",
           "StationaryCycleBackend", "fold_numpy"]


@dataclass(frozen=True)
class FoldPlan:
    """Fold geometry of one GEMM: `folds` = outer * kfolds folds of `rows` stream beats each."""

    dataflow: str
    outer: int      # ceil(N/C) for WS, ceil(M/C) for IS
    kfolds: int     # ceil(K/R)
    rows: int       # stream beats per fold: M for WS, N for IS

    @property
    def folds(self) -> int:
        return self.outer * self.kfolds


def plan(cfg: SystolicConfig, m: int, n: int, k: int) -> FoldPlan:
    if cfg.dataflow == "ws":
        return FoldPlan("ws", math.ceil(n / cfg.cols), math.ceil(k / cfg.rows), m)
    if cfg.dataflow == "is":
        return FoldPlan("is", math.ceil(m / cfg.cols), math.ceil(k / cfg.rows), n)
    raise ValueError(f"dataflow must be 'ws' or 'is' here, not {cfg.dataflow!r}")


def fold_operands(cfg: SystolicConfig, a: np.ndarray, b: np.ndarray, o: int, kf: int):
    """(stationary tile W[R, C], stream X[rows, R]) of fold (o, kf), zero-padded."""
    R, C = cfg.rows, cfg.cols
    w = np.zeros((R, C), np.int64)
    if cfg.dataflow == "ws":
        blk = b[kf * R:(kf + 1) * R, o * C:(o + 1) * C]
        w[:blk.shape[0], :blk.shape[1]] = blk
        x = np.zeros((a.shape[0], R), np.int64)
        sl = a[:, kf * R:(kf + 1) * R]
    else:
        blk = a[o * C:(o + 1) * C, kf * R:(kf + 1) * R].T
        w[:blk.shape[0], :blk.shape[1]] = blk
        x = np.zeros((b.shape[1], R), np.int64)
        sl = b[kf * R:(kf + 1) * R, :].T
    x[:, :sl.shape[1]] = sl
    return w, x


class _FoldEngine:
    """Event-kernel component: one wake-up per fold; loads not taken carry over to the next fold."""

    def __init__(self, cfg, model, a, b, p: FoldPlan, out, load_avail, row_avail):
        self.cfg, self.model, self.a, self.b, self.p, self.out = cfg, model, a, b, p, out
        self.la, self.ra = load_avail, row_avail
        self.f = 0
        self.pending = np.zeros((0, cfg.cols), np.int64)
        self.pending_av = np.zeros(0, np.int64)
        self.loaded_upto = 0          # folds whose loads were offered
        self.rows_done = 0
        self.cycles = 0
        self.stamps: list[np.ndarray] = []

    def _fold(self, f):
        return fold_operands(self.cfg, self.a, self.b, f // self.p.kfolds, f % self.p.kfolds)

    def _offer_loads(self, upto):
        R = self.cfg.rows
        while self.loaded_upto < min(upto, self.p.folds):
            f = self.loaded_upto
            w, _ = self._fold(f)
            self.pending = np.concatenate([self.pending, w[::-1]])
            av = np.full(R, 0 if self.la is None else int(self.la[f]), np.int64)
            self.pending_av = np.concatenate([self.pending_av, av])
            self.loaded_upto += 1

    def wake(self, sim, now):
        f, p = self.f, self.p
        self._offer_loads(f + 2)
        _, x = self._fold(f)
        lasts = np.zeros(p.rows, np.int64)
        lasts[-1] = 1
        iav = None if self.ra is None else np.full(p.rows, int(self.ra[f]), np.int64)
        lav = None if self.la is None else self.pending_av
        final = f == p.folds - 1
        res = self.model.run_folds(self.pending, x, lasts, load_avail=lav, in_avail=iav,
                                   drain=final)
        rows, stamps, cyc = res[0], res[1], res[2]
        taken = self.pending.shape[0] if final else res[3]
        self.pending = self.pending[taken:]
        self.pending_av = self.pending_av[taken:]
        self._collect(rows)
        self.stamps.append(stamps)
        self.cycles += cyc
        self.f += 1
        return -1 if final else now + cyc

    def _collect(self, rows):
        p, C = self.p, self.cfg.cols
        for r in rows:
            f, i = divmod(self.rows_done, p.rows)
            o = f // p.kfolds
            if p.dataflow == "ws":
                lanes = self.out[i, o * C:(o + 1) * C]
                self.out[i, o * C:(o + 1) * C] = lanes + r[:lanes.shape[0]]
            else:
                lanes = self.out[o * C:(o + 1) * C, i]
                self.out[o * C:(o + 1) * C, i] = lanes + r[:lanes.shape[0]]
            self.rows_done += 1


def run_stationary_gemm(cfg: SystolicConfig, a, b, *, interpreted: bool | None = None,
                        load_avail=None, row_avail=None):
    """Cycle-level GEMM on the WS/IS array. Returns (C, cycles, result-row cycles, plan).
    `load_avail[f]` / `row_avail[f]`: first cycle at which fold f's loads / stream rows can be offered."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    p = plan(cfg, a.shape[0], b.shape[1], a.shape[1])
    model = SystolicModel(cfg, interpreted=interpreted)
    with np.errstate(over="ignore"):
        out = np.zeros((a.shape[0], b.shape[1]), np.int64)
        eng = _FoldEngine(cfg, model, a, b, p, out, load_avail, row_avail)
        sim = Simulator()
        sim.schedule(eng, 0)
        sim.run()
    c = wrap_array(out, cfg.acc_bits, cfg.signed)
    return c, eng.cycles, np.concatenate(eng.stamps), p


def stationary_tile_cycles(cfg: SystolicConfig, m: int, n: int, k: int, *, load_avail=None,
                           row_avail=None) -> int:
    """Tile-level cycles of the same GEMM (no operand values), equal to the cycle level."""
    p = plan(cfg, m, n, k)
    ft = stationary_fold_times(cfg.rows, cfg.cols, [p.rows] * p.folds,
                               double_buffer=cfg.double_buffer, load_avail=load_avail,
                               row_avail=row_avail)
    return ft.cycles


def check(cfg, a, b) -> bool:
    c, *_ = run_stationary_gemm(cfg, a, b)
    return bool(np.array_equal(c, reference(cfg, a, b)))


class StationaryCycleBackend:
    """Cycle-level backend of `sim.timing.TileEngine` for the WS/IS array: one `run_folds` per fold.

    `stream(t, now, ready, out_free)` offers fold t's stream beats from max(ready of its streamed
    block, out_free = its output space) and the stationary loads not yet taken: fold t's (from its
    block's ready cycle) and, with double buffering, fold t+1's (from `ready[2]`, looked ahead);
    the run stops right after fold t's last beat (loads not taken carry over to the next call).
    Releases come from what the model did: the streamed block at the fold's last beat, a stationary
    block at the cycle its last row was loaded (`load_stamps`). `drain` empties the pipeline.
    With a and b None the operands are zeros (timing only). Interface of `OsCycleBackend`.
    """

    out_tile = 0

    def __init__(self, cfg: SystolicConfig, m: int, n: int, k: int, a: np.ndarray | None = None,
                 b: np.ndarray | None = None, *, interpreted: bool | None = None):
        if cfg.dataflow not in ("ws", "is"):
            raise ValueError(f"dataflow must be 'ws' or 'is' here, not {cfg.dataflow!r}")
        self.cfg = cfg
        self.p = plan(cfg, m, n, k)
        self.model = SystolicModel(cfg, interpreted=interpreted)
        self.stat, self.strm = (1, 0) if cfg.dataflow == "ws" else (0, 1)
        self.ahead = (self.stat,) if cfg.double_buffer else ()
        self.values = a is not None
        self.a, self.b = a, b
        R, C = cfg.rows, cfg.cols
        self.m, self.n = m, n
        self.out = None
        if self.values:
            self._acc = np.zeros((m, n), np.int64)
        else:
            self._zw = np.zeros((R, C), np.int64)
            self._zx = np.zeros((self.p.rows, R), np.int64)
        self._lasts = np.zeros(self.p.rows, np.int64)
        self._lasts[-1] = 1
        self.pending = np.zeros((0, C), np.int64)
        self.pending_av = np.zeros(0, np.int64)
        self.offered = 0          # folds whose loads have been offered
        self.loads_taken = 0      # load beats taken so far
        self.rows_done = 0
        self.fold_last_row: list[int] = []
        self.cycle = 0
        self._stamps: list[np.ndarray] = []

    def _operands(self, f: int):
        if not self.values:
            return self._zw, self._zx
        return fold_operands(self.cfg, self.a, self.b, f // self.p.kfolds, f % self.p.kfolds)

    def _offer(self, f: int, avail: int) -> None:
        w, _ = self._operands(f)
        self.pending = np.concatenate([self.pending, w[::-1]])
        self.pending_av = np.concatenate([self.pending_av,
                                          np.full(self.cfg.rows, avail, np.int64)])
        self.offered = f + 1

    def stream(self, t, now, ready, out_free):
        if now != self.cycle:
            raise RuntimeError(f"engine woken at cycle {now} but its clock is at {self.cycle}")
        F, R = self.p.folds, self.cfg.rows
        if self.offered == t:
            self._offer(t, ready[self.stat])
        if self.ahead and t + 1 < F and self.offered == t + 1:
            self._offer(t + 1, ready[2])
        _, x = self._operands(t)
        iav = np.full(self.p.rows, max(ready[self.strm], out_free), np.int64)
        rows, stamps, ran, taken, lst = self.model.run_folds(
            self.pending, x, self._lasts, load_avail=self.pending_av, in_avail=iav, drain=False,
            load_stamps=True)
        self.cycle += ran
        rel = []
        for j in range(taken):
            beat = self.loads_taken + j
            if beat % R == R - 1:
                rel.append((beat // R, self.stat, int(lst[j])))
        self.loads_taken += taken
        self.pending = self.pending[taken:]
        self.pending_av = self.pending_av[taken:]
        rel.append((t, self.strm, self.cycle - 1))
        self._collect(rows, stamps)
        prev_done = -1
        if t:
            if len(self.fold_last_row) < t:
                raise RuntimeError(f"fold {t - 1}'s last result row had not left when fold {t}'s "
                                   f"last beat was taken")
            prev_done = self.fold_last_row[t - 1]
        return rel, prev_done, self.cycle

    def drain(self, now, out_free):
        if now != self.cycle:
            raise RuntimeError(f"engine woken at cycle {now} but its clock is at {self.cycle}")
        if len(self.pending):
            raise RuntimeError(f"{len(self.pending)} load beats were never taken")
        C, R = self.cfg.cols, self.cfg.rows
        rows, stamps, ran = self.model.run_folds(np.zeros((0, C), np.int64),
                                                 np.zeros((0, R), np.int64),
                                                 np.zeros(0, np.int64), drain=True)
        self.cycle += ran
        self._collect(rows, stamps)
        if len(self.fold_last_row) != self.p.folds:
            raise RuntimeError(f"{len(self.fold_last_row)} of {self.p.folds} folds delivered")
        if self.values:
            self.out = wrap_array(self._acc, self.cfg.acc_bits, self.cfg.signed)
        return self.fold_last_row[-1]

    def _collect(self, rows: np.ndarray, stamps: np.ndarray) -> None:
        if not len(rows):
            return
        self._stamps.append(stamps)
        p, C = self.p, self.cfg.cols
        first = self.rows_done
        self.rows_done += len(rows)
        for f in range(first // p.rows, (self.rows_done - 1) // p.rows + 1):
            lo = max(first, f * p.rows)           # global row indices of fold f in this batch
            hi = min(self.rows_done, (f + 1) * p.rows)
            if hi == (f + 1) * p.rows:
                self.fold_last_row.append(int(stamps[hi - 1 - first]))
            if not self.values:
                continue
            o = f // p.kfolds
            part = rows[lo - first:hi - first]
            i0, i1 = lo - f * p.rows, hi - f * p.rows
            if p.dataflow == "ws":
                blk = self._acc[i0:i1, o * C:(o + 1) * C]
                blk += part[:, :blk.shape[1]]
            else:
                blk = self._acc[o * C:(o + 1) * C, i0:i1]
                blk += part[:, :blk.shape[0]].T

    def row_cycles(self) -> np.ndarray:
        return np.concatenate(self._stamps) if self._stamps else np.zeros(0, np.int64)


def fold_numpy(cfg: SystolicConfig, m: int, n: int, k: int, a: np.ndarray,
               b: np.ndarray) -> np.ndarray:
    """C assembled fold by fold from numpy: each fold's partial product (wrapped like the PE
    registers) added into its output block (wrapped like the accumulator buffer). Tile-level
    values: checks that the fold plan covers the GEMM exactly."""
    p = plan(cfg, m, n, k)
    R, C = cfg.rows, cfg.cols
    c = np.zeros((m, n), np.int64)
    covered = np.zeros((m, n), np.int64)
    for f in range(p.folds):
        o, kf = divmod(f, p.kfolds)
        ks = slice(kf * R, (kf + 1) * R)
        if cfg.dataflow == "ws":
            blk = (slice(None), slice(o * C, (o + 1) * C))
        else:
            blk = (slice(o * C, (o + 1) * C), slice(None))
        part = matmul_wrapped(a[blk[0], ks], b[ks, blk[1]], cfg.acc_bits, cfg.signed)
        c[blk] = wrap_array(c[blk] + part, cfg.acc_bits, cfg.signed)
        covered[blk] += min(R, k - kf * R)
    if not (covered == k).all():
        raise RuntimeError("the fold plan does not cover the GEMM exactly once")
    return c
