"""GEMM on a stationary-operand engine (systolic WS/IS, the adder tree): fold plan and cycle backend.

Notes and derivations: docs/internals.md, section `kernels/stationary.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tpesim.numerics import matmul_wrapped, wrap_array
from tpesim.registry import engine_of

__all__ = ["FoldPlan", "plan", "fold_operands", "StationaryCycleBackend",
           "stationary_cycle_backend", "fold_numpy"]


@dataclass(frozen=True)
class FoldPlan:
    """Fold geometry of one GEMM: `folds` = outer * kfolds folds of `rows` stream beats each."""

    beats_are_rows: bool   # a stream beat's result is a row of C (WS), else a column (IS)
    outer: int      # ceil(N/C) for WS, ceil(M/C) for IS
    kfolds: int     # ceil(K/R)
    rows: int       # stream beats per fold: M for WS, N for IS

    @property
    def folds(self) -> int:
        return self.outer * self.kfolds


def plan(cfg, m: int, n: int, k: int) -> FoldPlan:
    R, C = cfg.block_shape
    if cfg.mapping not in _MAPPINGS:
        raise ValueError(f"mapping must be one of {', '.join(map(repr, _MAPPINGS))} here, "
                         f"not {cfg.mapping!r}")
    rows_of_c, outer, beats = _MAPPINGS[cfg.mapping](m, n)
    return FoldPlan(rows_of_c, math.ceil(outer / C), math.ceil(k / R), beats)


# cfg.mapping -> (m, n) -> (beats are rows of C, the dim split over columns, stream beats per fold)
_MAPPINGS = {"ws": lambda m, n: (True, n, m), "is": lambda m, n: (False, m, n)}


def fold_operands(cfg, a: np.ndarray, b: np.ndarray, o: int, kf: int):
    """(stationary tile W[R, C], stream X[rows, R]) of fold (o, kf), zero-padded."""
    R, C = cfg.block_shape
    w = np.zeros((R, C), np.int64)
    if cfg.mapping == "ws":
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

    def __init__(self, cfg, m: int, n: int, k: int, a: np.ndarray | None = None,
                 b: np.ndarray | None = None, *, interpreted: bool | None = None):
        self.cfg = cfg
        self.p = plan(cfg, m, n, k)
        self.R, self.C = R, C = cfg.block_shape
        self.model = engine_of(cfg).load("model")(cfg, interpreted=interpreted)
        # load beats per held block: R for a block loaded row by row, fewer for an engine whose
        # beats carry more than one row (a compressed N:M block: one beat per sparse lane)
        probe = np.asarray(self.model.load_order(np.zeros((R, C), np.int64)))
        self.LB = len(probe)
        self.stat, self.strm = (1, 0) if cfg.mapping == "ws" else (0, 1)
        self.ahead = (self.stat,) if cfg.double_buffer else ()
        self.values = a is not None
        self.a, self.b = a, b
        self.m, self.n = m, n
        self.out = None
        if self.values:
            self._acc = np.zeros((m, n), np.int64)
        else:
            self._zw = np.zeros((R, C), np.int64)
            self._zx = np.zeros((self.p.rows, R), np.int64)
        self._lasts = np.zeros(self.p.rows, np.int64)
        self._lasts[-1] = 1
        self.pending = np.zeros((0,) + probe.shape[1:], np.int64)
        self.pending_av = np.zeros(0, np.int64)
        self.offered = 0          # folds whose loads have been offered
        self.loads_taken = 0      # load beats taken so far
        self.rows_done = 0
        self.fold_last_row: list[int] = []
        self._predicted: dict[int, int] = {}     # fold -> its last row's exit, told while in flight
        self.cycle = 0
        self._stamps: list[np.ndarray] = []

    def _operands(self, f: int):
        if not self.values:
            return self._zw, self._zx
        return fold_operands(self.cfg, self.a, self.b, f // self.p.kfolds, f % self.p.kfolds)

    def _offer(self, f: int, avail: int) -> None:
        w, _ = self._operands(f)
        self.pending = np.concatenate([self.pending, self.model.load_order(w)])
        self.pending_av = np.concatenate([self.pending_av, np.full(self.LB, avail, np.int64)])
        self.offered = f + 1

    def stream(self, t, now, ready, out_free):
        if now != self.cycle:
            raise RuntimeError(f"engine woken at cycle {now} but its clock is at {self.cycle}")
        F, LB = self.p.folds, self.LB
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
            if beat % LB == LB - 1:
                rel.append((beat // LB, self.stat, int(lst[j])))
        self.loads_taken += taken
        self.pending = self.pending[taken:]
        self.pending_av = self.pending_av[taken:]
        rel.append((t, self.strm, self.cycle - 1))
        self._collect(rows, stamps)
        prev_done = -1
        if t:
            if len(self.fold_last_row) >= t:
                prev_done = self.fold_last_row[t - 1]
            else:
                prev_done = self._in_flight_exit(t - 1)
        return rel, prev_done, self.cycle

    def _in_flight_exit(self, f: int) -> int:
        """The cycle fold f's last result row will leave, while it is still in flight (a fold of
        fewer rows than the engine's latency behind a double-buffered or quick reload): the sink is
        never stalled here (output space gates the stream), so the model can say when
        (`flight_exits`); checked when the row actually leaves (`_collect`)."""
        exits = getattr(self.model, "flight_exits", None)
        if exits is None:
            raise RuntimeError(f"fold {f}'s last result row had not left when fold {f + 1}'s "
                               f"last beat was taken")
        k = (f + 1) * self.p.rows - 1 - self.rows_done
        cyc = int(exits()[k])
        self._predicted[f] = cyc
        return cyc

    def drain(self, now, out_free):
        if now != self.cycle:
            raise RuntimeError(f"engine woken at cycle {now} but its clock is at {self.cycle}")
        if len(self.pending):
            raise RuntimeError(f"{len(self.pending)} load beats were never taken")
        C, R = self.C, self.R
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
        p, C = self.p, self.C
        first = self.rows_done
        self.rows_done += len(rows)
        for f in range(first // p.rows, (self.rows_done - 1) // p.rows + 1):
            lo = max(first, f * p.rows)           # global row indices of fold f in this batch
            hi = min(self.rows_done, (f + 1) * p.rows)
            if hi == (f + 1) * p.rows:
                self.fold_last_row.append(int(stamps[hi - 1 - first]))
                if self._predicted.pop(f, self.fold_last_row[-1]) != self.fold_last_row[-1]:
                    raise RuntimeError(f"fold {f}'s last result row left in cycle "
                                       f"{self.fold_last_row[-1]}, not when flight_exits said")
            if not self.values:
                continue
            o = f // p.kfolds
            part = rows[lo - first:hi - first]
            i0, i1 = lo - f * p.rows, hi - f * p.rows
            if p.beats_are_rows:
                blk = self._acc[i0:i1, o * C:(o + 1) * C]
                blk += part[:, :blk.shape[1]]
            else:
                blk = self._acc[o * C:(o + 1) * C, i0:i1]
                blk += part[:, :blk.shape[0]].T

    def row_cycles(self) -> np.ndarray:
        return np.concatenate(self._stamps) if self._stamps else np.zeros(0, np.int64)

    @staticmethod
    def tile_values(cfg, stream, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Tile-level values: C fold by fold from numpy, following the fold plan."""
        c = fold_numpy(cfg, a.shape[0], b.shape[1], a.shape[1], a, b)
        if stream.ntiles != plan(cfg, a.shape[0], b.shape[1], a.shape[1]).folds:
            raise RuntimeError("the tile stream and the fold plan disagree")
        return c


