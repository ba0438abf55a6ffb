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

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .errors import ConfigError, TpesimError, WorkloadError
from .memory import MemoryConfig, MemorySystem, check_fits, static_traffic

__all__ = ["TileStream", "OperandBlocks", "EngineTiming", "OsTiming", "TileBackend",
           "OsTileBackend", "TileEngine", "StreamRun", "run_stream", "TimingReport", "tile_gemm",
           "tile_gemm_cycles", "register_timing", "timing_class", "TIMINGS", "FIDELITIES",
           "default_acc_bits", "bench_tile_targets"]

FIDELITIES = ("cycle", "tile")


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
    `now`; `ready[i]` is the cycle from which input operand i's block is in SRAM; tile t-1's result
    rows may leave from cycle `out_free`. Returns (release, prev_done, next_wake): the cycle of the
    tile's last operand read (its SRAM halves are free from release + 1; a tuple gives one cycle
    per input operand), the cycle in which tile t-1's last result row left (-1 for t = 0), and the
    cycle to wake the engine for tile t+1.
    `drain(now, out_free)`: after the last tile, returns the cycle its last result row left.
    """

    def stream(self, t: int, now: int, ready: tuple[int, ...], out_free: int
               ) -> tuple[int, int, int]: ...

    def drain(self, now: int, out_free: int) -> int: ...


class EngineTiming:
    """Timing of one dataflow on an R x C array (subclass per dataflow; see `register_timing`)."""

    dataflow = ""

    def __init__(self, rows: int, cols: int, *, in_bits: int = 8, acc_bits: int | None = None):
        for name, v in (("rows", rows), ("cols", cols), ("in_bits", in_bits)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, not {v!r}")
        self.rows, self.cols, self.in_bits = int(rows), int(cols), int(in_bits)
        self.acc_bits = default_acc_bits(self.in_bits) if acc_bits is None else int(acc_bits)

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

    def gemm_stream(self, m: int, n: int, k: int) -> TileStream:
        for name, v in (("m", m), ("n", n), ("k", k)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise WorkloadError(f"{name} must be an integer, not {v!r}")
            if v < 1:
                raise WorkloadError(f"{name} must be a positive integer, not {v!r}")
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


TIMINGS: dict[str, type[EngineTiming]] = {}


def register_timing(cls: type[EngineTiming]) -> type[EngineTiming]:
    """Make a dataflow's tile-level timing available to `tile_gemm` (usable as a decorator)."""
    TIMINGS[cls.dataflow] = cls
    return cls


register_timing(OsTiming)


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
    """

    def __init__(self, stream: TileStream, backend: TileBackend, memory: MemorySystem | None,
                 on_tile: Callable[[int, int], None] | None = None):
        self.backend = backend
        self.memory = memory
        self.ntiles = stream.ntiles
        self.no_wait = (0,) * len(stream.inputs)
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
                out_free = mem.output_free(t - 1) if t else 0
            release, prev_done, nxt = self.backend.stream(t, now, ready, out_free)
            if mem is not None:
                if t:
                    mem.drained(t - 1, prev_done)
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
    from .kernel import Simulator

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
    has been sent to DRAM. out_cycles: the cycle each result row left the engine, R per tile in
    stream order (padded rows included), when asked for.
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
               utilization=macs / (cycles * timing.rows * timing.cols),
               writeback_done_cycle=wb, dram_busy_cycles=busy, memory=memory, wall_s=wall_s,
               out_cycles=out_cycles, **traffic, **extra)


def make_timing(rows: int, cols: int, dataflow: str = "os", in_bits: int = 8,
                acc_bits: int | None = None) -> EngineTiming:
    return timing_class(dataflow)(rows, cols, in_bits=in_bits, acc_bits=acc_bits)


def tile_gemm(m: int, n: int, k: int, rows: int, cols: int, *, dataflow: str = "os",
              in_bits: int = 8, acc_bits: int | None = None, memory: MemoryConfig | None = None,
              record_rows: bool = False, events: bool | None = None,
              on_tile: Callable[[int, int], None] | None = None) -> TimingReport:
    """Tile-level timing of C (m x n) = A (m x k) @ B (k x n) on a rows x cols array.

    Parameters
    ----------
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
    timing = make_timing(rows, cols, dataflow, in_bits, acc_bits)
    stream = timing.gemm_stream(m, n, k)
    compute_cycles, ideal_rows = timing.ideal(stream, record_rows)
    if events is None:
        events = not memory.ideal
    elif not events and not memory.ideal:
        raise ConfigError("events must be True (or None) when the memory can stall, not False")
    run, out_cycles = None, ideal_rows
    if events:
        backend = timing.backend(stream, record_rows)
        run = run_stream(stream, backend, memory, on_tile)
        if record_rows:
            out_cycles = backend.row_cycles()
    else:
        check_fits(stream, memory)
    return make_report(timing=timing, fidelity="tile", m=int(m), n=int(n), k=int(k),
                       stream=stream, run=run, compute_cycles=compute_cycles, memory=memory,
                       wall_s=time.perf_counter() - t0, out_cycles=out_cycles)


