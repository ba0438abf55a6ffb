"""SCALE-Sim v3.0.0 compute timing: closed forms of its compute/systolic_compute_{os,ws,is}.py."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from tpesim.config import check_choice, check_int

from .parse import DATAFLOWS, WORD_BYTES

# SCALE-Sim's "kB" is 1024 words (single_layer_sim.py: 1024 * ifmap_buf_size_kb), 1-byte words.
KB_BYTES = 1024 * WORD_BYTES

@dataclass(frozen=True)
class ScaleSimDataflow:
    """How SCALE-Sim 3.0.0 maps C[MxN] = A[MxK] @ B[KxN] for one of its dataflows.

    `dims(M, N, K)` gives (Sr, Sc, T): the GEMM dims on array rows and columns and the one streamed
    in time. `preload`: the stationary operand is loaded before each fold (WS, IS: R more cycles per
    fold, and Compute Util counts the C-1 skew cycles too). `reads(...)` gives the SRAM word reads of
    ifmap and filter and the ofmap word writes."""

    name: str
    dims: Callable[[int, int, int], tuple[int, int, int]]
    preload: bool
    reads: Callable[..., tuple[int, int, int]]

    def fold_shape(self, M: int, N: int, K: int, R: int, C: int) -> tuple[int, int]:  # noqa: N803
        sr, sc, t = self.dims(M, N, K)
        return math.ceil(sr / R) * math.ceil(sc / C), (2 * R if self.preload else R) + C + t - 2


def _os_reads(M, N, k_eff, R, C, row_folds, col_folds, folds, sparsity):  # noqa: N803
    # OS ofmap writes are over-counted by R+C per fold (systolic_compute_os.py).
    return col_folds * M * k_eff, row_folds * k_eff * N, M * N + folds * (R + C)


def _ws_reads(M, N, k_eff, R, C, row_folds, col_folds, folds, sparsity):  # noqa: N803
    # Sparse WS charges ifmap reads at M/N times the compressed rate (systolic_compute_ws.py).
    n_sp, m_sp = sparsity
    return round(Fraction(col_folds * M * k_eff * m_sp, n_sp)), k_eff * N, row_folds * M * N


def _is_reads(M, N, k_eff, R, C, row_folds, col_folds, folds, sparsity):  # noqa: N803
    return M * k_eff, col_folds * k_eff * N, row_folds * M * N


# SCALE-Sim's `Dataflow` key -> its mapping (the only place its dataflow strings are read).
SCALESIM_DATAFLOWS = {
    "os": ScaleSimDataflow("os", lambda M, N, K: (M, N, K), False, _os_reads),
    "ws": ScaleSimDataflow("ws", lambda M, N, K: (K, N, M), True, _ws_reads),
    "is": ScaleSimDataflow("is", lambda M, N, K: (K, M, N), True, _is_reads),
}


def scalesim_dataflow(dataflow: str) -> ScaleSimDataflow:
    check_choice("dataflow", dataflow, DATAFLOWS)
    return SCALESIM_DATAFLOWS[dataflow]


@dataclass(frozen=True)
class ScaleSimCompute:
    """What SCALE-Sim 3.0.0 reports for a stall-free layer (CALC mode), derived in closed form.

    Attributes
    ----------
    folds : int
        Array-sized pieces of the spatial dims, each padded to the full R x C array.
    per_fold_cycles : int
        Demand-matrix rows per fold: R+C+T-2 (OS), 2R+C+T-2 (WS, IS); folds never overlap.
    compute_cycles : int
        COMPUTE_REPORT `Total Cycles` with no stalls: folds * per_fold_cycles - 1.
    utilization, mapping_efficiency, compute_utilization : float
        `Overall Util %`, `Mapping Efficiency %` and `Compute Util %` divided by 100 (fractions).
    ifmap_sram_read_bytes, filter_sram_read_bytes, ofmap_sram_write_bytes : int
        DETAILED_ACCESS_REPORT `SRAM IFMAP Reads`, `SRAM Filter Reads`, `SRAM OFMAP Writes`
        (1-byte words). OS ofmap writes include SCALE-Sim's over-count of R+C per fold.
    """

    M: int
    N: int
    K: int
    rows: int
    cols: int
    dataflow: str
    k_eff: int
    folds: int
    per_fold_cycles: int
    compute_cycles: int
    macs: int
    utilization: float
    mapping_efficiency: float
    compute_utilization: float
    ifmap_sram_read_bytes: int
    filter_sram_read_bytes: int
    ofmap_sram_write_bytes: int

    @property
    def overhead_cycles_per_fold(self) -> int:
        """Fill, skew, preload and drain rows of a fold: per-fold cycles minus streamed rows T."""
        return self.per_fold_cycles - self.temporal

    @property
    def mapping(self) -> ScaleSimDataflow:
        return SCALESIM_DATAFLOWS[self.dataflow]

    @property
    def spatial(self) -> tuple[int, int]:
        """(Sr, Sc): the GEMM dims mapped onto array rows and columns."""
        return self.mapping.dims(self.M, self.N, self.k_eff)[:2]

    @property
    def temporal(self) -> int:
        """T: the GEMM dim streamed through the array in time."""
        return self.mapping.dims(self.M, self.N, self.k_eff)[2]


def effective_k(K: int, sparsity: tuple[int, int] = (1, 1)) -> int:  # noqa: N803
    """Rows of SCALE-Sim's compressed filter under layer-wise N:M sparsity (N of every M kept)."""
    n, m = sparsity
    return (K // m) * n + min(n, K % m)


def scalesim_fold_shape(M: int, N: int, K: int, R: int, C: int,  # noqa: N803
                        dataflow: str) -> tuple[int, int]:
    """(folds, per-fold cycles) of SCALE-Sim 3.0.0's compute model."""
    for name, v in (("M", M), ("N", N), ("K", K), ("R", R), ("C", C)):
        check_int(name, v)
    return scalesim_dataflow(dataflow).fold_shape(M, N, K, R, C)


def scalesim_compute_cycles(M: int, N: int, K: int, R: int, C: int,  # noqa: N803
                            dataflow: str) -> int:
    """SCALE-Sim v3.0.0's stall-free `Total Cycles` for C[MxN] = A[MxK] @ B[KxN] on an R x C array.

    OS: ceil(M/R)ceil(N/C)(R+C+K-2) - 1; WS: ceil(K/R)ceil(N/C)(2R+C+M-2) - 1;
    IS: ceil(K/R)ceil(M/C)(2R+C+N-2) - 1. The -1 is SCALE-Sim's: it reports the largest 0-based
    cycle index of an ofmap write rather than a count (issue #125).
    """
    folds, per_fold = scalesim_fold_shape(M, N, K, R, C, dataflow)
    return folds * per_fold - 1


def scalesim_compute(M: int, N: int, K: int, R: int, C: int, dataflow: str, *,  # noqa: N803
                     sparsity: tuple[int, int] = (1, 1)) -> ScaleSimCompute:
    """Every COMPUTE_REPORT number (and the SRAM access counts) SCALE-Sim 3.0.0 gives a layer.

    `sparsity` is the layer's N:M ratio when the config has SparsitySupport on (layer-wise, not
    OptimizedMapping): the reduction dim shrinks to `effective_k`, while utilization still counts
    dense MACs (so it can exceed 1, as SCALE-Sim's does).
    """
    k_eff = effective_k(K, sparsity)
    folds, per_fold = scalesim_fold_shape(M, N, k_eff, R, C, dataflow)
    cycles = folds * per_fold - 1
    macs = M * N * K
    df = scalesim_dataflow(dataflow)
    sr, sc, t = df.dims(M, N, k_eff)
    # Every fold adds used/(R*C); the used PEs of all folds sum to Sr*Sc.
    mapping = sr * sc / (folds * R * C)
    # Compute Util takes the fold length before the skew when preloading (2R+2C+T-3, C-1 too many).
    fold_len = per_fold + (C - 1 if df.preload else 0)
    compute_util = mapping * t / fold_len
    row_folds, col_folds = math.ceil(sr / R), math.ceil(sc / C)
    reads = df.reads(M, N, k_eff, R, C, row_folds, col_folds, folds, sparsity)
    return ScaleSimCompute(M, N, K, R, C, dataflow, k_eff, folds, per_fold, cycles, macs,
                           macs / (cycles * R * C), mapping, compute_util,
                           *(r * WORD_BYTES for r in reads))


# -------------------------------------------------------------------------------------------------
# The config's memory, as tpesim's memory model takes it (tpesim.memory.MemoryConfig fields)
# -------------------------------------------------------------------------------------------------
# SCALE-Sim's DRAM read port answers a fixed 1 cycle after the request (memory/read_port.py).
SCALESIM_READ_LATENCY_CYCLES = 1


def tpesim_memory_fields(cfg) -> dict[str, float | int | None]:
    """MemoryConfig keyword arguments for tpesim's timing of a SCALE-Sim config's layers.

    USER mode: IfmapSramSzkB / FilterSramSzkB / OfmapSramSzkB -> sram_kib_a / _b / _c (SCALE-Sim
    allocates 1024 * kB one-byte words, double-buffered in halves, as tpesim's SRAMs are),
    Bandwidth[0] words/cycle (1-byte words) -> dram_bw bytes/cycle, one link shared by A, B and C,
    and SCALE-Sim's fixed 1-cycle read-port latency -> dram_latency. CALC mode: SCALE-Sim assumes
    the bandwidth it needs (reads always hit), so tpesim assumes an ideal memory (unbounded SRAMs
    and link, no latency): all None / 0, and no stalls.
    """
    if cfg.interface_bandwidth != "USER":
        return {"sram_kib_a": None, "sram_kib_b": None, "sram_kib_c": None, "dram_bw": None,
                "dram_latency": 0}
    return {"sram_kib_a": cfg.ifmap_sram_kb * KB_BYTES // 1024,
            "sram_kib_b": cfg.filter_sram_kb * KB_BYTES // 1024,
            "sram_kib_c": cfg.ofmap_sram_kb * KB_BYTES // 1024,
            "dram_bw": cfg.bandwidths[0] * WORD_BYTES, "dram_latency": SCALESIM_READ_LATENCY_CYCLES}
