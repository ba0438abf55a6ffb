"""Low-bit GEMM / LLM-layer kernels of the LUT engine (kernels/lut.py): table identities, bit-plane
layout, scales, model shapes, and the layer timing against the cycle model and closed forms."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from tpesim.errors import ConfigError, TpesimError, WorkloadError
from tpesim.kernels import lut as L

# ------------------------------------------------------------------ identities (exhaustive)
GRID = (-128, -127, -1, 0, 1, 127)     # int8 extremes, signs and zero


@pytest.mark.parametrize("g", [1, 2, 3, 4])
def test_table_symmetry(g):
    """T[i] = -T[~i] for every index i and every activation vector over GRID^g."""
    acts = np.array(list(itertools.product(GRID, repeat=g)))
    t = L.tables(acts, g, sym=False)[:, 0, :]                 # [combos, 2^g]
    idx = np.arange(1 << g)
    assert np.array_equal(t[:, idx], -t[:, ~idx & ((1 << g) - 1)])
    # and the entries are their definition, sum_i (bit i of idx ? +a_i : -a_i)
    for i in idx:
        signs = np.array([1 if (i >> j) & 1 else -1 for j in range(g)])
        assert np.array_equal(t[:, i], acts @ signs)


@pytest.mark.parametrize("g", [1, 2, 3, 4])
def test_symmetric_lookup_equals_full_table(g):
    """idx[0] ? -S[~idx >> 1] : S[idx >> 1] over the stored half gives T[idx], every idx."""
    acts = np.array(list(itertools.product(GRID, repeat=g)))
    full = L.tables(acts, g, sym=False)
    half = L.tables(acts, g, sym=True)
    assert half.shape[-1] == full.shape[-1] // 2
    idx = np.broadcast_to(np.arange(1 << g), full.shape)
    assert np.array_equal(L.lookup(half, idx, g, True), full)


def test_tmac_signed_4bit_identity():
    """T-MAC: for signed 4-bit w = u - 8 (u the offset-binary code),
    w = 1/2 b0' + b1' + 2 b2' + 4 b3' - 1/2 with b' = 2 bit - 1 in {-1, +1}: all 16 codes."""
    for u in range(16):
        b = [2 * ((u >> j) & 1) - 1 for j in range(4)]
        assert u - 8 == 0.5 * b[0] + b[1] + 2 * b[2] + 4 * b[3] - 0.5
    # the kernel's plane code is that u, and two's-complement codes map to it
    codes = np.arange(16)
    assert np.array_equal(L.code_values(4, "signed"), np.where(codes >= 8, codes - 16, codes))
    assert np.array_equal(L.plane_code(codes, 4, "signed") - 8, L.code_values(4, "signed"))


def test_tmac_w4_alphas_and_bias(rng):
    """Claim 12: W4 = sum_b alpha_b (plane-b table sums) - 1/2 sum(a) with alphas [1/2, 1, 2, 4]
    equals the int4 GEMM (the kernel's plane weights are 2 alpha_b, its offset 2 x -1/2)."""
    shifts, offset = L.plane_weights(4, "signed")
    assert [s / 2 for s in shifts] == [0.5, 1, 2, 4] and offset / 2 == -0.5
    a = rng.integers(-128, 128, (4, 64))
    codes = rng.integers(0, 16, (64, 32))
    assert np.array_equal(L.lut_gemm(a, codes, bits=4), a @ L.code_values(4, "signed")[codes])


@pytest.mark.parametrize("bits, interp", [(4, "signed"), (2, "signed"), (1, "pm1"), (3, "unsigned")])
def test_tmac_int8_tables_nmse(bits, interp, rng):
    """Claim 12: int8 table entries (one scale per 64 activations) keep the GEMM's normalised MSE
    below T-MAC's verification threshold 5e-4 (qgemm.py `_verify`), against exact numpy A @ W."""
    a = rng.normal(0, 1, (8, 4096))
    codes = rng.integers(0, 1 << bits, (4096, 64))
    ref = a @ L.code_values(bits, interp)[codes]
    est = L.lut_gemm_int8_tables(a, codes, bits=bits, interp=interp)
    assert np.sum((est - ref) ** 2) / np.sum(ref ** 2) < 5e-4


