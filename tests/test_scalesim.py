"""SCALE-Sim compatibility: config/topology readers (quirks, one-line errors), the v3.0.0 closed
forms against the numbers measured with the real tool (shared/scalesim.md), the report and the CLI.

The real SCALE-Sim is not needed here; cosim/bench/scalesim.py (docs/scalesim_compare.md) checks the closed forms against it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import sys
import types
import warnings
from pathlib import Path

import pytest

from tpesim.kernels.conv import ConvLayer
from tpesim.kernels.scalesim import (
    REPORT_COLUMNS, Layer, ScaleSimCompatWarning, ScaleSimConfig, cli_main, effective_k,
    explain_delta, format_config, format_topology, parse_config, parse_topology, read_config,
    read_topology, report, scalesim_compute, scalesim_compute_cycles, scalesim_fold_shape,
)
from tpesim.errors import ConfigError, FileFormatError, TpesimError

WORKLOADS = Path(__file__).resolve().parent.parent / "kernels" / "workloads"

CFG = """\
[general]
run_name = t

[architecture_presets]
ArrayHeight:    32
ArrayWidth:     16
IfmapSramSzkB:   64
FilterSramSzkB:  32
OfmapSramSzkB:   16
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : ws
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""

CONV_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
               "Num Filter, Strides,\n")
GEMM_HEADER = "Layer, M, N, K,\n"


def _cfg(**subs: str) -> str:
    text = CFG
    for old, new in subs.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@contextlib.contextmanager
def _no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScaleSimCompatWarning)
        yield


# ------------------------------------------------------------------------------------------------
# Closed forms (SCALE-Sim v3.0.0 stall-free Total Cycles) and metrics
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [4, 8, 16, 20, 32, 64])
def test_ispass_single_fold(n):
    # ISPASS'20 Fig. 4: N x N array, 1xN ifmap, 1x1 filter, N channels, N filters.
    (ly,) = parse_topology(CONV_HEADER + f"test_valid_{n},1,{n},1,1,{n},{n},1,\n")
    assert (ly.M, ly.N, ly.K) == (n, n, n)
    assert scalesim_compute_cycles(ly.M, ly.N, ly.K, n, n, "os") == 3 * n - 3
    assert scalesim_compute_cycles(ly.M, ly.N, ly.K, n, n, "ws") == 4 * n - 3
    assert scalesim_compute_cycles(ly.M, ly.N, ly.K, n, n, "is") == 4 * n - 3


# (M, N, K, R, C, df) -> (Total Cycles, Overall Util %, Mapping Efficiency %): scalesim.md sec. 8.
MEASURED = [
    ((64, 64, 64, 8, 8, "os"), 4_991, 82.07, 100.0),
    ((64, 64, 64, 8, 8, "ws"), 5_503, 74.43, 100.0),
    ((64, 64, 64, 8, 8, "is"), 5_503, 74.43, 100.0),
    ((512, 512, 512, 32, 32, "os"), 146_943, 89.20, 100.0),
    ((512, 512, 512, 32, 32, "ws"), 155_135, 84.49, 100.0),
    ((512, 512, 512, 32, 32, "is"), 155_135, 84.49, 100.0),
    ((2916, 64, 576, 32, 32, "os"), 117_391, 89.42, 99.05),
    ((2916, 64, 576, 32, 32, "ws"), 108_359, 96.88, 100.0),
    ((2916, 64, 576, 32, 32, "is"), 261_647, 40.12, 99.05),
    ((1024, 1024, 1024, 128, 128, "ws"), 89_983, 72.83, 100.0),
]


@pytest.mark.parametrize(("dims", "cycles", "util_pct", "map_pct"), MEASURED,
                         ids=[f"{d[0]}x{d[1]}x{d[2]}-{d[3]}x{d[4]}-{d[5]}" for d, *_ in MEASURED])
def test_measured_scalesim_runs(dims, cycles, util_pct, map_pct):
    assert scalesim_compute_cycles(*dims) == cycles
    sc = scalesim_compute(*dims)
    assert sc.compute_cycles == cycles
    assert 100 * sc.utilization == pytest.approx(util_pct, abs=0.005)
    assert 100 * sc.mapping_efficiency == pytest.approx(map_pct, abs=0.005)


def test_large_gemm_closed_forms():
    # Too big to run in SCALE-Sim (killed at 600 s, 19 GB); the closed form is all there is.
    assert scalesim_compute_cycles(4096, 4096, 4096, 128, 128, "ws") == 4_585_471
    assert scalesim_compute_cycles(4096, 4096, 4096, 128, 128, "os") == 4_454_399
    assert 100 * scalesim_compute(4096, 4096, 4096, 128, 128, "ws").utilization == \
        pytest.approx(91.47, abs=0.005)
    assert 100 * scalesim_compute(4096, 4096, 4096, 128, 128, "os").utilization == \
        pytest.approx(94.16, abs=0.005)


