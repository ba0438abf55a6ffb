"""Benchmark stimulus: a block of random full-range beats streamed `reps` times, shared by every path.

The Python side keeps the block as int64 lane arrays (what the cycle model's `run_beats` takes); the
Verilator C++ harness reads the same block from a binary file of raw port bit patterns (layout in
harness.cpp). Both sides reduce the result rows to the same position-weighted checksum.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Stream", "make_stream", "pack_words", "checksum_rows", "write_stimulus_file",
           "FoldStream", "make_fold_stream", "write_fold_stimulus_file", "MAGIC", "VERSION",
           "FOLD_VERSION"]

MAGIC = 0x42535054  # b"TPSB" little-endian
VERSION = 1
FOLD_VERSION = 2    # two input streams (load port + stream port): harness_stationary.cpp
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL = np.uint64(0xBF58476D1CE4E5B9)


@dataclass
class Stream:
    """`reps` back-to-back copies of one block of beats; `k` beats per tile (last on every k-th beat)."""

    a: np.ndarray       # (nblock, in lanes of A) int64
    b: np.ndarray       # (nblock, in lanes of B) int64
    last: np.ndarray    # (nblock,) int64
    reps: int
    k: int
    seed: int

    @property
    def nblock(self) -> int:
        return int(self.a.shape[0])

    @property
    def nbeats(self) -> int:
        return self.nblock * self.reps

    @property
    def tiles(self) -> int:
        return int(self.last.sum()) * self.reps

    def prefix(self, tiles: int) -> "Stream":
        """The first `tiles` tiles of the block, once."""
        n = min(tiles * self.k, self.nblock)
        return Stream(self.a[:n], self.b[:n], self.last[:n], 1, self.k, self.seed)


def make_stream(a_lanes: int, b_lanes: int, lo: int, hi: int, *, k: int, tiles_per_block: int,
                reps: int = 1, seed: int = 1) -> Stream:
    """Random operands, uniform over the full range [lo, hi], in tiles of `k` beats."""
    rng = np.random.default_rng(seed)
    n = k * tiles_per_block
    a = rng.integers(lo, hi + 1, size=(n, a_lanes), dtype=np.int64)
    b = rng.integers(lo, hi + 1, size=(n, b_lanes), dtype=np.int64)
    last = np.zeros(n, np.int64)
    last[k - 1::k] = 1
    return Stream(a, b, last, reps, k, seed)


def pack_words(values: np.ndarray, bits: int) -> np.ndarray:
    """Raw bit patterns of a bus per row, lane 0 in the least significant bits (as `sim.numerics.pack`),
    as little-endian uint32 words: (n, lanes) -> (n, ceil(lanes*bits/32))."""
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be from 1 to 32, not {bits}")
    n, lanes = values.shape
    nw = (lanes * bits + 31) // 32
    u = values.astype(np.uint64) & np.uint64((1 << bits) - 1)
    words = np.zeros((n, nw), np.uint64)
    for i in range(lanes):
        off = i * bits
        wi, sh = off >> 5, off & 31
        words[:, wi] |= (u[:, i] << np.uint64(sh)) & np.uint64(0xFFFFFFFF)
        if sh + bits > 32:
            words[:, wi + 1] |= u[:, i] >> np.uint64(32 - sh)
    return words.astype(np.uint32)


def checksum_rows(rows: np.ndarray, lane_bits: int, first_row: int = 0) -> int:
    """Sum over lanes of (u ^ k*G) * M mod 2^64, with k = global lane index (row number * lanes + lane)
    and u = the lane as an unsigned `lane_bits` pattern. Additive, so it can be folded chunk by chunk
    (pass the chunk's first global row). Must match checksum_term() in harness.cpp."""
    if rows.size == 0:
        return 0
    n, lanes = rows.shape
    mask = np.uint64((1 << lane_bits) - 1) if lane_bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    u = rows.astype(np.uint64) & mask
    k = (np.arange(n, dtype=np.uint64)[:, None] + np.uint64(first_row)) * np.uint64(lanes) \
        + np.arange(lanes, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        terms = (u ^ (k * _GOLDEN)) * _MUL
        return int(terms.sum(dtype=np.uint64))


def write_stimulus_file(path: Path, stream: Stream, a_bits: int, b_bits: int, out_words: int,
                        out_lanes: int, lane_bits: int) -> Path:
    """The harness's input: header, A words, B words, last bytes (see harness.cpp)."""
    wa = pack_words(stream.a, a_bits)
    wb = pack_words(stream.b, b_bits)
    hdr = np.zeros(16, np.uint32)
    hdr[:9] = [MAGIC, VERSION, stream.nblock, stream.reps, wa.shape[1], wb.shape[1], out_words,
               out_lanes, lane_bits]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(hdr.astype("<u4").tobytes())
        f.write(np.ascontiguousarray(wa, dtype="<u4").tobytes())
        f.write(np.ascontiguousarray(wb, dtype="<u4").tobytes())
        f.write(stream.last.astype(np.uint8).tobytes())
    return path


@dataclass
class FoldStream:
    """The WS/IS array's two input streams, `reps` back-to-back copies of one block of folds.

    A fold is R load beats (one stationary tile, C lanes per beat, tile row R-1 first) and `k` stream
    beats (R lanes each, `in_last` on the k-th). Each port streams its own block at its own pace (the
    hardware decides when a load beat is taken), so only the order within each port is fixed.
    """

    loads: np.ndarray   # (folds * R, C) int64
    a: np.ndarray       # (folds * k, R) int64, the stream port
    last: np.ndarray    # (folds * k,) int64
    reps: int
    k: int
    seed: int

    @property
    def rows_per_load(self) -> int:
        return int(self.a.shape[1])

    @property
    def nblock(self) -> int:
        return int(self.a.shape[0])

    @property
    def nbeats(self) -> int:
        return self.nblock * self.reps

    @property
    def tiles(self) -> int:
        return int(self.last.sum()) * self.reps

    def prefix(self, tiles: int) -> "FoldStream":
        """The first `tiles` folds of the block, once."""
        n = min(tiles * self.k, self.nblock)
        f = int(self.last[:n].sum())
        R = self.rows_per_load
        return FoldStream(self.loads[:f * R], self.a[:n], self.last[:n], 1, self.k, self.seed)


def make_fold_stream(rows: int, cols: int, lo: int, hi: int, *, k: int, folds_per_block: int,
                     reps: int = 1, seed: int = 1) -> FoldStream:
    """Random stationary tiles and stream rows, uniform over the full range [lo, hi], k rows per fold."""
    rng = np.random.default_rng(seed)
    loads = rng.integers(lo, hi + 1, size=(folds_per_block * rows, cols), dtype=np.int64)
    n = k * folds_per_block
    a = rng.integers(lo, hi + 1, size=(n, rows), dtype=np.int64)
    last = np.zeros(n, np.int64)
    last[k - 1::k] = 1
    return FoldStream(loads, a, last, reps, k, seed)


def write_fold_stimulus_file(path: Path, stream: FoldStream, load_bits: int, in_bits: int, out_words: int,
                             out_lanes: int, lane_bits: int) -> Path:
    """harness_stationary.cpp's input: header, LOAD words, IN words, LAST bytes."""
    wl = pack_words(stream.loads, load_bits)
    wa = pack_words(stream.a, in_bits)
    hdr = np.zeros(16, np.uint32)
    hdr[:10] = [MAGIC, FOLD_VERSION, wl.shape[0], stream.nblock, stream.reps, wl.shape[1], wa.shape[1],
                out_words, out_lanes, lane_bits]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(hdr.astype("<u4").tobytes())
        f.write(np.ascontiguousarray(wl, dtype="<u4").tobytes())
        f.write(np.ascontiguousarray(wa, dtype="<u4").tobytes())
        f.write(stream.last.astype(np.uint8).tobytes())
    return path
