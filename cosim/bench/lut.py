"""Bench adapter of the LUT engine: LutModel.run_beats over its one input stream (activations of
tile_m rows x group, weight codes of group x tile_n, `in_last` on a tile's k-th K-group)."""

from __future__ import annotations

import numpy as np

from tpesim.engines.lut import decode_weights

from .cases import RunBeatsAdapter
from .stimulus import Stream

__all__ = ["LutAdapter"]


class LutAdapter(RunBeatsAdapter):
    """k K-group beats per tile, `tiles_per_block` tiles per block; tile_m result rows per tile.
    The harness gets the codes on in_w; the model is handed their values (decoded once, outside
    the timed calls, as the lockstep model does per beat)."""

    @staticmethod
    def tile_rows(cfg) -> int:
        return cfg.tile_m

    def size(self, cfg) -> str:
        """The shared label plus the weight format (w_bits is not a string field)."""
        w = "ternary" if cfg.w_bits == "ternary" else f"W{cfg.w_bits}"
        return f"{w} {super().size(cfg)}"

    def make_stream(self, cfg, *, k: int, tiles_per_block: int, reps: int, seed: int) -> Stream:
        rng = np.random.default_rng(seed)
        n = k * tiles_per_block
        a = rng.integers(-128, 128, size=(n, cfg.tile_m * cfg.group), dtype=np.int64)
        b = rng.integers(0, 1 << cfg.code_bits, size=(n, cfg.group * cfg.tile_n), dtype=np.int64)
        last = np.zeros(n, np.int64)
        last[k - 1::k] = 1
        return Stream(a, b, last, reps, k, seed)

    def model_operands(self, cfg, stream: Stream) -> tuple[np.ndarray, np.ndarray]:
        """Activations as int32 and the codes' weight values as int16 (the core's beat types)."""
        return (np.ascontiguousarray(stream.a.astype(np.int32)),
                np.ascontiguousarray(decode_weights(cfg, stream.b).astype(np.int16)))
