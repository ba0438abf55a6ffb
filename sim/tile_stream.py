"""Tile-level interfaces shared by every engine: a GEMM as a stream of tiles (operand blocks per
tile), the per-tile timing rule a backend implements, and the engine timing base class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .errors import ConfigError, WorkloadError

__all__ = ["FIDELITIES", "MAX_GEMM_DIM", "MAX_GEMM_MACS", "check_gemm_shape", "OperandBlocks",
           "TileStream", "TileBackend", "EngineTiming", "default_acc_bits", "packed_bytes",
           "OsTileRecurrence", "os_ideal"]

FIDELITIES = ("cycle", "tile")
# Cycle, MAC and byte counts are int64 in the vectorised closed forms: bound the workload so that
# none of them can overflow (a silent wrap would be a wrong answer).
MAX_GEMM_DIM = 2**31 - 1
MAX_GEMM_MACS = 2**52


def check_gemm_shape(m, n, k) -> tuple[int, int, int]:
    """m, n, k as ints, each 1..MAX_GEMM_DIM with m*n*k <= MAX_GEMM_MACS, or a one-line error."""
    for name, v in (("m", m), ("n", n), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise WorkloadError(f"{name} must be an integer, not {v!r}")
        if v < 1:
            raise WorkloadError(f"{name} must be a positive integer, not {v!r}")
        if v > MAX_GEMM_DIM:
            raise WorkloadError(f"{name} must be at most {MAX_GEMM_DIM} (2**31 - 1), not {v!r}")
    macs = int(m) * int(n) * int(k)
    if macs > MAX_GEMM_MACS:
        raise WorkloadError(f"m*n*k must be at most 2**52 (cycle and byte counts stay exact), not "
                            f"{m}*{n}*{k} = {macs:.3e}")
    return int(m), int(n), int(k)


# -------------------------------------------------------------------------------------------------
# Workload as a tile stream
# -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class OperandBlocks:
    """Which block of one operand every tile reads (inputs) or writes (output).

    `block[t]` identifies tile t's block (consecutive tiles with equal ids share one fetch or one
    write-back); `block_bytes[t]` is that block's size; `tile_bytes[t]` (outputs) what tile t itself
    writes into the output buffer (= block_bytes when each tile owns its block). `block_rows` and
    `block_cols` give the block's shape for messages.
    """

    name: str
    block: np.ndarray
    block_bytes: np.ndarray
    bits: int
    block_rows: np.ndarray
    block_cols: np.ndarray
    tile_bytes: np.ndarray | None = None

    def __post_init__(self):
        if self.tile_bytes is None:
            object.__setattr__(self, "tile_bytes", self.block_bytes)

    def describe(self, t: int) -> str:
        return f"{int(self.block_rows[t])} x {int(self.block_cols[t])} of {self.bits} bits"


@dataclass(frozen=True, eq=False)
class TileStream:
    """Tiles in stream order: beats per tile, input operand blocks, output blocks."""

    beats: np.ndarray
    inputs: tuple[OperandBlocks, ...]
    output: OperandBlocks
    out_rows: int
    unit: str = "tile"        # what one entry is called in messages ("fold" for WS/IS)

    @property
    def ntiles(self) -> int:
        return len(self.beats)


def packed_bytes(elements: np.ndarray, bits: int) -> np.ndarray:
    return (elements * bits + 7) // 8


def default_acc_bits(in_bits: int) -> int:
    """The engine's default accumulator width (SystolicConfig's rule)."""
    return 32 if in_bits <= 8 else 48


class TileBackend(Protocol):
    """How one engine streams tiles (the tile-level closed form, or the cycle model).

    `stream(t, now, ready, out_free)`: the engine is free to take tile t's first beat in cycle
    `now`; `ready[i]` is the cycle from which input operand i's block is in SRAM; the result rows
    of tile t + `out_tile` may leave from cycle `out_free`. Returns (release, prev_done,
    next_wake): the cycle of the tile's last operand read (its SRAM halves are free from
    release + 1; a tuple gives one cycle per input operand; a list gives (tile, operand index,
    cycle) triples, for blocks of any tile whose last read happened during this call, e.g. a
    stationary operand loaded while the previous tile streams), the cycle in which tile t-1's last
    result row left (-1 for t = 0), and the cycle to wake the engine for tile t+1. Every cycle
    reported must be >= now.
    `drain(now, out_free)`: after the last tile, returns the cycle its last result row left.

    Optional attributes (defaults: the OS engine's):

    * `ahead` (tuple of input operand indices, default ()): operands whose block for tile t+1 the
      backend needs while streaming tile t (a double-buffered stationary operand loads the next
      tile's block meanwhile). Their ready cycles follow tile t's in `ready` (0 for the last
      tile). Valid only if those fetches are issued by the time tile t starts; the memory checks
      (a RuntimeError names the tile otherwise).
    * `out_tile` (-1 or 0, default -1): -1 when tile t's call drains tile t-1's rows (OS: a
      result leaves after its tile's last beat), 0 when the backend must know tile t's own
      output space before streaming it (WS/IS: results leave while the tile streams).
    """

    ahead: tuple[int, ...]
    out_tile: int

    def stream(self, t: int, now: int, ready: tuple[int, ...], out_free: int
               ) -> tuple[int, int, int]: ...

    def drain(self, now: int, out_free: int) -> int: ...


class OsTileRecurrence:
    """The output-stationary tile recurrence (one for every OS engine), one `stream` call per tile.

    A tile of G_t beats is taken one beat every `period` (P) cycles; its first result row leaves
    `latency` (lat) cycles after its last beat at the earliest, then `rows` (M) rows one per cycle;
    a tile's last beat is not taken before the previous tile's rows have left (one result bank
    behind the accumulator). With s_t = max(now, ready of tile t's operands) and free_t the cycle
    from which tile t's rows may leave:

        first_t = max(L_{t-1} + P, s_t)                      (L_{-1} + P = -inf)
        L_t     = max(first_t + (G_t - 1) P, D_{t-1} + M)    (D_{-1} + M = -inf)
        D_t     = max(L_t + lat, free_t);  row r leaves at D_t + r

    The tile's release is L_t, the engine wakes for tile t+1 at L_t + 1. The OS systolic array is
    P = 1, lat = R + C, M = R; the LUT engine P = planes, lat = P + pipe stages, M = tile_m.
    """

    def __init__(self, beats: np.ndarray, *, rows: int, period: int, latency: int,
                 record_rows: bool = False):
        self.M, self.P, self.lat = rows, period, latency
        self.beats = np.asarray(beats, dtype=np.int64).tolist()
        self.L: int | None = None
        self.row_starts: list[int] | None = [] if record_rows else None

    def stream(self, t, now, ready, out_free):
        s = now
        for r in ready:
            if r > s:
                s = r
        L = self.L
        if L is not None and L + self.P > s:
            s = L + self.P
        last = s + (self.beats[t] - 1) * self.P
        prev_done = -1
        if t:
            d = L + self.lat
            if out_free > d:
                d = out_free
            if self.row_starts is not None:
                self.row_starts.append(d)
            prev_done = d + self.M - 1
            if prev_done + 1 > last:
                last = prev_done + 1
        self.L = last
        return last, prev_done, last + 1

    def drain(self, now, out_free):
        d = max(self.L + self.lat, out_free)
        if self.row_starts is not None:
            self.row_starts.append(d)
        return d + self.M - 1

    def row_cycles(self) -> np.ndarray:
        starts = np.asarray(self.row_starts, dtype=np.int64)
        return (starts[:, None] + np.arange(self.M, dtype=np.int64)).reshape(-1)


def os_ideal(beats: np.ndarray, *, rows: int, period: int, latency: int,
             record_rows: bool = False) -> tuple[int, np.ndarray | None]:
    """`OsTileRecurrence` stall free in closed form: (cycles, each result row's cycle or None).
    With s_t and free_t never binding, D_t = L_t + lat and first_t = L_{t-1} + P, so
    L_t = L_{t-1} + max(G_t P, lat + M), L_0 = (G_0 - 1) P, cycles = L_{T-1} + lat + M."""
    beats = np.asarray(beats, dtype=np.int64)
    step = np.maximum(beats * period, latency + rows)
    step[0] = beats[0] * period
    last = np.cumsum(step) - period  # L_t
    cycles = int(last[-1]) + latency + rows
    out = None
    if record_rows:
        out = ((last + latency)[:, None] + np.arange(rows, dtype=np.int64)).reshape(-1)
    return cycles, out


# The tile level keeps per-block arrays (the stream's operand blocks, beats, times): about
# BLOCK_BYTES per block measured (19.5 M tiles: 2.6 GB peak RSS), so MAX_BLOCKS bounds it near 2 GiB.
MAX_BLOCKS = 1 << 24
BLOCK_BYTES = 136


class EngineTiming:
    """Timing of one dataflow on an R x C array (subclass per dataflow; see `register_timing`)."""

    dataflow = ""

    def __init__(self, rows: int, cols: int, *, in_bits: int = 8, acc_bits: int | None = None,
                 double_buffer: bool = False):
        for name, v in (("rows", rows), ("cols", cols), ("in_bits", in_bits)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, not {v!r}")
        if not isinstance(double_buffer, bool):
            raise ConfigError(f"double_buffer must be a bool, not {double_buffer!r}")
        self.rows, self.cols, self.in_bits = int(rows), int(cols), int(in_bits)
        self.acc_bits = default_acc_bits(self.in_bits) if acc_bits is None else int(acc_bits)
        self.double_buffer = double_buffer

    unit = "tile"

    def _check_shape(self, m, n, k) -> None:
        """The GEMM's dims, and its block count against the tile level's memory budget: refused
        up front (MAX_BLOCKS) rather than after gigabytes of per-block arrays."""
        m, n, k = check_gemm_shape(m, n, k)
        blocks = self.blocks(m, n, k)
        if blocks > MAX_BLOCKS:
            raise WorkloadError(
                f"m x n x k must make at most {MAX_BLOCKS:,} {self.unit}s at the tile level (about "
                f"{BLOCK_BYTES} bytes each, {MAX_BLOCKS * BLOCK_BYTES / 2**30:.1f} GiB), not "
                f"{blocks:,} ({m} x {n} x {k} on {self.rows} x {self.cols}); split the GEMM")

    def blocks(self, m: int, n: int, k: int) -> int:
        """How many blocks (`unit`s) gemm_stream(m, n, k) makes, without making them: one per
        rows x cols block of C by default (output-stationary mappings)."""
        return -(-m // self.rows) * -(-n // self.cols)

    @property
    def peak_macs_per_cycle(self) -> int:
        """The engine's peak (utilization is MACs / (cycles x this)); an R x C array's by default."""
        return self.rows * self.cols

    def gemm_stream(self, m: int, n: int, k: int) -> TileStream:
        raise NotImplementedError

    def ideal(self, stream: TileStream, record_rows: bool = False
              ) -> tuple[int, np.ndarray | None]:
        """Stall-free cycles (and, if asked, each result row's cycle) in closed form."""
        raise NotImplementedError

    def backend(self, stream: TileStream, record_rows: bool = False) -> TileBackend:
        raise NotImplementedError