def test_int8_tables_exact_when_representable():
    """With every activation group's largest entry exactly 127, the scale is 1 and integer
    activations lose nothing: the int8-table GEMM is exact."""
    a = np.zeros((2, 64), np.int64)
    a[:, :4] = [31, 32, 32, 32]                # |T| max = 127 in the only non-zero group
    a[1, 4:8] = [-5, 7, 0, 1]
    codes = np.arange(64 * 3).reshape(64, 3) % 16
    est = L.lut_gemm_int8_tables(a, codes, bits=4)
    assert np.array_equal(est, a @ L.code_values(4, "signed")[codes])


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("interp", L.INTERPS)
def test_plane_identity_every_code(bits, interp):
    """2w = sum_b 2^e_b s_b + o (s_b = 2 u_b - 1 of the plane code u) for every code."""
    shifts, offset = L.plane_weights(bits, interp)
    codes = np.arange(1 << bits)
    u = L.plane_code(codes, bits, interp)
    s = 2 * ((u[:, None] >> np.arange(bits)) & 1) - 1
    assert np.array_equal(2 * L.code_values(bits, interp), s @ np.array(shifts) + offset)


def test_unsigned_identity_engines_md():
    """engines.md 3.1: sum_k a_k w_k = 1/2 (sum_b 2^b sum_k s_kb a_k + (2^B - 1) sum_k a_k) for
    unsigned B-bit weights: every 2-bit weight vector of length 4 against GRID-valued a."""
    B = 2
    acts = np.array(list(itertools.product(GRID, repeat=4)))
    for w in itertools.product(range(4), repeat=4):
        w = np.array(w)
        s = 2 * ((w[:, None] >> np.arange(B)) & 1) - 1            # [4, B]
        rhs = (acts @ s @ (1 << np.arange(B)) + (2 ** B - 1) * acts.sum(axis=1)) // 2
        assert np.array_equal(acts @ w, rhs)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("interp", L.INTERPS)
@pytest.mark.parametrize("group, sym", [(4, True), (4, False), (3, True), (1, True), (2, False)])
def test_lut_gemm_exact(bits, interp, group, sym, rng):
    """The table-lookup GEMM equals A @ W exactly (K not a multiple of g, odd N, int8 extremes)."""
    a = rng.integers(-128, 128, (5, 23))
    a[0, :] = -128
    codes = rng.integers(0, 1 << bits, (23, 9))
    w = L.code_values(bits, interp)[codes]
    assert np.array_equal(L.lut_gemm(a, codes, bits=bits, interp=interp, group=group, sym=sym),
                          a @ w)


# ------------------------------------------------------------------ bit-plane layout
def test_planes_round_trip(rng):
    for bits in (1, 2, 3, 4, 8):
        c = rng.integers(0, 1 << bits, (13, 7))
        p = L.to_planes(c, bits)
        assert p.shape == (bits, 13, 7) and p.dtype == np.uint8 and set(np.unique(p)) <= {0, 1}
        assert np.array_equal(L.from_planes(p), c)


