"""Cycle-level GEMM backend of the LUT engine: the shared output-stationary stream (OsStreamBackend)
with one beat per K-group of the register model, K padded to whole groups."""

from __future__ import annotations

import numpy as np

from tpesim.engines.lut import LutConfig, LutModel, reference, weight_values, weights_of
from tpesim.kernels.gemm import OsStreamBackend

__all__ = ["LutCycleBackend", "lut_cycle_backend"]


class LutCycleBackend(OsStreamBackend):
    """`OsStreamBackend` of the LUT engine: a tile's ceil(K/g) beats carry tile_m x g activations
    and g x tile_n weight values. With a and b None the beats are zeros (timing only)."""

    model_cls = LutModel
    shape_fields = ("tile_m", "tile_n")
    reference = staticmethod(reference)

    def _layout(self, k: int, a: np.ndarray | None, b: np.ndarray | None) -> None:
        cfg, m, n = self.cfg, self.m, self.n
        M, N, g = cfg.tile_m, cfg.tile_n, cfg.group
        G = self.G = -(-k // g)                 # beats per tile
        # operands padded to whole tiles and groups; a padded weight is a valid value (it meets
        # zero activations only), so every interpretation gives the exact product
        pad_w = 0 if 0 in weight_values(cfg) else weight_values(cfg)[0]
        ap = np.zeros((self.gm * M, G * g), np.int32)
        wp = np.full((G * g, self.gn * N), pad_w, np.int16)
        if self.values:
            ap[:m, :k] = a
            wp[:k, :n] = weights_of(cfg, b)   # one-line error on a code the format cannot hold
        # beats of row block mi: [G, M*g]; of column block ni: [G, g*N]
        self._a = np.ascontiguousarray(
            ap.reshape(self.gm, M, G, g).transpose(0, 2, 1, 3).reshape(self.gm, G, M * g))
        self._w = np.ascontiguousarray(
            wp.reshape(G, g, self.gn, N).transpose(2, 0, 1, 3).reshape(self.gn, G, g * N))
        self._last = np.zeros(G, np.int64)
        self._last[-1] = 1
        self._no_beats = (np.zeros((0, M * g), np.int32), np.zeros((0, g * N), np.int16),
                          np.zeros(0, np.int64))

    def _beats(self, mi: int, ni: int) -> tuple[np.ndarray, np.ndarray]:
        return self._a[mi], self._w[ni]


def lut_cycle_backend(cfg: LutConfig) -> type:
    """Registry face `cycle_backend`."""
    return LutCycleBackend
