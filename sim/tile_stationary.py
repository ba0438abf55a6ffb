"""Tile-level timing of the preload (WS/IS) array: one step per fold, no per-PE work.

Notes and derivations: docs/internals.md, section `sim/tile_stationary.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FoldTimes", "FoldTimer", "stationary_fold_times", "ideal_fold_times",
           "fold_row_cycles"]


@dataclass(frozen=True)
class FoldTimes:
    load_last: np.ndarray   # W_f
    first: np.ndarray       # cycle of fold f's first stream beat
    last: np.ndarray        # L_f
    cycles: int             # total, reset to the last result row inclusive


class FoldTimer:
    """The recurrence above, one fold per `step` call (availability known fold by fold)."""

    __slots__ = ("R", "C", "db", "span", "f", "free", "start", "chain_free", "prev_end", "w_next")

    def __init__(self, R: int, C: int, double_buffer: bool):  # noqa: N803
        self.R, self.C, self.db = int(R), int(C), bool(double_buffer)
        self.span = self.R + self.C - 1
        self.f = 0
        self.free = 0             # single buffer: E_{f-1} + 1, first cycle fold f may load
        self.start = 0            # double buffer: first cycle fold f may stream
        self.chain_free = 0       # double buffer: first cycle fold f+1 may load
        self.prev_end = -1        # E_{f-1} + 1: earliest last beat
        self.w_next = -1          # double buffer: W_f, computed in the previous step

    def step(self, m: int, row_avail: int, load_avail: int, next_load_avail: int | None
             ) -> tuple[int, int | None, int, int]:
        """Fold f (the next one): `m` stream beats offered from `row_avail`; its loads from
        `load_avail` (used by a single buffer, and by a double buffer for fold 0 only); fold f+1's
        loads from `next_load_avail` (double buffer; None when f is the last fold).
        Returns (W_f, W_{f+1} or None, S_f, L_f)."""
        R = self.R
        if not self.db:
            w = (self.free if self.free > load_avail else load_avail) + R - 1
            s = w + 1 if w + 1 > row_avail else row_avail
            last = s + m - 1
            self.free = last + self.span + 1
            self.f += 1
            return w, None, s, last
        if self.f == 0:
            w = load_avail + R - 1
            self.start = self.chain_free = w + 2  # global copy at W_0 + 1
        else:
            w = self.w_next
        wn = None
        if next_load_avail is not None:
            wn = (self.chain_free if self.chain_free > next_load_avail else next_load_avail) + R - 1
        s = self.start if self.start > row_avail else row_avail
        last = s + m - 1
        if self.prev_end > last:
            last = self.prev_end
        e = last + self.span
        self.prev_end = e + 1
        if wn is not None:
            if wn <= last - 1:         # swap by the token
                self.start = last + 1
                self.chain_free = e + 1
            else:                      # global copy once loaded and the token has left
                g = (wn if wn > e else e) + 1
                self.start = self.chain_free = g + 1
        self.w_next = -1 if wn is None else wn
        self.f += 1
        return w, wn, s, last

    def state(self, last: int) -> tuple:
        """The timer's state relative to L_f (periodicity test of `ideal_fold_times`)."""
        if not self.db:
            return (self.free - last,)
        return (self.start - last, self.chain_free - last, self.prev_end - last,
                self.w_next - last)


def stationary_fold_times(R: int, C: int, rows_per_fold, *, double_buffer: bool,
                          load_avail=None, row_avail=None) -> FoldTimes:
    m = [int(x) for x in rows_per_fold]
    F = len(m)
    if F == 0:
        return FoldTimes(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
    la = [0] * F if load_avail is None else [int(x) for x in load_avail]
    ra = [0] * F if row_avail is None else [int(x) for x in row_avail]
    timer = FoldTimer(R, C, double_buffer)
    W, S, Lf = [0] * F, [0] * F, [0] * F
    for f in range(F):
        nxt = la[f + 1] if f + 1 < F else None
        W[f], _, S[f], Lf[f] = timer.step(m[f], ra[f], la[f], nxt)
    cycles = Lf[-1] + R + C + 1
    # a one-row fold's only beat is its last beat, which may wait for the previous token
    first = [S[f] if m[f] > 1 else Lf[f] for f in range(F)]
    return FoldTimes(np.array(W, np.int64), np.array(first, np.int64), np.array(Lf, np.int64),
                     cycles)


def ideal_fold_times(R: int, C: int, beats: np.ndarray, double_buffer: bool  # noqa: N803
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Stall-free (S_f, L_f) of every fold, as int64 arrays. When every fold has the same number
    of beats, the recurrence becomes periodic within a few folds: period one fold, or two for a
    double buffer with R < M < 2R + C (token swaps and global copies alternate). Once the timer's
    state relative to L_f repeats, the rest is extrapolated."""
    beats = np.asarray(beats, dtype=np.int64)
    F = len(beats)
    S = np.zeros(F, np.int64)
    L = np.zeros(F, np.int64)
    uniform = F > 0 and bool((beats == beats[0]).all())
    timer = FoldTimer(R, C, double_buffer)
    states: list[tuple] = []
    ms = beats.tolist()
    for f in range(F):
        _, _, s, last = timer.step(ms[f], 0, 0, 0 if f + 1 < F else None)
        S[f], L[f] = s, last
        if not uniform or f + 1 >= F:
            continue
        states.append(timer.state(last))
        for p in (1, 2):
            if f - p >= 1 and states[f] == states[f - p]:
                d = int(L[f] - L[f - p])
                j = np.arange(F - f - 1, dtype=np.int64)
                base = f + 1 - p + j % p
                L[f + 1:] = L[base] + d * (j // p + 1)
                S[f + 1:] = S[base] + d * (j // p + 1)
                return S, L
    return S, L


def fold_row_cycles(R: int, C: int, beats: np.ndarray, S: np.ndarray,  # noqa: N803
                    L: np.ndarray) -> np.ndarray:
    """Cycle in which each result row leaves, in stream order: rows 0..m-2 of fold f leave at
    S_f + R + C + i (consecutive beats), its last row at L_f + R + C."""
    beats = np.asarray(beats, dtype=np.int64)
    if len(beats) == 0:
        return np.zeros(0, np.int64)
    if (beats == beats[0]).all():
        m = int(beats[0])
        rows = (S + R + C)[:, None] + np.arange(m, dtype=np.int64)
        rows[:, -1] = L + R + C
        return rows.reshape(-1)
    parts = []
    for m, s, last in zip(beats.tolist(), S.tolist(), L.tolist()):
        r = s + R + C + np.arange(m, dtype=np.int64)
        r[-1] = last + R + C
        parts.append(r)
    return np.concatenate(parts)
