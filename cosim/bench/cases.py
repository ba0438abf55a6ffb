"""What `make bench` measures: bench cases (an engine config + the paths to time) and engine adapters.

To bench another engine, write an adapter with the same methods as `SystolicAdapter` and register it in
ENGINES; to add a case, append a BenchCase to CASES (or build your own list and pass it to run_bench).
Paths are named in cosim.bench.paths.PATHS; targets (pass/fail speed goals) in TARGETS below.

The other two suites: TILE_CASES (tile-level timing, wall time and peak memory, cosim.bench.tile) and
SCALESIM_CASES (the same GEMM by SCALE-Sim v3 and by tpesim, cosim.bench.scalesim), with their
targets in TILE_TARGETS and SCALESIM_TARGETS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .stimulus import FoldStream, Stream, checksum_rows, make_fold_stream, make_stream

__all__ = ["BenchCase", "Target", "TileCase", "ScaleSimCase", "SystolicAdapter", "StationaryAdapter", "ENGINES", "CASES", "TARGETS", "ModelRun",
           "default_cases", "TILE_CASES", "TILE_TARGETS", "SCALESIM_CASES", "SCALESIM_TARGETS",
           "tile_cases", "scalesim_cases", "SUITES"]

SUITES = ("cycle", "tile", "scalesim")


@dataclass(frozen=True)
class BenchCase:
    """One engine configuration and the paths to run on it.

    `params` tunes the paths: k (beats per tile of the free-running stream), tiles_per_block,
    verilator_cycles / icarus_cycles (lockstep lengths), cocotb_kmax (max K of the lockstep tiles),
    verilator_extra_flags (added to the Verilator C++ build).
    """

    name: str
    engine: str
    cfg: Any
    paths: tuple[str, ...]
    params: dict = field(default_factory=dict)

    def param(self, key: str, default):
        return self.params.get(key, default)


@dataclass(frozen=True)
class Target:
    """A speed goal checked on every row of `path`: row.<metric> <op> value."""

    path: str
    metric: str
    op: str
    value: float
    text: str

    def check(self, row) -> bool | None:
        v = getattr(row, self.metric, None)
        if v is None:
            return None
        return {">=": v >= self.value, "<=": v <= self.value, ">": v > self.value,
                "<": v < self.value}[self.op]


@dataclass
class ModelRun:
    """Result of streaming a Stream through a cycle model (free-running)."""

    cycles: int
    rows: int
    checksum: int
    seconds: float           # inside the model's run calls only
    out_rows: np.ndarray | None = None


class SystolicAdapter:
    """The OS systolic engine: SystolicConfig, SystolicModel.run_beats, rtl.systolic Verilog."""

    name = "systolic"
    cosim_engine = "systolic"   # key of cosim.runner.BENCHES

    def size(self, cfg) -> str:
        return f"{cfg.rows}x{cfg.cols}"

    def describe(self, cfg) -> str:
        s = "int" if cfg.signed else "uint"
        return f"{cfg.dataflow.upper()} {cfg.rows}x{cfg.cols} {s}{cfg.in_bits} acc{cfg.acc_bits}"

    def make_stream(self, cfg, *, k: int, tiles_per_block: int, reps: int, seed: int) -> Stream:
        lo, hi = cfg.in_range
        return make_stream(cfg.rows, cfg.cols, lo, hi, k=k, tiles_per_block=tiles_per_block,
                           reps=reps, seed=seed)

    def model(self, cfg, *, interpreted: bool):
        from tpesim.engines.systolic import SystolicModel

        from tpesim.engines import is_compiled

        m = SystolicModel(cfg, interpreted=interpreted)
        if is_compiled(m.core_module) == interpreted:
            want = "interpreted" if interpreted else "compiled"
            raise RuntimeError(f"asked for the {want} cycle model but got {m.core_module.__file__}; "
                               "run `make ext` (or `make setup`) to build the Cython extension")
        return m

    def run_model(self, cfg, stream: Stream, *, interpreted: bool = False,
                  keep_rows: bool = False) -> ModelRun:
        """Free-run `stream` through a fresh model: one run_beats call per block copy (Python is touched
        once per block, never per cycle), draining after the last. Only the run calls are timed."""
        m = self.model(cfg, interpreted=interpreted)
        cycles = rows = 0
        h = 0
        secs = 0.0
        last_stamp = -1
        kept = []
        for r in range(stream.reps):
            t0 = time.perf_counter()
            oc, st, cyc = m.run_beats(stream.a, stream.b, stream.last, drain=(r == stream.reps - 1))
            secs += time.perf_counter() - t0
            h = (h + checksum_rows(oc, cfg.acc_bits, rows)) & 0xFFFFFFFFFFFFFFFF
            rows += len(oc)
            cycles += cyc
            if len(st):
                last_stamp = int(st[-1])
            if keep_rows:
                kept.append(oc.copy())
        if rows != stream.tiles * cfg.rows:
            raise AssertionError(f"model gave {rows} result rows for {stream.tiles} tiles of {cfg.rows}")
        if cycles != last_stamp + 1:
            raise AssertionError(f"model ran {cycles} cycles but its last row left in cycle {last_stamp}")
        return ModelRun(cycles, rows, h, secs, np.concatenate(kept) if keep_rows else None)

    def write_verilog(self, cfg, path: Path) -> str:
        from tpesim.rtl.systolic import write_verilog

        write_verilog(cfg, path, name=cfg.name)
        return cfg.name

    def port_layout(self, cfg) -> dict:
        """Bus widths for the harness's stimulus file."""
        return {"a_bits": cfg.in_bits, "b_bits": cfg.in_bits,
                "out_words": (cfg.cols * cfg.acc_bits + 31) // 32,
                "out_lanes": cfg.cols, "lane_bits": cfg.acc_bits}


