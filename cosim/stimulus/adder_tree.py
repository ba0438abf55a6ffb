"""Cosim stimulus of the adder-tree engine: weight blocks W[L,N] (row 0 loaded first) and M A rows
each, full-range values; the first block carries the OPT2 overflow corner (all most-negative)."""

from __future__ import annotations

import numpy as np

from tpesim.engines.adder_tree import AdderTreeConfig, AdderTreeModel

from . import Case, full_range, lane_values

__all__ = ["make_case"]


def make_case(cfg: AdderTreeConfig, rng: np.random.Generator, blocks: int, max_rows: int) -> Case:
    lo, hi = cfg.in_range
    w = cfg.in_bits
    loads, rows, expected = [], [], []
    for f in range(blocks):
        m = int(rng.integers(1, max_rows + 1))
        x = full_range(rng, (m, cfg.lanes), w, cfg.signed)
        wt = full_range(rng, (cfg.lanes, cfg.cols), w, cfg.signed)
        if f == 0:
            # the published OPT2 tree overflows exactly here: a column of most-negative weights
            # against a row of most-negative activations (every EN-T digit -2 at the top weight)
            wt[:, 0] = lo
            x[0, :] = lo
            x[-1, -1] = hi
        for row in AdderTreeModel.load_order(wt):   # the order the model's banks take
            loads.append({"load_data": lane_values(row, w)})
        for r in range(m):
            rows.append({"in_data": lane_values(x[r, :], w), "in_last": int(r == m - 1)})
        # exact int64 products: the engine's result_bits hold every row's true sum (never wraps)
        expected.append(x @ wt)
    bound = cfg.latency + cfg.drain_cycles + cfg.lanes + 8
    return Case(beats={"load": loads, "in": rows}, expected=expected, latency_bound=bound)


def default_max_rows(cfg: AdderTreeConfig) -> int:
    """Default bound of a block's M: long enough for double-buffered loads to overlap rows."""
    return 2 * cfg.lanes + cfg.cols
