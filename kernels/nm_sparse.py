"""GEMM on the N:M sparse engine: the held-block mapping of kernels/stationary.py, with B pruned N:M
along K in sparse modes (the cycle path compresses it in the model's load_order)."""

from __future__ import annotations

import numpy as np

from tpesim.engines.nm_sparse import prune_b
from tpesim.kernels.stationary import StationaryCycleBackend

__all__ = ["NmSparseCycleBackend", "nm_sparse_cycle_backend"]


class NmSparseCycleBackend(StationaryCycleBackend):
    """StationaryCycleBackend (one `run_folds` per fold, a block's load beats = its compressed
    lanes); tile-level values multiply the pruned B, as the engine does."""

    @staticmethod
    def tile_values(cfg, stream, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return StationaryCycleBackend.tile_values(cfg, stream, a, prune_b(cfg, b))


def nm_sparse_cycle_backend(cfg) -> type:
    """Registry face `cycle_backend` of the N:M engine."""
    return NmSparseCycleBackend
