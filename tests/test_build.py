"""The Cython extensions are built and in use: other tests skip their compiled variants when they are
not, so this test is what fails in that case."""

from sim.engines import is_compiled, load_core


def test_hot_paths_are_compiled():
    import sim.kernel._core as kcore

    for core in ("_systolic_core", "_stationary_core"):
        assert is_compiled(load_core(core, interpreted=False)), "run `make setup` (or make ext)"
    assert is_compiled(kcore), "run `make setup` (or make ext)"


def test_interpreted_path_is_the_same_source():
    mod = load_core("_systolic_core", interpreted=True)
    assert mod.__file__.endswith("_systolic_core.py") and not is_compiled(mod)
