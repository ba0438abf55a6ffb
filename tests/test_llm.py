"""Whole-model LLM timing (kernels/llm): MAC totals against the analytic count, the roofline bound
on every op, reuse of identical GEMMs changes no cycle, a decoder layer at cycle fidelity equals the
tile level, KV traffic, GQA, ONNX graphs, the CLI and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tpesim import AdderTreeConfig, SystolicConfig, run_gemm, time_gemm
from tpesim.cli import main as tpesim_main
from tpesim.engines.lut import LutConfig
from tpesim.engines.nm_sparse import NmSparseConfig
from tpesim.errors import ConfigError, FileFormatError, WorkloadError
from tpesim.kernels.gemm import random_operands
from tpesim.kernels.llm import (SHIPPED, Gemm, VectorOp, VectorUnit, layer_ops, load_config,
                                resolve_model, run_graph, run_llm)
from tpesim.kernels.llm import run as llm_run
from tpesim.kernels.llm.model import head_ops, tail_ops
from tpesim.memory import MemoryConfig

STALLING = MemoryConfig(sram_kib_a=4, sram_kib_b=4, sram_kib_c=8, dram_bw=8, dram_latency=20)


def _tiny_config(tmp_path, **over) -> str:
    """A small Llama-style config.json (GQA 4 query heads on 2 KV heads of 8)."""
    cfg = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 48,
           "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
           "vocab_size": 40, "hidden_act": "silu"}
    cfg.update(over)
    p = tmp_path / "tiny.json"
    p.write_text(json.dumps(cfg))
    return str(p)


# -- analytic counts, written from the model's definition (not from kernels/llm) -------------------
def _analytic_macs(h, f, heads, kv, d, layers, vocab, *, batch, prefill, decode, q_block,
                   fused=False, gated=True):
    def linears(tokens):
        per = tokens * (h * heads * d + 2 * h * kv * d + heads * d * h)
        per += tokens * (3 if gated else 2) * h * f
        return layers * per

    pre = linears(batch * prefill) + batch * vocab * h
    s = 0
    while s < prefill:                              # causal query blocks
        e = min(s + q_block, prefill)
        pre += 2 * layers * batch * heads * (e - s) * e * d
        s = e
    dec = 0
    for step in range(decode):
        keys = prefill + step + 1
        dec += linears(batch) + batch * vocab * h + 2 * layers * batch * heads * keys * d
    return pre, dec


@pytest.mark.parametrize("name,facts", [
    ("llama2-7b", (4096, 11008, 32, 32, 128, 32, 32000)),
    ("llama3-8b", (4096, 14336, 32, 8, 128, 32, 128256)),
    ("mistral-7b", (4096, 14336, 32, 8, 128, 32, 32000)),
    ("opt-6.7b", (4096, 16384, 32, 32, 128, 32, 50272)),
    ("bitnet-b1.58-3b", (3200, 8640, 32, 32, 100, 26, 32002)),
    ("gpt2", (768, 3072, 12, 12, 64, 12, 50257)),
])
def test_shipped_configs(name, facts):
    s = resolve_model(name)
    assert (s.hidden, s.intermediate, s.heads, s.kv_heads, s.head_dim, s.layers, s.vocab) == facts
    assert set(SHIPPED) >= {name}


def test_llama2_parameter_count():
    """Llama-2-7B's 6.74 B parameters from the shapes (linears, two embeddings, norms)."""
    s = resolve_model("llama2-7b")
    h, f = s.hidden, s.intermediate
    params = s.layers * (4 * h * h + 3 * h * f + 2 * h) + 2 * s.vocab * h + h
    assert params == 6_738_415_616


@pytest.mark.parametrize("name,batch,q_block", [("llama2-7b", 1, 128), ("llama3-8b", 2, 96),
                                                ("opt-6.7b", 1, 64), ("gpt2", 3, 100)])
def test_mac_totals_equal_analytic(name, batch, q_block):
    s = resolve_model(name)
    P, D = 300, 5
    run = run_llm(name, prefill=P, decode=D, batch=batch, q_block=q_block,
                  engine=SystolicConfig(rows=64, cols=64))
    pre, dec = _analytic_macs(s.hidden, s.intermediate, s.heads, s.kv_heads, s.head_dim,
                              s.layers, s.vocab, batch=batch, prefill=P, decode=D,
                              q_block=q_block, gated=s.gated)
    assert run.get("prefill", "macs") == pre
    assert run.get("decode", "macs") == dec
    # every layer and step accounted for
    assert len(run.steps) == D
    assert sorted(k for k in run.layers if k.startswith("layer")) == sorted(
        f"layer{i}" for i in range(s.layers))


