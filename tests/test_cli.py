"""The `tpesim` command line: JSON report, one-line errors with exit code 2, lazy forwarding."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import tpesim.kernels.gemm
from tpesim.cli import main

ROOT = Path(__file__).resolve().parent.parent
GEMM = ["run", "gemm", "--m", "20", "--n", "11", "--k", "9", "--rows", "4", "--cols", "3"]


def run(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_run_gemm_json(capsys):
    rc, out, err = run(capsys, [*GEMM, "--seed", "5", "--json"])
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    rep = json.loads(lines[0])
    assert rep["matched"] is True
    # 5 x 4 tiles of K=9 < 2R+C=11: L = 8 + 19*11, plus 2R+C
    assert rep["cycles"] == 8 + 19 * 11 + 11
    assert rep["macs"] == 20 * 11 * 9
    assert rep["utilization"] == pytest.approx(20 * 11 * 9 / (rep["cycles"] * 12))
    assert rep["blocks"] == 20 and rep["unit"] == "tile"
    for key, val in {"rows": 4, "cols": 3, "in_bits": 8, "signed": True, "acc_bits": 32,
                     "dataflow": "os", "m": 20, "n": 11, "k": 9, "seed": 5}.items():
        assert rep[key] == val
    assert rep["wall_s"] >= 0 and rep["cycles_per_s"] > 0


def test_run_gemm_options(capsys):
    rc, out, _ = run(capsys, [*GEMM, "--in-bits", "16", "--unsigned", "--acc-bits", "40",
                              "--interpreted", "--json"])
    rep = json.loads(out)
    assert rc == 0 and rep["matched"]
    assert (rep["in_bits"], rep["signed"], rep["acc_bits"], rep["interpreted"]) == \
        (16, False, 40, True)


def test_run_gemm_table(capsys):
    rc, out, err = run(capsys, GEMM)
    assert rc == 0 and err == ""
    for word in ("cycles", "macs", "utilization", "matched", "wall time", "cycles/s"):
        assert word in out
    assert "yes" in out


def test_mismatch_exits_nonzero(capsys, monkeypatch):
    real = tpesim.kernels.gemm.run_gemm

    def broken(*args, **kw):
        res = real(*args, **kw)
        return dataclasses.replace(res, matched=False)

    monkeypatch.setattr(tpesim.kernels.gemm, "run_gemm", broken)
    rc, out, err = run(capsys, [*GEMM, "--json"])
    assert rc != 0
    assert json.loads(out)["matched"] is False
    assert len(err.strip().splitlines()) == 1 and err.startswith("tpesim: error: ")


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "gemm", "--m", "4", "--n", "4", "--k", "4", "--rows", "0", "--cols", "4"],
     "rows must be a positive integer, not 0"),
    (["run", "gemm", "--m", "4", "--n", "4", "--k", "4", "--rows", "4", "--cols", "-1"],
     "cols must be a positive integer, not -1"),
    (["run", "gemm", "--m", "4", "--n", "4", "--k", "4", "--rows", "600", "--cols", "4"],
     "rows must be at most 512, not 600"),
    (["run", "gemm", "--m", "0", "--n", "4", "--k", "4", "--rows", "4", "--cols", "4"],
     "m must be a positive integer, not 0"),
    (["run", "gemm", "--m", "4", "--n", "4", "--k", "4", "--rows", "4", "--cols", "4",
      "--in-bits", "5"], "in_bits must be one of 4, 8, 16, not 5"),
    (["run", "gemm", "--m", "4", "--n", "4", "--k", "4", "--rows", "4", "--cols", "4",
      "--acc-bits", "8"], "acc_bits must be an integer from 16 (2*in_bits) to 64, not 8"),
    (["run", "gemm", "--m", "x"], "argument --m: invalid int value: 'x'"),
    (["run", "gemm", "--m", "4"], "the following arguments are required: --n, --k"),
    (["bogus"], "invalid choice: 'bogus'"),
    ([], "the following arguments are required: COMMAND"),
    (["verilog", "systolic", "--rows", "2", "--cols", "2", "--dataflow", "xs", "-o", "x.v"],
     "dataflow must be one of 'os', 'ws', 'is', not 'xs'"),
])
def test_errors_are_one_line(capsys, argv, message):
    rc, out, err = run(capsys, argv)
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tpesim: error: ")
    assert message in lines[0]
    assert "Traceback" not in err


def test_console_script_rows_zero():
    """The installed entry point: real process, real exit code, nothing but the one line."""
    exe = Path(sys.executable).with_name("tpesim")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tpesim.cli"]
    proc = subprocess.run([*cmd, "run", "gemm", "--m", "4", "--n", "4", "--k", "4", "--rows", "0",
                           "--cols", "4"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "tpesim: error: rows must be a positive integer, not 0\n"


def test_help_exits_zero(capsys):
    rc, out, _ = run(capsys, ["--help"])
    assert rc == 0 and "run" in out and "verilog" in out and "cosim" in out


def test_sim_does_not_import_other_faces():
    code = ("import sys, tpesim.cli, tpesim.engines.systolic, tpesim.event, tpesim.registry\n"
            "faces = ('rtl', 'cosim', 'kernels')\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[:2] in [['tpesim', f] for f in faces]"
            " or m.split('.')[0] in faces)\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


# -- lazy faces, stubbed so these tests do not depend on rtl/cosim/kernels work in progress -------
def test_verilog_calls_rtl(capsys, monkeypatch, tmp_path):
    seen = {}

    def write_verilog(cfg, path, name=None):
        seen["cfg"], seen["path"] = cfg, path
        return Path(path)

    monkeypatch.setitem(sys.modules, "tpesim.rtl.systolic",
                        types.SimpleNamespace(write_verilog=write_verilog))
    out_file = tmp_path / "s.v"
    rc, out, err = run(capsys, ["verilog", "systolic", "--rows", "3", "--cols", "5",
                                "--in-bits", "4", "--unsigned", "--acc-bits", "20",
                                "-o", str(out_file)])
    assert rc == 0, err
    cfg = seen["cfg"]
    assert (cfg.rows, cfg.cols, cfg.in_bits, cfg.signed, cfg.acc_bits, cfg.dataflow) == \
        (3, 5, 4, False, 20, "os")
    assert str(seen["path"]) == str(out_file)
    assert out.strip() == str(out_file)


@pytest.mark.parametrize(("command", "module", "attr"), [
    ("cosim", "tpesim.cosim.runner", "main"),
    ("scalesim", "tpesim.kernels.scalesim", "cli_main"),
])
def test_forwarding(capsys, monkeypatch, command, module, attr):
    seen = []

    def entry(argv):
        seen.append(argv)
        return 3

    monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(**{attr: entry}))
    rc, _, _ = run(capsys, [command, "systolic", "--rows", "4", "--help", "-x"])
    assert rc == 3
    assert seen == [["systolic", "--rows", "4", "--help", "-x"]]


def test_forwarded_tool_exit(capsys, monkeypatch):
    def entry(argv):
        raise SystemExit(0)

    monkeypatch.setitem(sys.modules, "tpesim.cosim.runner", types.SimpleNamespace(main=entry))
    assert main(["cosim", "--help"]) == 0


def test_forwarded_tpesim_error_is_one_line(capsys, monkeypatch):
    from tpesim.errors import CosimMismatch

    def entry(argv):
        raise CosimMismatch("out_c differs at cycle 12: model 0x1 rtl 0x2\n(seed 3)")

    monkeypatch.setitem(sys.modules, "tpesim.cosim.runner", types.SimpleNamespace(main=entry))
    rc, _, err = run(capsys, ["cosim", "systolic"])
    assert rc == 2
    assert err == "tpesim: error: out_c differs at cycle 12: model 0x1 rtl 0x2 (seed 3)\n"


def test_missing_face_is_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tpesim.kernels.scalesim", None)  # import raises ModuleNotFoundError
    rc, _, err = run(capsys, ["scalesim", "x.cfg"])
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("tpesim: error: tpesim.kernels.scalesim")


# -- fidelity, memory, reports, conv ---------------------------------------------------------------
def test_tile_fidelity_json(capsys):
    rc, out, err = run(capsys, [*GEMM, "--fidelity", "tile", "--json"])
    assert rc == 0, err
    rep = json.loads(out)
    cyc = json.loads(run(capsys, [*GEMM, "--json"])[1])
    assert rep["fidelity"] == "tile" and cyc["fidelity"] == "cycle"
    assert rep["matched"] is None and cyc["matched"] is True
    for key in ("cycles", "compute_cycles", "stall_cycles", "macs", "utilization", "blocks",
                "sram_read_bytes_a", "dram_read_bytes_b", "dram_write_bytes_c"):
        assert rep[key] == cyc[key], key
    assert rep["stall_cycles"] == 0 and rep["cycles"] == 8 + 19 * 11 + 11


def test_tile_fidelity_verify(capsys):
    rc, out, _ = run(capsys, [*GEMM, "--fidelity", "tile", "--verify", "--json"])
    assert rc == 0 and json.loads(out)["matched"] is True


def test_tile_fidelity_table_says_not_checked(capsys):
    rc, out, _ = run(capsys, [*GEMM, "--fidelity", "tile"])
    assert rc == 0 and "not checked" in out and "stall cycles" in out


MEM = ["--sram-kib-a", "0.25", "--sram-kib-b", "0.5", "--sram-kib-c", "0.25", "--dram-bw", "1.5",
       "--dram-latency", "12"]


def test_memory_options_same_at_both_fidelities(capsys):
    rc, out, err = run(capsys, [*GEMM, *MEM, "--json"])
    assert rc == 0, err
    cyc = json.loads(out)
    til = json.loads(run(capsys, [*GEMM, *MEM, "--fidelity", "tile", "--json"])[1])
    assert cyc["stall_cycles"] > 0 and cyc["matched"] is True
    for key in cyc:
        if key not in ("fidelity", "matched", "wall_s", "total_wall_s", "cycles_per_s"):
            assert cyc[key] == til[key], key
    assert (cyc["sram_kib_a"], cyc["sram_kib_b"], cyc["sram_kib_c"]) == (0.25, 0.5, 0.25)
    assert (cyc["dram_bw_bytes_per_cycle"], cyc["dram_latency_cycles"]) == (1.5, 12)
    assert cyc["cycles"] == cyc["compute_cycles"] + cyc["stall_cycles"]


def test_csv_report(capsys, tmp_path):
    import csv

    path = tmp_path / "r.csv"
    rc, out, err = run(capsys, [*GEMM, *MEM, "--fidelity", "tile", "--csv", str(path), "--json"])
    assert rc == 0, err
    rep = json.loads(out)
    (row,) = list(csv.DictReader(path.open()))
    assert list(row) == list(rep)
    assert int(row["cycles"]) == rep["cycles"] and int(row["stall_cycles"]) == rep["stall_cycles"]
    assert row["matched"] == "" and row["sram_kib_a"] == "0.25"
    for key in row:
        assert key == key.lower() and " " not in key


@pytest.mark.parametrize(("extra", "message"), [
    (["--double-buffer"], "double_buffer must be False for dataflow 'os'"),
    (["--dataflow", "ws", "--sram-kib-c", "0.25"],
     "sram_kib_c must hold two blocks: a fold's block of operand c (20 x 3 of 32 bits, 240 bytes) does not fit half of its "
     "0.25 KiB SRAM (128 bytes); give operand c at least 0.469 KiB"),
    (["--dataflow", "xs"], "dataflow must be one of 'os', 'ws', 'is', not 'xs'"),
    (["--fidelity", "rtl"], "argument --fidelity: invalid choice: 'rtl'"),
    (["--sram-kib-a", "0.01"], "sram_kib_a must hold two blocks: a tile's block of operand a (4 x 9 of 8 bits, 36 bytes) does not "
                               "fit half of its 0.01 KiB SRAM (5.12 bytes)"),
    (["--sram-kib-c", "-1"], "sram_kib_c must be a positive number, not -1.0"),
    (["--dram-bw", "0"], "dram_bw must be a positive number, not 0.0"),
    (["--dram-latency", "-3"], "dram_latency must be an integer >= 0, not -3"),
])
def test_run_option_errors_are_one_line(capsys, extra, message):
    rc, out, err = run(capsys, [*GEMM, *extra])
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("tpesim: error: ")
    assert message in err


CONV = ["run", "conv", "--in-h", "7", "--in-w", "6", "--in-channels", "3", "--out-channels", "5",
        "--kernel-h", "3", "--kernel-w", "2", "--stride-h", "2", "--pad-w", "1", "--dilation-h",
        "2", "--batch", "2", "--rows", "4", "--cols", "3"]


def test_run_conv(capsys):
    rc, out, err = run(capsys, [*CONV, "--json"])
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["kernel"] == "conv" and rep["matched"] is True
    assert (rep["out_h"], rep["out_w"]) == (2, 7)
    assert (rep["m"], rep["n"], rep["k"]) == (2 * 2 * 7, 5, 3 * 2 * 3)
    til = json.loads(run(capsys, [*CONV, "--fidelity", "tile", "--json"])[1])
    assert til["cycles"] == rep["cycles"] and til["matched"] is None
    ver = json.loads(run(capsys, [*CONV, "--fidelity", "tile", "--verify", "--json", *MEM])[1])
    assert ver["matched"] is True and ver["stall_cycles"] > 0
    rc, out, _ = run(capsys, CONV)
    assert rc == 0 and "conv" in out and "(gemm 28 x 5 x 18)" in out


def test_run_conv_errors_are_one_line(capsys):
    rc, _, err = run(capsys, [*CONV[:2], "--in-h", "2", *CONV[4:]])
    assert rc == 2 and len(err.splitlines()) == 1
    assert "kernel_h (3) with dilation_h (2) spans 5 pixels" in err


def test_conv_mismatch_exits_nonzero(capsys, monkeypatch):
    real = tpesim.kernels.gemm.run_conv

    def broken(*args, **kw):
        return dataclasses.replace(real(*args, **kw), matched=False)

    monkeypatch.setattr(tpesim.kernels.gemm, "run_conv", broken)
    rc, out, err = run(capsys, [*CONV, "--json"])
    assert rc == 1 and json.loads(out)["matched"] is False
    assert err.startswith("tpesim: error: result differs")


# -- WS / IS ---------------------------------------------------------------------------------------
STAT_MEM = ["--sram-kib-a", "1", "--sram-kib-b", "0.125", "--sram-kib-c", "1", "--dram-bw", "1.5",
            "--dram-latency", "12"]


@pytest.mark.parametrize("dataflow", ["ws", "is"])
@pytest.mark.parametrize("db", [False, True])
def test_run_gemm_stationary_both_fidelities(capsys, dataflow, db):
    extra = ["--dataflow", dataflow, *(["--double-buffer"] if db else []), *STAT_MEM, "--json"]
    rc, out, err = run(capsys, [*GEMM, *extra])
    assert rc == 0, err
    cyc = json.loads(out)
    til = json.loads(run(capsys, [*GEMM, *extra, "--fidelity", "tile"])[1])
    assert cyc["matched"] is True and til["matched"] is None
    assert (cyc["dataflow"], cyc["double_buffer"]) == (dataflow, db)
    assert cyc["stall_cycles"] > 0
    # folds: ceil(9/4) K-slices times ceil(11/3) (WS) or ceil(20/3) (IS) output blocks
    assert cyc["blocks"] == 3 * (4 if dataflow == "ws" else 7)
    for key in cyc:
        if key not in ("fidelity", "matched", "wall_s", "total_wall_s", "cycles_per_s"):
            assert cyc[key] == til[key], key
    ver = json.loads(run(capsys, [*GEMM, *extra, "--fidelity", "tile", "--verify"])[1])
    assert ver["matched"] is True and ver["cycles"] == cyc["cycles"]


def test_run_stationary_table_and_csv(capsys, tmp_path):
    path = tmp_path / "ws.csv"
    rc, out, err = run(capsys, [*GEMM, "--dataflow", "ws", "--double-buffer", "--csv", str(path)])
    assert rc == 0, err
    assert "ws (double buffer) / cycle" in out and "folds" in out and "yes" in out
    import csv

    (row,) = list(csv.DictReader(path.open()))
    assert row["dataflow"] == "ws" and row["double_buffer"] == "true" and row["matched"] == "true"


@pytest.mark.parametrize(("dataflow", "db"), [("ws", False), ("is", True)])
def test_run_conv_stationary(capsys, dataflow, db):
    extra = ["--dataflow", dataflow, *(["--double-buffer"] if db else []), "--dram-bw", "2",
             "--json"]
    rc, out, err = run(capsys, [*CONV, *extra])
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["matched"] is True and rep["dataflow"] == dataflow
    til = json.loads(run(capsys, [*CONV, *extra, "--fidelity", "tile", "--verify"])[1])
    assert til["matched"] is True and til["cycles"] == rep["cycles"]
    assert til["stall_cycles"] == rep["stall_cycles"] > 0


def test_unknown_option_lists_the_commands(capsys):
    """The commands named are every command the parser knows (they grow as commands are added)."""
    from tpesim.cli import _build_parser

    sub = next(a for a in _build_parser()._actions if a.dest == "command")
    assert main(["--bogus"]) == 2
    err = capsys.readouterr().err
    head, _, listed = err.partition(" (commands: ")
    assert head == "tpesim: error: unrecognized argument '--bogus'"
    assert listed.endswith("; `tpesim --help`)\n") and "\n" not in listed[:-1]
    named = listed.split(";")[0].split(", ")
    assert sorted(named) == sorted(sub.choices)
    assert {"run", "verilog", "engines", "cosim", "scalesim"} <= set(named)


@pytest.mark.parametrize(("argv", "message"), [
    (["cosim", "systolic", "--sim", "vcs"],
     "argument --sim: invalid choice: 'vcs' (choose from 'icarus', 'verilator')"),
])
def test_usage_errors_are_one_line(capsys, argv, message):
    rc = main(argv)
    err = capsys.readouterr().err
    assert (rc, err) == (2, f"tpesim: error: {message}\n")


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("tpesim ")


def test_engines_lists_every_engine(capsys):
    from tpesim.registry import ENGINES

    assert main(["engines"]) == 0
    out = capsys.readouterr().out
    for name, e in ENGINES.items():
        assert f"{name}: {e.summary}" in out
    assert "--lanes (default 16)" in out and "--encoding (default plain)" in out