class StationaryAdapter(SystolicAdapter):
    """The WS/IS systolic engine (one hardware, rtl.systolic.StationaryArray): StationaryModel.run_folds
    over two input streams (load port, stream port), Verilator harness harness_stationary.cpp.

    A bench "tile" is a fold: R load beats (a stationary tile) and k stream beats (k result rows)."""

    name = "systolic_stationary"
    run_call = "run_folds"

    def size(self, cfg) -> str:
        return f"{cfg.dataflow.upper()} {cfg.rows}x{cfg.cols}" + (" db" if cfg.double_buffer else "")

    def describe(self, cfg) -> str:
        return super().describe(cfg) + (" double-buffered" if cfg.double_buffer else "")

    def make_stream(self, cfg, *, k: int, tiles_per_block: int, reps: int, seed: int) -> FoldStream:
        lo, hi = cfg.in_range
        return make_fold_stream(cfg.rows, cfg.cols, lo, hi, k=k, folds_per_block=tiles_per_block,
                                reps=reps, seed=seed)

    def run_model(self, cfg, stream: FoldStream, *, interpreted: bool = False,
                  keep_rows: bool = False) -> ModelRun:
        """Free-run `stream` through a fresh model: one run_folds call per block copy of the stream
        port (drain only after the last). The load port runs ahead on its own: each call is offered the
        next loads of the endless load sequence (up to two blocks), exactly as the harness offers them,
        and the loads a call did not take are offered again by the next. Only the run calls are timed."""
        m = self.model(cfg, interpreted=interpreted)
        nl = stream.loads.shape[0]
        total_loads = nl * stream.reps
        loads3 = np.ascontiguousarray(np.concatenate([stream.loads] * min(3, stream.reps)))
        cycles = rows = 0
        h = 0
        secs = 0.0
        last_stamp = -1
        kept = []
        gl = 0     # load beats taken so far
        for r in range(stream.reps):
            final = r == stream.reps - 1
            off = gl % nl if nl else 0
            offer = loads3[off:off + min(total_loads - gl, 2 * nl)]
            t0 = time.perf_counter()
            res = m.run_folds(offer, stream.a, stream.last, drain=final)
            secs += time.perf_counter() - t0
            oc, st, cyc = res[:3]
            gl += offer.shape[0] if final else res[3]
            h = (h + checksum_rows(oc, cfg.acc_bits, rows)) & 0xFFFFFFFFFFFFFFFF
            rows += len(oc)
            cycles += cyc
            if len(st):
                last_stamp = int(st[-1])
            if keep_rows:
                kept.append(oc.copy())
        if rows != stream.nbeats or gl != total_loads:
            raise AssertionError(f"model gave {rows} result rows for {stream.nbeats} stream beats and took "
                                 f"{gl} of {total_loads} load beats")
        if cycles != last_stamp + 1:
            raise AssertionError(f"model ran {cycles} cycles but its last row left in cycle {last_stamp}")
        return ModelRun(cycles, rows, h, secs, np.concatenate(kept) if keep_rows else None)

    def port_layout(self, cfg) -> dict:
        return {"load_bits": cfg.in_bits, "in_bits": cfg.in_bits,
                "out_words": (cfg.cols * cfg.acc_bits + 31) // 32,
                "out_lanes": cfg.cols, "lane_bits": cfg.acc_bits}

    def write_stimulus(self, cfg, stream: FoldStream, path: Path) -> Path:
        from .stimulus import write_fold_stimulus_file

        lay = self.port_layout(cfg)
        return write_fold_stimulus_file(path, stream, lay["load_bits"], lay["in_bits"], lay["out_words"],
                                        lay["out_lanes"], lay["lane_bits"])

    @property
    def harness(self) -> Path:
        return Path(__file__).with_name("harness_stationary.cpp")


