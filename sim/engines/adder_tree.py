"""Multiplier-adder-tree engine (HPCA'25 OPT2): its config (the single source of truth) and cycle model.

A weight-stationary lanes x cols block of B, one A row of `lanes` values per beat, one pipelined
reduction tree per output column; the micro-architecture and its timing are in docs/adder_tree.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import EngineConfig, Lanes, Operand, Stream, check_bool, check_choice, check_int
from ..errors import ConfigError
from ..numerics import matmul_wrapped, value_range

__all__ = ["AdderTreeConfig", "AdderTreeModel", "reference", "ENCODINGS"]

ENCODINGS = ("plain", "ent")
IN_BITS = (4, 8, 16)
MAX_LANES = 256
MAX_COLS = 256


@dataclass(frozen=True, kw_only=True)
class AdderTreeConfig(EngineConfig):
    """A multiplier-adder-tree TPE: `cols` dot-product columns of length `lanes`.

    Parameters
    ----------
    lanes : int
        Reduction length k of each tree: A values per row beat, B rows per weight block (1..256).
    cols : int
        Output columns n: B columns per weight block, results per output beat (1..256).
    in_bits : {4, 8, 16}
        Operand width.
    signed : bool
        Two's-complement operands (True) or unsigned.
    encoding : {"plain", "ent"}
        "plain": one multiplier per lane. "ent": the HPCA'25 same-bit-weight design, for signed
        8-bit operands only: A recoded into 4 EN-T radix-4 digits by one encoder shared by all
        columns, partial products {-2B, -B, 0, +B, +2B}, one narrow tree per bit weight, then one
        shift-add.
    levels_per_stage : int
        Radix-4 tree levels between two pipeline registers (1..8; 1 = a register after every level).
    double_buffer : bool
        A second weight bank loads the next block while the current one computes.
    acc_bits : int or None
        Width of the accumulator buffer that sums K-folds when K > lanes (wraps like a register).
        Default 32 (48 for 16-bit operands); from `result_bits` to 64 (63 unsigned).

    Attributes
    ----------
    result_bits : int
        Width of one column's exact result: 2*in_bits + ceil(log2(lanes)).
    latency : int
        Cycles from a row beat accepted to its result row on `out_c` with no stalls.
    """

    lanes: int = 16
    cols: int = 16
    in_bits: int = 8
    signed: bool = True
    encoding: str = "plain"
    levels_per_stage: int = 1
    double_buffer: bool = False
    acc_bits: int | None = None

    engine = "adder_tree"

    def __post_init__(self):
        check_int("lanes", self.lanes, lo=1, hi=MAX_LANES)
        check_int("cols", self.cols, lo=1, hi=MAX_COLS)
        check_int("in_bits", self.in_bits)
        check_choice("in_bits", self.in_bits, IN_BITS)
        check_bool("signed", self.signed)
        check_choice("encoding", self.encoding, ENCODINGS)
        if self.encoding == "ent" and (self.in_bits != 8 or not self.signed):
            kind = "signed" if self.signed else "unsigned"
            raise ConfigError(f"encoding 'ent' needs signed 8-bit operands, not {kind} "
                              f"{self.in_bits}-bit")
        check_int("levels_per_stage", self.levels_per_stage, lo=1, hi=8)
        check_bool("double_buffer", self.double_buffer)
        if self.acc_bits is None:
            object.__setattr__(self, "acc_bits", 32 if self.in_bits <= 8 else 48)
        hi = 64 if self.signed else 63
        lo = self.result_bits
        check_int("acc_bits", self.acc_bits, lo=lo, hi=hi,
                  rule=f"an integer from {lo} (result_bits) to {hi}")

    # -- derived widths and timing ----------------------------------------------------------------
    @property
    def result_bits(self) -> int:
        return 2 * self.in_bits + math.ceil(math.log2(self.lanes))

    @property
    def tree_levels(self) -> int:
        """Radix-4 reduction levels: ceil(log4(lanes)) (0 for a single lane)."""
        n, d = self.lanes, 0
        while n > 1:
            n = -(-n // 4)
            d += 1
        return d

    @property
    def tree_stages(self) -> int:
        return -(-self.tree_levels // self.levels_per_stage)

    @property
    def front_stages(self) -> int:
        """Registers before column 0: the input register (+ EN-T digit and vector registers)."""
        return 3 if self.encoding == "ent" else 1

    @property
    def column_latency(self) -> int:
        """Cycles from a row accepted to column 0's result register: front, column forward,
        partial products, tree stages (+ the EN-T shift-add). Column j is j cycles later."""
        return self.front_stages + 2 + self.tree_stages + (1 if self.encoding == "ent" else 0)

    @property
    def latency(self) -> int:
        return self.column_latency + self.cols - 1

    @property
    def drain_cycles(self) -> int:
        """Advancing cycles after a block's last row until no row reads that block's weights."""
        return self.front_stages + self.cols

    # cycles from a load beat taken to its row written (none: the bank takes the beat directly)
    load_latency = 0

    @property
    def mapping(self) -> str:
        """How a GEMM maps onto the engine: B blocks held, A rows streamed (weight-stationary)."""
        return "ws"

    @property
    def block_shape(self) -> tuple[int, int]:
        """(reduction rows, output columns) of a held weight block."""
        return self.lanes, self.cols

    @property
    def banks(self) -> int:
        return 2 if self.double_buffer else 1

    @property
    def in_range(self) -> tuple[int, int]:
        return value_range(self.in_bits, self.signed)

    # -- streams and operands ---------------------------------------------------------------------
    def streams(self) -> tuple[Stream, ...]:
        w, sg = self.in_bits, self.signed
        return (
            Stream("load", "in", "load_valid", "load_ready",
                   (Lanes("load_data", self.cols, w, sg),)),
            Stream("in", "in", "in_valid", "in_ready", (Lanes("in_data", self.lanes, w, sg),),
                   last="in_last"),
            Stream("out", "out", "out_valid", "out_ready",
                   (Lanes("out_c", self.cols, self.result_bits, sg),), last="out_last"),
        )

    def operands(self) -> tuple[Operand, ...]:
        return (Operand("a", "a", self.in_bits, self.signed),
                Operand("b", "b", self.in_bits, self.signed),
                Operand("c", "c", self.acc_bits, self.signed))

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.lanes * self.cols

    @property
    def name(self) -> str:
        s = "s" if self.signed else "u"
        db = "_db" if self.double_buffer else ""
        lps = f"_lps{self.levels_per_stage}" if self.levels_per_stage != 1 else ""
        return (f"adder_tree_{self.encoding}_{self.lanes}x{self.cols}_{s}{self.in_bits}"
                f"{lps}_acc{self.acc_bits}{db}")


def reference(cfg: AdderTreeConfig, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Functional model: exact A @ B wrapped to the accumulator buffer's width."""
    return matmul_wrapped(a, b, cfg.acc_bits, cfg.signed)


