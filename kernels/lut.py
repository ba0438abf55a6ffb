"""Low-bit GEMM and LLM-layer kernels for the LUT engine (docs/lut_kernels.md): bit-plane weights,
table algebra, scales, model shapes, timing beside the systolic engine (`tpesim run lut-layers`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tpesim.tile_stream import MAX_GEMM_DIM
from tpesim.errors import ConfigError, TpesimError, WorkloadError

__all__ = ["INTERPS", "MODELS", "PHASES", "LlmModel", "QuantizedWeights", "cli_main", "code_values",
           "dequantize_weights", "engine_operand", "format_table", "fpga_area", "fpga_lines",
           "from_planes", "linears", "llm_layers", "lookup", "lut_gemm", "lut_gemm_int8_tables",
           "lut_layer", "pack_planes", "packed_weight_bytes", "plane_code", "plane_weights",
           "quantize_activations", "quantize_weights", "quantized_gemm", "scaled_gemm",
           "systolic_peak", "systolic_shape", "tables", "to_planes", "unpack_planes"]

INTERPS = ("signed", "unsigned", "pm1")
PHASES = {"decode": 1, "prefill": 2048}        # M of each phase: one token, a 2048-token prompt
SYSTOLIC_MAX_DIM = 512                          # SystolicConfig's rows/cols limit
WORKLOADS = Path(__file__).resolve().parent / "workloads"


# -- model shapes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LlmModel:
    """A decoder-only LLM's linear layers, from its published config.json
    (kernels/workloads/README.md).

    Attributes
    ----------
    key, title, source : str
        CLI name, display name, the config.json the numbers come from.
    hidden, intermediate, heads, kv_heads, layers : int
        hidden_size, intermediate_size, num_attention_heads, num_key_value_heads,
        num_hidden_layers.
    workload : str
        The shipped GEMM file (SCALE-Sim `-i gemm` format) under kernels/workloads/.
    """

    key: str
    title: str
    source: str
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    layers: int
    workload: str

    def linear_shapes(self) -> tuple[tuple[str, int, int], ...]:
        """(name, N, K) of every linear of one decoder layer, derived from the config: q/k/v/o
        (k and v have kv_heads heads of hidden/heads), gate/up hidden -> intermediate, down back."""
        kv = self.kv_heads * (self.hidden // self.heads)
        h, f = self.hidden, self.intermediate
        return (("q_proj", h, h), ("k_proj", kv, h), ("v_proj", kv, h), ("o_proj", h, h),
                ("gate_proj", f, h), ("up_proj", f, h), ("down_proj", h, f))


MODELS = {
    "bitnet-3b": LlmModel("bitnet-3b", "BitNet b1.58 3B",
                          "huggingface.co/1bitLLM/bitnet_b1_58-3B/blob/main/config.json",
                          3200, 8640, 32, 32, 26, "bitnet_b158_3b_linears.csv"),
    "llama2-7b": LlmModel("llama2-7b", "Llama-2-7B",
                          "huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json",
                          4096, 11008, 32, 32, 32, "llama2_7b_decoder.csv"),
}


def _model(key: str) -> LlmModel:
    if key not in MODELS:
        raise ConfigError(f"model must be one of {', '.join(MODELS)}, not {key!r}")
    return MODELS[key]


def linears(model: str, phase: str) -> list[tuple[str, int, int, int]]:
    """(layer, M, N, K) of one decoder layer's linears in `phase` ("decode", "prefill"), read from
    the model's shipped workload file (rows `<phase>_<layer>`)."""
    from tpesim.kernels.scalesim.parse import read_topology

    mdl = _model(model)
    if phase not in PHASES:
        raise ConfigError(f"phase must be one of {', '.join(PHASES)}, not {phase!r}")
    rows = [r for r in read_topology(WORKLOADS / mdl.workload, kind="gemm")
            if r.name.startswith(phase + "_")]
    if not rows:
        raise WorkloadError(f"{mdl.workload} has no {phase}_ rows")
    return [(r.name[len(phase) + 1:], r.M, r.N, r.K) for r in rows]


# -- weight codes, bit planes, packed layout --------------------------------------------------------
# A w-bit weight code c is split into w one-bit planes; plane b of a K x N code matrix is bit b of
# every code. The lookup reads the planes of the *plane code* u (docs/lut_kernels.md, "Algebra"):
# with s_b = 2 u_b - 1 in {-1, +1},
#   pm1      (w = sum_b 2^b s_b, odd values):      u = c,               2w = sum_b 2^(b+1) s_b
#   unsigned (w = c):                               u = c,               2w = sum_b 2^b s_b + 2^B - 1
#   signed   (two's complement, offset binary u):   u = c ^ 2^(B-1),     2w = sum_b 2^b s_b - 1
# (the signed line is T-MAC's w = 1/2 b0' + b1' + 2 b2' + 4 b3' - 1/2 for B = 4).

def _check_interp(interp: str) -> str:
    if interp not in INTERPS:
        raise ConfigError(f"interp must be one of {', '.join(INTERPS)}, not {interp!r}")
    return interp


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise ConfigError(f"bits must be an integer 1..8, not {bits!r}")
    return int(bits)


def plane_code(codes, bits: int, interp: str) -> np.ndarray:
    """The plane code u of each weight code (offset binary for signed codes), as above."""
    bits, interp = _check_bits(bits), _check_interp(interp)
    c = np.asarray(codes, dtype=np.int64)
    return c ^ (1 << (bits - 1)) if interp == "signed" else c