def test_exact_causal_count_with_one_row_blocks(tmp_path):
    """q_block 1: the prefill attention does exactly P(P+1)/2 query-key pairs per head."""
    spec = load_config(_tiny_config(tmp_path))
    P = 37
    run = run_llm(spec, prefill=P, decode=0, q_block=1, engine=SystolicConfig(rows=4, cols=4))
    att = sum(int(run.ops[n]["prefill"][llm_run.F["macs"]]) for n in ("qk", "pv"))
    assert att == 2 * spec.layers * spec.heads * spec.head_dim * P * (P + 1) // 2


ENGINES = [
    ("os", SystolicConfig(rows=8, cols=8), None),
    ("ws", SystolicConfig(rows=8, cols=8, dataflow="ws", double_buffer=True), None),
    ("is", SystolicConfig(rows=4, cols=8, dataflow="is"), None),
    ("tree", AdderTreeConfig(lanes=8, cols=4), None),
    ("lut", LutConfig(w_bits=2, tile_m=2, tile_n=8), SystolicConfig(rows=8, cols=8)),
    ("nm", NmSparseConfig(rows=4, cols=8, sparsity="2:4"), SystolicConfig(rows=8, cols=8)),
]


@pytest.mark.parametrize("label,engine,att", ENGINES, ids=[e[0] for e in ENGINES])
def test_roofline_bound_every_op(tmp_path, label, engine, att):
    """Every op's cycles >= max(MACs / engine peak, DRAM bytes / bandwidth), per distinct GEMM
    (time_gemm called here, bound computed here) and per reported op row."""
    spec = load_config(_tiny_config(tmp_path))
    mem = STALLING
    run = run_llm(spec, prefill=20, decode=3, batch=2, q_block=8, engine=engine,
                  attention_engine=att, memory=mem)
    for r in run.op_rows():
        peak = (engine if r["op_class"] == "linear" else (att or engine)).peak_macs_per_cycle
        dram = r["dram_read_bytes"] + r["dram_write_bytes"]
        assert r["cycles"] >= math.ceil(dram / mem.dram_bw), r
        if r["macs"]:
            assert r["cycles"] >= -(-r["macs"] // peak), r
            assert r["cycles"] >= r["roofline_cycles"]
    for past, tokens in ((0, 20), (21, 1)):
        for op in layer_ops(spec, batch=2, tokens=tokens, past=past, q_block=8):
            if isinstance(op, VectorOp):
                continue
            cfg = engine if op.op_class == "linear" else (att or engine)
            g = time_gemm(cfg, op.m, op.n, op.k, memory=mem)
            dram = sum(getattr(g, f"dram_{rw}_bytes_{o}") for rw in ("read", "write")
                       for o in "abc")
            assert g.macs == op.m * op.n * op.k
            assert g.cycles >= max(-(-g.macs // cfg.peak_macs_per_cycle),
                                   math.ceil(dram / mem.dram_bw))


def test_cache_changes_no_cycle(tmp_path):
    """Each distinct GEMM timed once and reused = every instance timed on its own, exactly."""
    spec = load_config(_tiny_config(tmp_path))
    kw = dict(prefill=12, decode=4, batch=2, q_block=5, memory=STALLING,
              engine=SystolicConfig(rows=4, cols=4, dataflow="ws"))
    fast = run_llm(spec, cache=True, **kw)
    slow = run_llm(spec, cache=False, **kw)
    assert slow.gemms_timed == slow.gemm_instances > fast.gemms_timed
    # instances from the model's definition: 7 linears per layer, qk and pv per causal block per
    # (sequence, KV head), an LM head per pass; 3 blocks of 5 rows for P = 12
    L, B, kv = spec.layers, 2, spec.kv_heads
    assert slow.gemm_instances == (L * (7 + 2 * 3 * B * kv) + 1) + 4 * (L * (7 + 2 * B * kv) + 1)
    assert fast.gemm_instances == slow.gemm_instances
    for ph in ("prefill", "decode"):
        assert np.array_equal(fast.phases[ph], slow.phases[ph])
    assert np.array_equal(fast.steps, slow.steps)
    assert fast.layers == slow.layers
    assert fast.op_rows() == slow.op_rows()


def _vector_cycles(op: VectorOp, unit: VectorUnit, mem: MemoryConfig) -> int:
    passes, inputs = {"rmsnorm": (2, 1), "softmax": (3, 1), "rotary": (1, 1), "add": (1, 2),
                      "silu_mul": (1, 2), "embedding": (1, 1)}[op.kind]
    byts = (inputs + 1) * op.elems * unit.elem_bytes
    return op.count * (unit.latency + max(math.ceil(passes * op.elems / unit.lanes),
                                          math.ceil(byts / mem.dram_bw)))


@pytest.mark.parametrize("engine", [SystolicConfig(rows=4, cols=4),
                                    SystolicConfig(rows=4, cols=3, dataflow="ws",
                                                   double_buffer=True),
                                    AdderTreeConfig(lanes=4, cols=4)],
                         ids=["os", "ws-db", "tree"])
def test_decoder_layer_at_cycle_fidelity_equals_tile_level(tmp_path, seed, engine):
    """One decoder layer of the prefill and of a decode step, every GEMM run by the register-level
    model on random operands (checked against numpy), summed with the vector unit's formula:
    equals the layer's accounted cycles."""
    spec = load_config(_tiny_config(tmp_path))
    mem = STALLING
    unit = VectorUnit(lanes=16, latency=3)
    P = 10
    run = run_llm(spec, prefill=P, decode=1, batch=1, q_block=4, engine=engine, memory=mem,
                  vector=unit)
    for phase, tokens, past in (("prefill", P, 0), ("decode", 1, P)):
        total = 0
        for i, op in enumerate(layer_ops(spec, batch=1, tokens=tokens, past=past, q_block=4)):
            if isinstance(op, VectorOp):
                total += _vector_cycles(op, unit, mem)
                continue
            a, b = random_operands(engine, op.m, op.n, op.k, seed=seed + i)
            res = run_gemm(engine, a, b, fidelity="cycle", memory=mem)
            assert res.matched
            total += op.count * res.cycles
        assert run.layers["layer1"][phase] == total, phase


def test_kv_cache_bytes_per_step(tmp_path):
    """Unbounded SRAM: each decode step reads the K and V caches once per layer (compulsory)."""
    spec = load_config(_tiny_config(tmp_path))
    P, D, B = 16, 6, 3
    run = run_llm(spec, prefill=P, decode=D, batch=B, engine=SystolicConfig(rows=4, cols=4),
                  memory=MemoryConfig(dram_bw=16))
    per_step = [2 * B * spec.kv_heads * (P + s + 1) * spec.head_dim * spec.layers
                for s in range(D)]
    assert run.step_kv_read_bytes.tolist() == per_step
    s = run.summary()
    assert s["kv_read_bytes_first_step"] == per_step[0]
    assert s["kv_read_bytes_last_step"] == per_step[-1]


def test_shipped_sliding_window():
    """Mistral-7B v0.1's config.json has sliding_window 4096; the Llama models have none."""
    assert resolve_model("mistral-7b").window == 4096
    assert resolve_model("llama2-7b").window is None
    assert resolve_model("llama3-8b").window is None


def test_sliding_window_query_key_pairs(tmp_path):
    """q_block 1, window W: query i attends to min(i + 1, W) keys, so a prefill does
    sum_i min(i + 1, W) query-key pairs per head (counted here from that definition)."""
    W, P = 5, 23
    spec = load_config(_tiny_config(tmp_path, sliding_window=W))
    assert spec.window == W
    run = run_llm(spec, prefill=P, decode=0, q_block=1, engine=SystolicConfig(rows=4, cols=4))
    att = sum(int(run.ops[n]["prefill"][llm_run.F["macs"]]) for n in ("qk", "pv"))
    pairs = sum(min(i + 1, W) for i in range(P))
    assert att == 2 * spec.layers * spec.heads * spec.head_dim * pairs


@pytest.mark.parametrize("q_block", [1, 3, 4, 7, 64])
def test_sliding_window_blocks_cover_the_window(tmp_path, q_block):
    """Every query block's keys span from the window start of its first query to its last query:
    the block computes at least each query's own window (the extra is the masked part)."""
    W, P = 6, 29
    spec = load_config(_tiny_config(tmp_path, sliding_window=W))
    ops = [o for o in layer_ops(spec, batch=1, tokens=P, past=0, q_block=q_block)
           if o.name.startswith("qk")]
    s = 0
    for o in ops:
        rows = o.m // spec.group
        e = s + rows
        assert o.n == e - max(0, s - W + 1)
        s = e
    assert s == P


def test_sliding_window_kv_cache_bytes_per_step(tmp_path):
    """Unbounded SRAM: each decode step reads min(P + s + 1, W) cached keys and values per layer."""
    W, P, D, B = 20, 16, 8, 2
    spec = load_config(_tiny_config(tmp_path, sliding_window=W))
    run = run_llm(spec, prefill=P, decode=D, batch=B, engine=SystolicConfig(rows=4, cols=4),
                  memory=MemoryConfig(dram_bw=16))
    per_step = [2 * B * spec.kv_heads * min(P + s + 1, W) * spec.head_dim * spec.layers
                for s in range(D)]
    assert run.step_kv_read_bytes.tolist() == per_step
    assert per_step[-1] == per_step[-2]           # the window is full: the cache stops growing


def test_sliding_window_off_in_qwen2_style_config(tmp_path):
    """Qwen2 configs carry sliding_window with use_sliding_window false: full attention."""
    spec = load_config(_tiny_config(tmp_path, sliding_window=4, use_sliding_window=False))
    assert spec.window is None


def test_sliding_window_must_be_positive(tmp_path):
    with pytest.raises(FileFormatError, match="'sliding_window' must be a positive integer, not 0"):
        load_config(_tiny_config(tmp_path, sliding_window=0))


def test_gqa_stacks_query_heads(tmp_path):
    spec = load_config(_tiny_config(tmp_path, num_attention_heads=8, num_key_value_heads=2,
                                    hidden_size=64))
    ops = {o.name: o for o in layer_ops(spec, batch=3, tokens=1, past=9, q_block=4)}
    assert (ops["qk"].m, ops["qk"].n, ops["qk"].k, ops["qk"].count) == (4, 10, 8, 6)
    assert (ops["pv"].m, ops["pv"].n, ops["pv"].k) == (4, 8, 10)
    assert ops["k_proj"].n == 16 and ops["q_proj"].n == 64


def test_split_past_block_budget(tmp_path, monkeypatch):
    """A GEMM past the tile level's block budget runs as M parts: MACs unchanged, each part a
    real tile-level run."""
    cfg = SystolicConfig(rows=4, cols=4)
    whole = llm_run.gemm_cost(cfg, 40, 8, 16, MemoryConfig())
    monkeypatch.setattr(llm_run, "MAX_BLOCKS", 6)
    parts = llm_run._splits(cfg, 40, 8, 16)
    assert sum(parts) == 40 and len(parts) > 1
    split = llm_run.gemm_cost(cfg, 40, 8, 16, MemoryConfig())
    assert split[llm_run.F["macs"]] == whole[llm_run.F["macs"]] == 40 * 8 * 16
    assert split[llm_run.F["cycles"]] == sum(time_gemm(cfg, p, 8, 16).cycles for p in parts)


def test_low_bit_and_sparse_linears_need_a_dense_attention_engine(tmp_path):
    spec = load_config(_tiny_config(tmp_path))
    for cfg in (LutConfig(w_bits=2, tile_m=2, tile_n=8), NmSparseConfig(rows=4, cols=4)):
        with pytest.raises(WorkloadError, match="cannot run attention"):
            run_llm(spec, prefill=4, decode=1, engine=cfg)
    run = run_llm(spec, prefill=4, decode=1, engine=NmSparseConfig(rows=4, cols=4,
                                                                   sparsity="dense"))
    assert run.get("decode", "macs") > 0


# -- ONNX ------------------------------------------------------------------------------------------
def _attention_onnx(path, *, op_extra=None, symbolic=False):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    T, H, NH = 16, 32, 4
    d = H // NH
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((H, H)).astype(np.float32), n)
             for n in ("Wq", "Wk", "Wv", "Wo")]
    inits += [numpy_helper.from_array(np.array([1, T, NH, d], np.int64), "heads_shape"),
              numpy_helper.from_array(np.array([1, T, H], np.int64), "flat_shape")]
    nodes = []
    for w, o in (("Wq", "q"), ("Wk", "k"), ("Wv", "v")):
        nodes.append(helper.make_node("MatMul", ["x", w], [o + "2d"], name=f"/layers.0/{o}_proj"))
        nodes.append(helper.make_node("Reshape", [o + "2d", "heads_shape"], [o + "4d"],
                                      name=f"/layers.0/{o}_reshape"))
    nodes += [helper.make_node("Transpose", [i], [o], perm=p, name=f"/layers.0/t{i[0]}")
              for i, o, p in (("q4d", "qh", [0, 2, 1, 3]), ("k4d", "kt", [0, 2, 3, 1]),
                              ("v4d", "vh", [0, 2, 1, 3]))]
    nodes += [
              helper.make_node("MatMul", ["qh", "kt"], ["s"], name="/layers.0/qk"),
              helper.make_node("Softmax", ["s"], ["p"], axis=-1, name="/layers.0/softmax"),
              helper.make_node("MatMul", ["p", "vh"], ["ctx"], name="/layers.0/pv"),
              helper.make_node("Transpose", ["ctx"], ["ctx2"], perm=[0, 2, 1, 3],
                               name="/layers.0/tc"),
              helper.make_node("Reshape", ["ctx2", "flat_shape"], ["ctx3"], name="/layers.0/rc"),
              helper.make_node("MatMul", ["ctx3", "Wo"], ["o"], name="/layers.0/o_proj"),
              helper.make_node("Add", ["o", "x"], ["y"], name="/layers.0/residual")]
    if op_extra:
        nodes.append(helper.make_node(op_extra, ["y"], ["z"], name="/layers.0/weird"))
    out = "z" if op_extra else "y"
    dims = ["batch", T, H] if symbolic else [1, T, H]
    graph = helper.make_graph(nodes, "tiny_attention",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                              inits)
    onnx.save(helper.make_model(graph), str(path))
    return T, H, NH, d


