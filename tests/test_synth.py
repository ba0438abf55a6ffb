"""FPGA synthesis (tpesim.kernels.synth, `tpesim synth`, docs/synth.md): the registered I/O wrapper
over every engine's ports, one tiny synthesis + place-and-route in `make test` (a few seconds per
tool with the wasm cache warm), the result cache, the CLI and its one-line errors; a small config of
every engine on both targets in `make regress`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tpesim import cli
from tpesim.errors import ConfigError
from tpesim.kernels import synth as S
from tpesim.registry import ENGINES, get_engine
from tpesim.rtl.wrap import PINS, WRAPPER_NAME, wrapper_info, wrapper_verilog

TINY = {"rows": 1, "cols": 1, "in_bits": 4, "acc_bits": 12}   # systolic: one 4-bit MAC
# a small config of every engine (make regress; the figures in docs/synth.md)
SMALL = {"systolic": {"rows": 4, "cols": 4}, "adder_tree": {"lanes": 4, "cols": 4,
                                                            "encoding": "ent"},
         "nm_sparse": {"rows": 2, "cols": 2, "sparsity": "2:4"},
         "lut": {"tile_m": 2, "tile_n": 4}}


def _have_tools() -> bool:
    try:
        S.tool_versions(S.TARGETS["ecp5-45k"])
        S.tool_versions(S.TARGETS["ice40-up5k"])
    except S.SynthToolError:
        return False
    return True


tools = pytest.mark.skipif(not _have_tools(), reason="yowasp wheels missing (make setup)")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TPESIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "synth"


def _examples():
    # the first example of every engine in make test, the others in make regress
    return [pytest.param(name, fields, id=f"{name}-{i}",
                         marks=[pytest.mark.regress] if i else [])
            for name, e in ENGINES.items() for i, fields in enumerate(e.examples)]


@pytest.mark.parametrize("engine,fields", _examples())
def test_wrapper_registers_every_port(engine, fields, tmp_path):
    """Every engine port is connected to a flip-flop of the wrapper, widths and names from
    cfg.ports(); Verilator lints the engine and the wrapper together (a wrong port name or width
    fails the lint)."""
    cfg = get_engine(engine).config(**fields)
    info = wrapper_info(cfg)
    ports = cfg.ports()
    assert info.in_bits == sum(p.width for p in ports if p.direction == "in")
    assert info.out_bits == sum(p.width for p in ports if p.direction == "out")
    assert info.ffs == info.in_bits + info.out_bits + 1 and info.pins == len(PINS)
    text = wrapper_verilog(cfg, "inner")
    assert "(* keep_hierarchy *)" in text
    for p in ports:
        assert f".{p.name}(" in text
    venv = Path(sys.executable).parent / "verilator"
    verilator = str(venv) if venv.exists() else shutil.which("verilator")
    if verilator is None:
        pytest.skip("verilator missing")
    (tmp_path / "engine.v").write_text(get_engine(engine).load("rtl").to_verilog(cfg,
                                                                                 name="inner"))
    (tmp_path / f"{WRAPPER_NAME}.v").write_text(text)
    run = subprocess.run([verilator, "--lint-only", "-Wall", "-Wno-fatal", "-Wno-PROCASSINIT",
                          "--top-module",
                          WRAPPER_NAME, "engine.v", f"{WRAPPER_NAME}.v"],
                         cwd=tmp_path, capture_output=True, text=True)
    # every warning about the wrapper (a missing or unknown pin, a width mismatch at the
    # instance, an unused or undriven bit) fails; the engine's own lint is tests/test_rtl.py's
    pin = [ln for ln in run.stderr.splitlines() if f"{WRAPPER_NAME}.v" in ln or "%Error" in ln]
    assert run.returncode == 0 and not pin, run.stderr[-3000:]


def test_wrapper_bad_names():
    cfg = get_engine("systolic").config(**TINY)
    with pytest.raises(ConfigError, match="name must be a Verilog identifier"):
        wrapper_verilog(cfg, "module")
    with pytest.raises(ConfigError, match="name must be a Verilog identifier"):
        wrapper_verilog(cfg, "inner", name="1top")


def test_bad_arguments_are_one_line(cache):
    cfg = get_engine("systolic").config(**TINY)
    with pytest.raises(ConfigError, match="target must be one of 'ecp5-45k', 'ice40-up5k', "
                                          "not 'xc7'"):
        S.synth(cfg, "xc7")
    with pytest.raises(ConfigError, match="seed must be an integer from 0 to 2\\*\\*32 - 1"):
        S.synth(cfg, seed=-1)
    with pytest.raises(ConfigError, match="freq_mhz must be an integer from 1 to 2000, not 0"):
        S.synth(cfg, freq_mhz=0)
    with pytest.raises(ConfigError, match="cfg must be an engine config, not dict"):
        S.synth({"rows": 1})
    assert not cache.exists()


@pytest.mark.parametrize("argv,names", [
    (["synth", "systolic", "--rows", "0"], "rows"),
    (["synth", "systolic", "--target", "xc7"], "--target"),
    (["synth", "systolic", "--freq", "0"], "freq"),
    (["synth", "systolic", "--seed", "-1"], "seed"),
    (["synth", "nope"], "ENGINE"),
    (["synth"], "ENGINE"),
])
def test_cli_bad_input(argv, names, capsys, cache):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("tpesim: error: ") and names in err and "Traceback" not in err
    assert not cache.exists()


@tools
def test_tiny_synth_pnr_cache_and_cli(cache, capsys):
    """One 4-bit MAC PE on the ECP5: synthesis, place and route, Fmax; the second call (the CLI)
    is a cache hit with identical figures; another target or config misses."""
    cfg = get_engine("systolic").config(**TINY)
    res = S.synth(cfg, "ecp5-45k")
    assert res["cached"] is False and res["engine"] == "systolic"
    assert res["engine_name"] == cfg.name and res["config"] == cfg.to_dict()
    # one MAC: a multiplier (DSP), the accumulator and shadow registers, the pass-through
    assert res["dsps"] == 1 and res["brams"] == 0
    assert res["ffs"] >= 2 * cfg.acc_bits
    assert res["luts"] + res["carry_cells"] > 0
    info = wrapper_info(cfg)
    assert res["wrapper_ffs"] == info.ffs and res["io_pins"] == len(PINS)
    assert res["fmax_mhz"] is not None and 10 < res["fmax_mhz"] < 1000
    assert res["pnr_utilization"]["TRELLIS_IO"]["used"] == len(PINS)
    entries = list(cache.glob("*.json"))
    assert len(entries) == 1 and entries[0].stem == res["cache_key"]
    assert S.cache_key(cfg, "ecp5-45k") == res["cache_key"]
    assert S.cache_key(cfg, "ice40-up5k") != res["cache_key"]
    assert S.cache_key(get_engine("systolic").config(**{**TINY, "acc_bits": 13}),
                       "ecp5-45k") != res["cache_key"]
    capsys.readouterr()
    assert cli.main(["synth", "systolic", "--rows", "1", "--cols", "1", "--in-bits", "4",
                     "--acc-bits", "12", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["cached"] is True
    assert {k: again[k] for k in S._FIELDS} == {k: res[k] for k in S._FIELDS}
    assert S.resources(cfg)["fmax_mhz"] == res["fmax_mhz"]
    # a corrupt entry is recomputed, never returned
    entries[0].write_text("{")
    assert S.synth(cfg, "ecp5-45k", pnr=False)["cached"] is False


# the iCE40 UP5K has 8 DSPs: a 2x2 array there
SMALL_ICE40 = {**SMALL, "systolic": {"rows": 2, "cols": 2}}


@tools
@pytest.mark.regress
@pytest.mark.parametrize("target", tuple(S.TARGETS))
@pytest.mark.parametrize("engine", tuple(SMALL))
def test_every_engine_synthesizes(engine, target, cache):
    fields = (SMALL_ICE40 if target.startswith("ice40") else SMALL)[engine]
    cfg = get_engine(engine).config(**fields)
    res = S.synth(cfg, target)
    assert res["ffs"] > 0 and res["luts"] > 0
    assert res["fmax_mhz"] is not None and res["fmax_mhz"] > 1


@tools
@pytest.mark.regress
def test_a_design_that_does_not_fit_is_one_line(cache):
    cfg = get_engine("systolic").config(rows=4, cols=4)    # 16 multipliers, the UP5K has 8 DSPs
    with pytest.raises(S.SynthToolError, match="does not fit the ice40-up5k"):
        S.synth(cfg, "ice40-up5k")
