"""The Cython extensions are built and in use: other tests skip their compiled variants when they are
not, so this test is what fails in that case."""

import pytest

from tpesim.engines import is_compiled, load_core


def test_hot_paths_are_compiled():
    import tpesim.event._core as kcore

    for core in ("_systolic_core", "_preload_core"):
        assert is_compiled(load_core(core, interpreted=False)), "run `make setup` (or make ext)"
    assert is_compiled(kcore), "run `make setup` (or make ext)"


def test_interpreted_path_is_the_same_source():
    mod = load_core("_systolic_core", interpreted=True)
    assert mod.__file__.endswith("_systolic_core.py") and not is_compiled(mod)


@pytest.mark.parametrize(("value", "expected"), [
    ("", False), ("0", False), ("no", False), ("false", False), ("OFF", False),
    ("1", True), ("yes", True), ("true", True), ("On", True)])
def test_interpreted_switch_spellings(monkeypatch, value, expected):
    from tpesim.engines import interpreted_default

    monkeypatch.setenv("TPESIM_INTERPRETED", value)
    assert interpreted_default() is expected


def test_interpreted_switch_rejects_garbage(monkeypatch):
    from tpesim.engines import interpreted_default
    from tpesim.errors import ConfigError

    monkeypatch.setenv("TPESIM_INTERPRETED", "maybe")
    with pytest.raises(ConfigError, match=r"^TPESIM_INTERPRETED must be one of .*, not 'maybe'$"):
        interpreted_default()


def test_report_says_which_path_ran(capsys):
    import json

    from tpesim.cli import main

    argv = ["run", "gemm", "--m", "5", "--n", "5", "--k", "5", "--rows", "2", "--cols", "2", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["interpreted"] is False
    assert main([*argv, "--interpreted"]) == 0
    assert json.loads(capsys.readouterr().out)["interpreted"] is True
