"""Tile-level timing (`fidelity="tile"`): the engine advanced one tile per event on the event kernel,
with its memory, and the reports; cycle counts identical to the register-level cycle model.

Notes and derivations: docs/internals.md, section `sim/timing.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import ConfigError, WorkloadError
from .memory import MemoryConfig, MemorySystem, check_fits, static_traffic
from .tile_stream import (FIDELITIES, MAX_GEMM_DIM, MAX_GEMM_MACS, EngineTiming, OperandBlocks,
                          TileBackend, TileStream, check_gemm_shape, default_acc_bits)
from .tile_systolic import (TIMINGS, IsTiming, OsTileBackend, OsTiming, StationaryTileBackend,
                            WsTiming, make_timing, register_timing, systolic_timing, timing_class)

__all__ = ["TileStream", "OperandBlocks", "EngineTiming", "OsTiming", "WsTiming", "IsTiming",
           "TileBackend", "OsTileBackend", "StationaryTileBackend", "TileEngine", "StreamRun",
           "run_stream", "time_stream", "TimingReport", "systolic_timing", "tile_gemm",
           "tile_gemm_cycles", "register_timing", "timing_class", "TIMINGS", "FIDELITIES",
           "check_gemm_shape", "default_acc_bits", "make_timing", "make_report", "MAX_GEMM_DIM",
           "MAX_GEMM_MACS"]


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
    try:
        sim.run()
    except OverflowError:  # a cycle past the event kernel's 64-bit clock (e.g. dram_bw 1e-300)
        raise WorkloadError(f"the run is longer than 2**63 - 1 cycles, the event kernel's limit, "
                            f"with dram_bw {memory.dram_bw} bytes/cycle and dram_latency "
                            f"{memory.dram_latency} cycles: give a larger dram_bw") from None
    if engine.cycles < 0:
        raise RuntimeError("the engine stopped before its last tile (memory model deadlock)")
    if mem is None:
        return StreamRun(cycles=engine.cycles, traffic=static_traffic(stream, memory),
                         writeback_done_cycle=engine.cycles, dram_busy_cycles=0,
                         events=int(sim.events))
    return StreamRun(cycles=engine.cycles, traffic=mem.traffic(),
                     writeback_done_cycle=max(engine.cycles, mem.link.done_cycle),
                     dram_busy_cycles=mem.link.busy_cycles, events=int(sim.events))


@dataclass(frozen=True, eq=False, kw_only=True)
class TimingReport:
    """Cycle counts and traffic of one GEMM on one engine (units in the field names).

    cycles: from reset to the end of all the work: the last result byte written back to DRAM when
    a DRAM is modelled, else the engine idle after its last result row. engine_done_cycle: the
    engine idle after its last result row (stalls included). writeback_done_cycle: the last result
    byte sent to DRAM. compute_cycles: the run with an ideal memory. stall_cycles = cycles -
    compute_cycles (what the memory cost, the write-back tail included). utilization = macs /
    (cycles * the engine's peak MACs per cycle). out_cycles: the cycle each result row left the engine, in stream order,
    when asked for: R per tile for OS (padded rows included), the fold's stream beats for WS/IS
    (M or N per fold; partial sums of a K-fold count as rows). blocks: tiles (OS) or folds (held-block engines), as `unit` says.
    """

    dataflow: str
    fidelity: str
    rows: int
    cols: int
    m: int
    n: int
    k: int
    blocks: int
    cycles: int
    compute_cycles: int
    stall_cycles: int
    macs: int
    utilization: float
    engine_done_cycle: int
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
        done, traffic = compute_cycles, static_traffic(stream, memory)
        wb, busy = compute_cycles, 0
    else:
        done, traffic = run.cycles, run.traffic
        wb, busy = run.writeback_done_cycle, run.dram_busy_cycles
    cycles = max(done, wb)
    macs = m * n * k
    return cls(dataflow=timing.dataflow, fidelity=fidelity, rows=timing.rows, cols=timing.cols,
               m=m, n=n, k=k, blocks=stream.ntiles, cycles=cycles, compute_cycles=compute_cycles,
               stall_cycles=cycles - compute_cycles, macs=macs,
               utilization=macs / (cycles * timing.peak_macs_per_cycle), engine_done_cycle=done,
               writeback_done_cycle=wb, dram_busy_cycles=busy, memory=memory, wall_s=wall_s,
               out_cycles=out_cycles, unit=stream.unit, **traffic, **extra)


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
