"""The free-running call shared by engines that hold a block and stream rows past it (systolic WS/IS,
the adder tree): `run_folds` over the core's `run`, the same contract for every such engine."""

from __future__ import annotations

import numpy as np

from ..errors import WorkloadError

__all__ = ["FoldStreamMixin"]


class FoldStreamMixin:
    """`run_folds` for a model whose `core.run` takes (loads, rows, lasts, out, stamps, load_avail,
    in_avail, ready, max_cycles, drain, load_stamps); the model gives `_fold_geometry()`."""

    def run_folds(self, loads: np.ndarray, rows: np.ndarray, lasts: np.ndarray, *,
                  load_avail: np.ndarray | None = None, in_avail: np.ndarray | None = None,
                  ready: np.ndarray | None = None, max_cycles: int = 1 << 62,
                  drain: bool = True, load_stamps: bool = False):
        """Stream load beats (rows of stationary tiles, C lanes, each tile's row R-1 first) and
        stream beats (R lanes, `lasts` marking each fold's last row) until every result row is out.
        Returns (output rows, their cycles, cycles run), plus the number of load beats taken
        when `drain` is False (then the run stops after the last stream beat; offer the untaken
        loads again in the next call). `load_avail`/`in_avail` give, per beat, the first cycle at
        which it can be offered (memory availability); `ready` is a per-cycle sink schedule.
        With `load_stamps`, the cycle in which each load beat taken was taken is appended to the
        returned tuple (an int64 array)."""
        load_lanes, row_lanes, in_flight = self._fold_geometry()
        loads = np.ascontiguousarray(np.asarray(loads, dtype=np.int64).reshape(-1, load_lanes))
        rows = np.ascontiguousarray(np.asarray(rows, dtype=np.int64).reshape(-1, row_lanes))
        lasts = np.ascontiguousarray(lasts, dtype=np.int64)
        n = rows.shape[0]
        # rows still in the pipeline from an earlier (non-draining) call also leave during this one
        cap = n + in_flight
        out_c = np.zeros((cap, self.cfg.cols), np.int64)
        stamp = np.zeros(cap, np.int64)
        empty = np.zeros(0, np.uint8)

        def sched(x):
            return empty if x is None else np.ascontiguousarray(x, dtype=np.uint8)

        def avail(x):
            return np.zeros(0, np.int64) if x is None else np.ascontiguousarray(x, dtype=np.int64)

        lstamp = np.zeros(loads.shape[0] if load_stamps else 0, np.int64)
        li, bi, nout, cycles = self.core.run(loads, rows, lasts, out_c, stamp, avail(load_avail),
                                             avail(in_avail), sched(ready), max_cycles,
                                             1 if drain else 0, lstamp)
        extra = (lstamp[:li],) if load_stamps else ()
        if not drain and bi == n:
            return (out_c[:nout], stamp[:nout], int(cycles), int(li), *extra)
        if bi != n or li != loads.shape[0]:
            raise WorkloadError(f"the run stopped after {cycles} cycles with {li} of {loads.shape[0]} "
                                f"load beats and {bi} of {n} stream beats taken (max_cycles "
                                f"{max_cycles}, or the load/stream order cannot make progress)")
        return (out_c[:nout], stamp[:nout], int(cycles), *extra)
