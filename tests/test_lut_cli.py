"""The LUT engine on the command line: `tpesim run gemm --engine lut` (w_bits 1..4 or ternary, int8
or fp16) with its JSON fields, `tpesim verilog lut`, `tpesim cosim lut`, one-line errors."""

from __future__ import annotations

import json
import re

import pytest

from tpesim.cli import main


def run(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("opts, planes", [(["--w-bits", "2"], 2), (["--w-bits", "ternary"], 2),
                                          (["--w-bits", "3", "--w-interp", "unsigned"], 3),
                                          (["--w-bits", "4", "--act", "fp16", "--w-interp", "pm1",
                                            "--acc", "fp32"], 4),
                                          (["--w-bits", "3", "--act", "fp16"], 3),
                                          (["--w-bits", "ternary", "--act", "fp16"], 2)])
def test_run_gemm_json(capsys, opts, planes):
    m, n, k = 5, 70, 33
    rc, out, err = run(capsys, ["run", "gemm", "--engine", "lut", *opts, "--m", str(m), "--n",
                                str(n), "--k", str(k), "--json"])
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["matched"] is True and rep["macs"] == m * n * k
    tiles = -(-m // 2) * -(-n // 64)
    groups = -(-k // 4)
    assert rep["blocks"] == tiles
    assert rep["table_precompute_cycles"] == tiles * groups       # one per K-group beat
    assert rep["peak_macs_per_cycle"] == pytest.approx(2 * 64 * 4 / planes)
    assert rep["utilization"] == pytest.approx(m * n * k / (rep["cycles"] * 2 * 64 * 4 / planes))
    # stall free: tiles of G groups, L_t = L_{t-1} + max(G P, P + 1 + 2), rows after P + 1
    step = max(groups * planes, planes + 1 + 2)
    assert rep["cycles"] == (groups - 1) * planes + (tiles - 1) * step + planes + 1 + 2
    assert rep["table_bytes"] > 0
    assert rep["k_padded"] == groups * 4 and rep["k"] == k        # K 33 runs as 36: zero pad


def test_text_report_says_k_is_padded(capsys):
    rc, out, err = run(capsys, ["run", "gemm", "--engine", "lut", "--w-bits", "2", "--m", "2",
                                "--n", "8", "--k", "30"])
    assert rc == 0, err
    assert re.search(r"^k padded +32$", out, re.M) and "table precompute cycles" in out


def test_verilog(capsys, tmp_path):
    path = tmp_path / "lut.v"
    rc, out, err = run(capsys, ["verilog", "lut", "--w-bits", "ternary", "--tile-n", "4", "-o",
                                str(path)])
    assert rc == 0, err
    assert "module lut_2x4g4_t_int8_int32" in path.read_text()


@pytest.mark.parametrize("opts, msg", [
    (["--w-bits", "5"], "w_bits must be 1, 2, 3, 4 or 'ternary', not 5"),
    (["--w-bits", "two"], "w_bits must be an integer 1..4 or 'ternary', not 'two'"),
    (["--act", "fp16", "--acc", "int32"], "acc must be one of 'fp16', 'fp32', not 'int32'"),
    (["--pipe-stages", "3"], "pipe_stages must be 1 or 2, not 3"),
])
def test_bad_options_one_line(capsys, opts, msg):
    rc, out, err = run(capsys, ["run", "gemm", "--engine", "lut", *opts, "--m", "2", "--n", "2",
                                "--k", "2"])
    assert rc == 2
    assert err.startswith("tpesim: error: ") and msg in err and err.count("\n") == 1


@pytest.mark.cosim
def test_cosim_cli(capsys, tmp_path):
    rc, out, err = run(capsys, ["cosim", "lut", "--sim", "icarus", "--tile-n", "2", "--w-bits", "1",
                                "--seed", "3", "--tiles", "2", "--out-dir", str(tmp_path)])
    assert rc == 0, err
