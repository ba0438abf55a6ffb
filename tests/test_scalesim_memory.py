"""`tpesim scalesim` with the config's memory: SRAM sizes and bandwidth fed to tpesim's memory model
(stall cycles beside SCALE-Sim's stall-free number), SCALE-Sim-style COMPUTE/BANDWIDTH reports,
and SCALE-Sim v2 configs (v3 keys defaulted, one note)."""

from __future__ import annotations

import csv
import json
import warnings

import pytest

from tpesim.cli import main as tpesim_main
from tpesim.errors import ConfigError, FileFormatError
from tpesim.kernels.scalesim import (REPORT_COLUMNS, Layer, ScaleSimCompatWarning, cli_main,
                                     parse_config, report, scalesim_compute)
from tpesim.kernels.scalesim.csv_reports import (BANDWIDTH_REPORT_COLUMNS,
                                                 COMPUTE_REPORT_COLUMNS, bandwidth_report_csv,
                                                 compute_report_csv)
from tpesim.kernels.scalesim.parse import ScaleSimDefaultsNote
from tpesim.kernels.scalesim.report import MEMORY_FIELDS, TRAFFIC_FIELDS
from tpesim.memory import MemoryConfig
from tpesim.timing import tile_gemm

V3 = """\
[general]
run_name = mem

[architecture_presets]
ArrayHeight:    8
ArrayWidth:     8
IfmapSramSzkB:   8
FilterSramSzkB:  8
OfmapSramSzkB:   16
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 4
Dataflow : os
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 4
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 4
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: USER
UseRamulatorTrace: False
"""

# SCALE-Sim v2's default configs/scale.cfg, verbatim (trailing spaces included): no [layout], no
# [sparsity], no Read/WriteRequestBuffer, no UseRamulatorTrace.
V2 = """\
[general]
run_name = scale_example_run_32x32_os

[architecture_presets]
ArrayHeight:    32
ArrayWidth:     32
IfmapSramSzkB:   64 
FilterSramSzkB:  64 
OfmapSramSzkB:   64 
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : os
MemoryBanks:   1

[run_presets]
InterfaceBandwidth: CALC 
"""  # noqa: W291

V2_NOTE = ("v2.cfg: SCALE-Sim v2-style config: defaulted 12 keys it lacks: [run_presets] "
           "UseRamulatorTrace=False; [architecture_presets] ReadRequestBuffer=32, "
           "WriteRequestBuffer=32; [layout] IfmapCustomLayout=False, FilterCustomLayout=False, "
           "IfmapSRAMBankBandwidth=10, IfmapSRAMBankNum=1, IfmapSRAMBankPort=2, "
           "FilterSRAMBankBandwidth=10, FilterSRAMBankNum=1, FilterSRAMBankPort=2; [sparsity] "
           "SparsitySupport=false")

GEMM_HEADER = "Layer, M, N, K,\n"


def _cfg(text: str = V3, **subs: str) -> str:
    for old, new in subs.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _parse(text: str, name: str = "m.cfg"):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScaleSimCompatWarning)
        return parse_config(text, name=name)


# ------------------------------------------------------------------------------------------------
# Stall cycles: tpesim's tile-level timing with the config's memory
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_user_mode_stalls_equal_tile_gemm(dataflow):
    cfg = _parse(_cfg(**{"Dataflow : os": f"Dataflow : {dataflow}"}))
    (r,), note = report(cfg, [Layer.gemm("g", 64, 48, 40)])
    assert note == ""
    # the same memory, written down here from the config text: 8/8/16 kB SRAMs (1 kB = 1 KiB of
    # 1-byte words), Bandwidth 4 words/cycle = 4 B/cycle, SCALE-Sim's 1-cycle read port
    mem = MemoryConfig(sram_kib_a=8, sram_kib_b=8, sram_kib_c=16, dram_bw=4, dram_latency=1)
    ref = tile_gemm(64, 48, 40, 8, 8, dataflow=dataflow, memory=mem)
    assert ref.stall_cycles > 0
    assert r["tpesim_cycles"] == ref.cycles
    assert r["tpesim_stall_cycles"] == ref.stall_cycles
    assert r["tpesim_compute_cycles"] == ref.compute_cycles
    assert r["timing"] == "tpesim"
    assert (r["compute_cycles"], r["stall_cycles"], r["total_cycles"]) == \
        (ref.compute_cycles, ref.stall_cycles, ref.cycles)
    for f in TRAFFIC_FIELDS:
        assert r[f"tpesim_{f}"] == getattr(ref, f), f
    assert {k: r[k] for k in MEMORY_FIELDS} == mem.report_fields()
    # SCALE-Sim's stall-free number stays beside it
    sc = scalesim_compute(64, 48, 40, 8, 8, dataflow)
    assert r["scalesim_compute_cycles"] == sc.compute_cycles