def test_conv_56x56_from_topology():
    # 56x56x64 ifmap, 3x3x64x64, stride 1, no padding -> 54x54: M=2916, K=576, N=64.
    (ly,) = parse_topology(CONV_HEADER + "c,56,56,3,3,64,64,1,\n")
    assert (ly.ofmap_h, ly.ofmap_w, ly.M, ly.N, ly.K) == (54, 54, 2916, 64, 576)
    expect = {"os": 117_391, "ws": 108_359, "is": 261_647}
    for df, cycles in expect.items():
        assert scalesim_compute_cycles(ly.M, ly.N, ly.K, 32, 32, df) == cycles


def test_fold_shapes_and_compute_util():
    assert scalesim_fold_shape(64, 64, 64, 8, 8, "os") == (64, 78)
    assert scalesim_fold_shape(2916, 64, 576, 32, 32, "ws") == (36, 3010)
    assert scalesim_fold_shape(2916, 64, 576, 32, 32, "is") == (1656, 158)
    # WS/IS Compute Util divides by the fold length before the skew (2R+2C+T-3): 80.38 %.
    assert 100 * scalesim_compute(512, 512, 512, 32, 32, "ws").compute_utilization == \
        pytest.approx(80.38, abs=0.005)


def test_gemv_costs_a_full_fold_per_tile():
    # WS GEMV on 128x128: 383 cycles per fold for one useful row.
    folds, per_fold = scalesim_fold_shape(1, 4096, 4096, 128, 128, "ws")
    assert (folds, per_fold) == (32 * 32, 383)


def test_sparse_2_4():
    # 2:4 on 64^3 WS 8x8 (SparsitySupport on): 2751 cycles, dense-MAC utilization 148.9 %.
    sc = scalesim_compute(64, 64, 64, 8, 8, "ws", sparsity=(2, 4))
    assert sc.k_eff == 32 and sc.compute_cycles == 2751
    assert 100 * sc.utilization == pytest.approx(148.89, abs=0.005)
    assert effective_k(70, (2, 4)) == 36       # 17 full blocks of 2, then 2 of the last 2
    assert effective_k(69, (2, 4)) == 35
    assert effective_k(7, (1, 1)) == 7


def test_sram_counts():
    # 64^3 on 8x8 OS: SCALE-Sim over-counts ofmap writes by R+C per fold (5120 instead of 4096).
    sc = scalesim_compute(64, 64, 64, 8, 8, "os")
    assert sc.ofmap_sram_write_bytes == 64 * 64 + 64 * (8 + 8) == 5120
    assert sc.ifmap_sram_read_bytes == 8 * 64 * 64  # once per column fold
    ws = scalesim_compute(64, 64, 64, 8, 8, "ws")
    assert ws.filter_sram_read_bytes == 64 * 64  # each weight loaded once


@pytest.mark.parametrize("bad", [
    ((0, 1, 1, 1, 1, "os"), "M must be a positive integer, not 0"),
    ((1, 1, 1, 1, 1, "OS"), "dataflow must be one of 'os', 'ws', 'is', not 'OS'"),
])
def test_closed_form_validation(bad):
    args, msg = bad
    with pytest.raises(TpesimError) as e:
        scalesim_compute_cycles(*args)
    assert str(e.value) == msg


# ------------------------------------------------------------------------------------------------
# Config reader
# ------------------------------------------------------------------------------------------------
def test_config_fields():
    cfg = parse_config(CFG, name="a.cfg")
    assert (cfg.rows, cfg.cols, cfg.dataflow) == (32, 16, "ws")
    assert (cfg.ifmap_sram_kb, cfg.filter_sram_kb, cfg.ofmap_sram_kb) == (64, 32, 16)
    assert cfg.interface_bandwidth == "CALC" and cfg.bandwidths == ()  # not read in CALC mode
    # CALC mode: fixed 10 words/cycle reads, ArrayWidth drain.
    assert (cfg.ifmap_bw_words_per_cycle, cfg.filter_bw_words_per_cycle,
            cfg.ofmap_bw_words_per_cycle) == (10, 10, 16)
    assert cfg.word_bytes == 1 and not cfg.use_ramulator_trace and not cfg.sparsity_support


def test_config_case_insensitive_keys_and_separators():
    text = _cfg(**{"ArrayHeight:    32": "ARRAYHEIGHT = 8", "ArrayWidth:     16": "arraywidth=4",
                   "Dataflow : ws": "dataflow = is"})
    cfg = parse_config(text)
    assert (cfg.rows, cfg.cols, cfg.dataflow) == (8, 4, "is")