def test_onnx_attention_graph(tmp_path):
    path = tmp_path / "att.onnx"
    T, H, NH, d = _attention_onnx(path)
    from tpesim.kernels.llm.onnx_graph import load_onnx

    name, layers = load_onnx(path)
    assert [lab for lab, _ in layers] == ["layer0"]
    ops = {o.name: o for o in layers[0][1]}
    assert ops["/layers.0/q_proj"] == Gemm("/layers.0/q_proj", "linear", T, H, H,
                                           roles=("x", "Wq", "q2d"))
    assert (ops["/layers.0/qk"].op_class, ops["/layers.0/qk"].m, ops["/layers.0/qk"].n,
            ops["/layers.0/qk"].k, ops["/layers.0/qk"].count) == ("attention", T, T, d, NH)
    assert ops["/layers.0/softmax"].elems == NH * T * T
    run = run_graph(name, layers, engine=SystolicConfig(rows=4, cols=4), memory=STALLING)
    assert run.get("forward", "macs") == 4 * T * H * H + 2 * NH * T * T * d
    assert run.summary()["forward_cycles"] > 0


def test_onnx_bad_input(tmp_path):
    from tpesim.kernels.llm.onnx_graph import load_onnx

    p = tmp_path / "weird.onnx"
    _attention_onnx(p, op_extra="LSTM")
    with pytest.raises(FileFormatError, match=r"weird.onnx: unsupported ONNX ops: LSTM "
                                              r"\(/layers.0/weird\)"):
        load_onnx(p)
    sym = tmp_path / "sym.onnx"
    _attention_onnx(sym, symbolic=True)
    with pytest.raises(FileFormatError, match=r"sym.onnx: tensor .* has no static shape"):
        load_onnx(sym)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf\xff" * 3)
    with pytest.raises(FileFormatError, match="junk.onnx: not a readable ONNX model"):
        load_onnx(junk)


