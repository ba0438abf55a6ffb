"""Systolic array engine: its config (the single source of truth) and its cycle model.

The config yields the port list used by the cycle model, the Amaranth RTL (rtl/systolic.py) and the
cocotb testbench (cosim/). The cycle model is the register-level OS array of `_systolic_core`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import EngineConfig, Lanes, Operand, Stream, check_bool, check_choice, check_int
from ..errors import ConfigError, WorkloadError
from ..numerics import matmul_wrapped, value_range
from . import load_core
from ._folds import FoldStreamMixin
from ._vcd import StreamStepMixin

__all__ = ["SystolicConfig", "SystolicModel", "PreloadModel", "reference"]

DATAFLOWS = ("os", "ws", "is")
IN_BITS = (4, 8, 16)
MAX_DIM = 512


@dataclass(frozen=True, kw_only=True)
class SystolicConfig(EngineConfig):
    """An R x C systolic array of MAC PEs.

    Parameters
    ----------
    rows, cols : int
        Array height R and width C (1..512).
    dataflow : {"os", "ws", "is"}
        Which operand stays in the PEs: outputs, weights or inputs.
    in_bits : {4, 8, 16}
        Width of each operand lane.
    signed : bool
        Two's-complement operands (True) or unsigned.
    acc_bits : int or None
        Accumulator and result width; wraps like the RTL register. Default 32 (48 for 16-bit inputs).
        From 2*in_bits to 64 (63 when unsigned, so a value fits the model's int64).
    double_buffer : bool
        WS/IS only: a shadow copy of the stationary operand loads while the active one computes.
    """

    rows: int = 8
    cols: int = 8
    dataflow: str = "os"
    in_bits: int = 8
    signed: bool = True
    acc_bits: int | None = None
    double_buffer: bool = False

    def __post_init__(self):
        check_int("rows", self.rows, lo=1, hi=MAX_DIM)
        check_int("cols", self.cols, lo=1, hi=MAX_DIM)
        check_choice("dataflow", self.dataflow, DATAFLOWS)
        check_bool("double_buffer", self.double_buffer)
        if self.double_buffer and self.dataflow == "os":
            raise ConfigError("double_buffer must be False for dataflow 'os' (it double-buffers the "
                              "stationary operand of 'ws'/'is'; OS already has a shadow result bank), "
                              "not True")
        check_int("in_bits", self.in_bits)
        check_choice("in_bits", self.in_bits, IN_BITS)
        check_bool("signed", self.signed)
        if self.acc_bits is None:
            object.__setattr__(self, "acc_bits", 32 if self.in_bits <= 8 else 48)
        hi = 64 if self.signed else 63
        check_int("acc_bits", self.acc_bits, lo=2 * self.in_bits, hi=hi,
                  rule=f"an integer from {2 * self.in_bits} (2*in_bits) to {hi}")

    engine = "systolic"

    # -- streams, shared by model, RTL and testbench ---------------------------------------------
    def streams(self) -> tuple[Stream, ...]:
        R, C, w, acc, sg = self.rows, self.cols, self.in_bits, self.acc_bits, self.signed
        out = Stream("out", "out", "out_valid", "out_ready", (Lanes("out_c", C, acc, sg),),
                     last="out_last")
        if self.dataflow == "os":
            # one beat = column k of the A tile (R lanes) and row k of the B tile (C lanes)
            return (Stream("in", "in", "in_valid", "in_ready",
                           (Lanes("in_a", R, w, sg), Lanes("in_b", C, w, sg)), last="in_last"),
                    out)
        # ws / is: the stationary tile arrives on the load port, one row (C lanes) per beat; the
        # moving operand on the stream port, R lanes per beat; one output row (C lanes) per beat.
        return (Stream("load", "in", "load_valid", "load_ready", (Lanes("load_data", C, w, sg),)),
                Stream("in", "in", "in_valid", "in_ready", (Lanes("in_data", R, w, sg),),
                       last="in_last"),
                out)

    def operands(self) -> tuple[Operand, ...]:
        return (Operand("a", "a", self.in_bits, self.signed),
                Operand("b", "b", self.in_bits, self.signed),
                Operand("c", "c", self.acc_bits, self.signed))

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.rows * self.cols

    @property
    def mapping(self) -> str:
        """How a GEMM maps onto the engine: which operand is held (the dataflow)."""
        return self.dataflow

    @property
    def block_shape(self) -> tuple[int, int]:
        """(reduction rows R, output columns C) of a held block (WS/IS)."""
        return self.rows, self.cols

    def lanes(self, port: str) -> tuple[int, int]:
        """(lanes, bits per lane) of a data port."""
        for s in self.streams():
            for p in s.payload:
                if p.port == port:
                    return p.lanes, p.bits
        raise KeyError(port)

    @property
    def in_range(self) -> tuple[int, int]:
        return value_range(self.in_bits, self.signed)

    @property
    def name(self) -> str:
        s = "s" if self.signed else "u"
        db = "_db" if self.double_buffer else ""
        return (f"systolic_{self.dataflow}_{self.rows}x{self.cols}_{s}{self.in_bits}"
                f"_acc{self.acc_bits}{db}")


def reference(cfg: SystolicConfig, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Functional model: exact A @ B wrapped to the accumulator width."""
    return matmul_wrapped(a, b, cfg.acc_bits, cfg.signed)


class SystolicModel(StreamStepMixin):
    """Cycle model of the engine, with the RTL's ports.

    `step(inputs)` advances one clock in lockstep (cosim); `run_beats(...)` (OS) or `run_folds(...)`
    (WS/IS) advance many cycles in compiled code (kernels). Port values in `step` are raw bit
    patterns, as on the RTL's wires. `SystolicModel(cfg)` returns a `PreloadModel` for WS/IS.
    """

    def __new__(cls, cfg: SystolicConfig, **kw):
        if cls is SystolicModel and getattr(cfg, "dataflow", "os") != "os":
            return super().__new__(PreloadModel)
        return super().__new__(cls)

    def __init__(self, cfg: SystolicConfig, *, interpreted: bool | None = None,
                 vcd_path: str | Path | None = None):
        self.cfg = cfg
        self.core_module = load_core("_systolic_core", interpreted)
        self.core = self.core_module.OsCore(cfg.rows, cfg.cols, cfg.acc_bits, cfg.signed)
        self._init_waves(vcd_path)

    # -- lockstep ------------------------------------------------------------------------------
    # -- free running --------------------------------------------------------------------------
    def run_beats(self, beats_a: np.ndarray, beats_b: np.ndarray, beats_last: np.ndarray, *,
                  valid: np.ndarray | None = None, ready: np.ndarray | None = None,
                  valid_from: int = 0, ready_from: int = 0, max_cycles: int = 1 << 62,
                  drain: bool = True):
        """Stream a block of beats through the engine. Returns (output rows, their cycles, cycles run).

        The source is valid from cycle `valid_from` of this call on, the sink ready from `ready_from`
        on (holds cost O(1)); `valid`/`ready` are per-cycle schedules on top (0 = not valid/ready)."""
        beats_a = np.ascontiguousarray(beats_a, dtype=np.int64)
        beats_b = np.ascontiguousarray(beats_b, dtype=np.int64)
        beats_last = np.ascontiguousarray(beats_last, dtype=np.int64)
        n = beats_a.shape[0]
        if n == 0:
            beats_a = np.zeros((1, self.cfg.rows), np.int64)
            beats_b = np.zeros((1, self.cfg.cols), np.int64)
            beats_last = np.zeros(1, np.int64)
        ntiles = int(beats_last.sum()) + 1 if n else 1
        out_c = np.zeros((ntiles * self.cfg.rows, self.cfg.cols), np.int64)
        stamp = np.zeros(ntiles * self.cfg.rows, np.int64)
        empty = np.zeros(0, np.uint8)
        valid = empty if valid is None else np.ascontiguousarray(valid, dtype=np.uint8)
        ready = empty if ready is None else np.ascontiguousarray(ready, dtype=np.uint8)
        nxt, nout, cycles = self.core.run(beats_a, beats_b, beats_last, 0 if n else 1, out_c, stamp,
                                          0, valid, ready, max_cycles, 1 if drain else 0,
                                          max(0, int(valid_from)), max(0, int(ready_from)))
        if n and nxt != n:
            raise WorkloadError(f"max_cycles ({max_cycles}) ended the run after {nxt} of {n} beats")
        return out_c[:nout], stamp[:nout], int(cycles)

class PreloadModel(FoldStreamMixin, SystolicModel):
    """Cycle model of the preload array: WS and IS (an operand block preloaded through a shift chain;
    see sim/engines/_preload_core.py for the hardware)."""

    def __init__(self, cfg: SystolicConfig, *, interpreted: bool | None = None,
                 vcd_path: str | Path | None = None):
        if cfg.dataflow == "os":
            raise ConfigError("dataflow must be 'ws' or 'is' for PreloadModel, not 'os'")
        self.cfg = cfg
        self.core_module = load_core("_preload_core", interpreted)
        self.core = self.core_module.StationaryCore(cfg.rows, cfg.cols, cfg.acc_bits, cfg.signed,
                                                    cfg.double_buffer)
        self._init_waves(vcd_path)

    @staticmethod
    def load_order(w: np.ndarray) -> np.ndarray:
        """A stationary tile's load beats in the order the shift chain takes them (row R-1 first)."""
        return w[::-1]

    def run_beats(self, *a, **k):
        raise ConfigError(f"run_beats is the OS stream; dataflow {self.cfg.dataflow!r} uses run_folds")

    def _fold_geometry(self) -> tuple[int, int, int]:
        """(load lanes, stream lanes, rows still in flight at most) for `run_folds`."""
        return self.cfg.cols, self.cfg.rows, self.cfg.rows + self.cfg.cols + 1
