"""Output files: never over an input, never partial, empty or directory paths refused in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tpesim.cli import main
from tpesim.outputs import write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
CFG = ROOT / "kernels" / "workloads" / "scalesim_32x32_os.cfg"
TOPO = ROOT / "kernels" / "workloads" / "llama2_7b_decoder.csv"
GEMM = ["run", "gemm", "--m", "8", "--n", "8", "--k", "8", "--rows", "4", "--cols", "4"]


def _err(capsys, argv) -> tuple[int, str]:
    rc = main(argv)
    err = capsys.readouterr().err
    return rc, err


@pytest.fixture
def inputs(tmp_path):
    cfg, topo = tmp_path / "a.cfg", tmp_path / "t.csv"
    shutil.copy(CFG, cfg)
    shutil.copy(TOPO, topo)
    return cfg, topo


@pytest.mark.parametrize("which", [0, 1])
def test_scalesim_refuses_an_input_as_output(capsys, inputs, which):
    cfg, topo = inputs
    before = [p.read_bytes() for p in inputs]
    rc, err = _err(capsys, ["scalesim", "-c", str(cfg), "-t", str(topo), "-i", "gemm", "-o",
                            str(inputs[which])])
    assert rc == 2
    assert err == f"tpesim: error: -o must not be one of the inputs, not {str(inputs[which])!r}\n"
    assert [p.read_bytes() for p in inputs] == before


def test_scalesim_empty_output_is_an_error(capsys, inputs):
    cfg, topo = inputs
    rc, err = _err(capsys, ["scalesim", "-c", str(cfg), "-t", str(topo), "-i", "gemm", "-o", ""])
    assert (rc, err) == (2, "tpesim: error: -o must name a file, not an empty string\n")


@pytest.mark.parametrize(("value", "message"), [
    ("", "--csv must name a file, not an empty string"),
    (".", "--csv must name a file, not the directory '.'"),
])
def test_run_csv_path_checked_first(capsys, value, message):
    rc, err = _err(capsys, [*GEMM, "--csv", value])
    assert (rc, err) == (2, f"tpesim: error: {message}\n")


def test_csv_booleans_are_lowercase(capsys, tmp_path):
    out = tmp_path / "r.csv"
    assert main([*GEMM, "--csv", str(out)]) == 0
    header, row = out.read_text().splitlines()
    fields = dict(zip(header.split(","), row.split(",")))
    assert fields["matched"] == "true" and fields["signed"] == "true"
    assert fields["double_buffer"] == "false"


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.csv"
    target.write_text("old")

    import tpesim.outputs as outputs

    real = outputs.os.replace

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.os, "replace", failing_replace)
    with pytest.raises(Exception, match=r"cannot write \(No space left on device\)"):
        write_text_atomic(target, "new")
    monkeypatch.setattr(outputs.os, "replace", real)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
