"""The one cocotb testbench: drives any registered engine's RTL and cycle model in lockstep over the
config's streams, compares every output port every cycle, and checks the result rows against numpy.

Run it through cosim.runner (pytest or `tpesim cosim`), which passes the case in environment
variables: TPESIM_CFG (engine-tagged config JSON), TPESIM_SEED, TPESIM_TILES, TPESIM_KMAX,
TPESIM_P_VALID, TPESIM_P_READY, TPESIM_MODEL_VCD, TPESIM_REPORT (JSON written at the end),
TPESIM_REPRO, TPESIM_INJECT_FAULT (self-test: corrupt the model's output payload at that cycle),
TPESIM_INJECT_ERROR (self-test: the testbench itself fails at that cycle). TPESIM_BATCH (a JSON
file listing cases as {seed, tiles, kmax, p_valid, p_ready}) runs them back to back instead of the
single case, each from a reset with a fresh model, no model VCD (cosim/regress.py).
"""

from __future__ import annotations

import json
import math
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from tpesim.config import config_from_json
from tpesim.numerics import pack, unpack, value_range
from tpesim.registry import engine_of

__all__ = ["lockstep", "StreamSource", "Mismatch"]


class Mismatch(Exception):
    """The RTL and the model (or numpy) disagree."""


class StimulusError(Exception):
    """The testbench's own inputs are unusable (never reported as an RTL/model mismatch)."""


class StreamSource:
    """Presents beats on one input stream with random gaps; holds a beat until it is accepted.

    While not valid, the payload and `last` ports carry random junk, which the engine must ignore.
    """

    def __init__(self, stream, beats: list[dict], rng: np.random.Generator, p_valid: float):
        self.stream, self.beats, self.rng, self.p_valid = stream, beats, rng, p_valid
        self.pos = 0
        self.valid = 0

    def _junk(self) -> dict:
        out = {}
        for lanes in self.stream.payload:
            lo, hi = value_range(lanes.bits, lanes.signed)
            out[lanes.port] = pack(self.rng.integers(lo, hi + 1, size=lanes.lanes), lanes.bits)
        if self.stream.last is not None:
            out[self.stream.last] = int(self.rng.random() < 0.5)
        return out

    def drive(self) -> dict:
        if not self.valid and self.pos < len(self.beats):
            self.valid = int(self.rng.random() < self.p_valid)
        if self.valid:
            return {self.stream.valid: 1, **self.beats[self.pos]}
        return {self.stream.valid: 0, **self._junk()}

    def observe(self, ready: int) -> bool:
        if self.valid and ready:
            self.pos += 1
            self.valid = 0
            return True
        return False


@cocotb.test()
async def lockstep(dut):
    cfg = config_from_json(os.environ["TPESIM_CFG"])
    eng = engine_of(cfg)
    report_path = os.environ.get("TPESIM_REPORT")
    batch = os.environ.get("TPESIM_BATCH")
    if batch:
        # many cases back to back in one simulator process (cosim/regress.py): each case starts
        # with a reset and a fresh model, and runs exactly as a single case with its parameters
        with open(batch) as f:
            cases = json.load(f)
        model_vcd = None
    else:
        cases = [{"seed": int(os.environ["TPESIM_SEED"]),
                  "tiles": int(os.environ.get("TPESIM_TILES", "3")),
                  "kmax": int(os.environ["TPESIM_KMAX"]),
                  "p_valid": float(os.environ.get("TPESIM_P_VALID", "0.7")),
                  "p_ready": float(os.environ.get("TPESIM_P_READY", "0.7"))}]
        model_vcd = os.environ.get("TPESIM_MODEL_VCD") or None
    repro = os.environ.get("TPESIM_REPRO", "")
    fault_cycle = int(os.environ.get("TPESIM_INJECT_FAULT", "-1"))
    error_cycle = int(os.environ.get("TPESIM_INJECT_ERROR", "-1"))
    report = {"seed": cases[0]["seed"], "status": "running", "cycles": 0, "repro": repro,
              "model_vcd": model_vcd}
    if batch:
        report.update(cases=len(cases), passed=0, case_cycles=[])

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    try:
        for i, case in enumerate(cases):
            if batch:
                report.update(case=i, seed=case["seed"])
            cycles = await _case(dut, cfg, eng, case, report, model_vcd, fault_cycle,
                                 error_cycle)
            if batch:
                report["passed"] += 1
                report["case_cycles"].append(cycles)
                report["cycles"] += cycles
            else:
                report["cycles"] = cycles
        report.update(status="pass")
    finally:
        _write(report_path, report)


