"""The hardware N:M compressor (rtl/nm_sparse.py NMCompressor) under Icarus and Verilator: random
M-groups every cycle (ties, zeros, the most negative value), every output port every cycle against
tpesim.nm.compress of the previous cycle's group (the compressor's one register)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

N_M = [(2, 4), (2, 8), (3, 6)]


def _groups(rng, m: int, bits: int, count: int) -> np.ndarray:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    g = rng.integers(lo, hi + 1, (count, m))
    ties = rng.random(count) < 0.4
    g[ties] = rng.integers(-2, 3, (int(ties.sum()), m))        # many equal magnitudes
    g[rng.random(count) < 0.05] = lo
    return g


try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, ReadOnly

    @cocotb.test()
    async def compressor_lockstep(dut):
        from tpesim import nm
        from tpesim.numerics import pack, unpack

        n, m, bits = (int(os.environ[k]) for k in ("NMC_N", "NMC_M", "NMC_BITS"))
        ib = max(1, (m - 1).bit_length())
        rng = np.random.default_rng(int(os.environ["NMC_SEED"]))
        groups = _groups(rng, m, bits, 400)
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst.value = 1
        dut.in_valid.value = 0
        dut.in_data.value = 0
        await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        prev = None
        for c, g in enumerate(groups):
            v = int(rng.random() < 0.7)
            dut.in_valid.value = v
            dut.in_data.value = pack(g, bits)
            await ReadOnly()
            if prev is not None:
                pg, pv = prev
                wv, wx = nm.compress(pg, n, m)
                got = (int(dut.out_valid.value),
                       unpack(int(dut.out_val.value), n, bits, True),
                       unpack(int(dut.out_idx.value), n, ib, False))
                assert got == (pv, list(wv), list(wx)), f"cycle {c}: group {list(pg)}: {got}"
            prev = (g, v)
            await FallingEdge(dut.clk)
except ImportError:  # pragma: no cover - cocotb is a hard dependency of the cosim
    pass


# every group size on Icarus, 2:8 on Verilator in `make test` (a Verilator build is slow); the
# rest on Verilator with --regress
CASES = [(n, m, "icarus") for n, m in N_M] + [
    (n, m, "verilator") if (n, m) == (2, 8) else
    pytest.param(n, m, "verilator", marks=pytest.mark.regress) for n, m in N_M]


@pytest.mark.cosim
@pytest.mark.parametrize("n, m, sim", CASES)
def test_compressor_lockstep(n, m, sim, tmp_path):
    from cocotb_tools.runner import get_runner

    from tpesim.cosim.runner import ROOT, VERILATOR_BUILD_ARGS, _prefer_venv_tools
    from tpesim.rtl.nm_sparse import compressor_to_verilog

    _prefer_venv_tools()
    top = f"nm_compressor_{n}of{m}"
    bdir = ROOT / "cosim_build" / sim / top        # kept: an unchanged design is not rebuilt
    bdir.mkdir(parents=True, exist_ok=True)
    src = bdir / f"{top}.v"
    text = compressor_to_verilog(n, m, 8, name=top)
    if not src.exists() or src.read_text() != text:
        src.write_text(text)
    args = ["-g2005"] if sim == "icarus" else list(VERILATOR_BUILD_ARGS)
    runner = get_runner(sim)
    runner.build(sources=[src], hdl_toplevel=top, build_dir=bdir, build_args=args,
                 timescale=("1ns", "1ps"), always=False, log_file=bdir / "build.log")
    env = {"NMC_N": str(n), "NMC_M": str(m), "NMC_BITS": "8", "NMC_SEED": str(n * 31 + m),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    results = runner.test(hdl_toplevel=top, test_module="tpesim.cosim.test_nm_compressor",
                          build_dir=bdir, test_dir=tmp_path, extra_env=env,
                          log_file=tmp_path / "test.log")
    from cocotb_tools.runner import get_results

    total, failed = get_results(Path(results))
    assert total == 1 and failed == 0, (tmp_path / "test.log").read_text()[-3000:]