def test_config_roundtrip():
    cfg = parse_config(CFG)
    assert parse_config(format_config(cfg)) == cfg
    user = ScaleSimConfig(rows=4, cols=8, dataflow="os", ifmap_sram_kb=1, filter_sram_kb=2,
                          ofmap_sram_kb=3, interface_bandwidth="USER", bandwidths=(7,),
                          ifmap_sram_bank_bandwidth=7, filter_sram_bank_bandwidth=7)
    assert parse_config(format_config(user)) == user


def test_sample_config_parses_without_warnings():
    with _no_warnings():
        cfg = read_config(WORKLOADS / "scalesim_32x32_os.cfg")
    assert (cfg.rows, cfg.cols, cfg.dataflow, cfg.interface_bandwidth) == (32, 32, "os", "CALC")


def test_user_mode_bandwidth_quirk():
    text = _cfg(**{"InterfaceBandwidth: CALC": "InterfaceBandwidth: USER",
                   "Bandwidth : 10": "Bandwidth : 50, 60",
                   "FilterSRAMBankBandwidth: 10": "FilterSRAMBankBandwidth: 4"})
    with pytest.warns(ScaleSimCompatWarning) as rec:
        cfg = parse_config(text, name="u.cfg")
    assert cfg.bandwidths == (50, 60)
    # ifmap/filter DRAM bandwidth come from [layout], Bandwidth[0] only drains the ofmap.
    assert (cfg.ifmap_bw_words_per_cycle, cfg.filter_bw_words_per_cycle,
            cfg.ofmap_bw_words_per_cycle) == (10, 4, 50)
    msgs = [str(w.message) for w in rec]
    assert "u.cfg:13: SCALE-Sim 3.0.0 uses only the first value of Bandwidth [50, 60]" in msgs
    assert any(m.startswith("u.cfg:13: in USER mode SCALE-Sim 3.0.0 takes the ifmap and filter "
                            "DRAM bandwidths from [layout] IfmapSRAMBankBandwidth (10)")
               for m in msgs)


def test_user_mode_bank_divisibility():
    text = _cfg(**{"InterfaceBandwidth: CALC": "InterfaceBandwidth: USER",
                   "IfmapSRAMBankNum: 1": "IfmapSRAMBankNum: 3"})
    with pytest.raises(FileFormatError) as e, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parse_config(text, name="u.cfg")
    assert str(e.value) == ("u.cfg:21: field 'IfmapSRAMBankBandwidth' must be a multiple of "
                            "IfmapSRAMBankNum (3) in USER mode, not 10")