async def _case(dut, cfg, eng, c: dict, report: dict, model_vcd, fault_cycle: int,
                error_cycle: int) -> int:
    """One case from reset: drive, compare every output port every cycle, check the rows."""
    seed, tiles, kmax = c["seed"], c["tiles"], c["kmax"]
    p_valid, p_ready = c["p_valid"], c["p_ready"]
    rng = np.random.default_rng(seed)
    try:
        case = eng.load("stimulus").make_case(cfg, rng, tiles, kmax)
    except Exception as e:  # the testbench's own inputs: never reported as an RTL mismatch
        report.update(status="error", message=f"stimulus: {type(e).__name__}: {e}")
        raise
    streams_in = [s for s in cfg.streams() if s.direction == "in"]
    (out_stream,) = [s for s in cfg.streams() if s.direction == "out"]
    # the result rows are the first payload port; any other (a flag such as out_err) is compared
    # every cycle like every output port
    out_payload = out_stream.payload[0]
    sources = [StreamSource(s, case.beats.get(s.name, []), rng, p_valid) for s in streams_in]
    model = eng.load("model")(cfg, vcd_path=model_vcd)
    ports_out = [p for p in cfg.ports() if p.direction == "out"]
    ports_in = [p for p in cfg.ports() if p.direction == "in"]
    # no transfer on any stream for this long (with sources and sink this unlikely to be idle) is a
    # hang: a no-progress watchdog, not a budget on the whole run
    idle_limit = math.ceil(4 * (case.latency_bound + 16) / min(p_valid, p_ready))

    for p in ports_in:
        getattr(dut, p.name).value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    got_rows: list[list[int]] = []
    cycle = idle = 0
    try:
        while len(got_rows) < case.rows:
            if idle > idle_limit:
                raise Mismatch(f"no progress: no transfer on any stream for {idle} cycles "
                               f"({len(got_rows)} of {case.rows} result rows after {cycle} cycles)")
            if cycle == error_cycle:
                raise RuntimeError("injected testbench error")
            ins = {}
            for src in sources:
                ins.update(src.drive())
            ins[out_stream.ready] = int(rng.random() < p_ready)
            for p in ports_in:
                getattr(dut, p.name).value = ins[p.name]
            await ReadOnly()
            rtl = {p.name: int(getattr(dut, p.name).value) for p in ports_out}
            exp = model.step(ins)
            if cycle == fault_cycle:
                exp[out_payload.port] ^= 1
            for p in ports_out:
                if rtl[p.name] != exp[p.name]:
                    raise Mismatch(_describe(cfg, cycle, p.name, exp[p.name], rtl[p.name]))
            moved = False
            for src in sources:
                moved |= src.observe(rtl[src.stream.ready])
            if rtl[out_stream.valid] and ins[out_stream.ready]:
                got_rows.append(unpack(rtl[out_payload.port], out_payload.lanes, out_payload.bits,
                                       out_payload.signed))
                moved = True
            idle = 0 if moved else idle + 1
            cycle += 1
            await FallingEdge(dut.clk)
        pos = 0
        for t, want in enumerate(case.expected):
            c_rows = np.array(got_rows[pos:pos + want.shape[0]], dtype=np.int64)
            pos += want.shape[0]
            if not np.array_equal(c_rows, want):
                r, col = np.argwhere(c_rows != want)[0]
                raise Mismatch(f"block {t}: C[{r},{col}] = {c_rows[r, col]} from the RTL, numpy "
                               f"says {want[r, col]}")
        return cycle
    except Mismatch as e:
        report.update(status="fail", cycles=report["cycles"] + cycle, message=str(e))
        raise AssertionError(f"{e} (seed {seed}; reproduce: {report['repro']})") from None
    except Exception as e:
        report.update(status="error", cycles=report["cycles"] + cycle,
                      message=f"testbench error at cycle {cycle}: {type(e).__name__}: {e}")
        raise
    finally:
        model.close()


def _write(path: str | None, report: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(report, f)


def _describe(cfg, cycle: int, port: str, exp: int, act: int) -> str:
    for s in cfg.streams():
        for lanes in s.payload:
            if lanes.port == port:
                e = unpack(exp, lanes.lanes, lanes.bits, lanes.signed)
                a = unpack(act, lanes.lanes, lanes.bits, lanes.signed)
                lane = next(i for i in range(lanes.lanes) if e[i] != a[i])
                return f"cycle {cycle}: port {port} lane {lane}: model {e[lane]}, RTL {a[lane]}"
    return f"cycle {cycle}: port {port}: model {exp:#x}, RTL {act:#x}"
