"""Tile-level timing (`fidelity="tile"`): the engine advanced one tile per event, no per-PE work, no
operand values, with cycle counts identical to the register-level cycle model.

Pieces, so that each dataflow plugs in the same way:

* `TileStream` -- a workload as the engine sees it: tiles in stream order, each with its number of
  input beats, the block of every input operand it reads and the block of the output it writes
  (numpy arrays over tiles; no per-tile Python objects).
* `EngineTiming` -- one subclass per dataflow, registered with `register_timing`: maps a GEMM to a
  `TileStream`, gives the stall-free cycle count in closed form (vectorised), and makes a *tile
  backend*: the per-tile timing rule used by the event-driven run.
* `TileEngine` -- the engine as an event-kernel component. Each wake-up streams one tile through a
  backend: the tile backend here, or a cycle-level backend (kernels/gemm.py) that runs the register
  model. The engine asks the memory (sim/memory.py) when the tile's operands are in SRAM and when
  its results may leave, and reports back when the tile was streamed and drained. Both fidelities
  run the same engine and memory components; only the backend differs, which is what makes them
  comparable cycle for cycle, memory stalls included.
* `tile_gemm` (a `TimingReport`) and `tile_gemm_cycles` (an int) are the entry points.

OS timing, derived from the micro-architecture (sim/engines/_systolic_core.py, rtl/systolic.py).
Tile t streams K_t beats; its operands are in SRAM from cycle ready_t; its result rows may leave
from cycle free_t (output space). A beat accepted in cycle x reaches PE(i, j) in cycle
x + 1 + i + j, so tile t's `last` wavefront leaves PE(R-1, C-1) at the end of cycle
L_t + R + C - 1 and the shadow bank is full from cycle L_t + R + C. The sink takes one row per
cycle while it is ready; the bank is empty again the cycle after its last row left. Non-`last`
beats are always taken; a `last` beat only while no wavefront is pending and the bank is empty
(in_ready = !in_last | !(pending | full)). Hence, with L_{-1} = -1:

    s_t      = max(L_{t-1} + 1, ready_t)                       first beat of tile t
    D_{t-1}  = max(L_{t-1} + R + C, free_{t-1})                rows of t-1 leave at D_{t-1} + r
    L_t      = max(s_t + K_t - 1, D_{t-1} + R)                 last beat (t = 0: s_0 + K_0 - 1)
    cycles   = D_{T-1} + R                                     engine idle (the run's cycle count)

With an ideal memory (ready_t = 0, free_t = 0): L_t = L_{t-1} + max(K_t, 2R + C), row r of tile t
leaves at L_t + R + C + r, and cycles = L_{T-1} + 2R + C.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .errors import ConfigError, TpesimError, WorkloadError
from .memory import MemoryConfig, MemorySystem, check_fits, static_traffic
from .tile_stationary import FoldTimer, fold_row_cycles, ideal_fold_times

__all__ = ["TileStream", "OperandBlocks", "EngineTiming", "OsTiming", "WsTiming", "IsTiming",
           "TileBackend", "OsTileBackend", "StationaryTileBackend", "TileEngine", "StreamRun",
           "run_stream", "time_stream", "TimingReport", "systolic_timing", "tile_gemm", "tile_gemm_cycles", "register_timing",
           "timing_class", "TIMINGS", "FIDELITIES", "check_gemm_shape", "default_acc_bits"]

FIDELITIES = ("cycle", "tile")
# Cycle, MAC and byte counts are int64 in the vectorised closed forms: bound the workload so that
# none of them can overflow (a silent wrap would be a wrong answer).
MAX_GEMM_DIM = 2**31 - 1
MAX_GEMM_MACS = 2**52


def check_gemm_shape(m, n, k) -> tuple[int, int, int]:
    """m, n, k as ints, each 1..MAX_GEMM_DIM with m*n*k <= MAX_GEMM_MACS, or a one-line error."""
    for name, v in (("m", m), ("n", n), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise WorkloadError(f"{name} must be an integer, not {v!r}")
        if v < 1:
            raise WorkloadError(f"{name} must be a positive integer, not {v!r}")
        if v > MAX_GEMM_DIM:
            raise WorkloadError(f"{name} must be at most {MAX_GEMM_DIM} (2**31 - 1), not {v!r}")
    macs = int(m) * int(n) * int(k)
    if macs > MAX_GEMM_MACS:
        raise WorkloadError(f"m*n*k must be at most 2**52 (cycle and byte counts stay exact), not "
                            f"{m}*{n}*{k} = {macs:.3e}")
    return int(m), int(n), int(k)


# -------------------------------------------------------------------------------------------------
# Workload as a tile stream
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class OperandBlocks:
    """Which block of one operand every tile reads (inputs) or writes (output).

    `block[t]` identifies tile t's block (consecutive tiles with equal ids share one fetch or one
    write-back); `block_bytes[t]` is that block's size; `tile_bytes[t]` (outputs) what tile t itself
    writes into the output buffer (= block_bytes when each tile owns its block). `block_rows` and
    `block_cols` give the block's shape for messages.
    """

    name: str
    block: np.ndarray
    block_bytes: np.ndarray
    bits: int
    block_rows: np.ndarray
    block_cols: np.ndarray
    tile_bytes: np.ndarray | None = None

    def __post_init__(self):
        if self.tile_bytes is None:
            object.__setattr__(self, "tile_bytes", self.block_bytes)

    def describe(self, t: int) -> str:
        return f"{int(self.block_rows[t])} x {int(self.block_cols[t])} of {self.bits} bits"


@dataclass(frozen=True, eq=False)
class TileStream:
    """Tiles in stream order: beats per tile, input operand blocks, output blocks."""

    beats: np.ndarray
    inputs: tuple[OperandBlocks, ...]
    output: OperandBlocks
    out_rows: int
    unit: str = "tile"        # what one entry is called in messages ("fold" for WS/IS)

    @property
    def ntiles(self) -> int:
        return len(self.beats)


def _packed_bytes(elements: np.ndarray, bits: int) -> np.ndarray:
    return (elements * bits + 7) // 8


def default_acc_bits(in_bits: int) -> int:
    """The engine's default accumulator width (SystolicConfig's rule)."""
    return 32 if in_bits <= 8 else 48


# -------------------------------------------------------------------------------------------------
# Engine timing per dataflow
# -------------------------------------------------------------------------------------------------
class TileBackend(Protocol):
    """How one engine streams tiles (the tile-level closed form, or the cycle model).

    `stream(t, now, ready, out_free)`: the engine is free to take tile t's first beat in cycle
    `now`; `ready[i]` is the cycle from which input operand i's block is in SRAM; the result rows
    of tile t + `out_tile` may leave from cycle `out_free`. Returns (release, prev_done,
    next_wake): the cycle of the tile's last operand read (its SRAM halves are free from
    release + 1; a tuple gives one cycle per input operand; a list gives (tile, operand index,
    cycle) triples, for blocks of any tile whose last read happened during this call, e.g. a
    stationary operand loaded while the previous tile streams), the cycle in which tile t-1's last
    result row left (-1 for t = 0), and the cycle to wake the engine for tile t+1. Every cycle
    reported must be >= now.
    `drain(now, out_free)`: after the last tile, returns the cycle its last result row left.

    Optional attributes (defaults: the OS engine's):

    * `ahead` (tuple of input operand indices, default ()): operands whose block for tile t+1 the
      backend needs while streaming tile t (a double-buffered stationary operand loads the next
      tile's block meanwhile). Their ready cycles follow tile t's in `ready` (0 for the last
      tile). Valid only if those fetches are issued by the time tile t starts; the memory checks
      (a RuntimeError names the tile otherwise).
    * `out_tile` (-1 or 0, default -1): -1 when tile t's call drains tile t-1's rows (OS: a
      result leaves after its tile's last beat), 0 when the backend must know tile t's own
      output space before streaming it (WS/IS: results leave while the tile streams).
    """

    ahead: tuple[int, ...]
    out_tile: int

    def stream(self, t: int, now: int, ready: tuple[int, ...], out_free: int
               ) -> tuple[int, int, int]: ...

    def drain(self, now: int, out_free: int) -> int: ...


class EngineTiming:
    """Timing of one dataflow on an R x C array (subclass per dataflow; see `register_timing`)."""

    dataflow = ""

    def __init__(self, rows: int, cols: int, *, in_bits: int = 8, acc_bits: int | None = None,
                 double_buffer: bool = False):
        for name, v in (("rows", rows), ("cols", cols), ("in_bits", in_bits)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, not {v!r}")
        if not isinstance(double_buffer, bool):
            raise ConfigError(f"double_buffer must be a bool, not {double_buffer!r}")
        self.rows, self.cols, self.in_bits = int(rows), int(cols), int(in_bits)
        self.acc_bits = default_acc_bits(self.in_bits) if acc_bits is None else int(acc_bits)
        self.double_buffer = double_buffer

    @staticmethod
    def _check_shape(m, n, k) -> None:
        check_gemm_shape(m, n, k)

    @property
    def peak_macs_per_cycle(self) -> int:
        """The engine's peak (utilization is MACs / (cycles x this)); an R x C array's by default."""
        return self.rows * self.cols

    def gemm_stream(self, m: int, n: int, k: int) -> TileStream:
        raise NotImplementedError

    def ideal(self, stream: TileStream, record_rows: bool = False
              ) -> tuple[int, np.ndarray | None]:
        """Stall-free cycles (and, if asked, each result row's cycle) in closed form."""
        raise NotImplementedError

    def backend(self, stream: TileStream, record_rows: bool = False) -> TileBackend:
        raise NotImplementedError


class OsTileBackend:
    """The OS engine's per-tile timing rule (module docstring), one call per tile."""

    def __init__(self, rows: int, cols: int, beats: np.ndarray, record_rows: bool = False):
        self.R, self.C = rows, cols
        self.beats = np.asarray(beats, dtype=np.int64).tolist()
        self.L = -1
        self.row_starts: list[int] | None = [] if record_rows else None

    def stream(self, t, now, ready, out_free):
        s = now
        for r in ready:
            if r > s:
                s = r
        last = s + self.beats[t] - 1
        prev_done = -1
        if t:
            d = self.L + self.R + self.C
            if out_free > d:
                d = out_free
            if self.row_starts is not None:
                self.row_starts.append(d)
            prev_done = d + self.R - 1
            if prev_done + 1 > last:
                last = prev_done + 1
        self.L = last
        return last, prev_done, last + 1

    def drain(self, now, out_free):
        d = max(self.L + self.R + self.C, out_free)
        if self.row_starts is not None:
            self.row_starts.append(d)
        return d + self.R - 1

    def row_cycles(self) -> np.ndarray:
        starts = np.asarray(self.row_starts, dtype=np.int64)
        return (starts[:, None] + np.arange(self.R, dtype=np.int64)).reshape(-1)


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
        a = OperandBlocks("a", mi, _packed_bytes(rows_m * k, w), w, rows_m, kk)
        b = OperandBlocks("b", ni, _packed_bytes(cols_n * k, w), w, kk, cols_n)
        c = OperandBlocks("c", t, _packed_bytes(rows_m * cols_n, acc), acc, rows_m, cols_n)
        return TileStream(beats=kk, inputs=(a, b), output=c, out_rows=R)

    def ideal(self, stream, record_rows=False):
        R, C = self.rows, self.cols
        beats = np.asarray(stream.beats, dtype=np.int64)
        step = np.maximum(beats, 2 * R + C)
        step[0] = beats[0]
        last = np.cumsum(step) - 1  # L_t
        cycles = int(last[-1]) + 2 * R + C
        rows = None
        if record_rows:
            rows = ((last + R + C)[:, None] + np.arange(R, dtype=np.int64)).reshape(-1)
        return cycles, rows

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
    """Weight-stationary on the stationary-operand array (sim/engines/_stationary_core.py).

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
    stationary, streamed = 1, 0

    def _dims(self, m, n, k):
        """(streamed beats per fold T, outer dim split over columns)."""
        return m, n

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
            a = OperandBlocks("a", kf, _packed_bytes(tt * kr, w), w, tt, kr)
            b = OperandBlocks("b", f, _packed_bytes(kr * oc, w), w, kr, oc)
            c = OperandBlocks("c", o, _packed_bytes(tt * oc, acc), acc, tt, oc)
        else:
            a = OperandBlocks("a", f, _packed_bytes(oc * kr, w), w, oc, kr)
            b = OperandBlocks("b", kf, _packed_bytes(kr * tt, w), w, kr, tt)
            c = OperandBlocks("c", o, _packed_bytes(oc * tt, acc), acc, oc, tt)
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


# -------------------------------------------------------------------------------------------------
# The engine on the event kernel, shared by both fidelities
# -------------------------------------------------------------------------------------------------
class TileEngine:
    """Event-kernel component: each wake-up streams one tile through `backend`.

    Simulator time is the engine's clock: the engine is woken in the cycle it can take the next
    tile's first beat (the backend says which), and once more after the last tile to drain.

    Why a backend may run ahead (to the end of tile t) in one call and stay exact: everything that
    gates tile t is already decided when the engine wakes for it. Tile t's fetches wait at most for
    halves freed by tile t-2, and the output half of tile t-1 for the write-back of tile t-3, all
    issued in earlier cycles; the DRAM link serves in issue order, so a request's completion never
    depends on later requests. What the backend reports (last beat, last result row) is scheduled
    as events at the cycles it happened, so the memory sees them in time order. Within a cycle the
    memory acts first: the engine yields while the prefetcher is due in the same cycle.

    WS/IS (StationaryTileBackend, kernels.stationary.StationaryCycleBackend) need more, and get it:
    fold t's own output space (its block k's half, free once block k-2, last written by fold
    t-2 or earlier, is written back: issued by the time fold t-1's last beat was taken) and, when
    double-buffered, fold t+1's stationary block (its fetch needs only the halves of fold t-1's
    stationary block, freed once that block was loaded, and of fold t-1's streamed block, freed the
    cycle fold t starts). Every event a call reports is at a cycle after the call's start, so
    events due in one cycle were all queued, in call order, before that cycle began: both
    fidelities queue the same events in the same order.
    """

    def __init__(self, stream: TileStream, backend: TileBackend, memory: MemorySystem | None,
                 on_tile: Callable[[int, int], None] | None = None):
        self.backend = backend
        self.memory = memory
        self.ntiles = stream.ntiles
        self.ahead = tuple(getattr(backend, "ahead", ()))
        self.out_tile = int(getattr(backend, "out_tile", -1))
        if self.out_tile not in (-1, 0):
            raise ValueError(f"backend.out_tile must be -1 or 0, not {self.out_tile}")
        self.no_wait = (0,) * (len(stream.inputs) + len(self.ahead))
        self.t = 0
        self.cycles = -1
        self.on_tile = on_tile

    def wake(self, sim, now: int) -> int:
        t, mem = self.t, self.memory
        if mem is not None and mem.prefetcher.scheduled:
            return now  # let the memory act on this cycle's events first (it is queued before us)
        if t < self.ntiles:
            if mem is None:
                ready, out_free = self.no_wait, 0
            else:
                ready = mem.operands_ready(t)
                if self.ahead:
                    if t + 1 < self.ntiles:
                        ready += tuple(mem.operand_ready(i, t + 1) for i in self.ahead)
                    else:
                        ready += (0,) * len(self.ahead)
                u = t + self.out_tile
                out_free = mem.output_free(u) if u >= 0 else 0
            release, prev_done, nxt = self.backend.stream(t, now, ready, out_free)
            if mem is not None:
                if t:
                    mem.drained(t - 1, prev_done)
                if isinstance(release, list):
                    for tile, i, c in release:
                        mem.release(tile, i, c)
                else:
                    mem.streamed(t, release)
            self.t = t + 1
            if self.on_tile is not None:
                self.on_tile(self.t, self.ntiles)
            return nxt
        out_free = mem.output_free(t - 1) if mem is not None else 0
        done = self.backend.drain(now, out_free)
        if mem is not None:
            mem.drained(t - 1, done)
        self.cycles = done + 1
        return -1


@dataclass(frozen=True)
class StreamRun:
    """Outcome of one event-driven run of a tile stream."""

    cycles: int
    traffic: dict
    writeback_done_cycle: int
    dram_busy_cycles: int
    events: int


def run_stream(stream: TileStream, backend: TileBackend, memory: MemoryConfig | None = None,
               on_tile: Callable[[int, int], None] | None = None) -> StreamRun:
    """Run a tile stream through `backend` with the memory model on the event kernel.

    An ideal memory can never gate the engine, so it is left out of the run (its traffic is the
    static count, the same numbers its components would count).
    """
    from .event import Simulator

    memory = MemoryConfig() if memory is None else memory
    sim = Simulator()
    mem = None
    if memory.ideal:
        check_fits(stream, memory)
    else:
        mem = MemorySystem(memory, stream, sim)
        mem.start()
    engine = TileEngine(stream, backend, mem, on_tile)
    sim.schedule(engine, 0)
    sim.run()
    if engine.cycles < 0:
        raise RuntimeError("the engine stopped before its last tile (memory model deadlock)")
    if mem is None:
        return StreamRun(cycles=engine.cycles, traffic=static_traffic(stream),
                         writeback_done_cycle=engine.cycles, dram_busy_cycles=0,
                         events=int(sim.events))
    return StreamRun(cycles=engine.cycles, traffic=mem.traffic(),
                     writeback_done_cycle=max(engine.cycles, mem.link.done_cycle),
                     dram_busy_cycles=mem.link.busy_cycles, events=int(sim.events))


# -------------------------------------------------------------------------------------------------
# Reports and entry points
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, kw_only=True)
class TimingReport:
    """Cycle counts and traffic of one GEMM on one engine (units in the field names).

    cycles: from reset until the engine is idle after its last result row (stalls included).
    compute_cycles: the same with an ideal memory. stall_cycles = cycles - compute_cycles.
    utilization = macs / (cycles * rows * cols). writeback_done_cycle: when the last result byte
    has been sent to DRAM. out_cycles: the cycle each result row left the engine, in stream order,
    when asked for: R per tile for OS (padded rows included), the fold's stream beats for WS/IS
    (M or N per fold; partial sums of a K-fold count as rows). tiles: tiles (OS) or folds (WS/IS).
    """

    dataflow: str
    fidelity: str
    rows: int
    cols: int
    m: int
    n: int
    k: int
    tiles: int
    cycles: int
    compute_cycles: int
    stall_cycles: int
    macs: int
    utilization: float
    writeback_done_cycle: int
    dram_busy_cycles: int
    sram_read_bytes_a: int = 0
    sram_write_bytes_a: int = 0
    dram_read_bytes_a: int = 0
    dram_write_bytes_a: int = 0
    sram_read_bytes_b: int = 0
    sram_write_bytes_b: int = 0
    dram_read_bytes_b: int = 0
    dram_write_bytes_b: int = 0
    sram_read_bytes_c: int = 0
    sram_write_bytes_c: int = 0
    dram_read_bytes_c: int = 0
    dram_write_bytes_c: int = 0
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    wall_s: float = 0.0
    unit: str = "tile"
    out_cycles: np.ndarray | None = None

    def to_dict(self) -> dict:
        """Flat JSON/CSV-ready fields (no arrays)."""
        from dataclasses import fields

        d = {}
        for f in fields(self):
            if f.name in ("memory", "out_cycles") or f.name in _REPORT_SKIP:
                continue
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                continue
            d[f.name] = v
        d.update(self.memory.report_fields())
        return d


_REPORT_SKIP = frozenset({"c"})


def make_report(*, timing: EngineTiming, fidelity: str, m: int, n: int, k: int,
                stream: TileStream, run: StreamRun | None, compute_cycles: int,
                memory: MemoryConfig, wall_s: float, out_cycles: np.ndarray | None,
                cls=TimingReport, **extra) -> TimingReport:
    """Assemble a report (TimingReport or a subclass) from a run, or from the ideal closed form."""
    if run is None:
        cycles, traffic = compute_cycles, static_traffic(stream)
        wb, busy = compute_cycles, 0
    else:
        cycles, traffic = run.cycles, run.traffic
        wb, busy = run.writeback_done_cycle, run.dram_busy_cycles
    macs = m * n * k
    return cls(dataflow=timing.dataflow, fidelity=fidelity, rows=timing.rows, cols=timing.cols,
               m=m, n=n, k=k, tiles=stream.ntiles, cycles=cycles, compute_cycles=compute_cycles,
               stall_cycles=cycles - compute_cycles, macs=macs,
               utilization=macs / (cycles * timing.peak_macs_per_cycle),
               writeback_done_cycle=wb, dram_busy_cycles=busy, memory=memory, wall_s=wall_s,
               out_cycles=out_cycles, unit=stream.unit, **traffic, **extra)


def make_timing(rows: int, cols: int, dataflow: str = "os", in_bits: int = 8,
                acc_bits: int | None = None, double_buffer: bool = False) -> EngineTiming:
    cls = timing_class(dataflow)
    if double_buffer:
        return cls(rows, cols, in_bits=in_bits, acc_bits=acc_bits, double_buffer=True)
    return cls(rows, cols, in_bits=in_bits, acc_bits=acc_bits)


def time_stream(timing: EngineTiming, stream: TileStream, memory: MemoryConfig, *,
                record_rows: bool = False, on_tile: Callable[[int, int], None] | None = None,
                events: bool | None = None):
    """The tile level's one driver: (stall-free cycles, event run or None, row cycles or None).

    The closed form gives the stall-free count; the event-driven run (memory components + the
    engine's tile backend) runs only when the memory can stall, unless `events` forces it.
    """
    compute_cycles, ideal_rows = timing.ideal(stream, record_rows)
    if events is None:
        events = not memory.ideal
    elif not events and not memory.ideal:
        raise ConfigError("events must be True (or None) when the memory can stall, not False")
    if not events:
        check_fits(stream, memory)
        return compute_cycles, None, ideal_rows
    backend = timing.backend(stream, record_rows)
    run = run_stream(stream, backend, memory, on_tile)
    return compute_cycles, run, (backend.row_cycles() if record_rows else None)


def systolic_timing(cfg) -> EngineTiming:
    """The systolic engine's tile-level timing for its config (registry face `timing`)."""
    return make_timing(cfg.rows, cfg.cols, cfg.dataflow, cfg.in_bits, cfg.acc_bits,
                       cfg.double_buffer)


def tile_gemm(m: int, n: int, k: int, rows: int, cols: int, *, dataflow: str = "os",
              in_bits: int = 8, acc_bits: int | None = None, double_buffer: bool = False,
              memory: MemoryConfig | None = None, record_rows: bool = False,
              events: bool | None = None,
              on_tile: Callable[[int, int], None] | None = None) -> TimingReport:
    """Tile-level timing of C (m x n) = A (m x k) @ B (k x n) on a rows x cols array.

    Parameters
    ----------
    dataflow : {"os", "ws", "is"}
        Which operand stays in the PEs. For WS/IS a "tile" is a fold (see WsTiming).
    double_buffer : bool
        WS/IS: the stationary operand's shadow chain loads the next fold during this one.
    memory : MemoryConfig or None
        SRAM sizes and DRAM link; None (or an ideal config) means no memory stalls.
    record_rows : bool
        Also return each result row's cycle (`out_cycles`; R int64 per tile).
    events : bool or None
        Force (True) or skip (False) the event-driven run. By default it runs only when the memory
        can stall; with an ideal memory the vectorised closed form gives the same numbers.
    on_tile : callable(done, total) or None
        Progress callback, once per tile (event-driven run only).
    """
    t0 = time.perf_counter()
    memory = MemoryConfig() if memory is None else memory
    timing = make_timing(rows, cols, dataflow, in_bits, acc_bits, double_buffer)
    stream = timing.gemm_stream(m, n, k)
    compute_cycles, run, out_cycles = time_stream(timing, stream, memory, record_rows=record_rows,
                                                  on_tile=on_tile, events=events)
    return make_report(timing=timing, fidelity="tile", m=int(m), n=int(n), k=int(k),
                       stream=stream, run=run, compute_cycles=compute_cycles, memory=memory,
                       wall_s=time.perf_counter() - t0, out_cycles=out_cycles)


def tile_gemm_cycles(M: int, N: int, K: int, R: int, C: int, dataflow: str = "os",  # noqa: N803
                     **kw) -> int:
    """Cycles of an M x N x K GEMM on an R x C array by tile-level timing (RTL-proven rules).

    Keyword arguments go to `tile_gemm` (e.g. in_bits, acc_bits, double_buffer, memory). With the
    default ideal memory this is the stall-free compute cycle count.
    """
    return tile_gemm(M, N, K, R, C, dataflow=dataflow, **kw).cycles
