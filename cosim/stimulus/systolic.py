"""Cosim stimulus of the systolic engine: OS tiles (A[R,K], B[K,C]) or WS/IS folds (X[M,R], W[R,C]),
full-range values with the extreme products in the first block."""

from __future__ import annotations

import numpy as np

from tpesim.engines.systolic import PreloadModel, SystolicConfig, reference

from . import Case, full_range, lane_values

__all__ = ["make_case"]


def make_case(cfg: SystolicConfig, rng: np.random.Generator, blocks: int, max_rows: int) -> Case:
    """`blocks` tiles (OS: random K in 1..max_rows) or folds (WS/IS: random M in 1..max_rows)."""
    lo, hi = cfg.in_range
    w = cfg.in_bits
    beats: dict[str, list[dict[str, int]]] = {}
    expected = []
    if cfg.dataflow == "os":
        ins = []
        for t in range(blocks):
            k = int(rng.integers(1, max_rows + 1))
            a = full_range(rng, (cfg.rows, k), w, cfg.signed)
            b = full_range(rng, (k, cfg.cols), w, cfg.signed)
            if t == 0:
                a[0, 0], b[0, 0] = lo, lo
                a[-1, -1], b[-1, -1] = hi, lo
            for kk in range(k):
                ins.append({"in_a": lane_values(a[:, kk], w), "in_b": lane_values(b[kk, :], w),
                            "in_last": int(kk == k - 1)})
            expected.append(reference(cfg, a, b))
        beats["in"] = ins
        bound = 3 * cfg.rows + 2 * cfg.cols + 8
    else:
        loads, rows = [], []
        for f in range(blocks):
            m = int(rng.integers(1, max_rows + 1))
            x = full_range(rng, (m, cfg.rows), w, cfg.signed)
            wt = full_range(rng, (cfg.rows, cfg.cols), w, cfg.signed)
            if f == 0:
                x[0, 0], wt[0, 0] = lo, lo
                x[-1, -1], wt[-1, -1] = hi, lo
            for row in PreloadModel.load_order(wt):  # the order the model's load chain takes
                loads.append({"load_data": lane_values(row, w)})
            for r in range(m):
                rows.append({"in_data": lane_values(x[r, :], w), "in_last": int(r == m - 1)})
            expected.append(reference(cfg, x, wt))
        beats["load"], beats["in"] = loads, rows
        bound = 2 * (cfg.rows + cfg.cols) + 8
    return Case(beats=beats, expected=expected, latency_bound=bound)


def default_max_rows(cfg: SystolicConfig) -> int:
    """Default bound of a block's K (OS) or M (WS/IS): long enough to overlap blocks."""
    return 2 * (cfg.rows + cfg.cols)
