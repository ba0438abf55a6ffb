"""cocotb testbench: drives the systolic RTL and its cycle model in lockstep and compares every port.

Run it through cosim.runner (pytest or `tpesim cosim`), which passes the case in environment
variables: TPESIM_CFG (config JSON), TPESIM_SEED, TPESIM_TILES, TPESIM_KMAX, TPESIM_P_VALID,
TPESIM_P_READY, TPESIM_MODEL_VCD, TPESIM_REPORT (JSON written at the end), TPESIM_REPRO.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from sim.engines.systolic import SystolicConfig, SystolicModel, reference
from sim.numerics import pack, unpack

from .stimulus import Mismatch, make_folds, make_tiles, os_sources, stationary_sources


@cocotb.test()
async def lockstep(dut):
    cfg = SystolicConfig.from_json(os.environ["TPESIM_CFG"])
    seed = int(os.environ["TPESIM_SEED"])
    tiles = int(os.environ.get("TPESIM_TILES", "3"))
    kmax = int(os.environ.get("TPESIM_KMAX", str(2 * (cfg.rows + cfg.cols))))
    p_valid = float(os.environ.get("TPESIM_P_VALID", "0.7"))
    p_ready = float(os.environ.get("TPESIM_P_READY", "0.7"))
    report_path = os.environ.get("TPESIM_REPORT")
    repro = os.environ.get("TPESIM_REPRO", "")
    model_vcd = os.environ.get("TPESIM_MODEL_VCD") or None
    # self-test of the checker: corrupt the model's out_c at this cycle (tests/ prove it is caught)
    fault_cycle = int(os.environ.get("TPESIM_INJECT_FAULT", "-1"))

    rng = np.random.default_rng(seed)
    if cfg.dataflow == "os":
        # tiles: (A[R,K], B[K,C]); R result rows each
        work = make_tiles(cfg, rng, tiles, kmax)
        sources = os_sources(cfg, work, rng, p_valid)
        expected = [reference(cfg, a, b) for a, b, _ in work]
    else:
        # folds: (X[M,R], W[R,C]); M result rows each (kmax bounds M here)
        work = make_folds(cfg, rng, tiles, kmax)
        sources = stationary_sources(cfg, work, rng, p_valid)
        expected = [reference(cfg, x, w) for x, w, _ in work]
    model = SystolicModel(cfg, vcd_path=model_vcd)
    report = {"seed": seed, "status": "running", "cycles": 0, "repro": repro,
              "model_vcd": model_vcd}

    ports_out = [p for p in cfg.ports() if p.direction == "out"]
    ports_in = [p for p in cfg.ports() if p.direction == "in"]

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for p in ports_in:
        getattr(dut, p.name).value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    got_rows: list[list[int]] = []
    n_rows = sum(e.shape[0] for e in expected)
    cycle = 0
    limit = 50 + sum(k for _, _, k in work) * 4 + tiles * (3 * cfg.rows + cfg.cols) * 8
    try:
        while len(got_rows) < n_rows:
            if cycle > limit:
                raise Mismatch(f"timeout: {len(got_rows)} of {n_rows} result rows after {cycle} cycles")
            ins = {}
            for src, _ in sources:
                ins.update(src.drive())
            ins["out_ready"] = int(rng.random() < p_ready)
            for p in ports_in:
                getattr(dut, p.name).value = ins[p.name]
            await ReadOnly()
            rtl = {p.name: int(getattr(dut, p.name).value) for p in ports_out}
            exp = model.step(ins)
            if cycle == fault_cycle:
                exp["out_c"] ^= 1
            for p in ports_out:
                if rtl[p.name] != exp[p.name]:
                    raise Mismatch(_describe(cfg, cycle, p.name, exp[p.name], rtl[p.name]))
            for src, ready in sources:
                src.observe(rtl[ready])
            if rtl["out_valid"] and ins["out_ready"]:
                got_rows.append(unpack(rtl["out_c"], cfg.cols, cfg.acc_bits, cfg.signed))
            cycle += 1
            await FallingEdge(dut.clk)
        # the RTL's result tensors against numpy
        pos = 0
        for t, want in enumerate(expected):
            c = np.array(got_rows[pos:pos + want.shape[0]], dtype=np.int64)
            pos += want.shape[0]
            if not np.array_equal(c, want):
                r, col = np.argwhere(c != want)[0]
                raise Mismatch(f"tile {t}: C[{r},{col}] = {c[r, col]} from the RTL, numpy says "
                               f"{want[r, col]}")
        report.update(status="pass", cycles=cycle)
    except Mismatch as e:
        report.update(status="fail", cycles=cycle, message=str(e))
        raise AssertionError(f"{e} (seed {seed}; reproduce: {repro})") from None
    finally:
        model.close()
        if report_path:
            with open(report_path, "w") as f:
                json.dump(report, f)


def _describe(cfg, cycle, port, exp, act) -> str:
    msg = f"cycle {cycle}: port {port}: model {exp:#x}, RTL {act:#x}"
    if port == "out_c":
        e = unpack(exp, cfg.cols, cfg.acc_bits, cfg.signed)
        a = unpack(act, cfg.cols, cfg.acc_bits, cfg.signed)
        lane = next(i for i in range(cfg.cols) if e[i] != a[i])
        msg = f"cycle {cycle}: port out_c lane {lane}: model {e[lane]}, RTL {a[lane]}"
    return msg


__all__ = ["lockstep", "pack"]
