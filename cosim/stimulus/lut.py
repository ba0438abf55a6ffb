"""Cosim stimulus of the LUT engine: tiles of random K (ragged tail groups zero-padded), full-range int8
activations or binary16 patterns with every special value, every weight code."""

from __future__ import annotations

import numpy as np

from tpesim import fp16
from tpesim.engines.lut import LutConfig, encode_weights, reference

from . import Case, full_range, lane_values

__all__ = ["make_case", "default_max_rows"]


def make_case(cfg: LutConfig, rng: np.random.Generator, blocks: int, max_rows: int) -> Case:
    """`blocks` tiles, each of a random number of K-groups in 1..max_rows."""
    M, N, g = cfg.tile_m, cfg.tile_n, cfg.group
    op_b = cfg.operands()[1]
    beats, expected = [], []
    ab = cfg.act_bits
    for t in range(blocks):
        groups = int(rng.integers(1, max_rows + 1))
        k = groups * g - int(rng.integers(0, g))            # a ragged last group now and then
        a = full_range(rng, (M, k), 8, True) if cfg.int_mode else _fp16_acts(rng, (M, k), t)
        b = full_range(rng, (k, N), op_b.bits, op_b.signed)  # weight values, or codes (pm1/ternary)
        if t == 0 and cfg.int_mode:
            a[0, 0] = -128
            b[0, 0] = b.min(initial=0) if op_b.signed else (1 << op_b.bits) - 1
            a[-1, -1] = -128
        elif t == 0:                                        # the largest value or code
            b[0, 0] = (1 << (op_b.bits - 1)) - 1 if op_b.signed else (1 << op_b.bits) - 1
        ap = np.zeros((M, groups * g), np.int64)
        ap[:, :k] = a
        codes = np.zeros((groups * g, N), np.int64)        # a padded code meets zero activations
        codes[:k] = encode_weights(cfg, b)
        for q in range(groups):
            beats.append({"in_a": lane_values(ap[:, q * g:(q + 1) * g].reshape(-1), ab),
                          "in_w": lane_values(codes[q * g:(q + 1) * g].reshape(-1), cfg.code_bits),
                          "in_last": int(q == groups - 1)})
        expected.append(reference(cfg, a, b))
    # the longest wait for a transfer: a last beat behind a full tile's planes and the drain
    bound = 2 * (cfg.planes + cfg.pipe_stages + M) + 8
    return Case(beats={"in": beats}, expected=expected, latency_bound=bound)


def _fp16_acts(rng: np.random.Generator, shape, t: int) -> np.ndarray:
    """binary16 patterns: mostly normal values of mixed magnitude, some subnormals (the odd ones'
    halvings round), small normals (halved below the normals), signed zeros, and (from the second
    tile on) the odd inf or NaN, so every special path of the adders and scalers runs."""
    vals = rng.uniform(-4, 4, shape) * np.exp2(rng.integers(-6, 7, shape))
    a = fp16.from_float(vals).astype(np.int64)
    pick = rng.random(shape)
    sign = rng.integers(0, 2, shape) << 15
    sub = rng.integers(0, 0x400, shape) | sign
    small = rng.integers(0x400, 0x800, shape) | sign
    a = np.where(pick < 0.15, sub, a)                                  # subnormals and +-0
    a = np.where((pick >= 0.15) & (pick < 0.22), small, a)             # 2^-14 .. 2^-13
    if t > 0:
        special = rng.choice([fp16.POS_INF, fp16.NEG_INF, 0x7E01, fp16.MAX_NORMAL], shape)
        a = np.where(pick > 0.97, special, a)
    return a


def default_max_rows(cfg: LutConfig) -> int:
    """Default bound of a tile's K-groups: long enough that tiles overlap the previous drain."""
    return 2 * cfg.tile_m + 4
