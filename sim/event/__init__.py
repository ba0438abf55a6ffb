"""The event-driven simulation kernel (compiled when built; see sim/engines/__init__.py for the switch)."""

from ..engines import _LOADED, interpreted_default, is_compiled

if interpreted_default():
    from ..engines import load_core as _load  # noqa: F401
    import importlib.machinery as _m
    import importlib.util as _u
    import sys as _s
    from pathlib import Path as _P

    _name = __name__ + "._core__interpreted"
    _loader = _m.SourceFileLoader(_name, str(_P(__file__).with_name("_core.py")))
    _spec = _u.spec_from_loader(_name, _loader)
    _core = _u.module_from_spec(_spec)
    _s.modules[_name] = _core
    _loader.exec_module(_core)
else:
    from . import _core

    if not is_compiled(_core):
        import warnings

        warnings.warn(f"the compiled extension {__name__}._core is not built: running its Python "
                      f"source (slow); build it with `make ext`", RuntimeWarning, stacklevel=2)
_LOADED["event"] = is_compiled(_core)

Simulator = _core.Simulator
__all__ = ["Simulator"]
