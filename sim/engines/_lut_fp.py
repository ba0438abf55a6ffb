"""The LUT engine's fp16 datapath (docs/lut.md "fp16"): the contract's binary16 operations in its
order through tpesim.fp16, shared by the functional reference and the cycle model's per-beat update."""

from __future__ import annotations

import numpy as np

from tpesim import fp16

__all__ = ["group_terms", "beat_update", "fp_reference"]


def _table(cfg, a: np.ndarray) -> np.ndarray:
    """Stored entries per row of one group (a: [m, g] binary16 patterns): entry of index i is
    (+-a_0) + (+-a_1) + ... left to right, + where bit k of i is set (negation = sign flip);
    sym: the entries with i[0] = 0 (i = x << 1), else all 2^g. Returns [m, entries] uint16."""
    g = cfg.group
    idxs = [(x << 1) if cfg.sym else x for x in range(cfg.entries)]
    a = a.astype(np.uint16)
    cols = []
    for i in idxs:
        t = a[:, 0] if i & 1 else fp16.neg(a[:, 0])
        for k in range(1, g):
            t = fp16.add(t, a[:, k] if (i >> k) & 1 else fp16.neg(a[:, k]))
        cols.append(np.asarray(t, np.uint16).reshape(-1))
    return np.stack(cols, axis=1)


def group_terms(cfg, a: np.ndarray, codes: np.ndarray) -> list[np.ndarray]:
    """Per plane b (in order), the scaled lookups pow2(entry, b) of one group: a [m, g] binary16
    patterns, codes [g, n] weight codes (+-1 bits). Returns P arrays [m, n] uint16."""
    from .lut import plane_bits

    shifts, _, _ = plane_bits(cfg)
    g = cfg.group
    stored = _table(cfg, a)                                          # [m, E]
    out = []
    for b in range(cfg.planes):
        bits = (codes >> b) & 1                                      # [g, n]
        idx = (bits << np.arange(g)[:, None]).sum(axis=0)            # [n]
        if cfg.sym:
            neg = (idx & 1) == 1
            x = np.where(neg, (~idx & ((1 << g) - 1)) >> 1, idx >> 1)
            e = stored[:, x]                                         # [m, n]
            e = np.where(neg[None, :], fp16.neg(e), e).astype(np.uint16)
        else:
            e = stored[:, idx]
        out.append(np.asarray(fp16.pow2(e, shifts[b]), np.uint16).reshape(e.shape))
    return out


def _accumulate(cfg, acc: np.ndarray, terms: list[np.ndarray]) -> np.ndarray:
    """acc <- acc + term for each plane's term in order (fp16, or fp32 after an exact promotion)."""
    for t in terms:
        if cfg.acc == "fp16":
            acc = np.asarray(fp16.add(acc, t), np.uint16).reshape(t.shape)
        else:
            acc = np.asarray(fp16.add32(acc, fp16.to32(t)), np.uint32).reshape(t.shape)
    return acc


def _codes(cfg, w: np.ndarray) -> np.ndarray:
    """+-1-bit codes of pm1 weight values."""
    B = cfg.planes
    return (np.asarray(w, np.int64) + (1 << B) - 1) >> 1


def beat_update(cfg, acc_slot: np.ndarray, a: np.ndarray, w: np.ndarray, fresh: bool) -> None:
    """The cycle model's update of one tile slot (int32 array [M, N] holding the bit patterns) by one
    beat (a [M, g] patterns, w [g, N] weight values): the slot starts at +0 on a tile's first beat."""
    dt = np.uint16 if cfg.acc == "fp16" else np.uint32
    acc = np.zeros(acc_slot.shape, dt) if fresh else acc_slot.astype(np.int64).astype(dt)
    acc = _accumulate(cfg, acc, group_terms(cfg, np.asarray(a, np.int64), _codes(cfg, w)))
    acc_slot[...] = acc.astype(np.int64).astype(np.uint32).view(np.int32)


def fp_reference(cfg, a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """C (binary16 or binary32 patterns, int64) of A (binary16 patterns) @ W (pm1 values): K padded
    to whole groups with +0 activations and code 0, per group the planes in order, groups in K order,
    from +0."""
    g = cfg.group
    m, k = a.shape
    n = w.shape[1]
    G = -(-k // g)
    ap = np.zeros((m, G * g), np.int64)
    ap[:, :k] = a
    cp = np.zeros((G * g, n), np.int64)
    cp[:k] = _codes(cfg, w)
    acc = np.zeros((m, n), np.uint16 if cfg.acc == "fp16" else np.uint32)
    for q in range(G):
        acc = _accumulate(cfg, acc, group_terms(cfg, ap[:, q * g:(q + 1) * g],
                                                cp[q * g:(q + 1) * g]))
    return acc.astype(np.int64)