# -- bad input, CLI --------------------------------------------------------------------------------
def test_bad_model_inputs(tmp_path):
    with pytest.raises(ConfigError, match="model must be one of llama2-7b, llama3-8b"):
        resolve_model("llama9-1t")
    p = tmp_path / "c.json"
    p.write_text('{"model_type": "llama", "hidden_size": 64}')
    with pytest.raises(FileFormatError, match=r"c.json: field 'num_attention_heads' is missing"):
        load_config(p)
    p.write_text('{"hidden_size": 64, "num_attention_heads": 0}')
    with pytest.raises(FileFormatError, match=r"field 'num_attention_heads' must be a positive"):
        load_config(p)
    p.write_text('{"hidden_size": 64,')
    with pytest.raises(FileFormatError, match=r"c.json: not JSON"):
        load_config(p)
    bad = _tiny_config(tmp_path, num_key_value_heads=3)
    with pytest.raises(FileFormatError, match="num_key_value_heads"):
        load_config(bad)
    with pytest.raises(ConfigError, match="prefill must be a positive integer"):
        run_llm("gpt2", prefill=0, decode=1, engine=SystolicConfig(rows=4, cols=4))


def test_cli_errors_are_one_line(capsys):
    rc = tpesim_main(["run", "llm", "--model", "nope", "--prefill", "4", "--rows", "4"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "llama2-7b" in err
    rc = tpesim_main(["run", "llm", "--model", "gpt2", "--prefill", "4", "--engine", "lut"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot run attention" in err and err.count("\n") == 1
    rc = tpesim_main(["run", "llm", "--model", "gpt2", "--prefill", "4",
                      "--attention-engine", "systolic:rowz=4"])
    err = capsys.readouterr().err
    assert rc == 2 and "rowz" in err and err.count("\n") == 1


def test_cli_report_json_csv_plot(tmp_path, capsys):
    csv_path, png = tmp_path / "ops.csv", tmp_path / "ops.png"
    argv = ["run", "llm", "--model", "gpt2", "--prefill", "64", "--decode", "3", "--batch", "2",
            "--engine", "systolic", "--rows", "16", "--cols", "16", "--dram-bw", "32",
            "--sram-kib-a", "256", "--sram-kib-b", "256", "--sram-kib-c", "256",
            "--clock-ghz", "1.5"]
    assert tpesim_main(argv + ["--json", "--csv", str(csv_path)]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["decode_steps"] == 3 and len(s["layers"]) == 12 + 2
    assert s["tpot_ms"] == pytest.approx(s["decode_cycles"] / 3 / 1.5e6)
    assert s["decode_tokens_per_s"] == pytest.approx(2 * 3 * 1.5e9 / s["decode_cycles"])
    assert csv_path.read_text().startswith(
        "tool,tool_version,schema_version,phase,op,op_class,engine,instances,cycles")
    assert s["tool"] == "tpesim" and "schema_version" in s
    assert tpesim_main(argv + ["--plot", str(png),
                               "--linear-engine", "lut:w_bits=4,tile_n=16"]) == 0
    out = capsys.readouterr().out
    assert "time to first token" in out and "lut_" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_scalesim_topology(capsys):
    from pathlib import Path

    topo = Path(__file__).resolve().parents[1] / "kernels" / "workloads" / "llama2_7b_decoder.csv"
    assert tpesim_main(["run", "llm", "--model", str(topo), "--rows", "32", "--cols", "32",
                        "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["macs"] == (2048 + 1) * (4 * 4096 * 4096 + 3 * 4096 * 11008)


@pytest.mark.regress
def test_llama2_7b_whole_run_macs():
    s = resolve_model("llama2-7b")
    mem = MemoryConfig(sram_kib_a=4096, sram_kib_b=4096, sram_kib_c=4096, dram_bw=64,
                       dram_latency=100)
    run = run_llm("llama2-7b", prefill=2048, decode=256, engine=SystolicConfig(rows=128,
                                                                             cols=128),
                  memory=mem)
    pre, dec = _analytic_macs(s.hidden, s.intermediate, s.heads, s.kv_heads, s.head_dim,
                              s.layers, s.vocab, batch=1, prefill=2048, decode=256, q_block=128)
    assert (run.get("prefill", "macs"), run.get("decode", "macs")) == (pre, dec)
    for r in run.op_rows():
        assert r["cycles"] >= r["roofline_cycles"]


def test_head_and_tail_ops():
    s = resolve_model("gpt2")
    assert head_ops(s, batch=2, tokens=5)[0].elems == 2 * 5 * 768
    norm, lm = tail_ops(s, batch=2)
    assert norm.kind == "layernorm" and (lm.m, lm.n, lm.k) == (2, 50257, 768)


def test_bench_llm_suite_quick(tmp_path):
    """The bench row runs in a fresh process, matches an in-process run, and renders."""
    from dataclasses import asdict

    from tpesim.cosim.bench.llm import MEMORY, append_llm_section, llm_cases, measure

    case = llm_cases(quick=True)[0]
    row = measure(case, reps=0)
    assert row.status == "ok", row.error
    here = run_llm(case.model, prefill=case.prefill, decode=case.decode, batch=case.batch,
                   engine=SystolicConfig(rows=case.rows, cols=case.cols),
                   memory=MemoryConfig(**MEMORY))
    assert row.cycles == here.summary()["cycles"]
    md, js = tmp_path / "bench.md", tmp_path / "bench_llm.json"
    md.write_text("# bench\n")
    js.write_text(json.dumps({"date": "today", "rows": [asdict(row)]}))
    append_llm_section(md, js, measured=True)
    append_llm_section(md, js, measured=False)       # replaces the section, says carried
    text = md.read_text()
    assert text.count("## Whole-model LLM timing") == 1 and "carried over" in text
    assert f"{row.cycles:,}" in text
