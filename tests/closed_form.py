"""Closed-form timing of the OS systolic engine, derived from its micro-architecture, not its code.

Source always valid, sink always ready, from reset, tiles of K_t beats: L_0 = K_0 - 1 is the cycle
in which tile 0's last beat is accepted; L_{t+1} = max(L_t + K_{t+1}, L_t + 2R + C) (the next
`last` waits until the wavefront has drained and the shadow bank has emptied). Row r of tile t
leaves in cycle L_t + R + C + r; the engine is idle after cycle L_{T-1} + 2R + C - 1.
"""

from __future__ import annotations


def last_beat_cycles(rows: int, cols: int, ks: list[int]) -> list[int]:
    ls = [ks[0] - 1]
    for k in ks[1:]:
        ls.append(max(ls[-1] + k, ls[-1] + 2 * rows + cols))
    return ls


def row_cycles(rows: int, cols: int, ks: list[int]) -> list[int]:
    """Cycle in which each result row leaves, in output order (R rows per tile)."""
    return [l_t + rows + cols + r for l_t in last_beat_cycles(rows, cols, ks) for r in range(rows)]


def total_cycles(rows: int, cols: int, ks: list[int]) -> int:
    return last_beat_cycles(rows, cols, ks)[-1] + 2 * rows + cols


# -------------------------------------------------------------------------------------------------
# WS/IS (the stationary-operand array), F folds of T stream beats each, ideal sources and sink
# -------------------------------------------------------------------------------------------------
def stationary_beats(rows: int, cols: int, t: int, folds: int, double_buffer: bool
                     ) -> tuple[list[int], list[int]]:
    """(S_f, L_f): cycles of each fold's first and last stream beat, from the micro-architecture.

    A row accepted at cycle c leaves at c + R + C; the token launched with a fold's last row is
    past PE(R-1, C-1) after R + C - 1 more cycles; the load chain takes one row per cycle.

    Single buffer: R loads, then T beats (the R-th load sets act_valid), then the next fold's
    loads wait R + C - 1 cycles for the token to leave: L_0 = R + T - 1, L_f = L_{f-1} + 2R+C+T-1.

    Double buffer: fold 0's R loads, one cycle for the global copy into the active registers,
    S_0 = R + 1, L_0 = R + T. Fold 1 loads into the shadow chain from cycle R + 1 (full after
    cycle 2R). Then, by regime:
      * T >= 2R + C: the shadow is always full before the token launches, every token swaps it in
        and the next fold streams right behind: L_f = L_{f-1} + T.
      * R < T < 2R + C: fold 1 is swapped in (S_1 = L_0 + 1) but its last beat waits for fold 0's
        token (L_1 = L_0 + max(T, R + C)); fold 2's loads could only start when that token left,
        so fold 2 comes by a global copy after fold 1's token has left (S_2 = L_1 + R + C + 1,
        L_2 = L_1 + R + C + T), which leaves the chain free early enough for fold 3 to be swapped
        in again: the two cases alternate (odd folds like fold 1, even folds like fold 2).
      * T <= R: the shadow is never full when a token launches: every fold after the first comes
        by a global copy once the previous token has left: S_f = L_{f-1} + R + C + 1,
        L_f = L_{f-1} + R + C + T.
    """
    R, C, T = rows, cols, t
    S, L = [], []
    for f in range(folds):
        if not double_buffer:
            s = f * (2 * R + C + T - 1) + R
            S.append(s)
            L.append(s + T - 1)
            continue
        if f == 0:
            S.append(R + 1)
            L.append(R + T)
        elif T >= 2 * R + C or (R < T and f % 2 == 1):
            S.append(L[-1] + 1)
            L.append(L[-1] + max(T, R + C))
        else:
            S.append(L[-1] + R + C + 1)
            L.append(L[-1] + R + C + T)
    return S, L


def stationary_row_cycles(rows: int, cols: int, t: int, folds: int,
                          double_buffer: bool) -> list[int]:
    """Cycle each result row leaves, in order (T per fold): beats 0..T-2 of a fold are
    consecutive from S_f, its last beat is L_f; each row leaves R + C cycles after its beat."""
    S, L = stationary_beats(rows, cols, t, folds, double_buffer)
    out = []
    for s, last in zip(S, L):
        out += [s + rows + cols + i for i in range(t - 1)] + [last + rows + cols]
    return out


def stationary_total_cycles(rows: int, cols: int, t: int, folds: int,
                            double_buffer: bool) -> int:
    """Reset to the last result row inclusive."""
    return stationary_beats(rows, cols, t, folds, double_buffer)[1][-1] + rows + cols + 1
