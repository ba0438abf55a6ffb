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


def test_reports_carry_tool_and_schema_versions(tmp_path, capsys):
    """One vocabulary: `run` and `scalesim` JSON/CSV start with tool, tool_version, schema_version;
    CSV booleans are true/false; both take --csv."""
    import csv
    import json

    import tpesim
    from tpesim.cli import main
    from tpesim.outputs import SCHEMA_VERSION

    head = {"tool": "tpesim", "tool_version": tpesim.__version__, "schema_version": SCHEMA_VERSION}
    out = tmp_path / "run.csv"
    assert main(["run", "gemm", "--m", "4", "--n", "3", "--k", "5", "--rows", "2", "--cols", "2",
                 "--json", "--csv", str(out)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {k: rep[k] for k in head} == head
    (row,) = csv.DictReader(out.open())
    assert row["matched"] == "true" and row["signed"] == "true" and row["double_buffer"] == "false"
    assert row["schema_version"] == str(SCHEMA_VERSION) and row["tool"] == "tpesim"

    from pathlib import Path

    cfg = Path(__file__).resolve().parents[1] / "kernels" / "workloads" / "scalesim_32x32_os.cfg"
    topo = tmp_path / "t.csv"
    topo.write_text("Layer name, M, N, K,\ng0, 64, 64, 64,\n")
    sc = tmp_path / "sc.csv"
    assert main(["scalesim", "-c", str(cfg), "-t", str(topo), "-i", "gemm", "--json",
                 "--csv", str(sc)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all({k: r[k] for k in head} == head for r in rows)
    (row,) = csv.DictReader(sc.open())
    assert row["tool_version"] == tpesim.__version__


@pytest.mark.parametrize("argv", [
    ["run", "lut-layers", "--model", "bitnet-3b", "--totals-only", "--json"],
    ["train", "cnn", "--sparsity", "dense", "--epochs", "1", "--json"],
])
def test_later_commands_carry_the_same_provenance(capsys, argv):
    import json

    import tpesim
    from tpesim.cli import main
    from tpesim.outputs import SCHEMA_VERSION

    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    for rec in doc if isinstance(doc, list) else [doc]:
        assert (rec["tool"], rec["tool_version"], rec["schema_version"]) == \
            ("tpesim", tpesim.__version__, SCHEMA_VERSION)
