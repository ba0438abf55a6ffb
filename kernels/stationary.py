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
from sim.numerics import wrap_array
from sim.tile_stationary import stationary_fold_times

__all__ = ["FoldPlan", "plan", "fold_operands", "run_stationary_gemm", "stationary_tile_cycles"]


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