def plane_weights(bits: int, interp: str) -> tuple[tuple[int, ...], int]:
    """(2^e_b per plane, offset o) with 2w = sum_b 2^e_b s_b + o (s_b = +-1 from plane code u)."""
    bits, interp = _check_bits(bits), _check_interp(interp)
    if interp == "pm1":
        return tuple(2 << b for b in range(bits)), 0
    return tuple(1 << b for b in range(bits)), ((1 << bits) - 1 if interp == "unsigned" else -1)


def code_values(bits: int, interp: str) -> np.ndarray:
    """Weight value of every code 0 .. 2^bits - 1."""
    bits, interp = _check_bits(bits), _check_interp(interp)
    c = np.arange(1 << bits, dtype=np.int64)
    if interp == "signed":
        return np.where(c >= 1 << (bits - 1), c - (1 << bits), c)
    if interp == "unsigned":
        return c
    return 2 * c - ((1 << bits) - 1)


def to_planes(codes, bits: int) -> np.ndarray:
    """Bit planes [bits, K, N] (uint8 0/1) of a K x N matrix of unsigned codes."""
    bits = _check_bits(bits)
    c = np.asarray(codes, dtype=np.int64)
    if c.ndim != 2:
        raise WorkloadError(f"codes must be a 2-D matrix, not an array of shape {c.shape}")
    if c.size and (int(c.min()) < 0 or int(c.max()) >= 1 << bits):
        bad = int(c.min()) if int(c.min()) < 0 else int(c.max())
        raise WorkloadError(f"codes must be in 0..{(1 << bits) - 1} ({bits}-bit), not {bad}")
    return ((c[None] >> np.arange(bits)[:, None, None]) & 1).astype(np.uint8)


def from_planes(planes) -> np.ndarray:
    """Codes (int64 K x N) from bit planes [bits, K, N]."""
    p = np.asarray(planes, dtype=np.int64)
    return np.sum(p << np.arange(p.shape[0])[:, None, None], axis=0)


