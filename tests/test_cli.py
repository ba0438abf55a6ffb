"""The `tpesim` command line: JSON report, one-line errors with exit code 2, lazy forwarding."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import kernels.gemm
from sim.cli import main

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
    assert rep["tiles"] == 20
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
    real = kernels.gemm.run_gemm

    def broken(*args, **kw):
        res = real(*args, **kw)
        return dataclasses.replace(res, matched=False)

    monkeypatch.setattr(kernels.gemm, "run_gemm", broken)
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
    (["run", "gemm", "--m", "4"], "the following arguments are required: --n, --k, --rows, --cols"),
    (["bogus"], "invalid choice: 'bogus'"),
    ([], "the following arguments are required: COMMAND"),
    (["verilog", "systolic", "--rows", "2", "--cols", "2", "--dataflow", "ws", "-o", "x.v"],
     "dataflow must be one of 'os' in this version, not 'ws'"),
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
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sim.cli"]
    proc = subprocess.run([*cmd, "run", "gemm", "--m", "4", "--n", "4", "--k", "4", "--rows", "0",
                           "--cols", "4"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "tpesim: error: rows must be a positive integer, not 0\n"


def test_help_exits_zero(capsys):
    rc, out, _ = run(capsys, ["--help"])
    assert rc == 0 and "run" in out and "verilog" in out and "cosim" in out


def test_sim_does_not_import_other_faces():
    code = ("import sys, sim, sim.cli, sim.engines.systolic, sim.kernel\n"
            "faces = ('rtl', 'cosim', 'kernels')\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in faces)\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


# -- lazy faces, stubbed so these tests do not depend on rtl/cosim/kernels work in progress -------
def test_verilog_calls_rtl(capsys, monkeypatch, tmp_path):
    seen = {}

    def write_verilog(cfg, path):
        seen["cfg"], seen["path"] = cfg, path
        return Path(path)

    monkeypatch.setitem(sys.modules, "rtl.systolic",
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
    ("cosim", "cosim.runner", "main"),
    ("scalesim", "kernels.scalesim", "cli_main"),
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

    monkeypatch.setitem(sys.modules, "cosim.runner", types.SimpleNamespace(main=entry))
    assert main(["cosim", "--help"]) == 0


def test_forwarded_tpesim_error_is_one_line(capsys, monkeypatch):
    from sim.errors import CosimMismatch

    def entry(argv):
        raise CosimMismatch("out_c differs at cycle 12: model 0x1 rtl 0x2\n(seed 3)")

    monkeypatch.setitem(sys.modules, "cosim.runner", types.SimpleNamespace(main=entry))
    rc, _, err = run(capsys, ["cosim", "systolic"])
    assert rc == 2
    assert err == "tpesim: error: out_c differs at cycle 12: model 0x1 rtl 0x2 (seed 3)\n"


def test_missing_face_is_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "kernels.scalesim", None)  # import raises ModuleNotFoundError
    rc, _, err = run(capsys, ["scalesim", "x.cfg"])
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("tpesim: error: kernels.scalesim")
