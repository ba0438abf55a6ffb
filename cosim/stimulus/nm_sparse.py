"""Cosim stimulus of the N:M sparse engine: weight blocks in random modes (sparse blocks compressed by
tpesim.nm, dense blocks), some with invalid metadata, and full-range A rows; expected rows from numpy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tpesim import nm
from tpesim.engines.nm_sparse import NmSparseConfig, load_beats

from . import Case, full_range, lane_values

__all__ = ["make_case", "default_max_rows", "Block", "make_blocks", "corrupt", "CORRUPTIONS"]

# ways a block's metadata can be wrong (each must leave every row of the block as out_err, zeros)
CORRUPTIONS = ("duplicate", "descending", "out_of_range", "mode_flip")


@dataclass
class Block:
    """One weight block and its rows: `beats` = load beats (model layout: values, indices, dense
    bit), `x` = in_data rows (rows*M lanes), `expected` = result rows, `err` = invalid metadata."""

    beats: np.ndarray
    x: np.ndarray
    expected: np.ndarray
    err: bool
    dense: bool


def corrupt(cfg: NmSparseConfig, beats: np.ndarray, kind: str, rng: np.random.Generator) -> bool:
    """Break the metadata of a block's beats in place; False if `kind` cannot occur for cfg."""
    R, C, N, M = cfg.rows, cfg.cols, cfg.keep, cfg.group
    i = int(rng.integers(0, R))
    j = int(rng.integers(0, C))
    base = C * N + j * N
    if kind == "mode_flip":
        if R < 2:
            return False
        i = int(rng.integers(1, R))           # a later beat disagrees with the first beat's mode
        beats[i, -1] ^= 1
        return True
    if beats[0, -1] or cfg.load == "dense":
        return False                          # dense block, or the engine's compressors index
    if kind == "out_of_range":
        if (1 << cfg.idx_bits) == M:
            return False                      # every index field value names a window lane
        beats[i, base + int(rng.integers(0, N))] = int(rng.integers(M, 1 << cfg.idx_bits))
        return True
    if N < 2:
        return False
    s = int(rng.integers(1, N))
    if kind == "duplicate":
        beats[i, base + s] = beats[i, base + s - 1]
    else:                                     # descending: swap two neighbours
        beats[i, base + s - 1], beats[i, base + s] = beats[i, base + s], beats[i, base + s - 1]
    return True


def make_blocks(cfg: NmSparseConfig, rng: np.random.Generator, blocks: int, max_rows: int, *,
                p_invalid: float = 0.25, p_dense: float = 0.3) -> list[Block]:
    """Random blocks: the first in the config's mode with the extreme products; later ones dense
    with probability p_dense (the same hardware switches mode per block), and with probability
    p_invalid given broken metadata."""
    R, C, N, M = cfg.rows, cfg.cols, cfg.keep, cfg.group
    w, lo = cfg.in_bits, cfg.in_range[0]
    out = []
    for f in range(blocks):
        m = int(rng.integers(1, max_rows + 1))
        dense = (not cfg.sparse) if f == 0 else bool(rng.random() < p_dense or cfg.nm is None)
        x = full_range(rng, (m, R * M), w, True)     # dense blocks: the unused lanes are junk
        if dense:
            wt = full_range(rng, (R * N, C), w, True)
            used = (np.arange(R)[:, None] * M + np.arange(N)[None, :]).reshape(-1)
            if f == 0:
                wt[:, 0] = lo
                x[0, used] = lo
            expected = x[:, used] @ wt
        else:
            wt = full_range(rng, (R * M, C), w, True)
            if f == 0:
                wt[:, 0] = lo
                x[0, :] = lo
            expected = x @ nm.prune(wt, N, M, axis=0)
        beats = load_beats(cfg, wt, dense=dense)
        err = False
        if f > 0 and rng.random() < p_invalid:
            for kind in rng.permutation(CORRUPTIONS):
                if corrupt(cfg, beats, str(kind), rng):
                    err = True
                    break
        if err:
            expected = np.zeros_like(expected)
        out.append(Block(beats, x, expected, err, dense))
    return out


def beat_ports(cfg: NmSparseConfig, beat: np.ndarray) -> dict[str, int]:
    """Raw load port values of one load beat (model layout)."""
    if cfg.load == "dense":
        return {"load_val": lane_values(beat[:-1], cfg.in_bits), "load_dense": int(beat[-1]) & 1}
    cn = cfg.cols * cfg.keep
    return {"load_val": lane_values(beat[:cn], cfg.in_bits),
            "load_idx": lane_values(beat[cn:2 * cn], cfg.idx_bits),
            "load_dense": int(beat[-1]) & 1}


def make_case(cfg: NmSparseConfig, rng: np.random.Generator, blocks: int, max_rows: int,
              *, p_invalid: float = 0.25) -> Case:
    loads, rows, expected = [], [], []
    for blk in make_blocks(cfg, rng, blocks, max_rows, p_invalid=p_invalid):
        loads += [beat_ports(cfg, b) for b in blk.beats]
        m = blk.x.shape[0]
        rows += [{"in_data": lane_values(blk.x[r], cfg.in_bits), "in_last": int(r == m - 1)}
                 for r in range(m)]
        expected.append(blk.expected)
    bound = cfg.latency + cfg.drain_cycles + cfg.rows + 8
    return Case(beats={"load": loads, "in": rows}, expected=expected, latency_bound=bound)


def default_max_rows(cfg: NmSparseConfig) -> int:
    """Default bound of a block's M: long enough for double-buffered loads to overlap rows."""
    return 2 * cfg.rows + 6