def pack_planes(planes, group: int = 4) -> np.ndarray:
    """Packed layout [bits, ceil(K/g), ceil(N/2)] uint8 of bit planes [bits, K, N].

    The g plane bits of one column n and K-group j form the table index
    idx = sum_i plane[b, j*g + i, n] << i (bit i from row j*g + i: the index the engine looks up);
    two indices share a byte, column 2t in the low nibble, 2t+1 in the high one (T-MAC packs two
    4-bit indices per byte the same way). K is zero-padded to whole groups, N to even.
    """
    group = _check_group(group)
    p = np.asarray(planes, dtype=np.uint8)
    bits, k, n = p.shape
    G = -(-k // group)
    pad = np.zeros((bits, G * group, n + (n & 1)), np.uint8)
    pad[:, :k, :n] = p
    idx = np.sum(pad.reshape(bits, G, group, -1).astype(np.uint8)
                 << np.arange(group, dtype=np.uint8)[None, None, :, None], axis=2, dtype=np.uint8)
    return (idx[:, :, 0::2] | (idx[:, :, 1::2] << 4)).astype(np.uint8)


def unpack_planes(packed, k: int, n: int, group: int = 4) -> np.ndarray:
    """Bit planes [bits, k, n] from `pack_planes` output (the inverse, padding dropped)."""
    group = _check_group(group)
    q = np.asarray(packed, dtype=np.uint8)
    idx = np.empty(q.shape[:2] + (2 * q.shape[2],), np.uint8)
    idx[:, :, 0::2] = q & 0xF
    idx[:, :, 1::2] = q >> 4
    planes = (idx[:, :, None, :] >> np.arange(group, dtype=np.uint8)[None, None, :, None]) & 1
    return planes.reshape(q.shape[0], -1, idx.shape[2])[:, :k, :n]


def packed_weight_bytes(k: int, n: int, bits: int, group: int = 4) -> int:
    """Bytes of the packed layout of a K x N weight matrix: bits * ceil(K/g) * ceil(N/2)."""
    return _check_bits(bits) * -(-k // _check_group(group)) * -(-n // 2)


def _check_group(group) -> int:
    if isinstance(group, bool) or not isinstance(group, (int, np.integer)) or not 1 <= group <= 4:
        raise ConfigError(f"group must be an integer 1..4 (a 4-bit index per byte nibble), "
                          f"not {group!r}")
    return int(group)


# -- the table algebra -------------------------------------------------------------------------------
def tables(a, group: int = 4, sym: bool = True) -> np.ndarray:
    """Tables [M, G, entries] of M x K activations (K zero-padded to whole groups).

    Full table: T[idx] = sum_i (bit i of idx ? +a_i : -a_i) over the group's g activations, 2^g
    entries. Symmetrized (T[idx] = -T[~idx]): only the idx[0] = 0 half is stored,
    S[x] = T[x << 1], 2^(g-1) entries."""
    group = _check_group(group)
    a = np.asarray(a, dtype=np.int64)
    m, k = a.shape
    G = -(-k // group)
    ap = np.zeros((m, G * group), np.int64)
    ap[:, :k] = a
    idx = np.arange(1 << group)
    signs = np.where((idx[:, None] >> np.arange(group)) & 1, 1, -1)          # [2^g, g]
    full = ap.reshape(m, G, group) @ signs.T                                  # [M, G, 2^g]
    return full[..., 0::2] if sym else full


def lookup(stored: np.ndarray, idx: np.ndarray, group: int, sym: bool) -> np.ndarray:
    """T[idx] from stored tables: the entry itself, or with symmetrization
    idx[0] ? -S[(~idx) >> 1] : S[idx >> 1]."""
    if not sym:
        return np.take_along_axis(stored, idx, axis=-1)
    mask = (1 << group) - 1
    neg = (idx & 1) == 1
    e = np.take_along_axis(stored, np.where(neg, (~idx & mask) >> 1, idx >> 1), axis=-1)
    return np.where(neg, -e, e)


def lut_gemm(a, codes, *, bits: int, interp: str = "signed", group: int = 4,
             sym: bool = True) -> np.ndarray:
    """A @ W (int64, exact) computed the LUT way: tables per activation row and K-group, the packed
    bit planes as table indices, planes weighted by 2^e_b, the offset term o * sum_k a_k, halved:

        2 (A W)[m, n] = sum_b 2^e_b sum_j T_{m,j}[idx_{b,j,n}] + o sum_k a_{m,k}.
    """
    a = np.asarray(a, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    if a.ndim != 2 or codes.ndim != 2 or a.shape[1] != codes.shape[0]:
        raise WorkloadError(f"a (M x K) and codes (K x N) must chain, not shapes {a.shape} and "
                            f"{codes.shape}")
    n = codes.shape[1]
    shifts, offset = plane_weights(bits, interp)
    planes = to_planes(plane_code(codes, bits, interp), bits)
    packed = pack_planes(planes, group)
    idx = np.empty(packed.shape[:2] + (2 * packed.shape[2],), np.int64)    # [bits, G, N even]
    idx[:, :, 0::2] = packed & 0xF
    idx[:, :, 1::2] = packed >> 4
    idx = idx[:, :, :n]
    t = tables(a, group, sym)                                                 # [M, G, E]
    m = a.shape[0]
    twice = offset * a.sum(axis=1, keepdims=True) * np.ones((1, n), np.int64)
    for b, scale in enumerate(shifts):
        # entries[m, j, n] = T_{m,j}[idx_{b,j,n}], summed over the K-groups j
        e = lookup(t, np.broadcast_to(idx[b][None], (m,) + idx[b].shape), group, sym)
        twice = twice + scale * e.sum(axis=1)
    return twice // 2


def lut_gemm_int8_tables(a, codes, *, bits: int, interp: str = "signed", group: int = 4,
                         act_group: int = 64) -> np.ndarray:
    """T-MAC's lossy table format: float activations, every table entry rounded to int8 with one
    scale per row and activation group of `act_group` activations (lut_scale = max|T| / 127 over
    that group's tables), integer lookups and plane sums, the scale reapplied per activation group;
    the offset term o * sum(a) stays exact. Returns the float A @ W estimate."""
    a = np.asarray(a, dtype=np.float64)
    codes = np.asarray(codes, dtype=np.int64)
    if a.ndim != 2 or codes.ndim != 2 or a.shape[1] != codes.shape[0]:
        raise WorkloadError(f"a (M x K) and codes (K x N) must chain, not shapes {a.shape} and "
                            f"{codes.shape}")
    group = _check_group(group)
    if act_group % group:
        raise ConfigError(f"act_group must be a multiple of group ({group}), not {act_group}")
    m, k = a.shape
    n = codes.shape[1]
    G = -(-k // group)
    ap = np.zeros((m, G * group))
    ap[:, :k] = a
    idx_all = np.arange(1 << group)
    signs = np.where((idx_all[:, None] >> np.arange(group)) & 1, 1.0, -1.0)
    t = ap.reshape(m, G, group) @ signs.T                                      # [M, G, 2^g]
    per = act_group // group                                                   # groups per scale
    ns = -(-G // per)
    tp = np.zeros((m, ns * per, 1 << group))
    tp[:, :G] = t
    scale = np.abs(tp).reshape(m, ns, -1).max(axis=2) / 127                   # [M, ns]
    scale = np.where(scale > 0, scale, 1.0)
    tq = np.rint(tp / np.repeat(scale, per, axis=1)[:, :, None]).astype(np.int64)[:, :G]
    shifts, offset = plane_weights(bits, interp)
    u = plane_code(codes, bits, interp)
    up = np.zeros((G * group, n), np.int64)
    up[:k] = u
    out = offset * a.sum(axis=1, keepdims=True) * np.ones((1, n))
    for b, w2 in enumerate(shifts):
        idx = np.sum(((up >> b) & 1).reshape(G, group, n) << np.arange(group)[None, :, None],
                     axis=1)                                                   # [G, N]
        e = np.take_along_axis(tq, np.broadcast_to(idx[None], (m, G, n)), axis=2)   # [M, G, N]
        ep = np.zeros((m, ns * per, n), np.int64)
        ep[:, :G] = e
        partial = ep.reshape(m, ns, per, n).sum(axis=2)                        # int per scale group
        out = out + w2 * np.einsum("msn,ms->mn", partial.astype(np.float64), scale)
    return out / 2


# -- quantisation --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuantizedWeights:
    """W ~= values * scales: integer weight values (K x N), their codes, and one scale per output
    channel (group_size None: scales [1, N]) or per group of `group_size` rows of K ([ceil(K/gs), N])."""

    values: np.ndarray
    codes: np.ndarray
    scales: np.ndarray
    bits: int
    interp: str
    group_size: int | None

    def group_slices(self) -> list[slice]:
        """Row ranges of K that share a scale."""
        k = self.values.shape[0]
        gs = k if self.group_size is None else self.group_size
        return [slice(i, min(i + gs, k)) for i in range(0, k, gs)]


def quantize_weights(w, *, bits: int, interp: str = "signed", group_size: int | None = None,
                     method: str = "absmax", ternary: bool = False) -> QuantizedWeights:
    """Symmetric quantisation of float weights W (K x N) per output channel or per K-group.

    absmax: scale = max|w| / v_max, v_max the largest magnitude both signs can hold
    (min(-v_lo, v_hi): 7 for signed 4-bit, 3 for pm1 2-bit); absmean (BitNet b1.58):
    scale = mean|w|. Each weight becomes the nearest representable value of w / scale (ties to the
    smaller value); `ternary` restricts signed 2-bit codes to {-1, 0, +1}.
    """
    bits, interp = _check_bits(bits), _check_interp(interp)
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise WorkloadError(f"w must be a 2-D matrix, not an array of shape {w.shape}")
    if method not in ("absmax", "absmean"):
        raise ConfigError(f"method must be 'absmax' or 'absmean', not {method!r}")
    if group_size is not None and (isinstance(group_size, bool) or
                                   not isinstance(group_size, (int, np.integer)) or group_size < 1):
        raise ConfigError(f"group_size must be a positive integer or None, not {group_size!r}")
    vals = code_values(bits, interp)
    if ternary:
        if (bits, interp) != (2, "signed"):
            raise ConfigError(f"ternary weights are signed 2-bit codes, not {interp} {bits}-bit")
        vals = vals[vals != -2]
    grid = np.sort(vals)
    vmax = min(-int(grid[0]), int(grid[-1])) if grid[0] < 0 else int(grid[-1])
    k, n = w.shape
    gs = k if group_size is None else int(group_size)
    blocks = [slice(i, min(i + gs, k)) for i in range(0, k, gs)]
    scales = np.empty((len(blocks), n))
    q = np.empty((k, n), np.int64)
    for g, sl in enumerate(blocks):
        blk = w[sl]
        s = (np.abs(blk).max(axis=0) / max(vmax, 1) if method == "absmax"
             else np.abs(blk).mean(axis=0))
        s = np.where(s > 0, s, 1.0)            # an all-zero channel: any scale, values 0
        scales[g] = s
        x = blk / s
        # nearest grid value: between grid[i-1] and grid[i], take the closer (ties to the lower)
        hi = np.clip(np.searchsorted(grid, x), 1, len(grid) - 1)
        lo_v, hi_v = grid[hi - 1], grid[hi]
        q[sl] = np.where(x - lo_v <= hi_v - x, lo_v, hi_v)
    codes = _codes_of(q, bits, interp)
    return QuantizedWeights(q, codes, scales, bits, interp, group_size)


def _codes_of(values: np.ndarray, bits: int, interp: str) -> np.ndarray:
    if interp == "signed":
        return values & ((1 << bits) - 1)
    if interp == "unsigned":
        return values.copy()
    return (values + (1 << bits) - 1) >> 1


def dequantize_weights(qw: QuantizedWeights) -> np.ndarray:
    """values * scales (float64 K x N)."""
    out = np.empty(qw.values.shape)
    for g, sl in enumerate(qw.group_slices()):
        out[sl] = qw.values[sl] * qw.scales[g]
    return out


def quantize_activations(a, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (per-token) absmax quantisation of float activations: (int64 values, scales [M])."""
    a = np.asarray(a, dtype=np.float64)
    qmax = (1 << (_check_bits(bits) - 1)) - 1
    s = np.abs(a).max(axis=1) / qmax
    s = np.where(s > 0, s, 1.0)
    return np.clip(np.rint(a / s[:, None]), -qmax, qmax).astype(np.int64), s


def scaled_gemm(a_q: np.ndarray, a_scales: np.ndarray, qw: QuantizedWeights,
                int_gemm: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Float result of quantised A x quantised W: the integer GEMM of every scale group (on the
    engine, through `int_gemm(a_block, w_block)`), each scaled by its weight scales after the
    integer accumulation, summed, then scaled by the activation scales."""
    acc = np.zeros((a_q.shape[0], qw.values.shape[1]))
    for g, sl in enumerate(qw.group_slices()):
        acc += np.asarray(int_gemm(a_q[:, sl], qw.values[sl]), dtype=np.float64) * qw.scales[g]
    return acc * np.asarray(a_scales)[:, None]


def quantized_gemm(cfg, a, w, *, group_size: int | None = None, method: str | None = None,
                   fidelity: str = "cycle", memory=None) -> tuple[np.ndarray, list]:
    """Float A (M x K) @ float W (K x N) on the LUT engine: W quantised to the engine's weight format
    (per channel or per `group_size` rows; absmean for ternary, absmax otherwise unless `method`),
    A to int8 per token (int8 mode) or rounded to fp16 (fp16 mode), one `run_gemm` per scale group,
    the weight scales applied after each group's accumulation (an fp16 or fp32 result is read as
    its value first). Returns (C estimate, the GemmResult of every group)."""
    from tpesim import fp16
    from tpesim.kernels.gemm import run_gemm

    ternary = cfg.w_bits == "ternary"
    qw = quantize_weights(w, bits=cfg.planes, interp=cfg.w_interp, group_size=group_size,
                          method=method or ("absmean" if ternary else "absmax"), ternary=ternary)
    if cfg.int_mode:
        a_q, a_s = quantize_activations(a)
        value = np.asarray
    else:
        a_q = fp16.from_float(np.asarray(a, dtype=np.float64)).astype(np.int64)
        a_s = np.ones(a_q.shape[0])
        if cfg.out_bits == 16:
            def value(c):
                return fp16.to_float(np.asarray(c).astype(np.uint16))
        else:
            def value(c):
                return fp16.to_float32(np.asarray(c).astype(np.uint32))
    results = []

    def on_engine(x, y):
        # verify: at tile fidelity that is what computes C (numpy along the tile stream)
        res = run_gemm(cfg, x, engine_operand(cfg, y), fidelity=fidelity, memory=memory,
                       verify=True)
        results.append(res)
        return value(res.c)

    return scaled_gemm(a_q, a_s, qw, on_engine), results


# -- timing: one layer, both engines ------------------------------------------------------------------
def systolic_shape(peak: float) -> tuple[int, int]:
    """R x C of an output-stationary systolic array with the same peak MACs/cycle: R the largest
    divisor of the peak not above its square root (16 x 16 for 256, 16 x 32 for 512)."""
    if peak != int(peak) or peak < 1:
        raise ConfigError(f"an equal-peak systolic array needs an integer peak MACs/cycle, "
                          f"not {peak}")
    p = int(peak)
    r = max(d for d in range(1, math.isqrt(p) + 1) if p % d == 0)
    return r, p // r


def systolic_peak(peak: float) -> int:
    """The systolic array's peak for a comparison with a LUT engine of `peak` MACs/cycle: the same
    peak when it is an integer, else the nearest integer (W3: 2 x 64 x 4 / 3 = 170.67 -> 171, a
    9 x 19 array); docs/lut_kernels.md "Unequal peaks" says how such a pair is compared."""
    if not peak >= 1:
        raise ConfigError(f"peak MACs/cycle must be at least 1, not {peak}")
    return int(peak) if peak == int(peak) else int(math.floor(peak + 0.5))


FPGA_CELLS = ("luts", "ffs", "dsps", "carry_cells", "brams")   # kernels/synth.py's cell counts


def fpga_area(target: str, **synth_kw) -> Callable:
    """The `area` hook of `lut_layer` from synthesis: `area(cfg)` is the engine's FPGA cells on
    `target` (LUT4s, FFs, DSPs, carry cells, BRAMs of the engine module after Yosys, no place and
    route), from `tpesim synth`'s cache (kernels/synth.py, keyed by config, target and tool
    versions), synthesizing on a miss (minutes for 256-MAC engines). Cells, not mm^2."""
    from tpesim.kernels.synth import TARGETS, resources

    if target not in TARGETS:
        raise ConfigError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    memo: dict = {}

    def area(cfg) -> dict:
        if cfg not in memo:
            r = resources(cfg, target, pnr=False, **synth_kw)
            memo[cfg] = {c: int(r[c]) for c in FPGA_CELLS}
        return memo[cfg]

    area.target = target
    return area


def lut_layer(cfg, m: int, n: int, k: int, *, systolic=None, memory=None,
              group_size: int | None = None, area: Callable | None = None) -> dict:
    """Timing and bytes of one M x N x K linear on the LUT engine `cfg` and on an int8 systolic
    array of equal peak (`systolic`: a SystolicConfig, default output-stationary of
    `systolic_shape`), or of the nearest integer peak when the LUT's is not one (`systolic_peak`:
    both peaks and the peak-normalized cycle ratio are reported). With per-group weight scales
    (`group_size`), each K-group of the weights is
    its own integer GEMM (the scales apply after its accumulation), so the layer is ceil(K/gs)
    GEMMs of K = gs. `area(cfg)`, when given, returns FPGA cell counts of an engine (`fpga_area`:
    {"luts": ..., "ffs": ..., "dsps": ...}); the row gets `lut_fpga_<cell>` and
    `systolic_fpga_<cell>` (the equal-peak array's) and `fpga_target` (the hook's `target`)."""
    from tpesim.engines.systolic import SystolicConfig
    from tpesim.kernels.gemm import engine_faces, time_gemm

    speak = systolic_peak(cfg.peak_macs_per_cycle)
    if systolic is None:
        r, c = systolic_shape(speak)
        systolic = SystolicConfig(rows=r, cols=c, in_bits=8, acc_bits=32)
    if systolic.peak_macs_per_cycle != speak:
        what = (f"({speak} MAC/cycle)" if speak == cfg.peak_macs_per_cycle else
                f"rounded to the nearest integer ({speak} for {cfg.peak_macs_per_cycle:.3f} "
                f"MAC/cycle)")
        raise ConfigError(f"systolic peak must equal the LUT engine's {what}, not "
                          f"{systolic.peak_macs_per_cycle}")
    if group_size is None:
        parts = [(k, 1)]
    elif isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or \
            not 1 <= group_size <= MAX_GEMM_DIM:
        raise ConfigError(f"group_size must be an integer from 1 to 2**31 - 1 or None, not "
                          f"{group_size!r}")
    else:
        parts = [(group_size, k // group_size)] + ([(k % group_size, 1)] if k % group_size else [])
        parts = [(kk, cnt) for kk, cnt in parts if cnt]
    lut = {"cycles": 0, "weight_traffic": 0, "table_precompute_cycles": 0}
    timing = engine_faces(cfg, "tile")[0]
    for kk, cnt in parts:
        r1 = time_gemm(cfg, m, n, kk, memory=memory)
        lut["cycles"] += cnt * r1.cycles
        lut["weight_traffic"] += cnt * r1.dram_read_bytes_b
        lut["table_precompute_cycles"] += cnt * timing.table_fields(
            timing.gemm_stream(m, n, kk))["table_precompute_cycles"]

    def on_systolic(scfg) -> dict:
        out = {"cycles": 0, "weight_traffic": 0}
        for kk, cnt in parts:
            r = time_gemm(scfg, m, n, kk, memory=memory)
            out["cycles"] += cnt * r.cycles
            out["weight_traffic"] += cnt * r.dram_read_bytes_b
        return out

    sysr = on_systolic(systolic)
    # The same peak in the array shape best for this GEMM (R x C over the divisors of the peak
    # whose blocks fit the SRAM): separates what the low-bit weights buy from what the elongated
    # 2 x 64 tile buys at small M.
    best, best_cfg = sysr, systolic
    p = int(systolic.peak_macs_per_cycle)
    for r in range(1, p + 1):
        if p % r or max(r, p // r) > SYSTOLIC_MAX_DIM or r == systolic.rows:
            continue
        scfg = dataclasses.replace(systolic, rows=r, cols=p // r)
        try:
            res = on_systolic(scfg)
        except WorkloadError:               # this shape's blocks do not fit the given SRAM
            continue
        if res["cycles"] < best["cycles"]:
            best, best_cfg = res, scfg
    macs = m * n * k
    groups = -(-k // cfg.group)
    n_tiles = -(-n // cfg.tile_n)
    entry_bytes = cfg.entry_bits / 8
    w_bytes = packed_weight_bytes(k, n, cfg.planes, cfg.group)
    w8_bytes = k * n
    row = {
        "m": m, "n": n, "k": k, "macs": macs,
        "peak_macs_per_cycle": cfg.peak_macs_per_cycle,
        "cycles": lut["cycles"],
        "utilization": macs / (lut["cycles"] * cfg.peak_macs_per_cycle),
        "table_precompute_cycles": lut["table_precompute_cycles"],
        # one table per activation row and K-group, shared by every N tile (the reuse)
        "tables": m * groups,
        "table_reuse_n_tiles": n_tiles,
        "table_bytes": math.ceil(m * groups * cfg.entries * entry_bytes),
        "table_unit_bytes": cfg.table_bytes,
        "weight_bytes": w_bytes,
        # fp16 weight scales: one per output channel, or per channel and K-group
        "scale_bytes": 2 * n * (1 if group_size is None else -(-k // group_size)),
        "weight_traffic_bytes": lut["weight_traffic"],
        "systolic": f"{systolic.rows}x{systolic.cols}",
        "systolic_peak_macs_per_cycle": speak,
        "systolic_cycles": sysr["cycles"],
        "systolic_utilization": macs / (sysr["cycles"] * speak),
        "systolic_weight_bytes": w8_bytes,
        "systolic_weight_traffic_bytes": sysr["weight_traffic"],
        "cycle_ratio": sysr["cycles"] / lut["cycles"],
        # cycles x peak: the ratio at equal peak if cycles scaled as 1 / peak (compute bound);
        # equal to cycle_ratio when the peaks are equal
        "cycle_ratio_peak_normalized": (sysr["cycles"] * speak) / (
            lut["cycles"] * cfg.peak_macs_per_cycle),
        "systolic_best": f"{best_cfg.rows}x{best_cfg.cols}",
        "systolic_best_cycles": best["cycles"],
        "systolic_best_weight_traffic_bytes": best["weight_traffic"],
        "cycle_ratio_best": best["cycles"] / lut["cycles"],
        "weight_bytes_ratio": w8_bytes / w_bytes,
        "weight_traffic_ratio": sysr["weight_traffic"] / max(lut["weight_traffic"], 1),
    }
    if area is not None:
        row["fpga_target"] = getattr(area, "target", "")
        for who, c in (("lut", cfg), ("systolic", systolic)):
            cells = area(c)
            if not isinstance(cells, dict) or not all(
                    isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0
                    for v in cells.values()):
                raise ConfigError(f"area must return a dict of FPGA cell counts (e.g. "
                                  f"{{'luts': 120}}), not {cells!r} for {c.name}")
            row.update({f"{who}_fpga_{name}": int(v) for name, v in cells.items()})
    return row


def engine_operand(cfg, values) -> np.ndarray:
    """The LUT engine's B operand for integer weight values: the values themselves, or, where the
    engine takes codes (pm1, ternary), the code of each value under the engine's own decoding."""
    from tpesim.engines.lut import codes_are_operand, decode_weights

    values = np.asarray(values, dtype=np.int64)
    if not codes_are_operand(cfg):
        return values
    decoded = decode_weights(cfg, np.arange(1 << cfg.code_bits))
    lookup_code = {}
    for code, v in enumerate(decoded.tolist()):
        lookup_code.setdefault(v, code)
    bad = ~np.isin(values, list(lookup_code))
    if bad.any():
        v = int(values[tuple(np.argwhere(bad)[0])])
        raise WorkloadError(f"weights must be in {{{', '.join(map(str, sorted(lookup_code)))}}} "
                            f"for {cfg.name}, not {v}")
    table = np.array([lookup_code.get(v, 0) for v in range(min(lookup_code), max(lookup_code) + 1)])
    return table[values - min(lookup_code)]


def _lut_config(w_bits, act: str, **fields):
    from tpesim.engines.lut import LutConfig

    fields = {k: v for k, v in fields.items() if v is not None}
    if w_bits == "ternary":
        fields.setdefault("w_interp", "signed")
    elif w_bits == 1:
        # a 1-bit weight is +-1 (BitNet binary); wider weights are two's complement, with int8 and
        # fp16 activations alike
        fields.setdefault("w_interp", "pm1")
    return LutConfig(w_bits=w_bits, act=act, **fields)


def llm_layers(model: str, *, w_bits=2, act: str = "int8", phase: str = "decode", memory=None,
               group_size: int | None = None, systolic=None, area: Callable | None = None,
               **lut_fields) -> list[dict]:
    """`lut_layer` of every linear of one decoder layer of `model` in `phase`, plus a row
    "layer total" (sums; utilization over the sum) and "model total" (x num_hidden_layers)."""
    cfg = _lut_config(w_bits, act, **lut_fields)
    rows = []
    for name, m, n, k in linears(model, phase):
        row = {"model": model, "phase": phase, "w_bits": w_bits, "w_interp": cfg.w_interp,
               "w_format": "ternary" if w_bits == "ternary" else f"{w_bits} {cfg.w_interp}",
               "act": act, "layer": name}
        row.update(lut_layer(cfg, m, n, k, systolic=systolic, memory=memory,
                             group_size=group_size, area=area))
        rows.append(row)
    rows.append(_total(rows, "layer total", 1))
    rows.append(_total(rows[:-1], "model total", _model(model).layers))
    return rows


_SUMMED = ("macs", "cycles", "table_precompute_cycles", "tables", "table_bytes", "weight_bytes",
           "scale_bytes",
           "weight_traffic_bytes", "systolic_cycles", "systolic_weight_bytes",
           "systolic_weight_traffic_bytes", "systolic_best_cycles",
           "systolic_best_weight_traffic_bytes")


def _total(rows: list[dict], name: str, times: int) -> dict:
    t = {key: rows[0][key] for key in ("model", "phase", "w_bits", "w_interp", "w_format", "act")}
    t.update(layer=name, m=rows[0]["m"], n="", k="")
    for key in _SUMMED:
        t[key] = times * sum(r[key] for r in rows)
    peak, speak = rows[0]["peak_macs_per_cycle"], rows[0]["systolic_peak_macs_per_cycle"]
    t.update(peak_macs_per_cycle=peak, utilization=t["macs"] / (t["cycles"] * peak),
             table_reuse_n_tiles="", table_unit_bytes=rows[0]["table_unit_bytes"],
             systolic=rows[0]["systolic"], systolic_peak_macs_per_cycle=speak,
             systolic_utilization=t["macs"] / (t["systolic_cycles"] * speak),
             cycle_ratio=t["systolic_cycles"] / t["cycles"],
             cycle_ratio_peak_normalized=(t["systolic_cycles"] * speak) / (t["cycles"] * peak),
             systolic_best="per layer", cycle_ratio_best=t["systolic_best_cycles"] / t["cycles"],
             weight_bytes_ratio=t["systolic_weight_bytes"] / t["weight_bytes"],
             weight_traffic_ratio=t["systolic_weight_traffic_bytes"] / t["weight_traffic_bytes"])
    # one engine pair for every row: its FPGA cells (area hook) carry over
    t.update({key: v for key, v in rows[0].items() if "_fpga_" in key or key == "fpga_target"})
    return t


# -- command line: tpesim run lut-layers ------------------------------------------------------------
_COLUMNS = (("layer", "layer"), ("w_format", "W"), ("act", "A"), ("phase", "phase"), ("m", "M"),
            ("n", "N"), ("k", "K"), ("cycles", "cycles"),
            ("table_precompute_cycles", "precompute cyc"), ("utilization", "util"),
            ("weight_bytes", "weight B"), ("table_bytes", "table B"),
            ("table_reuse_n_tiles", "table reuse"), ("systolic_cycles", "systolic cyc"),
            ("systolic_utilization", "sys util"), ("cycle_ratio", "cycle ratio"),
            ("cycle_ratio_peak_normalized", "ratio x peak"),
            ("systolic_best", "best shape"), ("cycle_ratio_best", "ratio best"),
            ("weight_bytes_ratio", "weight ratio"), ("weight_traffic_ratio", "traffic ratio"))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if v < 100 else f"{v:,.0f}"
    if isinstance(v, (int, np.integer)):
        return f"{v:,}"
    return str(v)


def format_table(rows: list[dict]) -> str:
    """The LLM-layer table as aligned text (markdown pipe table)."""
    head = [h for _, h in _COLUMNS]
    body = [[_fmt(r[key]) for key, _ in _COLUMNS] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    def line(cells):
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"

    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(b) for b in body]
    return "\n".join(out)


def _csv_text(rows: list[dict]) -> str:
    import csv
    import io

    from tpesim.outputs import csv_cell, provenance

    rows = [{**provenance(), **r} for r in rows]
    fields = list(dict.fromkeys(key for r in rows for key in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise TpesimError(f"run lut-layers: {message}")


def _w_bits(text: str):
    t = text.strip().lower()
    if t == "ternary":
        return "ternary"
    if t.isdigit() and 1 <= int(t) <= 4:
        return int(t)
    raise TpesimError(f"--w-bits must be 1, 2, 3, 4 or ternary, not {text!r}")


def cli_main(argv: Sequence[str]) -> int:
    """`tpesim run lut-layers`: the LLM-layer table (tile-level timing; ideal memory unless a DRAM
    bandwidth or SRAM sizes are given)."""
    p = _Parser(prog="tpesim run lut-layers",
                description="Low-bit LLM linears on the LUT engine beside an int8 systolic array "
                            "of equal peak MACs/cycle (tile-level timing).")
    p.add_argument("--model", required=True, choices=tuple(MODELS))
    p.add_argument("--w-bits", nargs="+", type=_w_bits, default=None,
                   help="weight bits 1..4 or ternary, one or more (default: ternary for "
                        "bitnet-3b, 2 otherwise)")
    p.add_argument("--act", nargs="+", choices=("int8", "fp16"), default=["int8"])
    p.add_argument("--phase", nargs="+", choices=tuple(PHASES), default=list(PHASES))
    p.add_argument("--group-size", type=int, default=None,
                   help="per-group weight scales over this many K rows (default: per channel)")
    p.add_argument("--tile-m", type=int, default=None)
    p.add_argument("--tile-n", type=int, default=None)
    p.add_argument("--group", type=int, default=None)
    p.add_argument("--pipe-stages", type=int, default=None)
    p.add_argument("--dram-bw", type=float, default=None, metavar="BYTES_PER_CYCLE",
                   help="DRAM link bandwidth shared by all operands (default: unbounded)")
    p.add_argument("--dram-latency", type=int, default=0, metavar="CYCLES",
                   help="cycles from a read's transfer to its data in SRAM (default 0)")
    for op, what in (("a", "activations"), ("b", "weights"), ("c", "results")):
        p.add_argument(f"--sram-kib-{op}", type=float, default=None, metavar="KIB",
                       help=f"SRAM for the {what} in KiB, two halves (default: unbounded)")
    from tpesim.kernels.synth import TARGETS

    p.add_argument("--area-target", default=None, choices=tuple(TARGETS),
                   help="also report FPGA cells (LUT4s, FFs, DSPs: not mm^2) of the LUT engine "
                        "and of the equal-peak systolic array on this part, from tpesim synth's "
                        "cache or by synthesizing (minutes)")
    p.add_argument("--totals-only", action="store_true", help="only the layer and model totals")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of the table")
    p.add_argument("--csv", metavar="FILE", default=None,
                   help="also write every row (all fields) as CSV to FILE")
    args = p.parse_args(list(argv))
    from tpesim.outputs import check_output_path, write_text_atomic

    check_output_path("--csv", args.csv)
    from tpesim.memory import MemoryConfig

    memory = MemoryConfig(sram_kib_a=args.sram_kib_a, sram_kib_b=args.sram_kib_b,
                          sram_kib_c=args.sram_kib_c, dram_bw=args.dram_bw,
                          dram_latency=args.dram_latency)
    w_list = args.w_bits or ["ternary" if args.model == "bitnet-3b" else 2]
    area = None if args.area_target is None else fpga_area(args.area_target)
    rows = []
    for w in w_list:
        for act in args.act:
            for phase in args.phase:
                rs = llm_layers(args.model, w_bits=w, act=act, phase=phase,
                                group_size=args.group_size, memory=memory, area=area,
                                tile_m=args.tile_m,
                                tile_n=args.tile_n, group=args.group,
                                pipe_stages=args.pipe_stages)
                rows += rs[-2:] if args.totals_only else rs
    if args.csv is not None:
        write_text_atomic(args.csv, _csv_text(rows), "--csv")
    if args.json:
        from tpesim.outputs import provenance

        print(json.dumps([{**provenance(), **r} for r in rows], indent=1))
    else:
        mdl = _model(args.model)
        mem = ("ideal memory" if memory.ideal else
               ", ".join(f"{k} {v}" for k, v in memory.report_fields().items() if v))
        print(f"{mdl.title}: {mdl.layers} decoder layers, hidden {mdl.hidden}, intermediate "
              f"{mdl.intermediate}; LUT engine vs int8 systolic (OS) at equal peak (the nearest "
              f"integer peak when the LUT's is not one: 'ratio x peak' weighs cycles by each "
              f"peak); {mem}; ratios are systolic / LUT")
        print(format_table(rows))
        if area is not None:
            print(fpga_lines(rows))
    return 0


def fpga_lines(rows: list[dict]) -> str:
    """One line per distinct engine pair of `rows`: the FPGA cells of each engine (area hook)."""
    out, seen = [], set()
    for r in rows:
        key = (r["w_format"], r["act"], r["systolic"])
        if key in seen or "lut_fpga_luts" not in r:
            continue
        seen.add(key)
        cells = [", ".join(f"{r[f'{who}_fpga_{c}']:,} {c}" for c in ("luts", "ffs", "dsps"))
                 for who in ("lut", "systolic")]
        out.append(f"FPGA cells on {r['fpga_target']} (Yosys, engine module; cells, not mm^2): "
                   f"LUT engine W {r['w_format']} A {r['act']}: {cells[0]}; int8 systolic "
                   f"{r['systolic']}: {cells[1]}")
    return "\n".join(out)