def stationary_cycle_backend(cfg) -> type:
    """Registry face `cycle_backend` of stationary engines: one `run_folds` per fold."""
    return StationaryCycleBackend


def fold_numpy(cfg, m: int, n: int, k: int, a: np.ndarray,
               b: np.ndarray) -> np.ndarray:
    """C assembled fold by fold from numpy: each fold's partial product (wrapped like the PE
    registers) added into its output block (wrapped like the accumulator buffer). Tile-level
    values: checks that the fold plan covers the GEMM exactly."""
    p = plan(cfg, m, n, k)
    R, C = cfg.block_shape
    c = np.zeros((m, n), np.int64)
    covered = np.zeros((m, n), np.int64)
    for f in range(p.folds):
        o, kf = divmod(f, p.kfolds)
        ks = slice(kf * R, (kf + 1) * R)
        if cfg.mapping == "ws":
            blk = (slice(None), slice(o * C, (o + 1) * C))
        else:
            blk = (slice(o * C, (o + 1) * C), slice(None))
        part = matmul_wrapped(a[blk[0], ks], b[ks, blk[1]], cfg.acc_bits, cfg.signed)
        c[blk] = wrap_array(c[blk] + part, cfg.acc_bits, cfg.signed)
        covered[blk] += min(R, k - kf * R)
    if not (covered == k).all():
        raise RuntimeError("the fold plan does not cover the GEMM exactly once")
    return c
