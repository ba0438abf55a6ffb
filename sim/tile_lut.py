"""Tile-level timing of the LUT engine: GEMM -> tile stream (output-stationary tiles, one beat per
K-group) on the shared OS recurrence and closed form (sim/tile_stream.py; docs/lut.md "Timing")."""

from __future__ import annotations

import numpy as np

from .tile_stream import (EngineTiming, OperandBlocks, OsTileRecurrence, TileStream, os_ideal,
                          packed_bytes)

__all__ = ["LutTiming", "LutTileBackend", "lut_timing", "lut_tile_times"]


class LutTileBackend(OsTileRecurrence):
    """The LUT engine's per-tile timing rule: the shared OS recurrence with one beat per `planes`
    cycles and the first result row planes + stages cycles after a tile's last beat."""

    def __init__(self, planes: int, stages: int, tile_m: int, beats: np.ndarray,
                 record_rows: bool = False):
        super().__init__(beats, rows=tile_m, period=planes, latency=planes + stages,
                         record_rows=record_rows)


def lut_tile_times(P: int, S: int, M: int, beats, starts=None, frees=None) -> np.ndarray:
    """First-row cycle D_t of every tile, the recurrence run tile by tile (starts/frees default 0:
    stall free)."""
    tb = LutTileBackend(P, S, M, beats, record_rows=True)
    for t in range(len(tb.beats)):
        fp = 0 if (frees is None or t == 0) else frees[t - 1]
        tb.stream(t, 0, (0 if starts is None else starts[t],), fp)
    tb.drain(0, 0 if frees is None else frees[len(tb.beats) - 1])
    return np.asarray(tb.row_starts, np.int64)


class LutTiming(EngineTiming):
    """Output-stationary tiles of tile_m x tile_n results, ceil(K/g) beats each, row-block-major."""

    dataflow = "os"

    def __init__(self, cfg):
        super().__init__(cfg.tile_m, cfg.tile_n, in_bits=cfg.act_bits, acc_bits=cfg.out_bits)
        self.cfg = cfg

    @property
    def peak_macs_per_cycle(self):
        return self.cfg.peak_macs_per_cycle

    def gemm_stream(self, m: int, n: int, k: int) -> TileStream:
        self._check_shape(m, n, k)
        cfg = self.cfg
        R, C = cfg.tile_m, cfg.tile_n
        gm, gn = -(-m // R), -(-n // C)
        t = np.arange(gm * gn, dtype=np.int64)
        mi, ni = t // gn, t % gn
        rows_m = np.minimum(R, m - mi * R)
        cols_n = np.minimum(C, n - ni * C)
        kk = np.full_like(t, k)
        groups = np.full_like(t, -(-k // cfg.group))
        ab, wb, cb = cfg.act_bits, cfg.code_bits, cfg.out_bits
        a = OperandBlocks("a", mi, packed_bytes(rows_m * k, ab), ab, rows_m, kk)
        b = OperandBlocks("b", ni, packed_bytes(cols_n * k, wb), wb, kk, cols_n)
        c = OperandBlocks("c", t, packed_bytes(rows_m * cols_n, cb), cb, rows_m, cols_n)
        return TileStream(beats=groups, inputs=(a, b), output=c, out_rows=R)

    def ideal(self, stream, record_rows=False):
        cfg = self.cfg
        return os_ideal(stream.beats, rows=cfg.tile_m, period=cfg.planes,
                        latency=cfg.planes + cfg.pipe_stages, record_rows=record_rows)

    def backend(self, stream, record_rows=False):
        cfg = self.cfg
        return LutTileBackend(cfg.planes, cfg.pipe_stages, cfg.tile_m, stream.beats, record_rows)

    def table_fields(self, stream: TileStream) -> dict:
        """Table-precompute cycles (one per beat) and table storage of a run."""
        cfg = self.cfg
        return {"table_precompute_cycles": int(np.sum(stream.beats)) * cfg.precompute_cycles,
                "table_bytes": cfg.table_bytes}


def lut_timing(cfg) -> LutTiming:
    """Registry face `timing`: the LUT engine's tile timing."""
    return LutTiming(cfg)
