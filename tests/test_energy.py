"""The energy table (sim/energy.py): the cited figures, the width rules, override files with
one-line errors, and a run's energy by component from its report counts, on every engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tpesim import MemoryConfig, time_gemm
from tpesim.energy import (COMPONENTS, HOROWITZ_45NM, Action, actions, energy_fields,
                           load_table)
from tpesim.errors import FileFormatError
from tpesim.registry import ENGINES


def test_builtin_table_is_horowitz_45nm_with_its_figures():
    t = HOROWITZ_45NM
    assert "Horowitz" in t.source and "ISSCC 2014" in t.source and "45 nm" in t.source
    # Fig. 1.1.9: int add 8b 0.03 / 32b 0.1 pJ, int mult 8b 0.2 / 32b 3.1 pJ, FP16/32 add and mult
    assert (t.int_add(8), t.int_add(32), t.int_mult(8), t.int_mult(32)) == (0.03, 0.1, 0.2, 3.1)
    assert (t.fp("add", 16), t.fp("add", 32), t.fp("mult", 16), t.fp("mult", 32)) == \
        (0.4, 0.9, 1.1, 3.7)
    # 64-bit accesses: 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ; DRAM 1.3 nJ (the low end)
    assert (t.sram(4), t.sram(8), t.sram(9), t.sram(32), t.sram(512), t.sram(None)) == \
        (1.25, 1.25, 2.5, 2.5, 12.5, 12.5)
    assert t.dram_pj_per_byte == 162.5
    assert set(t.notes) == {"int_add_pj", "int_mult_pj", "fp_add_pj", "fp_mult_pj",
                            "lookup_pj_per_bit", "sram_pj_per_byte", "dram_pj_per_byte"}
    assert "assumption" in t.notes["lookup_pj_per_bit"]


def test_width_rules():
    t = HOROWITZ_45NM
    # adders scale linearly from the nearest listed width, multipliers with a*b
    assert t.int_add(16) == pytest.approx(0.03 * 2)     # nearest of 8 and 32 (log scale): 8
    assert t.int_add(33) == pytest.approx(0.1 * 33 / 32)
    assert t.int_add(4) == pytest.approx(0.015)
    assert t.int_mult(4) == pytest.approx(0.05)
    assert t.int_mult(16) == pytest.approx(0.8)
    assert t.int_mult(8, 2) == pytest.approx(0.05)
    with pytest.raises(Exception, match="has no fp_add_pj for 8-bit floats"):
        t.fp("add", 8)


def test_generic_engine_energy_is_macs_plus_traffic():
    cfg = ENGINES["systolic"].config(rows=8, cols=8, in_bits=4, acc_bits=24)
    mem = MemoryConfig(sram_kib_a=16, sram_kib_b=16, sram_kib_c=64, dram_bw=16)
    r = time_gemm(cfg, 64, 40, 72, memory=mem).to_dict()
    e = energy_fields(cfg, r, HOROWITZ_45NM)
    t = HOROWITZ_45NM
    macs = 64 * 40 * 72
    assert e["energy_mac_pj"] == pytest.approx(macs * (t.int_mult(4) + t.int_add(24)))
    sram = sum(r[f"sram_{rw}_bytes_{op}"] * t.sram(r[f"sram_kib_{op}"])
               for op in "abc" for rw in ("read", "write"))
    dram = sum(r[f"dram_{rw}_bytes_{op}"] for op in "abc" for rw in ("read", "write"))
    assert e["energy_sram_pj"] == pytest.approx(sram)
    assert e["energy_dram_pj"] == pytest.approx(dram * t.dram_pj_per_byte)
    assert e["energy_pj"] == pytest.approx(e["energy_mac_pj"] + sram + dram * 162.5)
    assert e["energy_table"] == "horowitz-45nm"
    assert "energy_lookup_pj" not in e  # components the engine does not have are left out


def test_lut_engine_counts_lookups_not_multiplies():
    cfg = ENGINES["lut"].config(tile_m=2, tile_n=8, w_bits=3)
    r = time_gemm(cfg, 10, 20, 30).to_dict()
    acts = actions(cfg, r)
    assert not any(a.kind == "int_mult" for a in acts)
    (lk,) = [a for a in acts if a.component == "lookup"]
    groups = -(-30 // cfg.group)
    assert lk.count == 10 * 20 * groups * 3 and lk.bits == cfg.entry_bits
    e = energy_fields(cfg, r, HOROWITZ_45NM)
    assert {f"energy_{c}_pj" for c in COMPONENTS} <= set(e)
    assert e["energy_lookup_pj"] == pytest.approx(lk.count * cfg.entry_bits * 0.1 / 32)
    fp = ENGINES["lut"].config(tile_m=2, tile_n=3, act="fp16", w_interp="pm1")
    kinds = {a.kind for a in actions(fp, time_gemm(fp, 4, 6, 8).to_dict())}
    assert "fp_add" in kinds and "int_add" not in kinds


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_engine_has_energy_and_it_grows_with_work(engine, seed):
    rng = np.random.default_rng(seed)
    e = ENGINES[engine]
    for ex in e.examples:
        cfg = e.config(**ex)
        m, n, k = (int(x) for x in rng.integers(4, 40, 3))
        small = energy_fields(cfg, time_gemm(cfg, m, n, k).to_dict(), HOROWITZ_45NM)
        big = energy_fields(cfg, time_gemm(cfg, 2 * m, n, k).to_dict(), HOROWITZ_45NM)
        assert 0 < small["energy_pj"] < big["energy_pj"]
        parts = sum(v for kk, v in small.items() if kk.startswith("energy_") and
                    kk.endswith("_pj") and kk != "energy_pj")
        assert small["energy_pj"] == pytest.approx(parts)


def test_override_file_toml_and_json(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('dram_pj_per_byte = 20.0\n[int_mult_pj]\n8 = 0.1\n'
                 '[notes]\ndram_pj_per_byte = "LPDDR5 datasheet"\n')
    t = load_table(p)
    assert t.name == "mine" and t.dram_pj_per_byte == 20.0 and t.int_mult_pj == {8: 0.1}
    assert t.int_add_pj == HOROWITZ_45NM.int_add_pj  # fields not given keep the built-in ones
    assert t.notes["dram_pj_per_byte"] == "LPDDR5 datasheet"
    assert t.notes["int_mult_pj"] == "from mine.toml"
    j = tmp_path / "other.json"
    j.write_text(json.dumps({"name": "x7", "sram_pj_per_byte": {"64": 3.0}}))
    assert load_table(j).sram(1) == 3.0 and load_table(j).name == "x7"
    assert load_table(None) is HOROWITZ_45NM


@pytest.mark.parametrize(("text", "message"), [
    ("dram_pj = 3\n", "has no field 'dram_pj'"),
    ("dram_pj_per_byte = -1\n", "dram_pj_per_byte must be a finite number >= 0 (pJ), not -1"),
    ("dram_pj_per_byte = 'x'\n", "dram_pj_per_byte must be a number of pJ, not 'x'"),
    ("[int_add_pj]\nwide = 1\n", "int_add_pj keys must be positive integers (bits or KiB), "
                                 "not 'wide'"),
    ("[int_add_pj]\n0 = 1\n", "keys must be positive integers (bits or KiB), not '0'"),
    ("int_add_pj = {}\n", "int_add_pj must list at least one entry, not none"),
    ("int_mult_pj = 3\n", "int_mult_pj must be a table of width = pJ, not 3"),
    ("[[x\n", "malformed TOML"),
    ("name = ''\n", "name must be a non-empty string, not ''"),
])
def test_bad_override_is_one_line(tmp_path, text, message):
    p = tmp_path / "t.toml"
    p.write_text(text)
    with pytest.raises(FileFormatError) as ei:
        load_table(p)
    assert message in str(ei.value) and "\n" not in str(ei.value)
    assert str(ei.value).startswith(f"energy table {str(p)!r}")


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        load_table(tmp_path / "none.toml")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(FileFormatError, match="cannot read it"):
        load_table(tmp_path / "bin.toml")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(FileFormatError, match="must hold a table, not list"):
        load_table(tmp_path / "list.json")


def test_unknown_action_is_refused():
    class Odd:
        def energy_actions(self, report):
            return [Action("mac", "teleport", 1)]

        def operands(self):
            return ()

    with pytest.raises(Exception, match="action kind must be one of .* not 'teleport'"):
        energy_fields(Odd(), {"macs": 1}, HOROWITZ_45NM)


def test_run_gemm_energy_option(tmp_path, capsys):
    from tpesim.cli import main

    base = ["run", "gemm", "--m", "24", "--n", "16", "--k", "40", "--rows", "4", "--cols", "4",
            "--fidelity", "tile", "--json"]
    assert main(base) == 0
    plain = json.loads(capsys.readouterr().out)
    assert not any(k.startswith("energy") for k in plain)
    assert main([*base, "--energy"]) == 0
    rep = json.loads(capsys.readouterr().out)
    cfg = ENGINES["systolic"].config(rows=4, cols=4)
    want = energy_fields(cfg, time_gemm(cfg, 24, 16, 40).to_dict(), HOROWITZ_45NM)
    assert {k: rep[k] for k in want} == pytest.approx(want) or \
        {k: rep[k] for k in want} == want
    t = tmp_path / "cheap.toml"
    t.write_text("dram_pj_per_byte = 0\n")
    assert main([*base, "--energy", str(t)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["energy_table"] == "cheap" and rep["energy_dram_pj"] == 0
    assert main([*base, "--energy", str(tmp_path / "none.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "energy table" in err and "no such file" in err
