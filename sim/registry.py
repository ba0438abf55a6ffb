"""The engine registry: one entry per engine names every face of it; the shared layers read only this.

Faces outside `sim` (RTL, cosim stimulus, kernel backends) are named as "module:attribute" strings
and imported when first used, so `sim` never imports `rtl`, `cosim` or `kernels` at import time.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

from .config import EngineConfig
from .errors import ConfigError, ConfigTypeError

__all__ = ["Engine", "ENGINES", "register", "get_engine", "engine_of", "engine_names"]


@dataclass(frozen=True)
class Engine:
    """Every face of one engine.

    Attributes
    ----------
    name : str
        Registry name (`tpesim run gemm --engine NAME`, `tpesim verilog NAME`, `tpesim cosim NAME`).
    config : type
        Its `EngineConfig` subclass; CLI options are named after its fields.
    summary : str
        One line for `tpesim engines`.
    reference, model, timing, cycle_backend, rtl, stimulus : str
        "module:attribute" of: the functional reference (cfg, a, b) -> C; the cycle model class
        (cfg, interpreted=, vcd_path=) with `step`; the tile-level timing factory cfg ->
        `sim.timing.EngineTiming`; the cycle-level backend factory cfg -> class (kernels);
        the RTL module (with `component`, `to_verilog`, `write_verilog`); the cosim stimulus
        module (with `make_case(cfg, rng, blocks, max_rows)`).
    bench : dict
        `make bench` (cosim/bench): "adapters" maps each `cfg.mapping` to the "module:attr" of its
        bench adapter; "cases" lists dicts of name, config "fields", "paths" and "params".
    variants : tuple of str
        Config field that selects a variant of the engine, if any (the systolic dataflows), with
        its values: shown by `tpesim engines`, never used as a lookup key by shared layers.
    examples : tuple of dict
        Small configs (field values) covering the engine's variants: the shared behavioural
        suite (tests/test_levels.py) runs every level on each.
    """

    name: str
    config: type
    summary: str
    reference: str
    model: str
    timing: str
    cycle_backend: str
    rtl: str
    stimulus: str
    bench: dict = field(default_factory=dict)
    variants: tuple[str, tuple[str, ...]] | None = None
    examples: tuple[dict, ...] = ()

    def load(self, face: str) -> Any:
        """Import and return one face ("reference", "model", "timing", ...)."""
        spec = getattr(self, face)
        module, _, attr = spec.partition(":")
        mod = importlib.import_module(module)
        return getattr(mod, attr) if attr else mod

    def options(self) -> list[dataclasses.Field]:
        """The config's fields, in declaration order (the CLI's engine options)."""
        return list(dataclasses.fields(self.config))


ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    if not (isinstance(engine.config, type) and issubclass(engine.config, EngineConfig)):
        raise ConfigTypeError(f"config must be an EngineConfig subclass, not {engine.config!r}")
    if engine.config.engine != engine.name:
        raise ConfigError(f"config {engine.config.__name__} is tagged {engine.config.engine!r}, "
                          f"not {engine.name!r}")
    ENGINES[engine.name] = engine
    return engine


def engine_names() -> tuple[str, ...]:
    return tuple(ENGINES)


def get_engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        known = ", ".join(repr(k) for k in ENGINES)
        raise ConfigError(f"engine must be one of {known}, not {name!r}") from None


def engine_of(cfg: Any) -> Engine:
    """The registry entry of a config instance."""
    if not isinstance(cfg, EngineConfig):
        raise ConfigTypeError(f"cfg must be an engine config ({', '.join(e.config.__name__ for e in ENGINES.values())}), "
                              f"not {type(cfg).__name__}")
    return get_engine(cfg.engine)


# Bench cases (`make bench`, cosim/bench): name, config fields, paths, params (cosim.bench.cases.BenchCase),
# and the bench adapter per `cfg.mapping`.
_BENCH = "tpesim.cosim.bench.cases:"
_ALL_PATHS = ("model", "interpreted", "verilator_cpp", "cocotb_verilator", "cocotb_icarus")
_SYSTOLIC_BENCH = {
    "adapters": {"os": _BENCH + "SystolicAdapter", "ws": _BENCH + "StationaryStreamAdapter",
                 "is": _BENCH + "StationaryStreamAdapter"},
    "cases": (
        {"name": "systolic-os-8x8", "fields": {"rows": 8, "cols": 8, "in_bits": 8, "acc_bits": 32},
         "paths": _ALL_PATHS, "params": {"k": 64}},
        {"name": "systolic-os-16x16", "fields": {"rows": 16, "cols": 16, "in_bits": 8, "acc_bits": 32},
         "paths": _ALL_PATHS[:-1], "params": {"k": 64}},
    ) + tuple(
        # WS (IS is the same hardware and core, only the kernel mapping differs): folds of k=64 rows.
        # `seconds_scale` keeps the Verilator runs short (~1-4 s at 5-15x slower than the model). No
        # 16x16 double-buffer case: its Verilator build alone takes ~75 s.
        {"name": f"systolic-ws-{n}x{n}{'-db' if db else ''}",
         "fields": {"rows": n, "cols": n, "dataflow": "ws", "in_bits": 8, "acc_bits": 32, "double_buffer": db},
         "paths": ("model", "interpreted", "verilator_cpp"),
         "params": {"k": 64, "tiles_per_block": 256, "seconds_scale": 0.1}}
        for n, db in ((8, False), (16, False), (8, True))),
}
# int8 signed EN-T at lanes x cols 16x16 and 16x32, plus plain at 16x16; folds of k=64 rows.
# seconds_scale 0.02: Verilator runs the EN-T RTL at only ~5-15 k cycles/s (plain ~120 k; 99.6 % of the
# time inside the Verilated eval), so one Verilator run takes ~5-40 s; the clean Verilator builds take
# ~6 (16x16) and ~15 minutes (16x32) on the 2-core VM.
_ADDER_TREE_BENCH = {
    "adapters": {"ws": _BENCH + "StationaryStreamAdapter"},
    "cases": tuple(
        {"name": f"adder-tree-{enc}-{lanes}x{cols}",
         "fields": {"lanes": lanes, "cols": cols, "in_bits": 8, "signed": True, "encoding": enc},
         "paths": ("model", "interpreted", "verilator_cpp", "cocotb_verilator"),
         "params": {"k": 64, "tiles_per_block": 256, "seconds_scale": 0.02}}
        for lanes, cols, enc in ((16, 16, "ent"), (16, 32, "ent"), (16, 16, "plain"))),
}


def _builtin() -> None:
    from .engines.adder_tree import AdderTreeConfig
    from .engines.systolic import SystolicConfig

    register(Engine(
        name="systolic", config=SystolicConfig,
        summary="R x C systolic array of MAC PEs; dataflows os (output-stationary), ws, is",
        reference="tpesim.engines.systolic:reference", model="tpesim.engines.systolic:SystolicModel",
        timing="tpesim.timing:systolic_timing", cycle_backend="tpesim.kernels.gemm:systolic_cycle_backend",
        rtl="tpesim.rtl.systolic", stimulus="tpesim.cosim.stimulus.systolic",
        bench=_SYSTOLIC_BENCH,
        variants=("dataflow", ("os", "ws", "is")),
        examples=({"rows": 4, "cols": 3}, {"rows": 3, "cols": 5, "in_bits": 4},
                  {"rows": 3, "cols": 4, "dataflow": "ws"},
                  {"rows": 4, "cols": 2, "dataflow": "ws", "double_buffer": True},
                  {"rows": 2, "cols": 3, "dataflow": "is", "in_bits": 16, "signed": False,
                   "acc_bits": 40},
                  {"rows": 3, "cols": 3, "dataflow": "is", "double_buffer": True})))
    register(Engine(
        name="adder_tree", config=AdderTreeConfig,
        summary="multiplier-adder tree (HPCA'25 OPT2): lanes x cols weight-stationary block, "
                "one pipelined reduction tree per column, plain or EN-T encoding",
        reference="tpesim.engines.adder_tree:reference",
        model="tpesim.engines.adder_tree:AdderTreeModel",
        timing="tpesim.tile_adder_tree:adder_tree_timing",
        cycle_backend="tpesim.kernels.stationary:stationary_cycle_backend",
        rtl="tpesim.rtl.adder_tree", stimulus="tpesim.cosim.stimulus.adder_tree",
        bench=_ADDER_TREE_BENCH,
        examples=({"lanes": 4, "cols": 3}, {"lanes": 16, "cols": 4, "encoding": "ent"},
                  {"lanes": 5, "cols": 3, "encoding": "ent", "double_buffer": True},
                  {"lanes": 7, "cols": 2, "in_bits": 4, "signed": False},
                  {"lanes": 3, "cols": 2, "in_bits": 16, "levels_per_stage": 2,
                   "double_buffer": True, "acc_bits": 40})))
    from .engines.nm_sparse import NmSparseConfig

    register(Engine(
        name="nm_sparse", config=NmSparseConfig,
        summary="N:M sparse training engine (our design after SAT/BDWP): rows sparse lanes x cols "
                "columns, weight-stationary; modes ff/bp (B pruned N:M along K) and wg (dense)",
        reference="tpesim.engines.nm_sparse:reference",
        model="tpesim.engines.nm_sparse:NmSparseModel",
        timing="tpesim.tile_nm_sparse:nm_sparse_timing",
        cycle_backend="tpesim.kernels.nm_sparse:nm_sparse_cycle_backend",
        rtl="tpesim.rtl.nm_sparse", stimulus="tpesim.cosim.stimulus.nm_sparse",
        bench={"adapters": {"ws": "tpesim.cosim.bench.nm_sparse:NmSparseBenchAdapter"},
               "cases": tuple(
                   {"name": f"nm-2of8-{r}x{c}",
                    "fields": {"rows": r, "cols": c, "sparsity": "2:8", "mode": "ff"},
                    "paths": ("model", "interpreted", "verilator_cpp"),
                    "params": {"k": 64, "tiles_per_block": 256, "seconds_scale": 0.05}}
                   for r, c in ((8, 8), (16, 16)))},
        variants=("mode", ("ff", "bp", "wg")),
        examples=({"rows": 3, "cols": 2, "sparsity": "2:8"},
                  {"rows": 2, "cols": 3, "sparsity": "2:4", "mode": "bp", "double_buffer": True},
                  {"rows": 4, "cols": 2, "sparsity": "2:4", "mode": "wg"},
                  {"rows": 3, "cols": 3, "sparsity": "dense"},
                  {"rows": 2, "cols": 2, "sparsity": "1:8", "in_bits": 16, "acc_bits": 40},
                  {"rows": 5, "cols": 2, "sparsity": "4:8", "mode": "ff", "double_buffer": True},
                  {"rows": 3, "cols": 2, "sparsity": "1:4", "mode": "wg", "double_buffer": True},
                  {"rows": 3, "cols": 2, "sparsity": "2:8", "load": "dense"},
                  {"rows": 2, "cols": 3, "sparsity": "2:4", "mode": "bp", "double_buffer": True,
                   "load": "dense"})))
    from .engines.lut import LutConfig

    register(Engine(
        name="lut", config=LutConfig,
        summary="LUT Tensor Core (ISCA'25): 1-4 bit / ternary weights x int8 (or fp16) activations "
                "without multipliers; (symmetrized) tables per row and K-group, one weight bit-plane "
                "per cycle",
        reference="tpesim.engines.lut:reference", model="tpesim.engines.lut:LutModel",
        timing="tpesim.tile_lut:lut_timing",
        cycle_backend="tpesim.kernels.lut_backend:lut_cycle_backend",
        rtl="tpesim.rtl.lut", stimulus="tpesim.cosim.stimulus.lut",
        # M2 N64 K4 (the paper's tile), int8 activations, W2 and W4; 64 K-groups per tile.
        # seconds_scale 0.005: Verilator runs this RTL at only ~50 k cycles/s on the loaded VM (128
        # 33-bit accumulators and 8:1 muxes, 16 table entries rebuilt per beat), so its stream is
        # kept to ~1-2 s of Verilator time; its clean build takes ~2-4 minutes
        bench={"adapters": {"os": "tpesim.cosim.bench.lut:LutAdapter"},
               "cases": tuple({"name": f"lut-w{w}-2x64", "fields": {"tile_m": 2, "tile_n": 64,
                                                                      "w_bits": w},
                               "paths": ("model", "interpreted", "verilator_cpp"),
                               "params": {"k": 64, "tiles_per_block": 64,
                                          "seconds_scale": 0.005}} for w in (2, 4))},
        examples=({"tile_m": 2, "tile_n": 3},
                  {"tile_m": 2, "tile_n": 3, "act": "fp16", "w_interp": "pm1"},
                  {"tile_m": 3, "tile_n": 2, "w_bits": 3, "w_interp": "unsigned", "pipe_stages": 2},
                  {"tile_m": 3, "tile_n": 2, "w_bits": 3, "w_interp": "pm1", "act": "fp16",
                   "acc": "fp32", "sym": False, "pipe_stages": 2},
                  {"tile_m": 1, "tile_n": 4, "w_bits": "ternary"},
                  {"tile_m": 2, "tile_n": 2, "w_bits": 4, "w_interp": "pm1", "group": 3,
                   "sym": False},
                  {"tile_m": 2, "tile_n": 3, "w_bits": 1, "pipe_stages": 2, "sym": False},
                  {"tile_m": 1, "tile_n": 2, "w_bits": 1, "w_interp": "pm1", "group": 2},
                  {"tile_m": 2, "tile_n": 3, "w_bits": 2, "act": "fp16"},
                  {"tile_m": 1, "tile_n": 3, "w_bits": "ternary", "act": "fp16", "acc": "fp32"},
                  {"tile_m": 2, "tile_n": 2, "w_bits": 3, "w_interp": "unsigned", "act": "fp16",
                   "sym": False, "pipe_stages": 2})))


_builtin()
