"""tpesim: cycle-accurate simulation of tensor processing engines, proven against their own RTL.

The public API. Engines are configs (`SystolicConfig`, `AdderTreeConfig`, ...) registered in
`ENGINES`; every function here takes any registered engine's config.

Examples
--------
>>> import numpy as np, tpesim
>>> cfg = tpesim.AdderTreeConfig(lanes=16, cols=8, encoding="ent")
>>> a = np.ones((4, 32), dtype=np.int64); b = np.ones((32, 8), dtype=np.int64)
>>> res = tpesim.run_gemm(cfg, a, b)
>>> res.matched, int(res.c[0, 0])
(True, 32)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import (EngineConfig, Lanes, Operand, Stream, config_from_dict, config_from_json,
                     config_from_toml)
from .engines.adder_tree import AdderTreeConfig
from .engines.systolic import SystolicConfig
from .errors import (ConfigError, ConfigTypeError, CosimMismatch, FileFormatError, StreamError,
                     TpesimError, WorkloadError)
from .memory import MemoryConfig
from .registry import ENGINES, Engine, engine_of, get_engine

if TYPE_CHECKING:  # the faces outside `sim` load on first use (see __getattr__)
    from .cosim.runner import CosimResult, run_cosim
    from .kernels.conv import ConvLayer
    from .kernels.gemm import GemmResult, run_conv, run_gemm, time_conv, time_gemm

__all__ = [
    "EngineConfig", "Stream", "Lanes", "Operand", "SystolicConfig", "AdderTreeConfig",
    "MemoryConfig", "ConvLayer", "config_from_dict", "config_from_json", "config_from_toml",
    "ENGINES", "Engine", "get_engine", "engine_of",
    "run_gemm", "time_gemm", "run_conv", "time_conv", "GemmResult",
    "write_verilog", "to_verilog", "run_cosim", "CosimResult",
    "TpesimError", "ConfigError", "ConfigTypeError", "WorkloadError", "FileFormatError",
    "StreamError", "CosimMismatch", "__version__",
]

_LAZY = {
    "run_gemm": ("tpesim.kernels.gemm", "run_gemm"), "time_gemm": ("tpesim.kernels.gemm", "time_gemm"),
    "run_conv": ("tpesim.kernels.gemm", "run_conv"), "time_conv": ("tpesim.kernels.gemm", "time_conv"),
    "GemmResult": ("tpesim.kernels.gemm", "GemmResult"), "ConvLayer": ("tpesim.kernels.conv", "ConvLayer"),
    "run_cosim": ("tpesim.cosim.runner", "run_cosim"), "CosimResult": ("tpesim.cosim.runner", "CosimResult"),
}


def write_verilog(cfg: EngineConfig, path, name: str | None = None):
    """Write the synthesizable Verilog of `cfg`'s engine to `path` (top module `name`, default
    `cfg.name`); returns the path."""
    return engine_of(cfg).load("rtl").write_verilog(cfg, path, name=name)


def to_verilog(cfg: EngineConfig, name: str | None = None) -> str:
    """The Verilog text of `cfg`'s engine."""
    return engine_of(cfg).load("rtl").to_verilog(cfg, name)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("tpesim")
        except PackageNotFoundError:
            return "unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
