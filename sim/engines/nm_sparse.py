"""N:M sparse training engine (our design after SAT/BDWP): config, functional reference, cycle model
and the hardware compressor's cycle cost; contract and derivations in docs/nm_sparse.md."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import nm
from ..config import EngineConfig, Lanes, Operand, Stream, check_bool, check_choice, check_int
from ..errors import ConfigError, ConfigTypeError, WorkloadError
from ..numerics import matmul_wrapped, value_range

__all__ = ["NmSparseConfig", "NmSparseModel", "reference", "compress_cycles", "compress_block",
           "dense_block", "load_beats", "in_port_rows", "prune_b",
           "MODES", "SPARSITIES", "LOADS", "COMPRESSOR_LATENCY"]

MODES = ("ff", "bp", "wg")
# what the load port carries: compressed lanes (values + indices, BDWP's pre-generated weights) or
# dense M-groups pruned and compressed in line by the engine's NMCompressors
LOADS = ("compressed", "dense")
# the values named by the issue; any N:M with 1 <= N < M <= 16 is accepted (tpesim.nm.parse_sparsity)
SPARSITIES = ("dense", "1:4", "2:4", "1:8", "2:8", "4:8")
IN_BITS = (8, 16)
MAX_ROWS = 64
MAX_COLS = 64
# NMCompressor (rtl/nm_sparse.py): one M-group in per cycle, its N values + indices registered once
COMPRESSOR_LATENCY = 1


@dataclass(frozen=True, kw_only=True)
class NmSparseConfig(EngineConfig):
    """An N:M sparse weight-stationary engine: `cols` output columns, each a reduction over `rows`
    sparse lanes of N multipliers.

    Parameters
    ----------
    rows : int
        Sparse lanes per column (1..64): load beats per weight block.
    cols : int
        Output columns (1..64): results per output beat.
    sparsity : str
        "dense" or "N:M" with 1 <= N < M <= 16 ("1:4", "2:4", "1:8", "2:8", "4:8", ...): a lane
        holds N weights and N ceil(log2 M)-bit indices of one M-group (the hardware's N:M).
        "dense" builds lanes of one multiplier and no sparse mode.
    mode : {"ff", "bp", "wg"}
        The training pass the GEMM C = A @ B maps: "ff" (Y = X W_f^T) and "bp" (dX = dY W_b) prune
        B N:M along K and run the lanes sparse; "wg" (dW = dY^T X) is dense: the same N
        multipliers take N consecutive K positions.
    in_bits : {8, 16}
        Signed operand width.
    double_buffer : bool
        A second weight bank loads the next block while the current one computes.
    load : {"compressed", "dense"}
        What the load port carries. "compressed" (default): per lane and column N values and N
        indices (weights compressed before they reach the engine: BDWP's pre-generation).
        "dense": per lane and column the whole M-group of dense weights; the column's
        NMCompressor prunes and compresses it on the way into the bank (compressing on the fly):
        one more register on the load path, and M values instead of N values + N indices per
        group on the port and in memory. Needs an N:M sparsity.
    acc_bits : int or None
        Width of the accumulator buffer that sums K-folds (wraps like a register). Default 32
        (48 for 16-bit operands); from `result_bits` to 64.

    Attributes
    ----------
    keep, group : int
        N and M of the hardware (1, 1 for "dense").
    result_bits : int
        One column's exact result: 2*in_bits + ceil(log2(rows*keep)).
    latency : int
        Cycles from a row beat accepted to its result row (no stalls): input, product, lane-sum
        and column-sum registers.
    """

    rows: int = 8
    cols: int = 8
    sparsity: str = "2:8"
    mode: str = "ff"
    in_bits: int = 8
    double_buffer: bool = False
    load: str = "compressed"
    acc_bits: int | None = None

    engine = "nm_sparse"

    def __post_init__(self):
        check_int("rows", self.rows, lo=1, hi=MAX_ROWS)
        check_int("cols", self.cols, lo=1, hi=MAX_COLS)
        nm.parse_sparsity(self.sparsity)          # one-line ConfigError / ConfigTypeError
        check_choice("mode", self.mode, MODES)
        check_int("in_bits", self.in_bits)
        check_choice("in_bits", self.in_bits, IN_BITS)
        check_bool("double_buffer", self.double_buffer)
        check_choice("load", self.load, LOADS)
        if self.load == "dense" and self.nm is None:
            raise ConfigError("load 'dense' needs an N:M sparsity (its compressors prune "
                              "M-groups), not sparsity 'dense'")
        if self.acc_bits is None:
            object.__setattr__(self, "acc_bits", 32 if self.in_bits <= 8 else 48)
        lo = self.result_bits
        check_int("acc_bits", self.acc_bits, lo=lo, hi=64,
                  rule=f"an integer from {lo} (result_bits) to 64")

    # -- geometry ---------------------------------------------------------------------------------
    @property
    def nm(self) -> tuple[int, int] | None:
        return nm.parse_sparsity(self.sparsity)

    @property
    def keep(self) -> int:
        p = self.nm
        return 1 if p is None else p[0]

    @property
    def group(self) -> int:
        p = self.nm
        return 1 if p is None else p[1]

    @property
    def sparse(self) -> bool:
        """B is pruned N:M and the lanes run sparse (modes ff/bp on an N:M engine)."""
        return self.nm is not None and self.mode != "wg"

    @property
    def idx_bits(self) -> int:
        """Width of one index: ceil(log2 M) (at least 1 bit on the port)."""
        return max(1, (self.group - 1).bit_length())

    @property
    def window(self) -> int:
        """K positions one lane covers per row beat: M sparse, N dense."""
        return self.group if self.sparse else self.keep

    @property
    def result_bits(self) -> int:
        return 2 * self.in_bits + math.ceil(math.log2(self.rows * self.keep))

    signed = True      # operands are two's complement (not a field: int8/int16 training data)
    latency = 4
    drain_cycles = 1   # advancing edges after a block's last row until its bank was last read

    @property
    def load_latency(self) -> int:
        """Cycles from a load beat taken to its lane written: the compressors' register with
        load "dense", else 0 (a row may read a bank load_latency + 1 cycles after its last beat)."""
        return COMPRESSOR_LATENCY if self.load == "dense" else 0

    @property
    def mapping(self) -> str:
        """How a GEMM maps onto the engine: B blocks held, A rows streamed (weight-stationary)."""
        return "ws"

    @property
    def block_shape(self) -> tuple[int, int]:
        """(K positions, output columns) of a held weight block: rows*M sparse, rows*N dense."""
        return self.rows * self.window, self.cols

    @property
    def banks(self) -> int:
        return 2 if self.double_buffer else 1

    @property
    def in_range(self) -> tuple[int, int]:
        return value_range(self.in_bits, True)

    @property
    def load_lanes(self) -> int:
        """Lanes of a load beat as the model takes it: cols*N values, cols*N indices, dense bit
        (load "dense": cols*M values, dense bit)."""
        if self.load == "dense":
            return self.cols * self.group + 1
        return 2 * self.cols * self.keep + 1

    # -- streams and operands ---------------------------------------------------------------------
    def streams(self) -> tuple[Stream, ...]:
        w, cn = self.in_bits, self.cols * self.keep
        if self.load == "dense":
            load = (Lanes("load_val", self.cols * self.group, w, True),
                    Lanes("load_dense", 1, 1, False))
        else:
            load = (Lanes("load_val", cn, w, True), Lanes("load_idx", cn, self.idx_bits, False),
                    Lanes("load_dense", 1, 1, False))
        return (
            Stream("load", "in", "load_valid", "load_ready", load),
            Stream("in", "in", "in_valid", "in_ready",
                   (Lanes("in_data", self.rows * self.group, w, True),), last="in_last"),
            Stream("out", "out", "out_valid", "out_ready",
                   (Lanes("out_c", self.cols, self.result_bits, True),
                    Lanes("out_err", 1, 1, False)), last="out_last"),
        )

    def operands(self) -> tuple[Operand, ...]:
        return (Operand("a", "a", self.in_bits, True),
                Operand("b", "b", self.in_bits, True),
                Operand("c", "c", self.acc_bits, True))

    @property
    def peak_macs_per_cycle(self) -> int:
        """Dense-equivalent MACs per cycle: rows*cols lanes each covering `window` K positions."""
        return self.rows * self.window * self.cols

    def operand_as_used(self, role: str, x):
        """B pruned N:M along K in sparse modes (the engine's compressor keeps the top-N of each
        M-group); A, and B in dense mode, as given."""
        return prune_b(self, x) if role == "b" else x

    def report_fields(self, res) -> dict:
        """Report fields of a GEMM run: B's load-port traffic (sram_read_bytes_b, every fold's held
        block) split into kept values (`b_value_bytes`) and N:M metadata (`b_meta_bytes`, the
        indices; 0 in dense mode). The memory counts B as one operand: the load port carries a
        lane's values and indices together."""
        from ..tile_nm_sparse import b_traffic

        return b_traffic(self, int(res.m), int(res.n), int(res.k))

    @property
    def name(self) -> str:
        sp = self.sparsity.replace(":", "of") if self.nm is not None else "dense"
        db = "_db" if self.double_buffer else ""
        ld = "_ld" if self.load == "dense" else ""
        return (f"nm_sparse_{sp}_{self.rows}x{self.cols}_s{self.in_bits}_acc{self.acc_bits}"
                f"{db}{ld}")


def prune_b(cfg: NmSparseConfig, b: np.ndarray) -> np.ndarray:
    """B as the engine multiplies it: pruned N:M along K (axis 0) in sparse modes, else as given."""
    b = np.asarray(b)
    if not cfg.sparse:
        return b
    return nm.prune(b, cfg.keep, cfg.group, axis=0)


def reference(cfg: NmSparseConfig, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Functional model: exact A @ prune(B) (sparse modes) or A @ B (wg), wrapped to acc_bits."""
    return matmul_wrapped(np.asarray(a), prune_b(cfg, b), cfg.acc_bits, True)


def _block(cfg: NmSparseConfig, w: np.ndarray, dense: bool | None) -> tuple[bool, int, np.ndarray]:
    """(dense mode?, K positions per lane, W as int64) of a held block, its shape checked."""
    dense = (not cfg.sparse) if dense is None else bool(dense)
    win = cfg.keep if dense else cfg.group
    w = np.asarray(w, dtype=np.int64)
    if w.shape != (cfg.rows * win, cfg.cols):
        raise WorkloadError(f"a weight block must be {cfg.rows * win} x {cfg.cols} "
                            f"({'dense' if dense else 'sparse'} mode), not {w.shape[0]} x "
                            f"{w.shape[1]}")
    return dense, win, w


def compress_block(cfg: NmSparseConfig, w: np.ndarray, *, dense: bool | None = None) -> np.ndarray:
    """Load beats of one held block W (K extent rows*window x cols, zero-padded): beat i = lane i,
    [values (column-major: column j's N slots at j*N..j*N+N-1), indices (same order), dense bit].

    Sparse: lane i's M-group of column j is W[i*M:(i+1)*M, j], compressed top-N by magnitude (ties
    to the lower index), indices ascending. Dense: lane i's N slots are W[i*N:(i+1)*N, j], indices
    0..N-1 (ignored by the hardware)."""
    R, N, M, C = cfg.rows, cfg.keep, cfg.group, cfg.cols
    dense, _, w = _block(cfg, w, dense)
    out = np.zeros((R, 2 * C * N + 1), np.int64)
    if dense:
        vals = w.reshape(R, N, C).transpose(0, 2, 1)          # [lane, col, slot]
        idx = np.broadcast_to(np.arange(N, dtype=np.int64), (R, C, N))
    elif cfg.nm is None:
        raise ConfigError(f"dense must be True for sparsity 'dense' (no N:M group to compress), "
                          f"not {dense!r}")
    else:
        v, x = nm.compress(w, N, M, axis=0)                   # (R*N, C), slot-major per lane
        vals = v.reshape(R, N, C).transpose(0, 2, 1)
        idx = x.astype(np.int64).reshape(R, N, C).transpose(0, 2, 1)
    out[:, :C * N] = vals.reshape(R, C * N)
    out[:, C * N:2 * C * N] = idx.reshape(R, C * N)
    out[:, -1] = 1 if dense else 0
    return out


def dense_block(cfg: NmSparseConfig, w: np.ndarray, *, dense: bool | None = None) -> np.ndarray:
    """Load beats of one held block W for load "dense": beat i = lane i, [column j's M-group at
    j*M..j*M+M-1 (sparse: W[i*M:(i+1)*M, j]; dense mode: W[i*N:(i+1)*N, j] then M-N zeros), dense
    bit]; the engine's compressors prune and compress sparse groups on the way in."""
    R, N, M, C = cfg.rows, cfg.keep, cfg.group, cfg.cols
    dense, win, w = _block(cfg, w, dense)
    g = np.zeros((R, C, M), np.int64)                          # [lane, col, group position]
    g[:, :, :win] = w.reshape(R, win, C).transpose(0, 2, 1)
    out = np.zeros((R, C * M + 1), np.int64)
    out[:, :C * M] = g.reshape(R, C * M)
    out[:, -1] = 1 if dense else 0
    return out


def load_beats(cfg: NmSparseConfig, w: np.ndarray, *, dense: bool | None = None) -> np.ndarray:
    """A held block's load beats as the config's load port takes them (compress_block or
    dense_block)."""
    if cfg.load == "dense":
        return dense_block(cfg, w, dense=dense)
    return compress_block(cfg, w, dense=dense)


def in_port_rows(cfg: NmSparseConfig, x: np.ndarray) -> np.ndarray:
    """Stream rows of block_shape[0] K positions as in_data lanes: sparse, lane i's M-window is
    lanes i*M..i*M+M-1 (identity); dense, lane i's N positions go to lanes i*M..i*M+N-1 and the
    other M-N lanes of its window are 0 (the muxes are bypassed: they are never read)."""
    x = np.asarray(x, dtype=np.int64).reshape(-1, cfg.block_shape[0])
    if cfg.sparse or cfg.keep == cfg.group:
        return x
    out = np.zeros((x.shape[0], cfg.rows, cfg.group), np.int64)
    out[:, :, :cfg.keep] = x.reshape(-1, cfg.rows, cfg.keep)
    return out.reshape(x.shape[0], cfg.rows * cfg.group)


def compress_cycles(cfg: NmSparseConfig, k: int, n: int, *, compressors: int | None = None) -> int:
    """Cycles for the hardware compressors (NMCompressor, rtl/nm_sparse.py) to prune and compress a
    K x N weight matrix along K: `compressors` (default `cols`: one load beat's worth of M-groups
    per cycle, the load port's rate) each take one M-group per cycle, fully pipelined, the last
    result registered COMPRESSOR_LATENCY cycles after its group. ceil(K/M)*N groups, so
    ceil(ceil(K/M)*N / compressors) + COMPRESSOR_LATENCY cycles; 0 in dense mode (nothing to
    compress). Pre-generation (BDWP) can overlap this with the weight update."""
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise WorkloadError(f"{name} must be a positive integer, not {v!r}")
    if compressors is None:
        compressors = cfg.cols
    if isinstance(compressors, bool) or not isinstance(compressors, (int, np.integer)):
        raise ConfigTypeError(f"compressors must be an integer, not {compressors!r}")
    if compressors < 1:
        raise ConfigError(f"compressors must be a positive integer, not {compressors!r}")
    if not cfg.sparse:
        return 0
    groups = -(-int(k) // cfg.group) * int(n)
    return -(-groups // int(compressors)) + COMPRESSOR_LATENCY


# -- cycle model ----------------------------------------------------------------------------------
from pathlib import Path  # noqa: E402

from ..numerics import pack, unpack  # noqa: E402
from . import load_core  # noqa: E402
from ._folds import FoldStreamMixin  # noqa: E402
from ._vcd import VcdMixin  # noqa: E402


class NmSparseModel(FoldStreamMixin, VcdMixin):
    """Cycle model of the N:M sparse engine with the RTL's ports (sim/engines/_nm_sparse_core.py).

    `step(inputs)` advances one clock in lockstep (cosim); `run_folds(...)` advances many cycles in
    compiled code (kernels), with StationaryModel.run_folds' contract: load beats as `load_order`
    gives them, stream rows of block_shape[0] K positions (placed on the in port by `in_beats`).
    """

    def __init__(self, cfg: NmSparseConfig, *, interpreted: bool | None = None,
                 vcd_path: str | Path | None = None):
        self.cfg = cfg
        self.core_module = load_core("_nm_sparse_core", interpreted)
        self.core = self.core_module.NmSparseCore(cfg.rows, cfg.cols, cfg.keep, cfg.group,
                                                  cfg.result_bits, cfg.latency, cfg.drain_cycles,
                                                  cfg.banks, cfg.load == "dense")
        self._init_waves(vcd_path)

    # -- lockstep ------------------------------------------------------------------------------
    def step(self, ins: dict[str, int]) -> dict[str, int]:
        """Apply this cycle's inputs, return this cycle's outputs, then clock once."""
        cfg = self.cfg
        cn = cfg.cols * cfg.keep
        a = unpack(ins.get("in_data", 0), cfg.rows * cfg.group, cfg.in_bits, True)
        if cfg.load == "dense":
            beat = unpack(ins.get("load_val", 0), cfg.cols * cfg.group, cfg.in_bits, True)
        else:
            beat = (unpack(ins.get("load_val", 0), cn, cfg.in_bits, True)
                    + unpack(ins.get("load_idx", 0), cn, cfg.idx_bits, False))
        beat = beat + [int(ins.get("load_dense", 0)) & 1]
        t = self.cycle
        lr, ir, ov, ol, oe, oc = self.core.step(int(ins.get("load_valid", 0)), beat,
                                                int(ins.get("in_valid", 0)), a,
                                                int(ins.get("in_last", 0)),
                                                int(ins.get("out_ready", 0)))
        outs = {"load_ready": int(lr), "in_ready": int(ir), "out_valid": int(ov),
                "out_last": int(ol), "out_err": int(oe), "out_c": pack(oc, cfg.result_bits)}
        if self._vcd is not None:
            self._dump(t, ins, outs)
        return outs

    def load_order(self, w: np.ndarray) -> np.ndarray:
        """A weight block's load beats (block_shape W, dense pruned or not) in the order the load
        port takes them: lane 0 first; in sparse modes compressed (load "compressed") or as dense
        M-groups that the engine's compressors compress (load "dense")."""
        return load_beats(self.cfg, w)

    def in_beats(self, x: np.ndarray) -> np.ndarray:
        """Stream rows of block_shape[0] K positions as in_data lanes (`in_port_rows`)."""
        return in_port_rows(self.cfg, x)

    def flight_exits(self) -> np.ndarray:
        """Cycle in which each row still in flight will leave if the sink is ready from now on, in
        stream order (a held-block backend's report of a fold whose last row is still in flight)."""
        return np.asarray(self.core.flight_exits(), np.int64)

    @property
    def err_rows(self) -> int:
        """Result rows delivered so far with out_err set (computed from invalid metadata)."""
        return int(self.core.err_rows)

    # -- free running --------------------------------------------------------------------------
    def run_folds(self, loads, rows, lasts, **kw):
        return super().run_folds(loads, self.in_beats(rows), lasts, **kw)

    def _fold_geometry(self) -> tuple[int, int, int]:
        """(load lanes, stream lanes, rows still in flight at most) for `run_folds`."""
        return self.cfg.load_lanes, self.cfg.rows * self.cfg.group, self.cfg.latency + 1
