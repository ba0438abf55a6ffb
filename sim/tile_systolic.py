"""Tile-level timing of the systolic engine: OS (closed form per tile) and WS/IS (fold recurrence,
sim/tile_stationary.py), registered per dataflow inside this engine.

Notes and derivations: docs/internals.md, section `sim/tile_systolic.py`.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError, TpesimError
from .tile_stationary import FoldTimer, fold_row_cycles, ideal_fold_times
from .tile_stream import (EngineTiming, OperandBlocks, OsTileRecurrence, TileStream, os_ideal,
                          packed_bytes)

__all__ = ["OsTiming", "WsTiming", "IsTiming", "OsTileBackend", "StationaryTileBackend", "TIMINGS",
           "register_timing", "timing_class", "make_timing", "systolic_timing"]


class OsTileBackend(OsTileRecurrence):
    """The OS engine's per-tile timing rule: the shared OS recurrence with one beat per cycle and
    the first result row R + C cycles after a tile's last beat."""

    def __init__(self, rows: int, cols: int, beats: np.ndarray, record_rows: bool = False):
        super().__init__(beats, rows=rows, period=1, latency=rows + cols, record_rows=record_rows)


class OsTiming(EngineTiming):
    """Output-stationary: one output tile (R x C) per tile, K beats each, tiles row-block-major."""

    dataflow = "os"

    def __init__(self, rows: int, cols: int, **kw):
        super().__init__(rows, cols, **kw)
        if self.double_buffer:
            raise ConfigError("double_buffer must be False for dataflow 'os' (it double-buffers "
                              "the stationary operand of 'ws'/'is'; OS already has a shadow result "
                              "bank), not True")

    def gemm_stream(self, m: int, n: int, k: int) -> TileStream:
        self._check_shape(m, n, k)
        R, C = self.rows, self.cols
        gm, gn = -(-m // R), -(-n // C)
        t = np.arange(gm * gn, dtype=np.int64)
        mi, ni = t // gn, t % gn
        rows_m = np.minimum(R, m - mi * R)
        cols_n = np.minimum(C, n - ni * C)
        kk = np.full_like(t, k)
        w, acc = self.in_bits, self.acc_bits
        a = OperandBlocks("a", mi, packed_bytes(rows_m * k, w), w, rows_m, kk)
        b = OperandBlocks("b", ni, packed_bytes(cols_n * k, w), w, kk, cols_n)
        c = OperandBlocks("c", t, packed_bytes(rows_m * cols_n, acc), acc, rows_m, cols_n)
        return TileStream(beats=kk, inputs=(a, b), output=c, out_rows=R)

    def ideal(self, stream, record_rows=False):
        return os_ideal(stream.beats, rows=self.rows, period=1, latency=self.rows + self.cols,
                        record_rows=record_rows)

    def backend(self, stream, record_rows=False):
        return OsTileBackend(self.rows, self.cols, stream.beats, record_rows)


class StationaryTileBackend:
    """The WS/IS engine's per-fold timing rule (sim/tile_stationary.py's recurrence), one call per
    fold, fed by the memory: fold t's stream beats are offered from max(its streamed block's ready
    cycle, its output space's free cycle) -- the output space gates the stream, not the sink (see
    WsTiming) -- its loads from its stationary block's ready cycle; with double buffering, fold
    t+1's loads overlap fold t's stream, so its stationary block's ready cycle is looked ahead.

    Releases (as (tile, operand, cycle) triples): the streamed block at the fold's last beat L_t,
    the stationary block at its last load beat W_t, reported in the call during which that beat
    happens (W_t <= L_t for a single buffer; for a double buffer W_{t+1} may fall in fold t's call
    or, if fold t+1's loads were late, in fold t+1's).
    """

    out_tile = 0

    def __init__(self, rows: int, cols: int, beats: np.ndarray, double_buffer: bool,
                 stationary: int, streamed: int, record_rows: bool = False):
        self.R, self.C = rows, cols
        self.beats = np.asarray(beats, dtype=np.int64).tolist()
        self.F = len(self.beats)
        self.db = double_buffer
        self.stat, self.strm = stationary, streamed
        self.ahead = (stationary,) if double_buffer else ()
        self.timer = FoldTimer(rows, cols, double_buffer)
        self.loaded = 0           # folds whose stationary release has been reported
        self.L = -1
        self.record = record_rows
        self.S_list: list[int] = []
        self.L_list: list[int] = []

    def stream(self, t, now, ready, out_free):
        ra = ready[self.strm]
        if out_free > ra:
            ra = out_free
        nxt = ready[2] if self.db and t + 1 < self.F else None
        w, wn, s, last = self.timer.step(self.beats[t], ra, ready[self.stat], nxt)
        rel = []
        if self.loaded == t:
            rel.append((t, self.stat, w))
            self.loaded = t + 1
        if wn is not None and wn <= last:
            rel.append((t + 1, self.stat, wn))
            self.loaded = t + 2
        rel.append((t, self.strm, last))
        prev_done = self.L + self.R + self.C if t else -1
        self.L = last
        if self.record:
            self.S_list.append(s)
            self.L_list.append(last)
        return rel, prev_done, last + 1

    def drain(self, now, out_free):
        return self.L + self.R + self.C

    def row_cycles(self) -> np.ndarray:
        return fold_row_cycles(self.R, self.C, np.asarray(self.beats, np.int64),
                               np.asarray(self.S_list, np.int64), np.asarray(self.L_list, np.int64))


class WsTiming(EngineTiming):
    """Weight-stationary on the stationary-operand array (sim/engines/_preload_core.py).

    Fold f = (o, kf), o-major (output block by output block, K-folds consecutive): the PEs hold
    B[kf*R:(kf+1)*R, o*C:(o+1)*C] (loaded row by row, R load beats), the stream carries the M rows
    of A[:, kf*R:(kf+1)*R] (M beats), and the M result rows are partial sums of C[:, o*C:(o+1)*C],
    accumulated outside the array over the K-folds. Operands keep the GEMM's names: a = A (the
    streamed operand: one block per K-slice, resident across folds when K <= R), b = B (the
    stationary one: one block per fold), c = C (one block per output column block, written back
    once, after its last K-fold). A fold is a "tile" in reports.

    Memory policy (both fidelities; see sim/memory.py for the components):

    * Fetches are issued in fold order (for each fold: its new A block, then its new B block), each
      as soon as its SRAM half is free; the streamed block's half is freed after the last fold
      reading it has taken its last beat, the stationary block's once its last row is loaded into
      the array (the shift chain holds it from then on).
    * With double buffering, fold f+1's B block loads into the shadow chain while fold f streams;
      its fetch is always issued by the time fold f starts (it needs only fold f-1's B half, freed
      when fold f-1 finished loading, and the A half of fold f-1, freed as fold f starts), so the
      fold-level recurrence looks its ready cycle up exactly.
    * Output space gates the stream, not the sink: a fold's first beat is not offered before the
      accumulator half of its output block is free (block k-2 written back), so the array's
      global stall never fires. Hardware: the sequencer checks a "bank free" flag before starting
      the first fold of an output block; results then flow out one row per cycle with no
      back-pressure. (Gating the sink instead would freeze the whole array, loads included, mid
      fold; it is not what the fold-level timing models.)
    * The accumulator holds a whole output block (M x C results for WS, C x N for IS) across its
      K-folds, so `sram_kib_c` must hold two such blocks; the block is written back in one piece.
    """

    dataflow = "ws"
    unit = "fold"
    stationary, streamed = 1, 0

    def _dims(self, m, n, k):
        """(streamed beats per fold T, outer dim split over columns)."""
        return m, n

    def blocks(self, m: int, n: int, k: int) -> int:
        return -(-k // self.rows) * -(-self._dims(m, n, k)[1] // self.cols)

    def gemm_stream(self, m: int, n: int, k: int) -> TileStream:
        self._check_shape(m, n, k)
        m, n, k = int(m), int(n), int(k)
        R, C = self.rows, self.cols
        T, outer_dim = self._dims(m, n, k)
        gk, go = -(-k // R), -(-outer_dim // C)
        f = np.arange(go * gk, dtype=np.int64)
        o, kf = f // gk, f % gk
        kr = np.minimum(R, k - kf * R)
        oc = np.minimum(C, outer_dim - o * C)
        tt = np.full_like(f, T)
        w, acc = self.in_bits, self.acc_bits
        if self.dataflow == "ws":
            a = OperandBlocks("a", kf, packed_bytes(tt * kr, w), w, tt, kr)
            b = OperandBlocks("b", f, packed_bytes(kr * oc, w), w, kr, oc)
            c = OperandBlocks("c", o, packed_bytes(tt * oc, acc), acc, tt, oc)
        else:
            a = OperandBlocks("a", f, packed_bytes(oc * kr, w), w, oc, kr)
            b = OperandBlocks("b", kf, packed_bytes(kr * tt, w), w, kr, tt)
            c = OperandBlocks("c", o, packed_bytes(oc * tt, acc), acc, oc, tt)
        return TileStream(beats=tt, inputs=(a, b), output=c, out_rows=T, unit="fold")

    def ideal(self, stream, record_rows=False):
        R, C = self.rows, self.cols
        S, L = ideal_fold_times(R, C, stream.beats, self.double_buffer)
        cycles = int(L[-1]) + R + C + 1
        rows = fold_row_cycles(R, C, stream.beats, S, L) if record_rows else None
        return cycles, rows

    def backend(self, stream, record_rows=False):
        return StationaryTileBackend(self.rows, self.cols, stream.beats, self.double_buffer,
                                     self.stationary, self.streamed, record_rows)


class IsTiming(WsTiming):
    """Input-stationary: the same array and memory policy as WsTiming with A and B swapped.

    Fold f = (o, kf), o-major: the PEs hold A[o*C:(o+1)*C, kf*R:(kf+1)*R]^T, the stream carries
    the N columns of B[kf*R:(kf+1)*R, :] (N beats), and result beat j is the partial column
    C[o*C:(o+1)*C, j]. a = A is the stationary operand (one block per fold), b = B the streamed
    one (one block per K-slice), c = C (one block per output row block).
    """

    dataflow = "is"
    stationary, streamed = 0, 1

    def _dims(self, m, n, k):
        return n, m


TIMINGS: dict[str, type[EngineTiming]] = {}


def register_timing(cls: type[EngineTiming]) -> type[EngineTiming]:
    """Make a dataflow's tile-level timing available to `tile_gemm` (usable as a decorator)."""
    TIMINGS[cls.dataflow] = cls
    return cls


register_timing(OsTiming)
register_timing(WsTiming)
register_timing(IsTiming)


def timing_class(dataflow: str) -> type[EngineTiming]:
    try:
        return TIMINGS[dataflow]
    except (KeyError, TypeError):
        pass
    known = ("os", "ws", "is")
    if dataflow in known:
        raise TpesimError(f"dataflow {dataflow!r} is not supported by tile-level timing in this "
                          f"version (supported: {', '.join(map(repr, TIMINGS))})")
    raise ConfigError(f"dataflow must be one of {', '.join(map(repr, known))}, not {dataflow!r}")


def make_timing(rows: int, cols: int, dataflow: str = "os", in_bits: int = 8,
                acc_bits: int | None = None, double_buffer: bool = False) -> EngineTiming:
    cls = timing_class(dataflow)
    if double_buffer:
        return cls(rows, cols, in_bits=in_bits, acc_bits=acc_bits, double_buffer=True)
    return cls(rows, cols, in_bits=in_bits, acc_bits=acc_bits)


def systolic_timing(cfg) -> EngineTiming:
    """The systolic engine's tile-level timing for its config (registry face `timing`)."""
    return make_timing(cfg.rows, cfg.cols, cfg.dataflow, cfg.in_bits, cfg.acc_bits,
                       cfg.double_buffer)
