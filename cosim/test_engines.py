"""Cosim checks every registered engine gets from the shared runner: the checker catches a fault
(with cycle, port, lane, values, seed, reproduce line and both VCDs), and unusable case
parameters are refused before anything runs."""

from pathlib import Path

import pytest

from tpesim.cosim.runner import SIMULATORS, main, run_cosim
from tpesim.errors import ConfigError, CosimMismatch
from tpesim.registry import ENGINES

FIRST = {name: e.config(**e.examples[0]) for name, e in ENGINES.items()}


@pytest.mark.cosim
@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("engine", sorted(FIRST))
def test_mismatch_is_reported(engine, sim):
    """A one-bit fault injected into the model's output payload at cycle 9 must fail with the
    cycle, the port and lane, both values, the seed, a reproduce command and both VCDs on disk."""
    cfg = FIRST[engine]
    out = next(s for s in cfg.streams() if s.direction == "out").payload[0].port
    with pytest.raises(CosimMismatch) as ei:
        run_cosim(cfg, sim=sim, seed=5, tiles=2, inject_fault=9)
    msg = str(ei.value)
    assert f"cycle 9: port {out} lane 0:" in msg
    assert "seed 5" in msg
    assert f"reproduce: tpesim cosim {engine} " in msg and f"--sim {sim}" in msg
    rtl_vcd = msg.split("VCDs: ")[1].split(" (RTL)")[0]
    model_vcd = msg.split("(RTL), ")[1].split(" (model)")[0]
    for vcd in (rtl_vcd, model_vcd):
        text = Path(vcd).read_text()
        assert out in text and "in_ready" in text


@pytest.mark.parametrize(("kw", "message"), [
    ({"tiles": 0}, "tiles must be a positive integer, not 0"),
    ({"tiles": -1}, "tiles must be a positive integer, not -1"),
    ({"kmax": 0}, "kmax must be a positive integer, not 0"),
    ({"seed": -1}, "seed must be a non-negative integer, not -1"),
    ({"p_valid": 1.5}, "p_valid must be a probability from 0.01 to 1, not 1.5"),
    ({"p_ready": 0}, "p_ready must be a probability from 0.01 to 1, not 0"),
    ({"p_valid": 1e-300}, "p_valid must be a probability from 0.01 to 1, not 1e-300"),
])
def test_case_parameters_refused(kw, message):
    with pytest.raises(ConfigError) as ei:
        run_cosim(FIRST["systolic"], **kw)
    assert str(ei.value) == message


def test_cli_refuses_bad_case_in_one_line(capsys):
    assert main(["systolic", "--tiles", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "tpesim: error: tiles must be a positive integer, not 0\n"


@pytest.mark.cosim
def test_testbench_error_is_not_a_mismatch():
    """A failure of the testbench itself is reported as such, with its cause, never as an RTL or
    model mismatch."""
    from tpesim.errors import TpesimError

    with pytest.raises(TpesimError) as ei:
        run_cosim(FIRST["systolic"], sim="icarus", seed=3, tiles=1, inject_error=3)
    assert not isinstance(ei.value, CosimMismatch)
    assert "testbench error at cycle 3: RuntimeError: injected testbench error" in str(ei.value)


@pytest.mark.cosim
def test_outputs_go_to_the_chosen_directory(tmp_path, monkeypatch, capsys):
    """Builds and cases go under --out-dir, by default ./cosim_build of the current directory (never
    inside the installed package), and the case directory is named in the output."""
    out = tmp_path / "runs"
    assert main(["systolic", "--rows", "2", "--cols", "2", "--tiles", "1", "--no-waves",
                 "--out-dir", str(out)]) == 0
    line = capsys.readouterr().out
    case = Path(line.split("Case: ")[1].split()[0].rstrip("."))
    assert case.is_dir() and out in case.parents
    monkeypatch.chdir(tmp_path)
    res = run_cosim(FIRST["systolic"], tiles=1, waves=False)
    assert tmp_path / "cosim_build" in res.case_dir.parents
    import tpesim

    assert Path(tpesim.__file__).parent not in res.case_dir.parents
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="out-dir must be a directory"):
        run_cosim(FIRST["systolic"], build_root=tmp_path / "file")