# -- cycle model ----------------------------------------------------------------------------------
from pathlib import Path  # noqa: E402

from . import load_core  # noqa: E402
from ._folds import FoldStreamMixin  # noqa: E402
from ._vcd import StreamStepMixin  # noqa: E402


class AdderTreeModel(FoldStreamMixin, StreamStepMixin):
    """Cycle model of the adder-tree engine with the RTL's ports (sim/engines/_adder_tree_core.py).

    `step(inputs)` advances one clock in lockstep (cosim); `run_folds(...)` advances many cycles in
    compiled code (kernels), with PreloadModel.run_folds' contract. Port values in `step` are raw
    bit patterns, as on the RTL's wires; each lane of `out_c` is `result_bits` wide.
    """

    def __init__(self, cfg: AdderTreeConfig, *, interpreted: bool | None = None,
                 vcd_path: str | Path | None = None):
        self.cfg = cfg
        self.core_module = load_core("_adder_tree_core", interpreted)
        self.core = self.core_module.AdderTreeCore(cfg.lanes, cfg.cols, cfg.result_bits, cfg.signed,
                                                   cfg.latency, cfg.drain_cycles, cfg.banks)
        self._init_waves(vcd_path)

    # -- lockstep ------------------------------------------------------------------------------
    def flight_exits(self) -> np.ndarray:
        """Cycle in which each row still in flight will leave if the sink is ready from now on, in
        stream order (what the held-block backend asks when a fold shorter than the latency is
        followed by the next fold's last row before its own last row has left)."""
        return np.asarray(self.core.flight_exits(), np.int64)

    def column_result(self, j: int) -> int:
        """Column j's result register this cycle (see AdderTreeCore.column_result)."""
        return int(self.core.column_result(j))

    @staticmethod
    def load_order(w: np.ndarray) -> np.ndarray:
        """A weight block's load beats in the order the load port takes them: row 0 first."""
        return np.asarray(w)

    # -- free running --------------------------------------------------------------------------
    def _fold_geometry(self) -> tuple[int, int, int]:
        """(load lanes, stream lanes, rows still in flight at most) for `run_folds`."""
        return self.cfg.cols, self.cfg.lanes, self.cfg.latency + 1
