"""Bench adapter of the N:M sparse engine: compressed weight blocks on its three-port load stream,
A rows on its stream port, result rows checksummed with the out_err lane as the harness does."""

from __future__ import annotations

import numpy as np

from tpesim.engines.nm_sparse import compress_block, in_port_rows

from .cases import StationaryStreamAdapter
from .stimulus import FoldStream, in_streams

__all__ = ["NmSparseBenchAdapter"]


class _ErrLaneModel:
    """The model with `run_folds` rows as the harness checksums them: out_c lanes masked to
    result_bits, then the out_err lane (0: the bench's metadata is valid, checked after each call)."""

    def __init__(self, model):
        self.m = model
        self.mask = (1 << model.cfg.result_bits) - 1
        self.core_module = model.core_module

    def run_folds(self, *args, **kw):
        res = self.m.run_folds(*args, **kw)
        if self.m.err_rows:
            raise AssertionError(f"{self.m.err_rows} result rows flagged out_err in the bench stream")
        oc = res[0]
        rows = np.zeros((oc.shape[0], oc.shape[1] + 1), np.int64)
        rows[:, :-1] = oc & self.mask
        return (rows, *res[1:])


class NmSparseBenchAdapter(StationaryStreamAdapter):
    """StationaryStreamAdapter's free-running run (one run_folds call per block copy, loads running
    ahead) on streams built for this engine: each fold's `rows` load beats are a random weight block
    compressed by the engine's compressor (valid metadata), its k rows random full-range A rows."""

    @staticmethod
    def ports(cfg):
        load, rows = in_streams(cfg.streams())
        return load, rows

    @staticmethod
    def out_lane_bits(cfg) -> int:
        return 64          # rows come pre-masked per lane (_ErrLaneModel)

    def size(self, cfg) -> str:
        return f"{cfg.sparsity} {cfg.mode.upper()} {cfg.rows}x{cfg.cols} lanes"

    def describe(self, cfg) -> str:
        return (f"{cfg.engine} {cfg.sparsity} {cfg.mode} {cfg.rows}x{cfg.cols} lanes "
                f"int{cfg.in_bits} acc{cfg.acc_bits} (results {cfg.result_bits}-bit + out_err)")

    def model(self, cfg, *, interpreted: bool):
        return _ErrLaneModel(super().model(cfg, interpreted=interpreted))

    def make_stream(self, cfg, *, k: int, tiles_per_block: int, reps: int, seed: int) -> FoldStream:
        rng = np.random.default_rng(seed)
        lo, hi = cfg.in_range
        K = cfg.block_shape[0]
        loads = np.concatenate([compress_block(cfg, rng.integers(lo, hi + 1, (K, cfg.cols)))
                                for _ in range(tiles_per_block)])
        a = rng.integers(lo, hi + 1, (k * tiles_per_block, K), dtype=np.int64)
        last = np.zeros(k * tiles_per_block, np.int64)
        last[k - 1::k] = 1
        return FoldStream(loads, a, last, reps, k, seed, cfg.rows)

    def in_beats(self, cfg, stream: FoldStream) -> dict:
        cn = cfg.cols * cfg.keep
        port_rows = in_port_rows(cfg, stream.a)
        ld = stream.loads
        return {"load": ([ld[:, :cn], ld[:, cn:2 * cn], ld[:, -1:]], None),
                "in": ([port_rows], stream.last)}

