"""Cycle-level GEMM backend of the LUT engine (the `OsCycleBackend` interface): one free-running
`run_beats` of the register model per output tile, tiles row-block-major, K padded to whole groups.
"""

from __future__ import annotations

import numpy as np

from tpesim.engines.lut import LutConfig, LutModel, reference, weight_values, weights_of
from tpesim.timing import TileStream

__all__ = ["LutCycleBackend", "lut_cycle_backend"]


class LutCycleBackend:
    """`stream(t, ...)` streams tile t's ceil(K/g) beats (valid from the cycle its operands are in
    SRAM) while tile t-1's rows drain (sink ready from the cycle the output buffer has room);
    `drain` empties the last tile. With a and b None the beats are zeros (timing only)."""

    def __init__(self, cfg: LutConfig, m: int, n: int, k: int, a: np.ndarray | None = None,
                 b: np.ndarray | None = None, *, interpreted: bool | None = None):
        self.cfg = cfg
        self.model = LutModel(cfg, interpreted=interpreted)
        M, N, g = cfg.tile_m, cfg.tile_n, cfg.group
        self.m, self.n = m, n
        self.gm, self.gn = -(-m // M), -(-n // N)
        G = -(-k // g)
        self.G = G
        self.values = a is not None
        # operands padded to whole tiles and groups; a padded weight is a valid value (it meets
        # zero activations only), so every interpretation gives the exact product
        pad_w = 0 if 0 in weight_values(cfg) else weight_values(cfg)[0]
        ap = np.zeros((self.gm * M, G * g), np.int32)
        wp = np.full((G * g, self.gn * N), pad_w, np.int16)
        if self.values:
            ap[:m, :k] = a
            wp[:k, :n] = weights_of(cfg, b)   # one-line error on a code the format cannot hold
        # beats of row block mi: [G, M*g]; of column block ni: [G, g*N]
        self._a = ap.reshape(self.gm, M, G, g).transpose(0, 2, 1, 3).reshape(self.gm, G, M * g)
        self._a = np.ascontiguousarray(self._a)
        self._w = np.ascontiguousarray(
            wp.reshape(G, g, self.gn, N).transpose(2, 0, 1, 3).reshape(self.gn, G, g * N))
        self._last = np.zeros(G, np.int64)
        self._last[-1] = 1
        self._none = (np.zeros((0, M * g), np.int32), np.zeros((0, g * N), np.int16),
                      np.zeros(0, np.int64))
        self.out = np.zeros((m, n), np.int64) if self.values else None
        self.cycle = 0
        self._stamps: list[np.ndarray] = []

    @staticmethod
    def _hold(until: int, now: int) -> np.ndarray | None:
        return np.zeros(until - now, np.uint8) if until > now else None

    def stream(self, t, now, ready, out_free):
        if now != self.cycle:
            raise RuntimeError(f"engine woken at cycle {now} but its clock is at {self.cycle}")
        mi, ni = divmod(t, self.gn)
        rows, stamps, ran = self.model.run_beats(
            self._a[mi], self._w[ni], self._last, valid=self._hold(max(ready), now),
            ready=self._hold(out_free, now) if t else None, drain=False)
        self.cycle += ran
        prev_done = -1
        if t:
            prev_done = self._collect(t - 1, rows, stamps)
        elif len(rows):
            raise RuntimeError(f"{len(rows)} result rows before the first tile finished")
        return self.cycle - 1, prev_done, self.cycle

    def drain(self, now, out_free):
        if now != self.cycle:
            raise RuntimeError(f"engine woken at cycle {now} but its clock is at {self.cycle}")
        rows, stamps, ran = self.model.run_beats(*self._none, ready=self._hold(out_free, now),
                                                 drain=True)
        self.cycle += ran
        return self._collect(self.gm * self.gn - 1, rows, stamps)

    def _collect(self, t: int, rows: np.ndarray, stamps: np.ndarray) -> int:
        M, N = self.cfg.tile_m, self.cfg.tile_n
        if len(rows) != M:
            raise RuntimeError(f"tile {t} delivered {len(rows)} result rows, not {M}")
        self._stamps.append(stamps)
        if self.values:
            mi, ni = divmod(t, self.gn)
            m0, n0 = mi * M, ni * N
            m1, n1 = min(m0 + M, self.m), min(n0 + N, self.n)
            self.out[m0:m1, n0:n1] = rows[:m1 - m0, :n1 - n0]
        return int(stamps[-1])

    def row_cycles(self) -> np.ndarray:
        return np.concatenate(self._stamps) if self._stamps else np.zeros(0, np.int64)

    @staticmethod
    def tile_values(cfg: LutConfig, stream: TileStream, a: np.ndarray,
                    b: np.ndarray) -> np.ndarray:
        """C assembled from per-tile references along the tile stream's blocks."""
        M, N = cfg.tile_m, cfg.tile_n
        m, n = a.shape[0], b.shape[1]
        c = np.full((m, n), np.iinfo(np.int64).min, np.int64)
        for mi, ni in zip(stream.inputs[0].block.tolist(), stream.inputs[1].block.tolist()):
            c[mi * M:(mi + 1) * M, ni * N:(ni + 1) * N] = reference(
                cfg, a[mi * M:(mi + 1) * M], b[:, ni * N:(ni + 1) * N])
        return c


def lut_cycle_backend(cfg: LutConfig) -> type:
    """Registry face `cycle_backend`."""
    return LutCycleBackend