@pytest.mark.parametrize("k, n, group", [(16, 8, 4), (13, 7, 4), (5, 1, 3), (9, 6, 2), (3, 3, 1)])
def test_pack_round_trip(k, n, group, rng):
    planes = rng.integers(0, 2, (3, k, n)).astype(np.uint8)
    packed = L.pack_planes(planes, group)
    G = -(-k // group)
    assert packed.shape == (3, G, -(-n // 2)) and packed.dtype == np.uint8
    assert packed.nbytes == L.packed_weight_bytes(k, n, 3, group)
    assert np.array_equal(L.unpack_planes(packed, k, n, group), planes)


def test_pack_layout_by_hand():
    """One plane, K = 4, N = 2: column 0 has bits (k0..k3) = 1,0,1,1 -> index 0b1101 = 13 in the
    low nibble; column 1 has 0,1,0,0 -> 0b0010 = 2 in the high nibble: byte 0x2D."""
    plane = np.array([[1, 0], [0, 1], [1, 0], [1, 0]], np.uint8)[None]
    assert L.pack_planes(plane, 4).tolist() == [[[0x2D]]]


def test_packed_bytes_are_bits_over_eight():
    assert L.packed_weight_bytes(4096, 4096, 2) == 4096 * 4096 * 2 // 8
    assert L.packed_weight_bytes(3200, 8640, 1) == 3200 * 8640 // 8


@pytest.mark.parametrize("call, message", [
    (lambda: L.to_planes(np.array([[4]]), 2), "codes must be in 0..3 (2-bit), not 4"),
    (lambda: L.to_planes(np.array([1, 2]), 2), "codes must be a 2-D matrix, not an array of shape (2,)"),
    (lambda: L.pack_planes(np.zeros((1, 4, 2)), 5),
     "group must be an integer 1..4 (a 4-bit index per byte nibble), not 5"),
    (lambda: L.plane_code([1], 2, "twos"), "interp must be one of signed, unsigned, pm1, not 'twos'"),
    (lambda: L.plane_code([1], 0, "signed"), "bits must be an integer 1..8, not 0"),
    (lambda: L.lut_gemm(np.zeros((2, 3)), np.zeros((4, 2)), bits=2),
     "a (M x K) and codes (K x N) must chain, not shapes (2, 3) and (4, 2)"),
])
def test_layout_errors(call, message):
    with pytest.raises(TpesimError) as exc:
        call()
    assert str(exc.value) == message


# ------------------------------------------------------------------ quantisation
def test_quantize_absmax_error_bound(rng):
    """Signed 4-bit absmax per channel: every value in -7..7, |w - deq| <= scale / 2, and the
    largest |w| of each channel maps to +-7 exactly."""
    w = rng.normal(0, 1, (64, 12))
    q = L.quantize_weights(w, bits=4)
    assert q.scales.shape == (1, 12)
    assert q.values.min() >= -7 and q.values.max() <= 7
    assert np.all(np.abs(w - L.dequantize_weights(q)) <= q.scales / 2 + 1e-12)
    top = np.argmax(np.abs(w), axis=0)
    assert np.array_equal(np.abs(q.values[top, np.arange(12)]), np.full(12, 7))
    assert np.array_equal(L.code_values(4, "signed")[q.codes], q.values)


def test_quantize_pm1_and_ternary(rng):
    w = rng.normal(0, 1, (32, 5))
    q1 = L.quantize_weights(w, bits=1, interp="pm1", method="absmean")
    assert set(np.unique(q1.values)) <= {-1, 1}
    assert np.array_equal(q1.values, np.where(w > 0, 1, -1))      # nearest of +-1 is the sign
    qt = L.quantize_weights(w, bits=2, ternary=True, method="absmean")
    assert set(np.unique(qt.values)) <= {-1, 0, 1}
    np.testing.assert_allclose(qt.scales[0], np.abs(w).mean(axis=0))
    assert np.array_equal(qt.values, np.clip(np.rint(w / qt.scales), -1, 1))
    q2 = L.quantize_weights(w, bits=2, interp="pm1")
    assert set(np.unique(q2.values)) <= {-3, -1, 1, 3}


def test_quantize_per_group(rng):
    w = rng.normal(0, 1, (300, 4))
    q = L.quantize_weights(w, bits=4, group_size=128)
    assert q.scales.shape == (3, 4)
    for g, sl in enumerate(q.group_slices()):
        np.testing.assert_allclose(q.scales[g], np.abs(w[sl]).max(axis=0) / 7)
    assert [s.stop - s.start for s in q.group_slices()] == [128, 128, 44]


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": 4, "group_size": 0}, "group_size must be a positive integer or None, not 0"),
    ({"bits": 4, "method": "minmax"}, "method must be 'absmax' or 'absmean', not 'minmax'"),
    ({"bits": 4, "ternary": True}, "ternary weights are signed 2-bit codes, not signed 4-bit"),
])
def test_quantize_errors(kwargs, message):
    with pytest.raises(ConfigError) as exc:
        L.quantize_weights(np.ones((4, 4)), **kwargs)
    assert str(exc.value) == message


def _check_end_to_end(a, w, qw, out):
    """out (engine integer GEMMs x scales) equals the float64 product of the dequantised operands,
    and differs from the float reference A @ W by at most the triangle-inequality bound
    |A| |W - W~| + |A - A~| |W~| (an exact bound, nothing tuned)."""
    a_q, a_s = L.quantize_activations(a)
    a_deq = a_q * a_s[:, None]
    w_deq = L.dequantize_weights(qw)
    np.testing.assert_allclose(out, a_deq @ w_deq, rtol=1e-12, atol=1e-12)
    bound = np.abs(a) @ np.abs(w - w_deq) + np.abs(a - a_deq) @ np.abs(w_deq)
    assert np.all(np.abs(out - a @ w) <= bound * (1 + 1e-9) + 1e-12)


def test_end_to_end_numpy(rng):
    """Quantised A (int8 per token) x quantised W (signed 4-bit per group of 16) through the
    kernel's own table-lookup GEMM, scales applied after each group's integer accumulation."""
    a = rng.normal(0, 1, (6, 64))
    w = rng.normal(0, 0.1, (64, 10))
    qw = L.quantize_weights(w, bits=4, group_size=16)
    a_q, a_s = L.quantize_activations(a)
    out = L.scaled_gemm(a_q, a_s, qw, lambda x, y: L.lut_gemm(x, y & 0xF, bits=4))
    _check_end_to_end(a, w, qw, out)


@pytest.mark.parametrize("w_bits, interp, group_size, fidelity", [
    (4, "signed", 16, "cycle"), (2, "pm1", None, "cycle"), ("ternary", "signed", 32, "cycle"),
    (3, "unsigned", 24, "tile")])
def test_end_to_end_on_the_engine(w_bits, interp, group_size, fidelity, rng):
    """quantized_gemm: the integer GEMMs run by the LUT engine (its cycle model, or tile level with
    numpy values), each checked against the engine's reference, then the same two checks."""
    from tpesim.engines.lut import LutConfig

    cfg = LutConfig(tile_m=2, tile_n=8, w_bits=w_bits, w_interp=interp)
    a = rng.normal(0, 1, (3, 64))
    w = rng.normal(0, 0.1, (64, 11))
    out, results = L.quantized_gemm(cfg, a, w, group_size=group_size, fidelity=fidelity)
    assert len(results) == -(-64 // (group_size or 64))
    assert all(r.matched for r in results)
    ternary = w_bits == "ternary"
    qw = L.quantize_weights(w, bits=cfg.planes, interp=interp, group_size=group_size,
                            ternary=ternary, method="absmean" if ternary else "absmax")
    _check_end_to_end(a, w, qw, out)


def _gamma(n: int, u: float) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of n floating-point additions
    (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., Lemma 3.1)."""
    return n * u / (1 - n * u)


@pytest.mark.parametrize("acc, u", [("fp16", 2.0 ** -11), ("fp32", 2.0 ** -24)])
def test_end_to_end_fp16_activations(acc, u, rng):
    """A16: activations rounded to fp16, pm1 2-bit weights per group of 32, the engine's fp16
    datapath (tables of 3 fp16 additions, one accumulation per plane and K-group in fp16 or fp32),
    scales after. Against the float reference the error is at most the quantisation bound plus
    the summation bound: entries gamma_3 sum|a| each, then gamma_(G P) over the accumulated terms
    (recursive summation, Higham Lemma 3.1 / eq. 4.4), with sum_b 2^b = 3 per |a_k| for pm1 W2."""
    from tpesim import fp16
    from tpesim.engines.lut import LutConfig

    cfg = LutConfig(tile_m=2, tile_n=8, w_bits=2, w_interp="pm1", act="fp16", acc=acc)
    k, gs = 64, 32
    a = rng.normal(0, 1, (3, k))
    w = rng.normal(0, 0.1, (k, 11))
    out, results = L.quantized_gemm(cfg, a, w, group_size=gs)
    assert all(r.matched for r in results)
    qw = L.quantize_weights(w, bits=2, interp="pm1", group_size=gs)
    a16 = fp16.to_float(fp16.from_float(a))
    w_deq = L.dequantize_weights(qw)
    u16 = 2.0 ** -11
    bound = np.abs(a) @ np.abs(w - w_deq) + np.abs(a - a16) @ np.abs(w_deq)
    G, P = gs // cfg.group, cfg.planes
    for g, sl in enumerate(qw.group_slices()):
        per_a = (_gamma(3, u16) + _gamma(G * P, u) * (1 + _gamma(3, u16))) * 3
        bound += np.abs(a16[:, sl]).sum(axis=1, keepdims=True) * per_a * qw.scales[g][None, :]
    assert np.all(np.abs(out - a @ w) <= bound * (1 + 1e-9))


# ------------------------------------------------------------------ model shapes
# From the models' published config.json (kernels/workloads/README.md):
CONFIG_JSON = {
    "bitnet-3b": {"hidden_size": 3200, "intermediate_size": 8640, "num_attention_heads": 32,
                  "num_key_value_heads": 32, "num_hidden_layers": 26},
    "llama2-7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32,
                  "num_key_value_heads": 32, "num_hidden_layers": 32},
}


@pytest.mark.parametrize("model", list(L.MODELS))
def test_workload_files_match_config(model):
    c = CONFIG_JSON[model]
    h, f = c["hidden_size"], c["intermediate_size"]
    want = {"q_proj": (h, h), "k_proj": (h, h), "v_proj": (h, h), "o_proj": (h, h),
            "gate_proj": (f, h), "up_proj": (f, h), "down_proj": (h, f)}
    mdl = L.MODELS[model]
    assert (mdl.hidden, mdl.intermediate, mdl.heads, mdl.kv_heads, mdl.layers) == (
        h, f, c["num_attention_heads"], c["num_key_value_heads"], c["num_hidden_layers"])
    for phase, m in (("decode", 1), ("prefill", 2048)):
        rows = L.linears(model, phase)
        assert {name: (n, k) for name, mm, n, k in rows} == want
        assert all(mm == m for _, mm, _, _ in rows)


def test_llama2_linear_parameter_count():
    """Llama-2-7B has 6.74 B parameters: 32 layers of linears + the two 32000 x 4096 embedding
    matrices (+ 0.27 M norm weights)."""
    per_layer = sum(n * k for _, _, n, k in L.linears("llama2-7b", "decode"))
    total = 32 * per_layer + 2 * 32000 * 4096
    assert abs(total - 6.74e9) < 0.005e9


def test_model_and_phase_errors():
    with pytest.raises(ConfigError, match="model must be one of bitnet-3b, llama2-7b, not 'gpt'"):
        L.linears("gpt", "decode")
    with pytest.raises(ConfigError, match="phase must be one of decode, prefill, not 'train'"):
        L.linears("llama2-7b", "train")


# ------------------------------------------------------------------ timing
def test_systolic_shape():
    assert L.systolic_shape(256) == (16, 16)
    assert L.systolic_shape(512) == (16, 32)
    assert L.systolic_shape(128) == (8, 16)
    assert L.systolic_shape(96) == (8, 12)
    with pytest.raises(ConfigError, match="integer peak MACs/cycle, not 170.6"):
        L.systolic_shape(512 / 3)


@pytest.mark.parametrize("fields, m, n, k, group_size, bw", [
    ({"w_bits": 2}, 3, 130, 37, None, None),
    ({"w_bits": 4, "tile_n": 16}, 5, 40, 64, 16, None),
    ({"w_bits": "ternary", "tile_n": 32, "pipe_stages": 2}, 1, 70, 50, None, None),
    ({"w_bits": 1, "w_interp": "pm1"}, 1, 200, 64, None, 3.5),
])
def test_layer_cycles_equal_the_cycle_model(fields, m, n, k, group_size, bw, rng):
    """The kernel's cycles (tile level, summed over scale groups) equal the register-level model's
    on the same GEMMs, and the systolic figures equal the systolic cycle model's (with a DRAM link
    too: then both are at least their DRAM bytes / bandwidth)."""
    from tpesim.engines.lut import LutConfig, weight_values
    from tpesim.kernels.gemm import run_gemm
    from tpesim.memory import MemoryConfig

    cfg = LutConfig(**fields)
    memory = MemoryConfig(dram_bw=bw)
    row = L.lut_layer(cfg, m, n, k, group_size=group_size, memory=memory)
    parts = [k] if group_size is None else [group_size] * (k // group_size) + (
        [k % group_size] if k % group_size else [])
    vals = np.array(weight_values(cfg))
    lut_cycles = sys_cycles = 0
    from tpesim.engines.systolic import SystolicConfig
    r, c = L.systolic_shape(cfg.peak_macs_per_cycle)
    scfg = SystolicConfig(rows=r, cols=c)
    for kk in parts:
        a = rng.integers(-128, 128, (m, kk))
        w = vals[rng.integers(0, len(vals), (kk, n))]
        res = run_gemm(cfg, a, L.engine_operand(cfg, w), fidelity="cycle", memory=memory)
        assert res.matched
        lut_cycles += res.cycles
        sys_cycles += run_gemm(scfg, a, w, fidelity="cycle", memory=memory).cycles
    assert row["cycles"] == lut_cycles
    assert row["systolic_cycles"] == sys_cycles
    if bw is not None:
        assert row["cycles"] >= row["weight_traffic_bytes"] / bw
        assert row["systolic_cycles"] >= row["systolic_weight_traffic_bytes"] / bw
    assert row["utilization"] == pytest.approx(m * n * k / (lut_cycles * cfg.peak_macs_per_cycle))


def test_layer_bytes_and_table_reuse():
    """Weight bytes = K N planes / 8; int8 weights K N; tables one per activation row and K-group,
    shared by ceil(N / tile_n) tiles; decode (M <= tile_m) reads every weight once on both engines,
    so the traffic ratio is 8 / planes."""
    from tpesim.engines.lut import LutConfig

    for w_bits, planes in ((1, 1), (2, 2), (4, 4), ("ternary", 2)):
        cfg = L._lut_config(w_bits, "int8")
        row = L.lut_layer(cfg, 1, 4096, 4096)
        assert row["weight_bytes"] == 4096 * 4096 * planes // 8
        assert row["systolic_weight_bytes"] == 4096 * 4096
        assert row["weight_bytes_ratio"] == 8 / planes
        assert row["weight_traffic_bytes"] == row["weight_bytes"]
        assert row["weight_traffic_ratio"] == 8 / planes
        assert row["tables"] == 1024 and row["table_reuse_n_tiles"] == 64
        assert row["scale_bytes"] == 2 * 4096
    assert L.lut_layer(L._lut_config(2, "int8"), 1, 4096, 4096, group_size=128)["scale_bytes"] == (
        2 * 4096 * 32)
    # claim 10: 8 fp16 entries per (row, 4-group), M = 2: 32 B per LMMA step (64 B unsymmetrized)
    fp16 = {"act": "fp16", "w_interp": "pm1"}
    assert L.lut_layer(LutConfig(**fp16), 2, 64, 4)["table_bytes"] == 32
    assert L.lut_layer(LutConfig(**fp16, sym=False), 2, 64, 4)["table_bytes"] == 64


def test_engine_operand():
    """Weight values become the engine's B operand: values for signed/unsigned codes, codes (under
    the engine's own decoding) for pm1 and ternary; a value the format lacks is a one-line error."""
    from tpesim.engines.lut import LutConfig, weights_of

    for cfg in (LutConfig(w_bits=4), LutConfig(w_bits=2, w_interp="pm1"),
                LutConfig(w_bits="ternary"), LutConfig(w_bits=3, w_interp="unsigned")):
        vals = np.array(cfg.w_values)
        assert np.array_equal(weights_of(cfg, L.engine_operand(cfg, vals)), vals)
    with pytest.raises(WorkloadError, match=r"weights must be in \{-3, -1, 1, 3\} for .*, not 2"):
        L.engine_operand(LutConfig(w_bits=2, w_interp="pm1"), np.array([[1, 2]]))


def test_area_hook():
    """The area hook's FPGA cells (a dict per engine) land in the row per engine and cell kind;
    anything else is a one-line error naming the engine."""
    cfg = L._lut_config(2, "int8")
    cells = {"lut": {"luts": 900, "ffs": 300, "dsps": 0},
             "systolic": {"luts": 2000, "ffs": 9000, "dsps": 256}}
    row = L.lut_layer(cfg, 2, 128, 64, area=lambda c: cells[c.engine])
    assert (row["lut_fpga_luts"], row["lut_fpga_dsps"]) == (900, 0)
    assert (row["systolic_fpga_ffs"], row["systolic_fpga_dsps"]) == (9000, 256)
    with pytest.raises(ConfigError, match=r"area must return a dict of FPGA cell counts .*, not "
                                          r"0.5 for lut_"):
        L.lut_layer(cfg, 2, 128, 64, area=lambda c: 0.5)


def test_layer_errors():
    from tpesim.engines.lut import LutConfig
    from tpesim.engines.systolic import SystolicConfig

    with pytest.raises(ConfigError,
                       match=r"group_size must be an integer from 1 to 2\*\*31 - 1 or None, not 0"):
        L.lut_layer(LutConfig(), 2, 64, 64, group_size=0)
    with pytest.raises(ConfigError, match=r"systolic peak must equal the LUT engine's \(256 "
                                          r"MAC/cycle\), not 64"):
        L.lut_layer(LutConfig(), 2, 64, 64, systolic=SystolicConfig(rows=8, cols=8))


def test_best_shape_skips_shapes_that_do_not_fit():
    """With a weight SRAM of 4 KiB (2 KiB halves), int8 weight blocks of 64 x C fit only for
    C <= 32: the best equal-peak shape is searched among those, the others are skipped."""
    from tpesim.engines.lut import LutConfig
    from tpesim.memory import MemoryConfig

    row = L.lut_layer(LutConfig(), 32, 256, 64, memory=MemoryConfig(sram_kib_b=4))
    r, c = map(int, row["systolic_best"].split("x"))
    assert r * c == 256 and c <= 32
    assert row["systolic_best_cycles"] <= row["systolic_cycles"]


def test_w2a16_one_lmma_every_two_cycles():
    """Claim 9: W2A16 M2N64K4 retires one 2x64x4 MMA every 2 cycles (256 MAC/cycle): a 2 x 64 x 4G
    GEMM takes 2G cycles plus a constant fill/drain, whatever G."""
    from tpesim.engines.lut import LutConfig

    cfg = LutConfig(act="fp16", w_bits=2, w_interp="pm1")
    assert cfg.peak_macs_per_cycle == 256
    c1 = L.lut_layer(cfg, 2, 64, 4 * 100)["cycles"]
    c2 = L.lut_layer(cfg, 2, 64, 4 * 300)["cycles"]
    assert c2 - c1 == 2 * 200
    # fill and drain: the table register, the accumulator write, tile_m = 2 result rows
    assert 0 < c1 - 2 * 100 <= 8


def test_llm_layers_totals():
    rows = L.llm_layers("bitnet-3b", w_bits="ternary", phase="decode")
    assert [r["layer"] for r in rows] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                          "up_proj", "down_proj", "layer total", "model total"]
    layer, model = rows[-2], rows[-1]
    assert layer["cycles"] == sum(r["cycles"] for r in rows[:7])
    assert model["cycles"] == 26 * layer["cycles"]
    assert model["macs"] == 26 * sum(n * k for _, _, n, k in L.linears("bitnet-3b", "decode"))


