"""Bench adapter of the LUT engine: LutModel.run_beats over its one input stream (activations of
tile_m rows x group, weight codes of group x tile_n, `in_last` on a tile's k-th K-group)."""

from __future__ import annotations

import time

import numpy as np

from tpesim.engines.lut import decode_weights

from .cases import Adapter, ModelRun
from .stimulus import Stream, checksum_rows, in_streams

__all__ = ["LutAdapter"]


class LutAdapter(Adapter):
    """k K-group beats per tile, `tiles_per_block` tiles per block; tile_m result rows per tile.
    The harness gets the codes on in_w; the model is handed their values (decoded once, outside
    the timed calls, as the lockstep model does per beat)."""

    run_call = "run_beats"

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

    def run_model(self, cfg, stream: Stream, *, interpreted: bool = False,
                  keep_rows: bool = False) -> ModelRun:
        """One run_beats call per block copy (Python touched per block, never per cycle), draining
        after the last. Only the run calls are timed."""
        m = self.model(cfg, interpreted=interpreted)
        bits = self.out_lane_bits(cfg)
        w = np.ascontiguousarray(decode_weights(cfg, stream.b).astype(np.int16))
        a = np.ascontiguousarray(stream.a.astype(np.int32))
        cycles = rows = 0
        h = 0
        secs = 0.0
        last_stamp = -1
        kept = []
        for r in range(stream.reps):
            t0 = time.perf_counter()
            oc, st, cyc = m.run_beats(a, w, stream.last, drain=(r == stream.reps - 1))
            secs += time.perf_counter() - t0
            h = (h + checksum_rows(oc, bits, rows)) & 0xFFFFFFFFFFFFFFFF
            rows += len(oc)
            cycles += cyc
            if len(st):
                last_stamp = int(st[-1])
            if keep_rows:
                kept.append(oc.copy())
        if rows != self.expected_rows(cfg, stream):
            raise AssertionError(f"model gave {rows} result rows for {stream.tiles} tiles of "
                                 f"{cfg.tile_m}")
        if cycles != last_stamp + 1:
            raise AssertionError(f"model ran {cycles} cycles but its last row left in cycle {last_stamp}")
        return ModelRun(cycles, rows, h, secs, np.concatenate(kept) if keep_rows else None)

    def in_beats(self, cfg, stream: Stream) -> dict:
        (st,) = in_streams(cfg.streams())
        return {st.name: ([stream.a, stream.b], stream.last)}

    def expected_rows(self, cfg, stream: Stream) -> int:
        return stream.tiles * cfg.tile_m
