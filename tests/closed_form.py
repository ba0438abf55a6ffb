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