def test_cli_lut_layers_json(capsys):
    from tpesim.cli import main

    assert main(["run", "lut-layers", "--model", "llama2-7b", "--w-bits", "1", "4", "--act",
                 "int8", "fp16", "--phase", "decode", "--totals-only", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["w_bits"], r["act"], r["layer"]) for r in rows] == [
        (w, a, t) for w in (1, 4) for a in ("int8", "fp16") for t in ("layer total", "model total")]


def test_cli_csv(tmp_path, capsys):
    import csv

    from tpesim.cli import main

    out = tmp_path / "layers.csv"
    assert main(["run", "lut-layers", "--model", "bitnet-3b", "--phase", "decode", "--json",
                 "--csv", str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)
    with out.open() as f:
        got = list(csv.DictReader(f))
    assert [r["layer"] for r in got] == [r["layer"] for r in rows]
    assert [int(r["cycles"]) for r in got] == [r["cycles"] for r in rows]
    assert main(["run", "lut-layers", "--model", "bitnet-3b", "--csv", str(tmp_path)]) == 2
    assert "--csv must name a file, not the directory" in capsys.readouterr().err


def test_cli_errors(capsys):
    from tpesim.cli import main

    assert main(["run", "lut-layers", "--model", "gpt"]) == 2
    assert "argument --model: invalid choice: 'gpt'" in capsys.readouterr().err
    assert main(["run", "lut-layers", "--model", "llama2-7b", "--w-bits", "5"]) == 2
    assert "--w-bits must be 1, 2, 3, 4 or ternary, not '5'" in capsys.readouterr().err


def test_cli_help(capsys):
    """`tpesim run --help` lists lut-layers; `tpesim run lut-layers --help` is its own parser's."""
    from tpesim.cli import main

    assert main(["run", "--help"]) == 0
    assert "lut-layers" in capsys.readouterr().out
    assert main(["run", "lut-layers", "--help"]) == 0
    assert "usage: tpesim run lut-layers" in capsys.readouterr().out
