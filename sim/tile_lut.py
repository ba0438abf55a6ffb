"""Tile-level timing of the LUT engine: GEMM -> tile stream (output-stationary tiles, one beat per
K-group), the per-tile recurrence and its stall-free closed form (derived in docs/lut.md "Timing")."""

from __future__ import annotations

import numpy as np

from .tile_stream import EngineTiming, OperandBlocks, TileStream, packed_bytes

__all__ = ["LutTiming", "LutTileBackend", "lut_timing", "lut_tile_times"]

NEVER = -(1 << 62)


def lut_step(P: int, S: int, M: int, G: int, state: tuple, s: int, free_prev: int):
    """One tile of the recurrence. state = (L, F) of the previous tile (NEVER for none); free_prev
    is the cycle from which the previous tile's rows may leave. Returns (new state, release = L_t,
    D of the previous tile)."""
    L, F = state
    first = s if L == NEVER else max(L + P, s)
    if F == NEVER:
        D = NEVER
        last = first + (G - 1) * P
    else:
        D = max(F + 1, free_prev)
        last = max(first + (G - 1) * P, D + M)
    return (last, last + P + S - 1), last, D


def lut_tile_times(P: int, S: int, M: int, beats, starts=None, frees=None) -> np.ndarray:
    """First-row cycle D_t of every tile (starts/frees default 0: stall free)."""
    state = (NEVER, NEVER)
    out = []
    for t, G in enumerate(beats):
        fp = 0 if (frees is None or t == 0) else frees[t - 1]
        state, _, d = lut_step(P, S, M, G, state, 0 if starts is None else starts[t], fp)
        if t:
            out.append(d)
    out.append(max(state[1] + 1, 0 if frees is None else frees[len(beats) - 1]))
    return np.asarray(out, np.int64)


class LutTileBackend:
    """The LUT engine's per-tile timing rule (module docstring), one call per tile."""

    def __init__(self, planes: int, stages: int, tile_m: int, beats: np.ndarray,
                 record_rows: bool = False):
        self.P, self.S, self.M = planes, stages, tile_m
        self.beats = np.asarray(beats, dtype=np.int64).tolist()
        self.state = (NEVER, NEVER)
        self.row_starts: list[int] | None = [] if record_rows else None

    def stream(self, t, now, ready, out_free):
        s = now
        for r in ready:
            if r > s:
                s = r
        self.state, rel, d = lut_step(self.P, self.S, self.M, self.beats[t], self.state, s,
                                      out_free)
        prev_done = -1
        if t:
            if self.row_starts is not None:
                self.row_starts.append(d)
            prev_done = d + self.M - 1
        return rel, prev_done, rel + 1

    def drain(self, now, out_free):
        d = max(self.state[1] + 1, out_free)
        if self.row_starts is not None:
            self.row_starts.append(d)
        return d + self.M - 1

    def row_cycles(self) -> np.ndarray:
        starts = np.asarray(self.row_starts, dtype=np.int64)
        return (starts[:, None] + np.arange(self.M, dtype=np.int64)).reshape(-1)


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
        M = cfg.tile_m
        beats = np.asarray(stream.beats, dtype=np.int64)
        if len(beats) and np.all(beats == beats[0]):
            # every GEMM's tiles are equal: the closed form; the loop for any other sequence
            Ds = _periodic_rows(cfg.planes, cfg.pipe_stages, M, int(beats[0]), len(beats))
        else:
            Ds = lut_tile_times(cfg.planes, cfg.pipe_stages, M, beats.tolist())
        cycles = int(Ds[-1]) + M
        rows = None
        if record_rows:
            rows = (Ds[:, None] + np.arange(M, dtype=np.int64)).reshape(-1)
        return cycles, rows

    def backend(self, stream, record_rows=False):
        cfg = self.cfg
        return LutTileBackend(cfg.planes, cfg.pipe_stages, cfg.tile_m, stream.beats, record_rows)

    def table_fields(self, stream: TileStream) -> dict:
        """Table-precompute cycles (one per beat) and table storage of a run."""
        cfg = self.cfg
        return {"table_precompute_cycles": int(np.sum(stream.beats)) * cfg.precompute_cycles,
                "table_bytes": cfg.table_bytes}


def _periodic_rows(P: int, S: int, M: int, G: int, T: int) -> np.ndarray:
    """First-row cycles D_t of T equal tiles of G beats, stall free (module docstring):
    L_0 = (G-1) P, L_t = L_0 + t max(G P, P + S + M), D_t = F_t + 1 = L_t + P + S."""
    step = max(G * P, P + S + M)
    return (G - 1) * P + step * np.arange(T, dtype=np.int64) + P + S


def lut_timing(cfg) -> LutTiming:
    """Registry face `timing`: the LUT engine's tile timing."""
    return LutTiming(cfg)
