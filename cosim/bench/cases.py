"""What `make bench` measures: bench cases (an engine config + the paths to time) and engine adapters.

To bench another engine, write an adapter with the same methods as `SystolicAdapter` and register it in
ENGINES; to add a case, append a BenchCase to CASES (or build your own list and pass it to run_bench).
Paths are named in cosim.bench.paths.PATHS; targets (pass/fail speed goals) in TARGETS below.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .stimulus import Stream, checksum_rows, make_stream

__all__ = ["BenchCase", "Target", "SystolicAdapter", "ENGINES", "CASES", "TARGETS", "ModelRun",
           "default_cases"]


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
        from sim.engines.systolic import SystolicModel

        from sim.engines import is_compiled

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
        from rtl.systolic import write_verilog

        write_verilog(cfg, path, name=cfg.name)
        return cfg.name

    def port_layout(self, cfg) -> dict:
        """Bus widths for the harness's stimulus file."""
        return {"a_bits": cfg.in_bits, "b_bits": cfg.in_bits,
                "out_words": (cfg.cols * cfg.acc_bits + 31) // 32,
                "out_lanes": cfg.cols, "lane_bits": cfg.acc_bits}


ENGINES = {"systolic": SystolicAdapter()}

ALL_PATHS = ("model", "interpreted", "verilator_cpp", "cocotb_verilator", "cocotb_icarus")


def default_cases() -> list[BenchCase]:
    from sim.engines.systolic import SystolicConfig

    return [
        BenchCase("systolic-os-8x8", "systolic", SystolicConfig(rows=8, cols=8, in_bits=8, acc_bits=32),
                  ALL_PATHS, {"k": 64}),
        BenchCase("systolic-os-16x16", "systolic",
                  SystolicConfig(rows=16, cols=16, in_bits=8, acc_bits=32),
                  ALL_PATHS[:-1], {"k": 64}),
    ]


CASES: list[BenchCase] = default_cases()

# The design's bar for the cycle level (DESIGN.md, fidelity ladder): >= 3x Verilator's own C++ speed.
TARGETS = [
    Target("model", "ratio_vs_verilator_cpp", ">=", 3.0,
           "cycle model >= 3x Verilator C++ (DESIGN.md), medians of the two paths"),
    Target("model", "ratio_vs_verilator_cpp_paired", ">=", 3.0,
           "cycle model >= 3x Verilator C++ (DESIGN.md), median of back-to-back pairs"),
]
