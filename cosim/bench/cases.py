"""What `make bench` measures: bench cases and engine adapters (from the registry's `bench` entries),
the tile-level and SCALE-Sim suites, and the speed targets.

An adapter drives one kind of engine on the free-running paths: it makes the random stream, runs the
cycle model over it in a few big calls, and says what the generated Verilator harness gets (the
config's streams and their beats). Two kinds ship: `StationaryStreamAdapter` (engines whose model has
`run_folds`: a held block loaded on a stream without `last`, rows on a stream with `last`) and
`SystolicAdapter` (the OS array's `run_beats`). A registry entry names its adapter per `cfg.mapping`
and its cases (sim/registry.py); paths are in cosim.bench.paths.PATHS.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tpesim.numerics import value_range
from tpesim.registry import engine_of

from .stimulus import (FoldStream, Stream, checksum_rows, in_streams, make_fold_stream, make_stream,
                       out_stream, write_stimulus_file)

__all__ = ["BenchCase", "Target", "TileCase", "ScaleSimCase", "Adapter", "RunBeatsAdapter",
           "SystolicAdapter", "StationaryStreamAdapter", "StationaryAdapter", "ENGINES", "register_adapter", "adapter_of",
           "CASES", "TARGETS", "ModelRun", "default_cases", "TILE_CASES", "TILE_TARGETS", "SCALESIM_CASES",
           "SCALESIM_TARGETS", "tile_cases", "scalesim_cases", "SUITES", "config_label"]

SUITES = ("cycle", "tile", "scalesim", "llm", "train")


@dataclass(frozen=True)
class BenchCase:
    """One engine configuration and the paths to run on it.

    `engine` is the registry name of the config's engine (`cfg.engine`). `params` tunes the paths:
    k (beats per tile of the free-running stream), tiles_per_block, seconds_scale (model stream
    length relative to --seconds), verilator_cycles / icarus_cycles (lockstep lengths), cocotb_kmax
    (max K of the lockstep tiles), verilator_extra_flags (added to the Verilator C++ build).
    """

    name: str
    engine: str
    cfg: Any
    paths: tuple[str, ...]
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if getattr(self.cfg, "engine", None) != self.engine:
            raise ValueError(f"bench case {self.name!r}: engine {self.engine!r}, but its config is a "
                             f"{getattr(self.cfg, 'engine', type(self.cfg).__name__)!r} config")

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


def _initials(name: str) -> str:
    return "".join(w[0] for w in name.split("_") if w)


def config_label(cfg) -> str:
    """A short label of a config from its fields: its string-valued fields (the registry's variant
    field upper-cased, e.g. dataflow "WS"; the adder tree's encoding), the held block's shape, and the
    initials of bool fields switched on from a False default ("db" for double_buffer)."""
    eng = engine_of(cfg)
    variant = eng.variants[0] if eng.variants else None
    parts, flags = [], []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, str):
            parts.append(v.upper() if f.name == variant else v)
        elif isinstance(v, bool) and v and f.default is False:
            flags.append(_initials(f.name))
    return " ".join(parts + ["x".join(str(d) for d in cfg.block_shape)] + flags)


class Adapter:
    """What every adapter shares: labels, the model and RTL from the registry, the harness stimulus.

    A subclass sets `run_call` and implements make_stream, run_model, in_beats (the beats of each
    input stream of `cfg.streams()` for the harness) and expected_rows."""

    run_call = ""

    def size(self, cfg) -> str:
        return config_label(cfg)

    def describe(self, cfg) -> str:
        ops = {o.role: o for o in cfg.operands()}
        a, c = ops["a"], ops["c"]
        text = f"{cfg.engine} {config_label(cfg)} {'int' if a.signed else 'uint'}{a.bits} acc{c.bits}"
        ob = self.out_lane_bits(cfg)
        return text + (f" (results {ob}-bit)" if ob != c.bits else "")

    @staticmethod
    def out_lane_bits(cfg) -> int:
        """Width of one result lane on the output stream (what the checksum masks to)."""
        pay = out_stream(cfg.streams()).payload
        if len(pay) != 1:
            raise ValueError(f"{cfg.name}: the bench checksums one output payload port, not {len(pay)}")
        return pay[0].bits

    def model(self, cfg, *, interpreted: bool):
        from tpesim.engines import is_compiled

        m = engine_of(cfg).load("model")(cfg, interpreted=interpreted)
        if is_compiled(m.core_module) == interpreted:
            want = "interpreted" if interpreted else "compiled"
            raise RuntimeError(f"asked for the {want} cycle model but got {m.core_module.__file__}; "
                               "run `make ext` (or `make setup`) to build the Cython extension")
        return m

    def write_verilog(self, cfg, path: Path) -> str:
        """The engine's RTL (registry face "rtl") as Verilog, top module cfg.name."""
        engine_of(cfg).load("rtl").write_verilog(cfg, path, name=cfg.name)
        return cfg.name

    def write_stimulus(self, cfg, stream, path: Path) -> Path:
        return write_stimulus_file(path, cfg.streams(), self.in_beats(cfg, stream), stream.reps,
                                   self.expected_rows(cfg, stream))

    # -- per kind of engine
    def make_stream(self, cfg, *, k: int, tiles_per_block: int, reps: int, seed: int):
        raise NotImplementedError

    def run_model(self, cfg, stream, *, interpreted: bool = False, keep_rows: bool = False) -> ModelRun:
        raise NotImplementedError

    def in_beats(self, cfg, stream) -> dict:
        raise NotImplementedError

    def expected_rows(self, cfg, stream) -> int:
        raise NotImplementedError


class RunBeatsAdapter(Adapter):
    """Every engine driven through `run_beats` over one input stream carrying all its operands
    (`in_last` on a tile's last beat) with `tile_rows(cfg)` result rows per tile. A subclass
    implements make_stream and `tile_rows`; `model_operands` gives the beats as the model takes
    them (default: the stream's own arrays, as the harness gets them)."""

    run_call = "run_beats"

    @staticmethod
    def tile_rows(cfg) -> int:
        raise NotImplementedError

    def model_operands(self, cfg, stream: Stream) -> tuple[np.ndarray, np.ndarray]:
        return stream.a, stream.b

    def run_model(self, cfg, stream: Stream, *, interpreted: bool = False,
                  keep_rows: bool = False) -> ModelRun:
        """Free-run `stream` through a fresh model: one run_beats call per block copy (Python is touched
        once per block, never per cycle), draining after the last. Only the run calls are timed."""
        m = self.model(cfg, interpreted=interpreted)
        bits = self.out_lane_bits(cfg)
        a, b = self.model_operands(cfg, stream)
        cycles = rows = 0
        h = 0
        secs = 0.0
        last_stamp = -1
        kept = []
        for r in range(stream.reps):
            t0 = time.perf_counter()
            oc, st, cyc = m.run_beats(a, b, stream.last, drain=(r == stream.reps - 1))
            secs += time.perf_counter() - t0
            h = (h + checksum_rows(oc, bits, rows)) & 0xFFFFFFFFFFFFFFFF
            rows += len(oc)
            cycles += cyc
            if len(st):
                last_stamp = int(st[-1])
            if keep_rows:
                kept.append(oc.copy())
        if rows != self.expected_rows(cfg, stream):
            raise AssertionError(f"model gave {rows} result rows for {stream.tiles} tiles of "
                                 f"{self.tile_rows(cfg)}")
        if cycles != last_stamp + 1:
            raise AssertionError(f"model ran {cycles} cycles but its last row left in cycle {last_stamp}")
        return ModelRun(cycles, rows, h, secs, np.concatenate(kept) if keep_rows else None)

    def in_beats(self, cfg, stream: Stream) -> dict:
        (st,) = in_streams(cfg.streams())
        return {st.name: ([stream.a, stream.b], stream.last)}

    def expected_rows(self, cfg, stream: Stream) -> int:
        return stream.tiles * self.tile_rows(cfg)


class SystolicAdapter(RunBeatsAdapter):
    """The OS systolic engine: SystolicModel.run_beats over one input stream carrying both operands
    (A column and B row of each beat, `in_last` on a tile's K-th beat); R result rows per tile."""

    @staticmethod
    def tile_rows(cfg) -> int:
        return cfg.rows

    def make_stream(self, cfg, *, k: int, tiles_per_block: int, reps: int, seed: int) -> Stream:
        lo, hi = cfg.in_range
        return make_stream(cfg.rows, cfg.cols, lo, hi, k=k, tiles_per_block=tiles_per_block,
                           reps=reps, seed=seed)


class StationaryStreamAdapter(Adapter):
    """Every engine driven through `run_folds` (PreloadModel.run_folds' contract): the systolic
    WS/IS array and the adder tree. Its layout has two input streams: the load port (no `last`: rows
    of the held block, `cfg.block_shape[0]` beats per block) and the stream port (`last` on a block's
    last row), and one result row per stream beat.

    A bench "tile" is a fold: one held block's load beats and k stream beats (k result rows)."""

    run_call = "run_folds"

    @staticmethod
    def ports(cfg):
        """(load stream, row stream) of the layout: the input stream without `last` and the one with."""
        ins = in_streams(cfg.streams())
        load = [st for st in ins if st.last is None]
        rows = [st for st in ins if st.last is not None]
        if len(ins) != 2 or len(load) != 1 or len(rows) != 1 or any(len(st.payload) != 1 for st in ins):
            raise ValueError(f"{cfg.name}: a stationary-stream engine has one load stream (no last) and one "
                             "row stream (with last), one payload port each")
        return load[0], rows[0]

    def make_stream(self, cfg, *, k: int, tiles_per_block: int, reps: int, seed: int) -> FoldStream:
        load, rows = self.ports(cfg)
        lp, rp = load.payload[0], rows.payload[0]
        lo, hi = value_range(rp.bits, rp.signed)
        return make_fold_stream(rp.lanes, lp.lanes, lo, hi, k=k, folds_per_block=tiles_per_block,
                                reps=reps, seed=seed, fold_loads=cfg.block_shape[0],
                                load_range=value_range(lp.bits, lp.signed))

    def run_model(self, cfg, stream: FoldStream, *, interpreted: bool = False,
                  keep_rows: bool = False) -> ModelRun:
        """Free-run `stream` through a fresh model: one run_folds call per block copy of the stream
        port (drain only after the last). The load port runs ahead on its own: each call is offered the
        next loads of the endless load sequence (up to two blocks), exactly as the harness offers them,
        and the loads a call did not take are offered again by the next. Only the run calls are timed."""
        m = self.model(cfg, interpreted=interpreted)
        bits = self.out_lane_bits(cfg)
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
            h = (h + checksum_rows(oc, bits, rows)) & 0xFFFFFFFFFFFFFFFF
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

    def in_beats(self, cfg, stream: FoldStream) -> dict:
        load, rows = self.ports(cfg)
        return {load.name: ([stream.loads], None), rows.name: ([stream.a], stream.last)}

    def expected_rows(self, cfg, stream: FoldStream) -> int:
        return stream.nbeats


StationaryAdapter = StationaryStreamAdapter   # the name of the WS/IS-only adapter it replaced

# Adapters per engine name, then per cfg.mapping: filled from each registry entry's
# bench["adapters"] ({mapping: "module:attr"} of an Adapter class or instance) when first asked.
ENGINES: dict[str, dict[str, Adapter]] = {}


def register_adapter(engine: str, adapter: Adapter, mappings: tuple[str, ...]) -> Adapter:
    """Bench the registry's engine `engine` with `adapter` for configs whose `mapping` is in `mappings`
    (what a registry entry's bench["adapters"] does; for adapters defined outside the registry)."""
    for m in mappings:
        ENGINES.setdefault(engine, {})[m] = adapter
    return adapter


_BY_SPEC: dict[str, Adapter] = {}   # one adapter object per "module:attr" spec


def _load(spec: str) -> Adapter:
    if spec not in _BY_SPEC:
        module, _, attr = spec.partition(":")
        obj = getattr(importlib.import_module(module), attr)
        _BY_SPEC[spec] = obj() if isinstance(obj, type) else obj
    return _BY_SPEC[spec]


def adapter_of(cfg) -> Adapter:
    """The adapter of a config: by its engine's registry name and its mapping."""
    eng = engine_of(cfg)
    by_mapping = ENGINES.setdefault(eng.name, {})
    spec = eng.bench.get("adapters", {}).get(cfg.mapping)
    if cfg.mapping not in by_mapping and spec is not None:
        by_mapping[cfg.mapping] = _load(spec)
    try:
        return by_mapping[cfg.mapping]
    except KeyError:
        known = ", ".join(f"{e.name}/{m}" for e in registered() for m in e.bench.get("adapters", {}))
        raise KeyError(f"no bench adapter for engine {cfg.engine!r} with mapping {cfg.mapping!r} "
                       f"(registered: {known})") from None


def registered() -> list:
    """The registry's engines, in registration order."""
    from tpesim.registry import ENGINES as REGISTRY

    return list(REGISTRY.values())


ALL_PATHS = ("model", "interpreted", "verilator_cpp", "cocotb_verilator", "cocotb_icarus")


def default_cases() -> list[BenchCase]:
    """Every registered engine's bench cases (registry entry bench["cases"]: name, config fields,
    paths, params), in registry order."""
    out = []
    for eng in registered():
        for c in eng.bench.get("cases", ()):
            out.append(BenchCase(c["name"], eng.name, eng.config(**c["fields"]), tuple(c["paths"]),
                                 dict(c.get("params", {}))))
    return out


CASES: list[BenchCase] = default_cases()

# The design's bar for the cycle level (DESIGN.md, fidelity ladder): >= 3x Verilator's own C++ speed
# (aim 10x), and compiling the core must pay: >= 30x its interpreted run.
TARGETS = [
    Target("model", "ratio_vs_verilator_cpp", ">=", 3.0,
           "cycle model >= 3x Verilator C++ (DESIGN.md), medians of the two paths"),
    Target("model", "ratio_vs_verilator_cpp_paired", ">=", 3.0,
           "cycle model >= 3x Verilator C++ (DESIGN.md), median of back-to-back pairs"),
    Target("model", "ratio_vs_interpreted", ">=", 30.0,
           "compiled cycle model >= 30x the same core interpreted"),
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
