"""The installed distribution: one top-level package (`tpesim`), and a non-editable install into a
fresh venv that runs a GEMM and emits Verilog through `import tpesim` alone."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, timeout=900, cwd=out)
    (whl,) = out.glob("tpesim-*.whl")
    return whl


def test_wheel_installs_only_tpesim(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"tpesim"}, top
    # every face and its data files are inside the one package
    for path in ("tpesim/__init__.py", "tpesim/rtl/adder_tree.py", "tpesim/cosim/lockstep.py",
                 "tpesim/kernels/gemm.py", "tpesim/kernels/workloads/resnet50.csv"):
        assert path in names, path
    assert any(n.startswith("tpesim/engines/_systolic_core.") and n.endswith(".so") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tpesim = tpesim.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.mark.regress
def test_wheel_in_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=900)
    code = (
        "import numpy as np, tpesim, sys\n"
        "cfg = tpesim.AdderTreeConfig(lanes=4, cols=3, encoding='plain')\n"
        "rng = np.random.default_rng(0)\n"
        "a = rng.integers(-128, 128, (9, 10)); b = rng.integers(-128, 128, (10, 5))\n"
        "res = tpesim.run_gemm(cfg, a, b)\n"
        "assert res.matched and (res.c == a @ b).all(), res\n"
        "p = tpesim.write_verilog(tpesim.SystolicConfig(rows=2, cols=2), 'sys2.v', name='top2')\n"
        "assert 'module top2' in open(p).read()\n"
        "assert not any(m.split('.')[0] in ('sim', 'kernels', 'rtl', 'cosim') for m in sys.modules)\n"
        "print(tpesim.__version__)\n")
    out = subprocess.run([str(py), "-c", code], check=True, timeout=600, cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.stdout.strip()
    ver = subprocess.run([str(venv / "bin" / "tpesim"), "--version"], check=True,
                         capture_output=True, text=True, timeout=60)
    assert ver.stdout.startswith("tpesim ")