@pytest.mark.parametrize(("subs", "msg"), [
    ({"IfmapSRAMBankNum: 1": "IfmapSRAMBankNum: 0"},
     "c.cfg:22: field 'IfmapSRAMBankNum' must be a positive integer, not '0'"),
    ({"ArrayWidth:     16\n": ""}, "c.cfg:4: field 'ArrayWidth' is missing from section "
                                    "[architecture_presets]"),
    ({"ArrayHeight:    32": "ArrayHeight: x"},
     "c.cfg:5: field 'ArrayHeight' must be a positive integer, not 'x'"),
    ({"ArrayHeight:    32": "ArrayHeight: 0"},
     "c.cfg:5: field 'ArrayHeight' must be a positive integer, not '0'"),
    ({"ArrayHeight:    32": "ArrayHeight: 32   # rows"},
     "c.cfg:5: field 'ArrayHeight' must be a positive integer, not '32   # rows'"),
    ({"IfmapOffset:    0": "IfmapOffset: -1"},
     "c.cfg:10: field 'IfmapOffset' must be an integer >= 0, not '-1'"),
    ({"Dataflow : ws": "Dataflow : WS"},
     "c.cfg:14: field 'Dataflow' must be one of 'os', 'ws', 'is', not 'WS' (SCALE-Sim 3.0.0 is "
     "case-sensitive here)"),
    ({"InterfaceBandwidth: CALC": "InterfaceBandwidth: calc"},
     "c.cfg:37: field 'InterfaceBandwidth' must be one of 'CALC', 'USER', not 'calc'"),
    ({"IfmapCustomLayout: False": "IfmapCustomLayout: maybe"},
     "c.cfg:20: field 'IfmapCustomLayout' must be a boolean (True or False), not 'maybe'"),
    ({"[general]\n": ""}, "c.cfg:1: expected a [section] header before 'run_name = t'"),
    ({"MemoryBanks:   1": "ArrayHeight: 4"}, "c.cfg:15: field 'ArrayHeight' appears twice"),
    ({"MemoryBanks:   1": "just some words"},
     "c.cfg:15: cannot parse 'just some words' (expected 'key: value' or 'key = value')"),
    ({"InterfaceBandwidth: CALC": "InterfaceBandwidth: USER", "Bandwidth : 10": "Bandwidth : a"},
     "c.cfg:13: field 'Bandwidth' must be a comma-separated list of positive integers, not 'a'"),
])
def test_config_errors(subs, msg):
    with pytest.raises(FileFormatError) as e, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parse_config(_cfg(**subs), name="c.cfg")
    assert str(e.value) == msg
    assert "\n" not in str(e.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(FileFormatError, match=r"nope\.cfg: file not found$"):
        read_config(tmp_path / "nope.cfg")


def test_config_soft_quirks_warn():
    text = _cfg(**{"UseRamulatorTrace: False": "UseRamulatorTrace: true",
                   "SparsitySupport : false": "SparsitySupport : yes"})
    with pytest.warns(ScaleSimCompatWarning) as rec:
        cfg = parse_config(text, name="q.cfg")
    assert not cfg.use_ramulator_trace and not cfg.sparsity_support
    msgs = [str(w.message) for w in rec]
    assert "q.cfg:38: SCALE-Sim 3.0.0 enables Ramulator replay only for the exact string 'True'; " \
           "'true' leaves it off" in msgs
    assert "q.cfg:30: SCALE-Sim 3.0.0 treats 'yes' as false" in msgs


def test_network_presets_section():
    text = CFG + '\n[network_presets]\nTopologyCsvLoc = "./topologies/x.csv"\n'
    with pytest.warns(ScaleSimCompatWarning, match="crashes on a \\[network_presets\\] section"):
        cfg = parse_config(text)
    assert cfg.topology_path == "./topologies/x.csv"


# ------------------------------------------------------------------------------------------------
# Topology reader
# ------------------------------------------------------------------------------------------------
def test_conv_topology_basics():
    text = CONV_HEADER + "\n c1 , 56, 56, 3, 3, 64, 64, 1,\n\nc2,224,224,7,7,3,64,2,2:4,\n"
    with _no_warnings():
        a, b = parse_topology(text, name="t.csv")
    assert (a.name, a.line, a.M, a.N, a.K, a.sparsity) == ("c1", 3, 54 * 54, 64, 576, (1, 1))
    assert (b.line, b.sparsity, b.ofmap_h) == (5, (2, 4), 110)


def test_ofmap_is_scalesim_ceil():
    # ceil((16 - 3 + 2) / 2) = 8, one more than the usual floor((16 - 3) / 2) + 1 = 7.
    (ly,) = parse_topology(CONV_HEADER + "s2,16,16,3,3,8,16,2,\n")
    assert (ly.ofmap_h, ly.M) == (8, 64)
    assert ConvLayer(16, 16, 8, 16, 3, 3, 2, 2).out_h == 7


def test_gemm_topology():
    text = GEMM_HEADER + "g,10,20,30,\nh,1,2,3,1:2,\n"
    g, h = parse_topology(text, kind="gemm")
    assert (g.M, g.N, g.K, g.kind) == (10, 20, 30, "gemm")
    assert (g.ifmap_h, g.ifmap_w, g.filter_h, g.filter_w, g.channels, g.num_filters) == \
        (10, 30, 1, 30, 1, 20)  # SCALE-Sim's internal conv form of a GEMM
    assert h.sparsity == (1, 2)


def test_depthwise_split_per_channel():
    layers = parse_topology(CONV_HEADER + "mbDPconv3,10,10,3,3,4,1,1,\nnormal,10,10,3,3,4,1,1,\n")
    assert [ly.name for ly in layers] == [f"mbDPconv3Channel_{c}" for c in range(4)] + ["normal"]
    assert all(ly.channels == 1 and ly.K == 9 and ly.line == 2 for ly in layers[:4])
    assert layers[4].K == 36
    # Case-sensitive substring, as in SCALE-Sim; GEMM topologies never split.
    assert len(parse_topology(CONV_HEADER + "dpconv,10,10,3,3,4,1,1,\n")) == 1
    assert len(parse_topology(GEMM_HEADER + "DP,1,2,3,\n", kind="gemm")) == 1


def test_no_trailing_comma_keeps_fields_and_warns():
    text = CONV_HEADER + "a,8,8,3,3,2,2,1\nb,8,8,3,3,2,2,1,2:4\n"
    with pytest.warns(ScaleSimCompatWarning) as rec:
        a, b = parse_topology(text, name="t.csv")
    assert (a.stride, b.sparsity) == (1, (2, 4))
    assert [str(w.message) for w in rec] == [
        "t.csv:2: row does not end with a comma; SCALE-Sim 3.0.0 drops the last field ('1') of "
        "such rows and fails on this row; tpesim keeps it"]
    with pytest.warns(ScaleSimCompatWarning, match="silently ignores that sparsity field"):
        parse_topology(GEMM_HEADER + "g,1,2,3,2:4\n", kind="gemm", name="g.csv")


def test_header_that_looks_like_data_warns():
    with pytest.warns(ScaleSimCompatWarning, match=r"^t\.csv:1: looks like a layer"):
        layers = parse_topology("g,1,2,3,\nh,4,5,6,\n", kind="gemm", name="t.csv")
    assert [ly.name for ly in layers] == ["h"]


@pytest.mark.parametrize(("kind", "row", "msg"), [
    ("conv", "a,8,8,3,3,2,2,x,", "topo.csv:3: field 'Strides' must be a positive integer, not 'x'"),
    ("conv", "a,8,8,3,3,2,0,1,", "topo.csv:3: field 'Num Filter' must be a positive integer, "
                                 "not '0'"),
    ("conv", "a,8,8,3,3,2,2,1.5,", "topo.csv:3: field 'Strides' must be a positive integer, "
                                   "not '1.5'"),
    ("conv", "a,8,8,3,3,2,,1,", "topo.csv:3: field 'Num Filter' must be a positive integer, "
                                "not ''"),
    ("conv", "a,8,8,3,3,2,2,", "topo.csv:3: field 'Strides' is missing (a conv row has 8 fields, "
                               "optionally a 'N:M sparsity' field)"),
    ("conv", "a,8,8,3,3,2,2,1,2:4,9,", "topo.csv:3: 10 fields, a conv row has at most 9 "
                                       "(Layer name, IFMAP Height, IFMAP Width, Filter Height, "
                                       "Filter Width, Channels, Num Filter, Strides, "
                                       "N:M sparsity)"),
    ("conv", ",8,8,3,3,2,2,1,", "topo.csv:3: field 'Layer name' must not be empty"),
    ("conv", "a,8,8,9,3,2,2,1,", "topo.csv:3: field 'Filter Height' must not exceed "
                                 "'IFMAP Height' (8), not 9"),
    ("conv", "a,8,8,3,3,2,2,1,4:2,", "topo.csv:3: field 'N:M sparsity' must be N:M with "
                                     "1 <= N <= M (e.g. 2:4), not '4:2'"),
    ("gemm", "g,1,2,-3,", "topo.csv:3: field 'K' must be a positive integer, not '-3'"),
    ("gemm", "g,1,2,", "topo.csv:3: field 'K' is missing (a gemm row has 4 fields, optionally a "
                       "'N:M sparsity' field)"),
])
def test_topology_errors(kind, row, msg):
    header = CONV_HEADER if kind == "conv" else GEMM_HEADER
    good = "ok,8,8,3,3,2,2,1,\n" if kind == "conv" else "ok,1,2,3,\n"
    with pytest.raises(FileFormatError) as e:
        parse_topology(header + good + row + "\n", kind=kind, name="topo.csv")
    assert str(e.value) == msg


def test_topology_kind_hints():
    with pytest.raises(FileFormatError, match=r"\(the header looks like a GEMM topology: pass "
                                              r"-i gemm\)$"):
        parse_topology(GEMM_HEADER + "g,1,2,3,\n", kind="conv", name="t.csv")
    with pytest.raises(FileFormatError, match=r"drop -i gemm\)$"):
        parse_topology(CONV_HEADER + "a,8,8,3,3,2,2,1,\n", kind="gemm", name="t.csv")


def test_topology_file(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(("\ufeff" + CONV_HEADER + "a,8,8,3,3,2,2,1,\r\n").encode())
    (ly,) = read_topology(p)
    assert ly.name == "a" and ly.line == 2
    with pytest.raises(FileFormatError, match=r"x\.csv: file not found$"):
        read_topology(tmp_path / "x.csv")


def test_topology_roundtrip():
    layers = [Layer("a", 9, 11, 3, 2, 5, 7, 2), Layer("b", 4, 4, 1, 1, 3, 3, 1, (1, 2))]
    with _no_warnings():
        back = parse_topology(format_topology(layers))
        assert back == [dataclasses.replace(ly, line=i + 2) for i, ly in enumerate(layers)]
        (g,) = parse_topology(format_topology([Layer.gemm("g", 3, 4, 5)], "gemm"), kind="gemm")
    assert (g.M, g.N, g.K) == (3, 4, 5)


# ------------------------------------------------------------------------------------------------
# Shipped workloads
# ------------------------------------------------------------------------------------------------
def _resnet50_v15() -> list[ConvLayer]:
    layers = [ConvLayer(224, 224, 3, 64, 7, 7, 2, 2, 3, 3, name="Conv1")]
    cin, hw_in = 64, 56
    for stage, blocks, width, hw in ((2, 3, 64, 56), (3, 4, 128, 28), (4, 6, 256, 14),
                                     (5, 3, 512, 7)):
        for b in range(blocks):
            name = ("CB" if b == 0 else "IB") + f"{stage}{'abcdef'[b]}"
            s = 2 if b == 0 and stage > 2 else 1
            h = hw_in if b == 0 else hw
            layers += [ConvLayer(h, h, cin, width, 1, 1, name=f"{name}_1"),
                       ConvLayer(h, h, width, width, 3, 3, s, s, 1, 1, name=f"{name}_2"),
                       ConvLayer(hw, hw, width, 4 * width, 1, 1, name=f"{name}_3")]
            if b == 0:
                layers.append(ConvLayer(h, h, cin, 4 * width, 1, 1, s, s, name=f"CB{stage}s"))
            cin = 4 * width
        hw_in = hw
    return layers + [ConvLayer(1, 1, 2048, 1000, 1, 1, name="FC1000")]


def test_resnet50_topology():
    with _no_warnings():
        rows = read_topology(WORKLOADS / "resnet50.csv")
    ref = _resnet50_v15()
    assert [ly.name for ly in rows] == [c.name for c in ref]
    assert len([c for c in ref if c.name != "FC1000"]) == 53
    for ly, c in zip(rows, ref, strict=True):
        assert (ly.M, ly.N, ly.K) == c.gemm_shape(), c.name
        assert ly == dataclasses.replace(c.to_scalesim(), line=ly.line)
    assert sum(ly.macs for ly in rows) == 4_089_184_256  # ResNet-50 v1.5: 4.09 GMACs


def test_bert_topology():
    with _no_warnings():
        rows = read_topology(WORKLOADS / "bert_base_encoder.csv", kind="gemm")
    assert len(rows) == 3 + 12 + 12 + 3
    dims = {ly.name: (ly.M, ly.N, ly.K) for ly in rows}
    assert dims["q_proj"] == dims["out_proj"] == (512, 768, 768)
    assert dims["qk_t_head11"] == (512, 512, 64)
    assert dims["av_head0"] == (512, 64, 512)
    assert dims["ffn1"] == (512, 3072, 768) and dims["ffn2"] == (512, 768, 3072)
    assert sum(ly.macs for ly in rows) == \
        4 * 512 * 768 * 768 + 2 * 12 * 512 * 512 * 64 + 2 * 512 * 768 * 3072


def test_llama_topology():
    with _no_warnings():
        rows = read_topology(WORKLOADS / "llama2_7b_decoder.csv", kind="gemm")
    dims = {ly.name: (ly.M, ly.N, ly.K) for ly in rows}
    assert len(rows) == 14
    for phase, m in (("prefill", 2048), ("decode", 1)):
        for p in "qkvo":
            assert dims[f"{phase}_{p}_proj"] == (m, 4096, 4096)
        assert dims[f"{phase}_gate_proj"] == dims[f"{phase}_up_proj"] == (m, 11008, 4096)
        assert dims[f"{phase}_down_proj"] == (m, 4096, 11008)


# ------------------------------------------------------------------------------------------------
# Report and CLI
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def no_tile_timing(monkeypatch):
    monkeypatch.setitem(sys.modules, "tpesim.timing", None)  # import raises ImportError


@pytest.fixture
def fake_tile_timing(monkeypatch):
    mod = types.ModuleType("tpesim.timing")

    def tile_gemm_cycles(M, N, K, rows, cols, dataflow):  # noqa: N803
        if dataflow != "os":
            raise ConfigError(f"dataflow must be 'os' in this version, not {dataflow!r}")
        return scalesim_compute_cycles(M, N, K, rows, cols, dataflow) + 1

    mod.tile_gemm_cycles = tile_gemm_cycles
    monkeypatch.setitem(sys.modules, "tpesim.timing", mod)


def _files(tmp_path, cfg_subs=None, topo=None, kind="gemm"):
    c = tmp_path / "a.cfg"
    c.write_text(_cfg(**(cfg_subs or {"Dataflow : ws": "Dataflow : os"})))
    t = tmp_path / "t.csv"
    t.write_text(topo or GEMM_HEADER + "g0,64,64,64,\ng1,100,30,7,\n")
    return str(c), str(t)


def test_report_without_tile_timing(no_tile_timing):
    cfg = parse_config(_cfg(**{"Dataflow : ws": "Dataflow : os"}))
    rows, note = report(cfg, [Layer.gemm("g", 64, 64, 64)])
    assert note.startswith("tpesim tile timing unavailable")
    (r,) = rows
    assert set(r) == set(REPORT_COLUMNS)
    assert r["compute_cycles"] == r["scalesim_compute_cycles"] == \
        scalesim_compute_cycles(64, 64, 64, 32, 16, "os")
    assert r["tpesim_compute_cycles"] is None and r["timing"] == "scalesim"
    assert r["reason"].startswith("tpesim tile timing unavailable")
    assert r["stall_cycles"] == 0


def test_report_side_by_side(fake_tile_timing):
    cfg = parse_config(_cfg(**{"Dataflow : ws": "Dataflow : os"}))
    rows, note = report(cfg, [Layer.gemm("g", 64, 64, 64)])
    (r,) = rows
    assert note == ""
    assert r["timing"] == "tpesim" and r["delta_cycles"] == 1
    assert r["compute_cycles"] == r["tpesim_compute_cycles"] == r["scalesim_compute_cycles"] + 1
    assert r["reason"].startswith("+1 (tpesim slower)")
    assert "serializes its 8 folds" in r["reason"] and "(-1, issue #125)" in r["reason"]
    (c,), _ = report(cfg, [Layer.gemm("g", 64, 64, 64)], compat=True)
    assert c["timing"] == "scalesim" and c["compute_cycles"] == c["scalesim_compute_cycles"]
    assert c["tpesim_compute_cycles"] == r["tpesim_compute_cycles"]
    ws = parse_config(CFG)
    (w,), note = report(ws, [Layer.gemm("g", 64, 64, 64)])
    assert w["tpesim_compute_cycles"] is None
    assert w["reason"] == "tpesim timing: dataflow must be 'os' in this version, not 'ws'"
    assert note.startswith("tpesim tile timing supports none")


def test_explain_delta_other_timing():
    """A tpesim count that is not the OS closed form (another tile timing) still gets the sign right."""
    sc = scalesim_compute(100, 30, 7, 32, 16, "os")
    text = explain_delta(sc, sc.compute_cycles - 50)
    assert text.startswith("-50 (tpesim faster)") and f"serializes its {sc.folds} folds" in text
    assert explain_delta(sc, sc.compute_cycles) == "same"


def test_user_mode_stalls_unknown(no_tile_timing):
    cfg = parse_config(_cfg(**{"InterfaceBandwidth: CALC": "InterfaceBandwidth: USER"}))
    (r,), _ = report(cfg, [Layer.gemm("g", 8, 8, 8)])
    assert r["stall_cycles"] is None and r["total_cycles"] is None
    assert r["reason"].endswith("SCALE-Sim's USER-mode stalls not modelled")


def test_cli_json(tmp_path, capsys, no_tile_timing):
    c, t = _files(tmp_path)
    assert cli_main(["-c", c, "-t", t, "-i", "gemm", "--json"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert [d["layer"] for d in data] == ["g0", "g1"]
    for d in data:
        assert {"layer", "compute_cycles", "stall_cycles", "utilization"} <= set(d)
    assert data[0]["compute_cycles"] == scalesim_compute_cycles(64, 64, 64, 32, 16, "os")
    assert "note: tpesim tile timing unavailable" in out.err


def test_cli_table_and_csv(tmp_path, capsys, fake_tile_timing):
    c, t = _files(tmp_path)
    out_csv = tmp_path / "r.csv"
    assert cli_main(["-c", c, "-t", t, "-i", "gemm", "-o", str(out_csv)]) == 0
    text = capsys.readouterr().out
    assert "scalesim_cycles" in text and "tpesim_cycles" in text and "g1" in text
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    # the same provenance columns as every report, then the SCALE-Sim report's own
    assert tuple(rows[0]) == ("tool", "tool_version", "schema_version", *REPORT_COLUMNS)
    assert rows[0]["tool"] == "tpesim" and rows[0]["schema_version"] == "2"
    assert "compute_cycles" in rows[0] and "sram_read_bytes" in rows[0]
    assert int(rows[1]["delta_cycles"]) == 1


def test_cli_conv_default_and_warnings(tmp_path, capsys, no_tile_timing):
    c, t = _files(tmp_path, topo=CONV_HEADER + "a,8,8,3,3,2,2,1\n")
    assert cli_main(["-c", c, "-t", t, "--compat", "scalesim"]) == 0
    err = capsys.readouterr().err
    assert "tpesim scalesim: warning: t.csv:2: row does not end with a comma" in err


@pytest.mark.parametrize(("argv", "msg"), [
    (["-t", "x.csv"], "scalesim: the following arguments are required: -c/--config"),
    (["-c", "a", "-t", "b", "-i", "fc"], "scalesim: argument -i/--input-type: invalid choice: "
                                         "'fc'"),
])
def test_cli_usage_errors(argv, msg):
    with pytest.raises(TpesimError) as e:
        cli_main(argv)
    assert str(e.value).startswith(msg)


def test_cli_file_errors(tmp_path, no_tile_timing):
    c, t = _files(tmp_path, topo=GEMM_HEADER + "g,1,2,x,\n")
    with pytest.raises(FileFormatError) as e:
        cli_main(["-c", c, "-t", t, "-i", "gemm"])
    assert str(e.value) == "t.csv:2: field 'K' must be a positive integer, not 'x'"
    c, t = _files(tmp_path, topo=GEMM_HEADER)
    with pytest.raises(FileFormatError, match=r"^t\.csv: no layers after the header line$"):
        cli_main(["-c", c, "-t", t, "-i", "gemm"])


# ------------------------------------------------------------------------------------------------
# tpesim's own timing for WS / IS (the real sim.timing) beside SCALE-Sim's
# ------------------------------------------------------------------------------------------------
WORKLOADS = Path(__file__).resolve().parent.parent / "kernels" / "workloads"


@pytest.mark.parametrize("dataflow", ["ws", "is"])
@pytest.mark.parametrize(("topology", "kind"), [("resnet50.csv", "conv"),
                                                 ("bert_base_encoder.csv", "gemm"),
                                                 ("llama2_7b_decoder.csv", "gemm")])
def test_stationary_delta_is_folds_plus_two(dataflow, topology, kind):
    """Both closed forms serialize the same folds: tpesim F(2R+C+T-1)+1, SCALE-Sim F(2R+C+T-2)-1,
    so every layer differs by exactly F + 2 and the reason says so."""
    cfg = dataclasses.replace(read_config(WORKLOADS / "scalesim_32x32_os.cfg"), dataflow=dataflow)
    rows, note = report(cfg, read_topology(WORKLOADS / topology, kind))
    assert note == "" and rows
    for r in rows:
        assert r["timing"] == "tpesim" and r["stall_cycles"] == 0
        assert r["delta_cycles"] == r["folds"] + 2, r["layer"]
        assert r["reason"].startswith(f"+{r['folds'] + 2} = {r['folds']} folds x 1 + 1 + 1: an "
                                      f"input register on our stream lanes")


def test_stationary_delta_fallbacks():
    # N:M sparsity: SCALE-Sim compresses K, tpesim times the dense GEMM
    sc = scalesim_compute(100, 30, 70, 8, 8, "ws", sparsity=(2, 4))
    from tpesim.timing import tile_gemm_cycles

    text = explain_delta(sc, tile_gemm_cycles(100, 30, 70, 8, 8, "ws"))
    assert "N:M-compressed reduction (36 of 70 rows)" in text and f"{sc.folds} folds" in text
    # a double-buffered figure is not the serialized closed form
    sc = scalesim_compute(100, 30, 70, 8, 8, "is")
    text = explain_delta(sc, tile_gemm_cycles(100, 30, 70, 8, 8, "is", double_buffer=True))
    assert text.startswith("-") and "double-buffered one overlaps" in text


@pytest.mark.parametrize("dataflow", ["ws", "is"])
def test_cli_stationary_json(tmp_path, capsys, dataflow):
    c, t = _files(tmp_path, cfg_subs={"Dataflow : ws": f"Dataflow : {dataflow}"})
    assert cli_main(["-c", c, "-t", t, "-i", "gemm", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in rows] == ["g0", "g1"]
    for r in rows:
        assert r["compute_cycles"] == r["tpesim_compute_cycles"] == \
            r["scalesim_compute_cycles"] + r["folds"] + 2
        assert r["dataflow"] == dataflow


@pytest.mark.parametrize("m,n,k,rows,cols", [(1, 4096, 16, 32, 32), (512, 512, 512, 32, 32),
                                             (100, 70, 300, 16, 8)])
def test_os_reason_matches_sign_and_cause(m, n, k, rows, cols):
    """The OS reason derives the delta from both closed forms: its sign says who is slower, and the
    per-fold cost it names is tpesim's max(K, 2R+C) (short K: the drain bound; long K: the beats)."""
    from tpesim.kernels.scalesim.compat import scalesim_compute
    from tpesim.kernels.scalesim.report import explain_delta
    from tpesim.timing import tile_gemm_cycles

    sc = scalesim_compute(m, n, k, rows, cols, "os")
    ours = tile_gemm_cycles(m, n, k, rows, cols, "os")
    why = explain_delta(sc, ours)
    delta = ours - sc.compute_cycles
    assert why.startswith(f"{delta:+d} ({'tpesim slower' if delta > 0 else 'tpesim faster'})")
    assert f"max(K, 2R+C) = {max(k, 2 * rows + cols)}" in why
    assert ("2R+C = " + str(2 * rows + cols) + " > K") in why if k < 2 * rows + cols else "K = " in why


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_sparse_layer_reason_mentions_sparsity(dataflow):
    from tpesim.kernels.scalesim.compat import scalesim_compute
    from tpesim.kernels.scalesim.report import explain_delta
    from tpesim.timing import tile_gemm_cycles

    sc = scalesim_compute(64, 48, 96, 16, 16, dataflow, sparsity=(2, 4))
    why = explain_delta(sc, tile_gemm_cycles(64, 48, 96, 16, 16, dataflow))
    assert "N:M-compressed reduction (48 of 96 rows)" in why
