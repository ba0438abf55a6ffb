"""The LUT engine's fp16 datapath (docs/lut.md "fp16"): the contract's binary16 operations in its
order through tpesim.fp16, shared by the functional reference and the cycle model's per-beat update."""

from __future__ import annotations

import numpy as np

from tpesim import fp16

__all__ = ["group_terms", "offset_term", "codes_of", "beat_update", "fp_reference"]


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


def offset_term(cfg, t0: np.ndarray):
    """The group's offset o/2 * S per row from the stored entry T[0] = -a_0 - ... - a_{g-1} = -S
    (binary16 [m]); None for the formats without one (pm1, ternary). signed (o/2 = -1/2):
    pow2(T[0], -1); unsigned (o/2 = 2^(B-1) - 1/2): add(pow2(T[0], -1), neg(pow2(T[0], B-1)))."""
    from .lut import plane_bits

    o = plane_bits(cfg)[1]
    if o == 0:
        return None
    half = np.asarray(fp16.pow2(t0, -1), np.uint16).reshape(t0.shape)
    if o < 0:
        return half
    big = fp16.neg(np.asarray(fp16.pow2(t0, cfg.planes - 1), np.uint16).reshape(t0.shape))
    return np.asarray(fp16.add(half, big), np.uint16).reshape(t0.shape)


def group_terms(cfg, a: np.ndarray, codes: np.ndarray):
    """One group's offset term ([m, 1] binary16, or None) and, per plane b (in order), the scaled
    lookups pow2(entry, e_b - 1) (P arrays [m, n] uint16): a [m, g] binary16 patterns, codes [g, n]
    weight codes; the index of an inverted plane (the signed MSB) is complemented."""
    from .lut import fp_shifts, plane_bits

    shifts, inv = fp_shifts(cfg), plane_bits(cfg)[2]
    g = cfg.group
    stored = _table(cfg, a)                                          # [m, E]
    off = offset_term(cfg, stored[:, 0])
    out = []
    for b in range(cfg.planes):
        bits = (codes >> b) & 1                                      # [g, n]
        idx = (bits << np.arange(g)[:, None]).sum(axis=0)            # [n]
        if inv[b]:
            idx = ~idx & ((1 << g) - 1)
        if cfg.sym:
            neg = (idx & 1) == 1
            x = np.where(neg, (~idx & ((1 << g) - 1)) >> 1, idx >> 1)
            e = stored[:, x]                                         # [m, n]
            e = np.where(neg[None, :], fp16.neg(e), e).astype(np.uint16)
        else:
            e = stored[:, idx]
        out.append(np.asarray(fp16.pow2(e, shifts[b]), np.uint16).reshape(e.shape))
    return (None if off is None else off[:, None]), out


def _accumulate(cfg, acc: np.ndarray, off, terms: list[np.ndarray]) -> np.ndarray:
    """acc <- acc + off (the row's offset, when the format has one), then acc <- acc + term for each
    plane's term in order (fp16, or fp32 after an exact promotion)."""
    if off is not None:
        terms = [np.broadcast_to(off, terms[0].shape)] + list(terms)
    for t in terms:
        if cfg.acc == "fp16":
            acc = np.asarray(fp16.add(acc, t), np.uint16).reshape(t.shape)
        else:
            acc = np.asarray(fp16.add32(acc, fp16.to32(t)), np.uint32).reshape(t.shape)
    return acc


def codes_of(cfg, w: np.ndarray) -> np.ndarray:
    """The in_w codes the fp16 datapath reads for weight values w: the value's bits (signed,
    unsigned), the +-1 bits (pm1), and for ternary the *sorted* code (c_0 | c_1, c_0 & c_1): -1 ->
    00, 0 -> 01, +1 -> 11 (the RTL sorts the two zero codes 01 and 10 into one, so the binary16
    result depends on the weight values only)."""
    w = np.asarray(w, np.int64)
    B = cfg.planes
    if cfg.w_bits == "ternary":
        return np.where(w > 0, 3, w + 1)
    if cfg.w_interp == "pm1":
        return (w + (1 << B) - 1) >> 1
    return w & ((1 << B) - 1)


def beat_update(cfg, acc_slot: np.ndarray, a: np.ndarray, w: np.ndarray, fresh: bool) -> None:
    """The cycle model's update of one tile slot (int32 array [M, N] holding the bit patterns) by one
    beat (a [M, g] patterns, w [g, N] weight values): the slot starts at +0 on a tile's first beat."""
    dt = np.uint16 if cfg.acc == "fp16" else np.uint32
    acc = np.zeros(acc_slot.shape, dt) if fresh else acc_slot.astype(np.int64).astype(dt)
    acc = _accumulate(cfg, acc, *group_terms(cfg, np.asarray(a, np.int64), codes_of(cfg, w)))
    acc_slot[...] = acc.astype(np.int64).astype(np.uint32).view(np.int32)


def fp_reference(cfg, a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """C (binary16 or binary32 patterns, int64) of A (binary16 patterns) @ W (weight values): K
    padded to whole groups with +0 activations and code 0, per group the offset term (if any) then
    the planes in order, groups in K order, from +0."""
    g = cfg.group
    m, k = a.shape
    n = w.shape[1]
    G = -(-k // g)
    ap = np.zeros((m, G * g), np.int64)
    ap[:, :k] = a
    cp = np.zeros((G * g, n), np.int64)
    cp[:k] = codes_of(cfg, w)
    acc = np.zeros((m, n), np.uint16 if cfg.acc == "fp16" else np.uint32)
    for q in range(G):
        acc = _accumulate(cfg, acc, *group_terms(cfg, ap[:, q * g:(q + 1) * g],
                                                 cp[q * g:(q + 1) * g]))
    return acc.astype(np.int64)
