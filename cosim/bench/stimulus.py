"""Benchmark stimulus: a block of random full-range beats streamed `reps` times, shared by every path.

Notes and derivations: docs/internals.md, section `cosim/bench/stimulus.py`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tpesim.config import Stream as PortStream

__all__ = ["Stream", "make_stream", "pack_words", "checksum_rows", "write_stimulus_file", "FoldStream",
           "make_fold_stream", "in_streams", "out_stream", "layout_key", "layout_id", "port_words",
           "MAGIC", "VERSION"]

MAGIC = 0x42535054  # b"TPSB" little-endian
VERSION = 3         # one section per input stream of the config's layout (harness.cpp)
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


@dataclass
class FoldStream:
    """The WS/IS array's two input streams, `reps` back-to-back copies of one block of folds.

    A fold is `fold_loads` load beats (one stationary block: R rows of a systolic WS/IS tile, L rows
    of an adder-tree weight block; N lanes per beat) and `k` stream beats (`in_last` on the k-th).
    Each port streams its own block at its own pace (the hardware decides when a load beat is taken),
    so only the order within each port is fixed. The beats are random, so their load order does not
    matter to the bench.
    """

    loads: np.ndarray   # (folds * fold_loads, load lanes) int64, the load port
    a: np.ndarray       # (folds * k, stream lanes) int64, the stream port
    last: np.ndarray    # (folds * k,) int64
    reps: int
    k: int
    seed: int
    fold_loads: int | None = None   # load beats per fold (None: the stream port's lane count)

    @property
    def rows_per_load(self) -> int:
        return int(self.fold_loads if self.fold_loads is not None else self.a.shape[1])

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
        return FoldStream(self.loads[:f * R], self.a[:n], self.last[:n], 1, self.k, self.seed,
                          self.fold_loads)


def make_fold_stream(rows: int, cols: int, lo: int, hi: int, *, k: int, folds_per_block: int,
                     reps: int = 1, seed: int = 1, fold_loads: int | None = None,
                     load_range: tuple[int, int] | None = None) -> FoldStream:
    """Random stationary blocks and stream rows, uniform over the full range [lo, hi] (the load port's
    over `load_range` when given), k rows per fold. `rows`: lanes of a stream beat; `cols`: lanes of a
    load beat; `fold_loads`: load beats per fold (default `rows`, as in the systolic WS/IS array)."""
    rng = np.random.default_rng(seed)
    nl = rows if fold_loads is None else fold_loads
    llo, lhi = (lo, hi) if load_range is None else load_range
    loads = rng.integers(llo, lhi + 1, size=(folds_per_block * nl, cols), dtype=np.int64)
    n = k * folds_per_block
    a = rng.integers(lo, hi + 1, size=(n, rows), dtype=np.int64)
    last = np.zeros(n, np.int64)
    last[k - 1::k] = 1
    return FoldStream(loads, a, last, reps, k, seed, fold_loads)


# -- the generic stimulus file (version 3): one section per input stream of the config ---------------
def in_streams(streams) -> list[PortStream]:
    return [st for st in streams if st.direction == "in"]


def out_stream(streams) -> PortStream:
    outs = [st for st in streams if st.direction == "out"]
    if len(outs) != 1:
        raise ValueError(f"the bench harness needs exactly one output stream, not {len(outs)}")
    return outs[0]


def port_words(bits: int) -> int:
    """uint32 words of a `bits`-wide port (what Verilator's C++ type of it holds)."""
    return (bits + 31) // 32


def layout_key(streams) -> str:
    """The port layout the harness is built for, as text: its crc32 ties a stimulus file to a harness."""
    parts = []
    for st in streams:
        pay = ",".join(f"{p.port}:{p.lanes}x{p.bits}" for p in st.payload)
        parts.append(f"{st.direction} {st.name} {st.valid}/{st.ready}/{st.last or '-'} [{pay}]")
    return "; ".join(parts)


def layout_id(streams) -> int:
    return zlib.crc32(layout_key(streams).encode())


def write_stimulus_file(path: Path, streams, beats: dict, reps: int, expected_rows: int = 0) -> Path:
    """The generic harness's input (format in the module docstring). `streams`: the config's streams
    (`cfg.streams()`); `beats`: for each input stream's name, (payload arrays, last array or None), one
    (nbeats, lanes) int64 array per payload port in declaration order; `reps`: copies of every block;
    `expected_rows`: result rows the harness must take (0: not checked)."""
    ins = in_streams(streams)
    out = out_stream(streams)
    if set(beats) != {st.name for st in ins}:
        raise ValueError(f"beats given for streams {sorted(beats)}, the layout's input streams are "
                         f"{[st.name for st in ins]}")
    sections, descs = [], []
    for st in ins:
        payload, last = beats[st.name]
        if len(payload) != len(st.payload):
            raise ValueError(f"stream {st.name!r}: {len(payload)} payload arrays for ports "
                             f"{[p.port for p in st.payload]}")
        n = None
        words = []
        for lanes, arr in zip(st.payload, payload):
            arr = np.asarray(arr)
            if arr.ndim != 2 or arr.shape[1] != lanes.lanes:
                raise ValueError(f"port {lanes.port}: beats of shape {arr.shape}, want (n, {lanes.lanes})")
            if n is not None and arr.shape[0] != n:
                raise ValueError(f"stream {st.name!r}: payload ports with different beat counts")
            n = arr.shape[0]
            w = pack_words(arr, lanes.bits)
            if w.shape[1] != port_words(lanes.width):
                raise AssertionError(f"port {lanes.port}: packed to {w.shape[1]} words")
            words.append(w)
        n = 0 if n is None else n
        data = np.concatenate(words, axis=1) if words else np.zeros((n, 0), np.uint32)
        if (st.last is None) != (last is None):
            raise ValueError(f"stream {st.name!r}: last given = {last is not None}, but the stream "
                             f"{'has' if st.last else 'has no'} last port")
        if last is not None and len(last) != n:
            raise ValueError(f"stream {st.name!r}: {len(last)} last bits for {n} beats")
        descs += [n & 0xFFFFFFFF, n >> 32, data.shape[1], 0 if last is None else 1]
        sections.append(np.ascontiguousarray(data, dtype="<u4").tobytes())
        if last is not None:
            sections.append(np.asarray(last).astype(np.uint8).tobytes())
    out_lanes = sum(p.lanes for p in out.payload)
    hdr = np.zeros(16, np.uint32)
    hdr[:9] = [MAGIC, VERSION, len(ins), reps & 0xFFFFFFFF, reps >> 32, expected_rows & 0xFFFFFFFF,
               expected_rows >> 32, out_lanes, layout_id(streams)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(hdr.astype("<u4").tobytes())
        f.write(np.asarray(descs, np.uint32).astype("<u4").tobytes())
        for b in sections:
            f.write(b)
    return path
