"""Tile-level timing of the stationary-operand (WS/IS) array: one step per fold, no per-PE work.

The recurrences below follow the control of sim/engines/_stationary_core.py (and rtl/systolic.py)
fold by fold, for a sink that is always ready and sources that offer fold f's R load beats from
cycle `load_avail[f]` and its M_f stream beats from cycle `row_avail[f]`, one beat per cycle, in
order. Notation (all cycle indices; an event "at c" happens at the clock edge ending cycle c):

  W_f  last load beat of fold f          L_f  last stream beat (the token launch)
  E_f  = L_f + R + C - 1: the token is at PE(R-1, C-1); tok_flight clears at the end of E_f
  a row accepted at c leaves at c + R + C; the run ends after L_last + R + C + 1 cycles.

Single buffer: fold f's loads start when the previous token has left (E_{f-1} + 1); act_valid is set
by the R-th load (W_f), so the stream starts at W_f + 1.

Double buffer: the shadow chain loads fold f+1 while fold f computes. Fold f+1 becomes active
  * by the token's swap if its shadow was full during L_f (W_{f+1} <= L_f - 1): its stream may
    start at L_f + 1, and the chain stays frozen until E_f, so fold f+2 loads from E_f + 1;
  * otherwise by a global copy at G = max(W_{f+1}, E_f) + 1 (shadow full and no token in flight),
    its stream from G + 1 and fold f+2's loads from G + 1.
The last beat of a fold waits for the previous token to leave: L_f >= E_{f-1} + 1.
Each fold's M_f stream beats are consecutive otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FoldTimes", "stationary_fold_times"]


@dataclass(frozen=True)
class FoldTimes:
    load_last: np.ndarray   # W_f
    first: np.ndarray       # cycle of fold f's first stream beat
    last: np.ndarray        # L_f
    cycles: int             # total, reset to the last result row inclusive


def stationary_fold_times(R: int, C: int, rows_per_fold, *, double_buffer: bool,
                          load_avail=None, row_avail=None) -> FoldTimes:
    m = [int(x) for x in rows_per_fold]
    F = len(m)
    if F == 0:
        return FoldTimes(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
    la = [0] * F if load_avail is None else [int(x) for x in load_avail]
    ra = [0] * F if row_avail is None else [int(x) for x in row_avail]
    W = [0] * F
    S = [0] * F
    Lf = [0] * F
    span = R + C - 1
    if not double_buffer:
        free = 0
        for f in range(F):
            W[f] = max(free, la[f]) + R - 1
            S[f] = max(W[f] + 1, ra[f])
            Lf[f] = S[f] + m[f] - 1
            free = Lf[f] + span + 1
    else:
        W[0] = la[0] + R - 1
        start = W[0] + 2          # global copy at W_0 + 1, stream from the next cycle
        chain_free = start        # fold 1 loads after the copy
        prev_end = -1             # E_{f-1} + 1: earliest last beat (no token in flight)
        for f in range(F):
            if f + 1 < F:
                W[f + 1] = max(chain_free, la[f + 1]) + R - 1
            S[f] = max(start, ra[f])
            Lf[f] = max(S[f] + m[f] - 1, prev_end)
            e = Lf[f] + span
            prev_end = e + 1
            if f + 1 < F:
                if W[f + 1] <= Lf[f] - 1:      # swap by the token
                    start = Lf[f] + 1
                    chain_free = e + 1
                else:                          # global copy once loaded and the token has left
                    g = max(W[f + 1], e) + 1
                    start = g + 1
                    chain_free = g + 1
    cycles = Lf[-1] + R + C + 1
    # a one-row fold's only beat is its last beat, which may wait for the previous token
    first = [S[f] if m[f] > 1 else Lf[f] for f in range(F)]
    return FoldTimes(np.array(W, np.int64), np.array(first, np.int64), np.array(Lf, np.int64), cycles)