ENGINES = {"systolic": SystolicAdapter(), "systolic_stationary": StationaryAdapter()}

ALL_PATHS = ("model", "interpreted", "verilator_cpp", "cocotb_verilator", "cocotb_icarus")


def default_cases() -> list[BenchCase]:
    from tpesim.engines.systolic import SystolicConfig

    return [
        BenchCase("systolic-os-8x8", "systolic", SystolicConfig(rows=8, cols=8, in_bits=8, acc_bits=32),
                  ALL_PATHS, {"k": 64}),
        BenchCase("systolic-os-16x16", "systolic",
                  SystolicConfig(rows=16, cols=16, in_bits=8, acc_bits=32),
                  ALL_PATHS[:-1], {"k": 64}),
    ] + [
        # WS (IS is the same hardware and core, only the kernel mapping differs): model, interpreted and
        # Verilator C++ on the same two streams; folds of k=64 rows. `seconds_scale` keeps the Verilator
        # runs short (the model stream is sized to seconds_scale x --seconds of model time, ~0.1 s, so
        # one Verilator run takes ~1-4 s at 5-15x slower). No 16x16 double-buffer case: its Verilator
        # build alone takes ~75 s (the 16x16 one ~40 s).
        BenchCase(f"systolic-ws-{n}x{n}{'-db' if db else ''}", "systolic_stationary",
                  SystolicConfig(rows=n, cols=n, dataflow="ws", in_bits=8, acc_bits=32, double_buffer=db),
                  ("model", "interpreted", "verilator_cpp"),
                  {"k": 64, "tiles_per_block": 256, "seconds_scale": 0.1})
        for n, db in ((8, False), (16, False), (8, True))
    ]


CASES: list[BenchCase] = default_cases()

# The design's bar for the cycle level (DESIGN.md, fidelity ladder): >= 3x Verilator's own C++ speed.
TARGETS = [
    Target("model", "ratio_vs_verilator_cpp", ">=", 3.0,
           "cycle model >= 3x Verilator C++ (DESIGN.md), medians of the two paths"),
    Target("model", "ratio_vs_verilator_cpp_paired", ">=", 3.0,
           "cycle model >= 3x Verilator C++ (DESIGN.md), median of back-to-back pairs"),
]