def test_calc_mode_is_stall_free_with_ideal_memory():
    # SRAMs far too small for the blocks: CALC does not use them (SCALE-Sim: reads always hit)
    cfg = _parse(_cfg(**{"InterfaceBandwidth: USER": "InterfaceBandwidth: CALC",
                         "IfmapSramSzkB:   8": "IfmapSramSzkB:   1",
                         "FilterSramSzkB:  8": "FilterSramSzkB:  1"}))
    (r,), _ = report(cfg, [Layer.gemm("g", 64, 48, 400)])
    ideal = tile_gemm(64, 48, 400, 8, 8, dataflow="os", memory=MemoryConfig())
    assert r["tpesim_stall_cycles"] == r["stall_cycles"] == 0
    assert r["tpesim_cycles"] == r["total_cycles"] == ideal.cycles == r["tpesim_compute_cycles"]
    assert {k: r[k] for k in MEMORY_FIELDS} == MemoryConfig().report_fields()
    for f in TRAFFIC_FIELDS:
        assert r[f"tpesim_{f}"] == getattr(ideal, f), f


def test_block_that_does_not_fit_is_reported_not_raised():
    cfg = _parse(_cfg(**{"IfmapSramSzkB:   8": "IfmapSramSzkB:   1"}))
    r1, r2 = report(cfg, [Layer.gemm("big_k", 64, 48, 400), Layer.gemm("ok", 16, 16, 16)])[0]
    assert r1["tpesim_cycles"] is r1["tpesim_stall_cycles"] is r1["stall_cycles"] is None
    assert r1["total_cycles"] is None and r1["tpesim_compute_cycles"] is not None
    assert ("tpesim memory: sram_kib_a must hold two blocks: a tile's block of operand a (8 x 400 "
            "of 8 bits, 3200 bytes) does not fit half of its 1 KiB SRAM (512 bytes); give operand "
            "a at least 6.25 KiB"
            in r1["reason"])
    assert r2["tpesim_stall_cycles"] is not None


def test_compat_timing_keeps_tpesim_stalls_beside():
    cfg = _parse(V3)
    (r,), _ = report(cfg, [Layer.gemm("g", 64, 48, 40)], compat=True)
    assert r["timing"] == "scalesim" and r["compute_cycles"] == r["scalesim_compute_cycles"]
    assert r["stall_cycles"] is None and r["total_cycles"] is None  # SCALE-Sim's USER stalls
    assert r["tpesim_stall_cycles"] > 0
    assert r["reason"].endswith("SCALE-Sim's USER-mode stalls not modelled")


