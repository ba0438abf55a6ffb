"""Tile-level timing of the multiplier-adder-tree engine: one step per fold, no per-cycle work.

Notes and derivations: docs/internals.md, section `sim/tile_adder_tree.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engines.adder_tree import AdderTreeConfig
from .tile_systolic import WsTiming

__all__ = ["AdderTreeTiming", "adder_tree_timing", "AdderTreeFoldTimer", "AdderTreeTileBackend",
           "AdderTreeFoldTimes",
           "adder_tree_fold_times", "ideal_fold_times", "fold_row_cycles", "ideal_cycles"]

_NEVER = -(1 << 60)


@dataclass(frozen=True)
class AdderTreeFoldTimes:
    load_last: np.ndarray   # W_f
    first: np.ndarray       # S_f
    last: np.ndarray        # X_f
    cycles: int             # reset to the last result row, inclusive


class AdderTreeFoldTimer:
    """The recurrence above, one fold per `step` call (availability known fold by fold)."""

    __slots__ = ("L", "D", "WL", "db", "f", "x1", "x2", "w", "w_next")

    def __init__(self, cfg: AdderTreeConfig):
        self.L = int(cfg.lanes)
        self.D = int(cfg.drain_cycles)
        # cycles from a load beat taken to its lane written (a register on the load path): a
        # fold's first row waits until W_f + 1 + WL (0 for the adder tree itself)
        self.WL = int(cfg.load_latency)
        self.db = bool(cfg.double_buffer)
        self.f = 0
        self.x1 = _NEVER          # X_{f-1}
        self.x2 = _NEVER          # X_{f-2}
        self.w = -1               # W_{f-1} (two banks: W_f once computed by the previous step)
        self.w_next = None

    def step(self, m: int, row_avail: int, load_avail: int, next_load_avail: int | None
             ) -> tuple[int, int | None, int, int]:
        """Fold f (the next one): `m` rows offered from `row_avail`; its loads from `load_avail`
        (a single bank; two banks: fold 0 only); fold f+1's loads from `next_load_avail` (two
        banks; None when f is the last fold). Returns (W_f, W_{f+1} or None, S_f, X_f)."""
        L, D, WL = self.L, self.D, self.WL
        if not self.db:
            w = max(load_avail, self.x1 + D + 1) + L - 1
            s = max(row_avail, w + 1 + WL)
            x = s + m - 1
            self.x1 = x
            self.w = w
            self.f += 1
            return w, None, s, x
        if self.f == 0:
            w = load_avail + L - 1
        else:
            w = self.w_next
        s = max(row_avail, w + 1 + WL, self.x1 + 1)
        x = s + m - 1
        wn = None
        if next_load_avail is not None:
            wn = max(next_load_avail, w + 1, self.x1 + D + 1) + L - 1
        self.x2, self.x1 = self.x1, x
        self.w = w
        self.w_next = wn
        self.f += 1
        return w, wn, s, x


def adder_tree_fold_times(cfg: AdderTreeConfig, rows_per_fold, *, load_avail=None,
                          row_avail=None) -> AdderTreeFoldTimes:
    """(W_f, S_f, X_f) of every fold and the run's cycles, for per-fold availabilities."""
    m = [int(x) for x in rows_per_fold]
    F = len(m)
    if F == 0:
        z = np.zeros(0, np.int64)
        return AdderTreeFoldTimes(z, z, z, 0)
    la = [0] * F if load_avail is None else [int(x) for x in load_avail]
    ra = [0] * F if row_avail is None else [int(x) for x in row_avail]
    timer = AdderTreeFoldTimer(cfg)
    W, S, X = [0] * F, [0] * F, [0] * F
    for f in range(F):
        nxt = la[f + 1] if f + 1 < F else None
        W[f], _, S[f], X[f] = timer.step(m[f], ra[f], la[f], nxt)
    return AdderTreeFoldTimes(np.array(W, np.int64), np.array(S, np.int64), np.array(X, np.int64),
                              X[-1] + cfg.latency + 1)