@dataclass(frozen=True)
class TileCase:
    """One tile-level measurement: an M x N x K GEMM on a rows x cols array.

    memory: MemoryConfig keyword arguments (None: ideal memory, no stalls). events: tile_gemm's
    `events` (None: its default, the event-driven run only when the memory can stall; True: force
    the event-driven run with an ideal memory too). options: further tile_gemm keyword arguments
    (e.g. double_buffer=True). target: the issue-3 targets (< 1 s, < 1 GB) apply to this row.
    """

    name: str
    m: int
    n: int
    k: int
    rows: int
    cols: int
    dataflow: str = "os"
    memory: dict | None = None
    events: bool | None = None
    target: bool = False
    options: dict | None = None

    def spec(self, reps: int, seconds: float) -> dict:
        return {"m": self.m, "n": self.n, "k": self.k, "rows": self.rows, "cols": self.cols,
                "dataflow": self.dataflow, "memory": self.memory, "events": self.events,
                "options": self.options or {}, "reps": reps, "seconds": seconds}


@dataclass(frozen=True)
class ScaleSimCase:
    """An M x N x K GEMM on a rows x cols array, timed by SCALE-Sim and by tpesim in the same run."""

    name: str
    m: int
    n: int
    k: int
    rows: int
    cols: int
    dataflow: str
    target: bool = False   # the issue-3 speed target applies


# -- issue 3: tile-level timing targets -------------------------------------------------------------------
# Finite memories that stall the engine: DRAM bandwidth below what the array consumes, SRAM halves
# large enough for every dataflow's blocks (OS: R x K / K x C inputs; WS/IS: a fold's M x R or N x R
# stream and its M x C / C x N partial outputs at 32 bits).
MEM_128 = {"sram_kib_a": 4096, "sram_kib_b": 4096, "sram_kib_c": 4096, "dram_bw": 64, "dram_latency": 100}
MEM_32 = {"sram_kib_a": 512, "sram_kib_b": 512, "sram_kib_c": 1024, "dram_bw": 32, "dram_latency": 100}


def tile_cases(quick: bool = False) -> list[TileCase]:
    g = 4096 if not quick else 512
    out = [TileCase(f"{g}^3-128x128-{df}", g, g, g, 128, 128, df, target=not quick)
           for df in ("os", "ws", "is")]
    out.append(TileCase(f"{g}^3-128x128-os-events", g, g, g, 128, 128, "os", events=True,
                        target=not quick))
    out += [TileCase(f"{g}^3-128x128-{df}-mem", g, g, g, 128, 128, df, memory=MEM_128,
                     target=not quick) for df in ("os", "ws", "is")]
    out += [TileCase(f"{g}^3-128x128-{df}-db-mem", g, g, g, 128, 128, df, memory=MEM_128,
                     target=not quick, options={"double_buffer": True}) for df in ("ws", "is")]
    out += [TileCase(f"{g}^3-32x32-{df}-mem", g, g, g, 32, 32, df, memory=MEM_32)
            for df in ("os", "ws", "is")]
    return out


TILE_CASES: list[TileCase] = tile_cases()

# Issue 3: "a 4096x4096x4096 GEMM on a 128x128 array in under 1 s and under 1 GB".
TILE_TARGETS = [
    Target("tile", "wall_first_s", "<", 1.0, "under 1 s (first call in a fresh process)"),
    Target("tile", "rss_peak_bytes", "<", 1e9, "under 1 GB (peak RSS of the whole process)"),
]


# -- issue 3: the same GEMM by SCALE-Sim v3 and by tpesim ------------------------------------------------
def scalesim_cases(quick: bool = False) -> list[ScaleSimCase]:
    if quick:
        return [ScaleSimCase(f"64^3-8x8-{df}", 64, 64, 64, 8, 8, df) for df in ("os", "ws", "is")]
    return [ScaleSimCase(f"512^3-32x32-{df}", 512, 512, 512, 32, 32, df, target=True)
            for df in ("os", "ws", "is")]


SCALESIM_CASES: list[ScaleSimCase] = scalesim_cases()

SCALESIM_TARGETS = [
    Target("scalesim", "speedup", ">=", 10_000,
           "512^3 on 32x32 at least 10,000x faster than SCALE-Sim v3 (same machine, same run)"),
]


def gemm_label(m: int, n: int, k: int) -> str:
    """`512^3` for a cube, `MxNxK` otherwise (the GEMM column of the bench tables)."""
    return f"{m}x{n}x{k}" if len({m, n, k}) > 1 else f"{m}^3"
