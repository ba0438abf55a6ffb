"""Tile-level timing of the N:M sparse engine: the adder tree's fold recurrence (L = rows, D = 1,
lat = 4) on WsTiming's fold plan, B's bytes compressed (docs/nm_sparse.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .engines.nm_sparse import NmSparseConfig
from .tile_adder_tree import AdderTreeTileBackend, ideal_cycles
from .tile_stream import TileStream, packed_bytes
from .tile_systolic import WsTiming

__all__ = ["FoldGeometry", "NmSparseTiming", "nm_sparse_timing", "fold_geometry", "b_block_bytes",
           "b_traffic"]


@dataclass(frozen=True)
class FoldGeometry:
    """What the adder tree's fold recurrence (sim/tile_adder_tree.py) reads of an engine: `lanes`
    load beats per block, `drain_cycles` advancing edges after a block's last row before its bank
    may load, the row latency and the number of banks. The N:M engine has the same control
    (docs/nm_sparse.md: bank counters, drain, lsel/rsel), so the recurrence and its closed forms
    apply unchanged."""

    lanes: int
    drain_cycles: int
    latency: int
    double_buffer: bool
    load_latency: int = 0


def fold_geometry(cfg: NmSparseConfig) -> FoldGeometry:
    return FoldGeometry(lanes=cfg.rows, drain_cycles=cfg.drain_cycles, latency=cfg.latency,
                        double_buffer=cfg.double_buffer, load_latency=cfg.load_latency)


class NmSparseTiming(WsTiming):
    """The N:M engine's tile-level timing (registry face `timing`): WsTiming's GEMM mapping with a
    held block of rows*M (sparse) or rows*N (dense) K positions x cols, A's K-slice rows streamed,
    output blocks accumulated over K-folds; the fold recurrence and stall-free closed form of the
    adder tree with L = rows, D = 1, lat = 4. B moves compressed in sparse modes: per M-group N
    values of in_bits and N indices of idx_bits (a last partial group is padded to a whole one)."""

    def __init__(self, cfg: NmSparseConfig):
        super().__init__(cfg.block_shape[0], cfg.cols, in_bits=cfg.in_bits, acc_bits=cfg.acc_bits,
                         double_buffer=cfg.double_buffer)
        self.cfg = cfg
        self.geom = fold_geometry(cfg)

    @property
    def peak_macs_per_cycle(self) -> int:
        return self.cfg.peak_macs_per_cycle

    def gemm_stream(self, m: int, n: int, k: int) -> TileStream:
        s = super().gemm_stream(m, n, k)
        cfg = self.cfg
        if not cfg.sparse and cfg.load != "dense":
            return s
        a, b = s.inputs
        values, meta = b_block_bytes(cfg, b.block_rows, b.block_cols)
        nbytes = values + meta
        b = dataclasses.replace(b, block_bytes=nbytes, tile_bytes=nbytes)
        return dataclasses.replace(s, inputs=(a, b))

    def ideal(self, stream, record_rows=False):
        return ideal_cycles(self.geom, stream.beats, record_rows=record_rows)

    def backend(self, stream, record_rows=False):
        return AdderTreeTileBackend(self.geom, np.asarray(stream.beats), record_rows)


def nm_sparse_timing(cfg: NmSparseConfig) -> NmSparseTiming:
    return NmSparseTiming(cfg)


def b_block_bytes(cfg: NmSparseConfig, block_rows, block_cols) -> tuple[np.ndarray, np.ndarray]:
    """Bytes of B blocks of block_rows x block_cols as held in memory, (values, metadata): sparse,
    ceil(rows/M)*N kept values per column of in_bits each and as many idx_bits indices, each part
    packed densely and rounded up to a byte per block; dense mode or load "dense", every value of
    the block and no metadata."""
    rows, cols = np.asarray(block_rows, np.int64), np.asarray(block_cols, np.int64)
    if not cfg.sparse or cfg.load == "dense":
        # load "dense": the M-groups move whole (the compressors behind the port drop M-N of each)
        return packed_bytes(rows * cols, cfg.in_bits), np.zeros_like(rows)
    kept = -(-rows // cfg.group) * cfg.keep * cols
    return packed_bytes(kept, cfg.in_bits), packed_bytes(kept, cfg.idx_bits)


def b_traffic(cfg: NmSparseConfig, m: int, n: int, k: int) -> dict:
    """B's load-port traffic of an M x N x K GEMM split into values and metadata: every fold's held
    block once (their sum is the report's sram_read_bytes_b)."""
    b = NmSparseTiming(cfg).gemm_stream(m, n, k).inputs[1]
    values, meta = b_block_bytes(cfg, b.block_rows, b.block_cols)
    return {"b_value_bytes": int(values.sum()), "b_meta_bytes": int(meta.sum())}