def ideal_fold_times(cfg: AdderTreeConfig, rows_per_fold, folds: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Stall-free (S_f, X_f) of every fold, as int64 arrays: `rows_per_fold` rows per fold (an int,
    with `folds` folds, or one count per fold). Uniform folds in closed form (module docstring);
    otherwise the recurrence, O(1) per fold."""
    if np.ndim(rows_per_fold) == 0:
        M = int(rows_per_fold)
        F = int(folds if folds is not None else 1)
        f = np.arange(F, dtype=np.int64)
        L, D, WL = cfg.lanes, cfg.drain_cycles, cfg.load_latency
        if not cfg.double_buffer:
            S = L + WL + f * (L + M + D + WL)
        elif WL:
            ft = adder_tree_fold_times(cfg, [M] * F)      # the recurrence, O(1) per fold
            return ft.first, ft.last
        else:
            lam2 = max(2 * L, 2 * M, L + M + D)           # two folds
            timer = AdderTreeFoldTimer(cfg)
            head = [timer.step(M, 0, 0, 0)[2] for _ in range(min(F, 4))]
            S = np.empty(F, np.int64)
            S[:len(head)] = head
            if F > 4:
                g = f[4:]
                S[4:] = np.asarray(head, np.int64)[2 + g % 2] + (g - 2 - g % 2) // 2 * lam2
        return S, S + M - 1
    beats = np.asarray(rows_per_fold, dtype=np.int64)
    if folds is not None and int(folds) != len(beats):
        raise ValueError(f"folds ({folds}) must equal len(rows_per_fold) ({len(beats)})")
    if len(beats) and (beats == beats[0]).all():
        return ideal_fold_times(cfg, int(beats[0]), len(beats))
    ft = adder_tree_fold_times(cfg, beats)
    return ft.first, ft.last


def ideal_cycles(cfg: AdderTreeConfig, rows_per_fold, folds: int | None = None,
                 record_rows: bool = False) -> tuple[int, np.ndarray | None]:
    """Stall-free cycles of the whole run (and, if asked, each result row's cycle)."""
    S, X = ideal_fold_times(cfg, rows_per_fold, folds)
    if len(X) == 0:
        return 0, (np.zeros(0, np.int64) if record_rows else None)
    beats = (X - S + 1)
    rows = fold_row_cycles(cfg, beats, S) if record_rows else None
    return int(X[-1]) + cfg.latency + 1, rows


def fold_row_cycles(cfg: AdderTreeConfig, beats: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Cycle in which each result row leaves, in stream order: row i of fold f at S_f + i + lat."""
    beats = np.asarray(beats, dtype=np.int64)
    S = np.asarray(S, dtype=np.int64)
    if len(beats) == 0:
        return np.zeros(0, np.int64)
    if (beats == beats[0]).all():
        return ((S + cfg.latency)[:, None] + np.arange(int(beats[0]), dtype=np.int64)).reshape(-1)
    start = np.repeat(S + cfg.latency - np.concatenate(([0], np.cumsum(beats)[:-1])), beats)
    return start + np.arange(int(beats.sum()), dtype=np.int64)


class AdderTreeTileBackend:
    """The adder-tree engine's per-fold timing rule (the recurrences above), one call per fold, with
    StationaryTileBackend's interface (sim/timing.py): fold t's rows are offered from
    max(ready[streamed], out_free) -- the output space gates the stream, not the sink -- its loads
    from ready[stationary]; with two banks, fold t+1's loads overlap fold t's rows, so its weight
    block's ready cycle is looked ahead (`ready[2]`).

    Releases, as (tile, operand, cycle) triples: the streamed block (A, operand 0) at the fold's last
    row X_t, the weight block (B, operand 1) at its last load beat W_t, reported in the call during
    which that beat happens (calls end with X_t: a single bank has W_t < S_t; with two banks
    W_{t+1} falls in fold t's call when W_{t+1} <= X_t, else in fold t+1's).
    """

    out_tile = 0
    stationary, streamed = 1, 0

    def __init__(self, cfg: AdderTreeConfig, beats: np.ndarray, record_rows: bool = False):
        self.cfg = cfg
        self.lat = cfg.latency
        self.beats = np.asarray(beats, dtype=np.int64).tolist()
        self.F = len(self.beats)
        self.db = cfg.double_buffer
        self.ahead = (self.stationary,) if self.db else ()
        self.timer = AdderTreeFoldTimer(cfg)
        self.loaded = 0           # folds whose weight-block release has been reported
        self.X = -1
        self.record = record_rows
        self.S_list: list[int] = []
        self.W_list: list[int] = []

    def stream(self, t, now, ready, out_free):
        ra = ready[self.streamed]
        if out_free > ra:
            ra = out_free
        nxt = ready[2] if self.db and t + 1 < self.F else None
        w, wn, s, x = self.timer.step(self.beats[t], ra, ready[self.stationary], nxt)
        rel = []
        if self.loaded == t:
            rel.append((t, self.stationary, w))
            self.loaded = t + 1
        if wn is not None and wn <= x:
            rel.append((t + 1, self.stationary, wn))
            self.loaded = t + 2
        rel.append((t, self.streamed, x))
        prev_done = self.X + self.lat if t else -1
        self.X = x
        if self.record:
            self.S_list.append(s)
            self.W_list.append(w)
        return rel, prev_done, x + 1

    def drain(self, now, out_free):
        return self.X + self.lat

    def row_cycles(self) -> np.ndarray:
        """Each result row's cycle, in stream order (needs record_rows)."""
        n = len(self.S_list)
        return fold_row_cycles(self.cfg, np.asarray(self.beats[:n], np.int64),
                               np.asarray(self.S_list, np.int64))

    def load_cycles(self) -> np.ndarray:
        """Each load beat's cycle, in load order (needs record_rows): W_f - L + 1 .. W_f."""
        L = self.cfg.lanes
        W = np.asarray(self.W_list, np.int64)
        return ((W - L + 1)[:, None] + np.arange(L, dtype=np.int64)).reshape(-1)


class AdderTreeTiming(WsTiming):
    """The adder tree's tile-level timing (registry face `timing`): WsTiming's GEMM mapping (fold =
    one lanes x cols block of B held, the M rows of A's K-slice streamed, output blocks accumulated
    over K-folds) with this engine's fold recurrence and stall-free closed form."""

    def __init__(self, cfg: AdderTreeConfig):
        super().__init__(cfg.lanes, cfg.cols, in_bits=cfg.in_bits, acc_bits=cfg.acc_bits,
                         double_buffer=cfg.double_buffer)
        self.cfg = cfg

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.cfg.peak_macs_per_cycle

    def ideal(self, stream, record_rows=False):
        return ideal_cycles(self.cfg, stream.beats, record_rows=record_rows)

    def backend(self, stream, record_rows=False):
        return AdderTreeTileBackend(self.cfg, stream.beats, record_rows)


def adder_tree_timing(cfg: AdderTreeConfig) -> AdderTreeTiming:
    return AdderTreeTiming(cfg)