def test_columns_are_named_like_run_gemm(capsys):
    assert tpesim_main(["run", "gemm", "--m", "16", "--n", "16", "--k", "16", "--rows", "8",
                        "--cols", "8", "--fidelity", "tile", "--sram-kib-a", "4",
                        "--dram-bw", "8", "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    for f in ("cycles", "stall_cycles", *TRAFFIC_FIELDS):
        assert f in run and f"tpesim_{f}" in REPORT_COLUMNS, f
    for f in MEMORY_FIELDS:
        assert f in run and f in REPORT_COLUMNS, f


def test_cli_table_says_which_memory(tmp_path, capsys):
    c, t = tmp_path / "m.cfg", tmp_path / "t.csv"
    c.write_text(V3)
    t.write_text(GEMM_HEADER + "g,64,48,40,\n")
    assert cli_main(["-c", str(c), "-t", str(t), "-i", "gemm"]) == 0
    out = capsys.readouterr().out
    assert "tpesim memory: SRAM a/b/c 8/8/16 KiB, one DRAM link of 4 B/cycle shared by all " \
           "operands, latency 1 cycle" in out
    assert "tpesim_stalls" in out and "stall cycles" in out.splitlines()[-1]


# ------------------------------------------------------------------------------------------------
# SCALE-Sim-style COMPUTE_REPORT.csv / BANDWIDTH_REPORT.csv
# ------------------------------------------------------------------------------------------------
# simulator.py generate_reports of SCALE-Sim 3.0.0, verbatim
SCALESIM_COMPUTE_HEADER = ("LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, "
                           "Overall Util %, Mapping Efficiency %, Compute Util %,\n")
SCALESIM_BW_HEADER = ("LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg OFMAP SRAM BW, "
                      "Avg IFMAP DRAM BW, Avg FILTER DRAM BW, Avg OFMAP DRAM BW,\n")
SCALESIM_SPARSE_BW_HEADER = ("LayerID, Avg IFMAP SRAM BW, Avg FILTER SRAM BW, Avg FILTER Metadata "
                             "SRAM BW, Avg OFMAP SRAM BW, Avg IFMAP DRAM BW, Avg FILTER DRAM BW, "
                             "Avg OFMAP DRAM BW,\n")


def _read(text: str) -> list[dict[str, str]]:
    lines = [ln.rstrip(",") for ln in text.splitlines()]
    return list(csv.DictReader(lines, skipinitialspace=True))


@pytest.mark.parametrize("mode", ["CALC", "USER"])
def test_scalesim_reports(mode):
    cfg = _parse(_cfg(**{"InterfaceBandwidth: USER": f"InterfaceBandwidth: {mode}"}))
    layers = [Layer.gemm("g0", 64, 48, 40), Layer.gemm("g1", 30, 20, 10)]
    rows, _ = report(cfg, layers)
    comp, bw = compute_report_csv(cfg, rows), bandwidth_report_csv(cfg, rows)
    assert comp.startswith(SCALESIM_COMPUTE_HEADER) and bw.startswith(SCALESIM_BW_HEADER)
    assert tuple(", ".join(COMPUTE_REPORT_COLUMNS).split(", ")) == COMPUTE_REPORT_COLUMNS
    assert all(line.endswith(",") for text in (comp, bw) for line in text.splitlines())
    for lid, (c, b, r, ly) in enumerate(zip(_read(comp), _read(bw), rows, layers, strict=True)):
        sc = scalesim_compute(ly.M, ly.N, ly.K, 8, 8, "os")
        stall = 0 if mode == "CALC" else r["tpesim_stall_cycles"]
        assert mode == "CALC" or stall > 0
        total = sc.compute_cycles + stall  # compat stall-free + stalls (tpesim's in USER mode)
        assert int(c["LayerID"]) == int(b["LayerID"]) == lid
        assert c["Total Cycles (incl. prefetch)"] == ""  # not modelled
        assert (int(c["Total Cycles"]), int(c["Stall Cycles"])) == (total, stall)
        assert float(c["Overall Util %"]) == pytest.approx(100 * sc.macs / (total * 64))
        assert float(c["Mapping Efficiency %"]) == pytest.approx(100 * sc.mapping_efficiency)
        assert float(c["Compute Util %"]) == pytest.approx(100 * sc.compute_utilization)
        assert float(b["Avg IFMAP SRAM BW"]) == pytest.approx(sc.ifmap_sram_read_bytes / total)
        assert float(b["Avg FILTER SRAM BW"]) == pytest.approx(sc.filter_sram_read_bytes / total)
        assert float(b["Avg OFMAP SRAM BW"]) == pytest.approx(sc.ofmap_sram_write_bytes / total)
        # tpesim's: DRAM words per cycle of its run (1-byte A and B, 4-byte int32 C)
        cyc = r["tpesim_cycles"]
        assert float(b["Avg IFMAP DRAM BW"]) == pytest.approx(r["tpesim_dram_read_bytes_a"] / cyc)
        assert float(b["Avg FILTER DRAM BW"]) == pytest.approx(r["tpesim_dram_read_bytes_b"] / cyc)
        assert float(b["Avg OFMAP DRAM BW"]) == pytest.approx(
            r["tpesim_dram_write_bytes_c"] / 4 / cyc)
    if mode == "CALC":  # the compat numbers are SCALE-Sim's exactly (64^3 on 8x8 OS, scalesim.md)
        cfg8 = _parse(_cfg(**{"InterfaceBandwidth: USER": "InterfaceBandwidth: CALC"}))
        rows, _ = report(cfg8, [Layer.gemm("g", 64, 64, 64)])
        (c,) = _read(compute_report_csv(cfg8, rows))
        assert (c["Total Cycles"], c["Stall Cycles"], c["Mapping Efficiency %"]) == \
            ("4991", "0", "100.0")
        assert float(c["Overall Util %"]) == pytest.approx(82.07, abs=0.005)


def test_sparse_bandwidth_report_has_metadata_column():
    cfg = _parse(_cfg(**{"SparsitySupport : false": "SparsitySupport : true",
                         "InterfaceBandwidth: USER": "InterfaceBandwidth: CALC"}))
    rows, _ = report(cfg, [Layer.gemm("g", 64, 48, 40, sparsity=(2, 4))])
    bw = bandwidth_report_csv(cfg, rows)
    assert bw.startswith(SCALESIM_SPARSE_BW_HEADER)
    (b,) = _read(bw)
    assert b["Avg FILTER Metadata SRAM BW"] == "" and float(b["Avg OFMAP SRAM BW"]) > 0
    assert len(BANDWIDTH_REPORT_COLUMNS) == 7


def _files(tmp_path, cfg_text=V3, topo=GEMM_HEADER + "g0,64,48,40,\ng1,30,20,10,\n"):
    c, t = tmp_path / "m.cfg", tmp_path / "t.csv"
    c.write_text(cfg_text)
    t.write_text(topo)
    return str(c), str(t)


def test_cli_writes_scalesim_reports(tmp_path, capsys):
    c, t = _files(tmp_path)
    out = tmp_path / "run" / "sub"
    assert cli_main(["-c", c, "-t", t, "-i", "gemm", "--scalesim-reports", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["BANDWIDTH_REPORT.csv", "COMPUTE_REPORT.csv"]
    assert (out / "COMPUTE_REPORT.csv").read_text().startswith(SCALESIM_COMPUTE_HEADER)
    assert len((out / "BANDWIDTH_REPORT.csv").read_text().splitlines()) == 3


@pytest.mark.parametrize("case", ["input", "file", "same_as_o"])
def test_cli_reports_refused_without_output(tmp_path, capsys, case):
    d = tmp_path / "out"
    d.mkdir()
    if case == "input":  # the topology is where COMPUTE_REPORT.csv would go
        topo = d / "COMPUTE_REPORT.csv"
        topo.write_text(GEMM_HEADER + "g0,64,48,40,\n")
        c, _ = _files(tmp_path)
        argv = ["-c", c, "-t", str(topo), "--scalesim-reports", str(d), "-o", str(d / "r.csv")]
        msg = f"--scalesim-reports must not be one of the inputs, not '{topo}'"
    elif case == "file":
        c, t = _files(tmp_path)
        argv = ["-c", c, "-t", t, "--scalesim-reports", c, "-o", str(d / "r.csv")]
        msg = f"--scalesim-reports must name a directory, not the file '{c}'"
    else:
        c, t = _files(tmp_path)
        argv = ["-c", c, "-t", t, "--scalesim-reports", str(d), "-o",
                str(d / "BANDWIDTH_REPORT.csv")]
        msg = (f"scalesim: -o must not be one of the --scalesim-reports files, not "
               f"'{d / 'BANDWIDTH_REPORT.csv'}'")
    before = sorted(p.name for p in d.iterdir())
    assert tpesim_main(["scalesim", *argv[:4], "-i", "gemm", *argv[4:]]) == 2
    err = capsys.readouterr()
    assert err.err == f"tpesim: error: {msg}\n" and err.out == ""
    assert sorted(p.name for p in d.iterdir()) == before


# ------------------------------------------------------------------------------------------------
# SCALE-Sim v2 configs
# ------------------------------------------------------------------------------------------------
def test_v2_config_loads_with_one_note():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cfg = parse_config(V2, name="v2.cfg")
    assert [str(w.message) for w in rec] == [V2_NOTE]
    assert rec[0].category is ScaleSimDefaultsNote
    assert (cfg.rows, cfg.cols, cfg.dataflow, cfg.interface_bandwidth) == (32, 32, "os", "CALC")
    assert (cfg.ifmap_sram_kb, cfg.filter_sram_kb, cfg.ofmap_sram_kb) == (64, 64, 64)
    assert (cfg.read_request_buffer, cfg.write_request_buffer) == (32, 32)
    assert not cfg.sparsity_support and not cfg.use_ramulator_trace
    assert not cfg.ifmap_custom_layout and cfg.ifmap_sram_bank_num == 1


def test_v2_user_mode_uses_its_one_bandwidth_everywhere():
    text = _cfg(V2, **{"InterfaceBandwidth: CALC": "InterfaceBandwidth: USER",
                       "Bandwidth : 10": "Bandwidth : 64"})
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cfg = parse_config(text, name="v2.cfg")
    (w,) = rec  # the note only: no "bank bandwidth != Bandwidth" warning
    assert "IfmapSRAMBankBandwidth=64" in str(w.message)
    assert "FilterSRAMBankBandwidth=64" in str(w.message)
    assert (cfg.ifmap_bw_words_per_cycle, cfg.filter_bw_words_per_cycle,
            cfg.ofmap_bw_words_per_cycle) == (64, 64, 64)
    (r,), _ = report(cfg, [Layer.gemm("g", 64, 64, 64)])
    assert r["dram_bw_bytes_per_cycle"] == 64 and r["sram_kib_a"] == 64


def test_v2_config_without_run_presets_defaults_calc():
    text = V2.replace("\n[run_presets]\nInterfaceBandwidth: CALC \n", "\n")
    with pytest.warns(ScaleSimDefaultsNote) as rec:
        cfg = parse_config(text, name="v2.cfg")
    assert len(rec) == 1 and "[run_presets] InterfaceBandwidth=CALC, UseRamulatorTrace=False" \
        in str(rec[0].message)
    assert cfg.interface_bandwidth == "CALC"


def test_v3_config_has_no_note():
    _parse(V3)  # no warning of any kind


def test_cli_prints_the_note_once(tmp_path, capsys):
    c, t = _files(tmp_path, cfg_text=V2)
    assert cli_main(["-c", c, "-t", t, "-i", "gemm", "--json"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["tpesim scalesim: note: " + V2_NOTE.replace("v2.cfg", "m.cfg")]


@pytest.mark.parametrize(("subs", "msg"), [
    ({"ArrayHeight:    32": "ArrayHeight:    0"},
     "v2.cfg:5: field 'ArrayHeight' must be a positive integer, not '0'"),
    ({"InterfaceBandwidth: CALC": "InterfaceBandwidth: USER", "Bandwidth : 10": "Bandwidth : 0"},
     "v2.cfg:13: field 'Bandwidth' must be a comma-separated list of positive integers, not '0'"),
    ({"InterfaceBandwidth: CALC": "InterfaceBandwidth: Calc"},
     "v2.cfg:18: field 'InterfaceBandwidth' must be one of 'CALC', 'USER', not 'Calc'"),
    ({"MemoryBanks:   1": "ReadRequestBuffer: many"},
     "v2.cfg:15: field 'ReadRequestBuffer' must be a positive integer, not 'many'"),
    ({"Dataflow : os": "Dataflow : rs"},
     "v2.cfg:14: field 'Dataflow' must be one of 'os', 'ws', 'is', not 'rs' (SCALE-Sim 3.0.0 is "
     "case-sensitive here)"),
])
def test_v2_bad_values_are_one_line_errors(subs, msg):
    with pytest.raises(FileFormatError) as e, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parse_config(_cfg(V2, **subs), name="v2.cfg")
    assert str(e.value) == msg


def test_cli_bad_config_exit_2_no_output(tmp_path, capsys):
    c, t = _files(tmp_path, cfg_text=_cfg(V2, **{"ArrayHeight:    32": "ArrayHeight:    -4"}))
    out, rep = tmp_path / "r.csv", tmp_path / "rep"
    assert tpesim_main(["scalesim", "-c", c, "-t", t, "-i", "gemm", "-o", str(out),
                        "--scalesim-reports", str(rep)]) == 2
    err = capsys.readouterr().err
    assert err == "tpesim: error: m.cfg:5: field 'ArrayHeight' must be a positive integer, not " \
                  "'-4'\n"
    assert not out.exists() and not rep.exists()


def test_empty_reports_dir_is_refused():
    from tpesim.kernels.scalesim.csv_reports import report_paths

    with pytest.raises(ConfigError, match="^--scalesim-reports must name a directory, not an "
                                          "empty string$"):
        report_paths(" ")