def tile_gemm_cycles(M: int, N: int, K: int, R: int, C: int, dataflow: str = "os",  # noqa: N803
                     **kw) -> int:
    """Cycles of an M x N x K GEMM on an R x C array by tile-level timing (RTL-proven rules).

    Keyword arguments go to `tile_gemm` (e.g. in_bits, acc_bits, memory). With the default ideal
    memory this is the stall-free compute cycle count.
    """
    return tile_gemm(M, N, K, R, C, dataflow=dataflow, **kw).cycles


# -------------------------------------------------------------------------------------------------
# Benchmark targets (issue 3): measured by `make bench`, not by the tests
# -------------------------------------------------------------------------------------------------
BENCH_TARGETS = (
    # name, (m, n, k), (rows, cols), memory
    ("gemm_4096^3_128x128_os", (4096, 4096, 4096), (128, 128), None),
    ("gemm_512^3_32x32_os", (512, 512, 512), (32, 32), None),
    ("gemm_4096^3_128x128_os_mem", (4096, 4096, 4096), (128, 128),
     MemoryConfig(sram_kib_a=2048, sram_kib_b=2048, sram_kib_c=256, dram_bw=64, dram_latency=100)),
    ("gemm_4096^3_32x32_os_mem", (4096, 4096, 4096), (32, 32),
     MemoryConfig(sram_kib_a=512, sram_kib_b=512, sram_kib_c=16, dram_bw=32, dram_latency=100)),
)


def bench_tile_targets(repeat: int = 3) -> list[dict]:
    """Wall time (best of `repeat`) and peak memory of the tile-level timing targets.

    Peak memory is measured in a separate run under tracemalloc (Python and numpy allocations);
    `max_rss_bytes` is the process's peak resident set so far (an upper bound; includes the
    interpreter and everything imported).
    """
    import resource
    import tracemalloc

    results = []
    for name, (m, n, k), (r, c), mem in BENCH_TARGETS:
        best = math.inf
        rep = None
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            rep = tile_gemm(m, n, k, r, c, memory=mem)
            best = min(best, time.perf_counter() - t0)
        tracemalloc.start()
        tile_gemm(m, n, k, r, c, memory=mem)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        results.append({"name": name, "dataflow": "os", "m": m, "n": n, "k": k, "rows": r,
                        "cols": c, "memory": mem is not None, "tiles": rep.tiles,
                        "cycles": rep.cycles, "stall_cycles": rep.stall_cycles,
                        "wall_s": best, "peak_traced_bytes": peak, "max_rss_bytes": rss})
    return results


if __name__ == "__main__":  # pragma: no cover
    for row in bench_tile_targets():
        print(row)
