"""Engine cycle models. `load_core(name)` returns a hot-path module, compiled unless interpreted is asked for.

Set TPESIM_INTERPRETED=1 (or call `load_core(name, interpreted=True)`) to run the pure-Python source of
the same module, for debugging and for the compiled-vs-interpreted benchmark.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ["load_core", "interpreted_default", "is_compiled", "cores_loaded"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")
# hot-path module name -> True when the compiled extension runs, False for the .py source
_LOADED: dict[str, bool] = {}


def interpreted_default() -> bool:
    """TPESIM_INTERPRETED: 1/true/yes/on runs the .py sources; unset, 0/false/no/off the compiled."""
    raw = os.environ.get("TPESIM_INTERPRETED", "")
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    from ..errors import ConfigError

    raise ConfigError(f"TPESIM_INTERPRETED must be one of 1, true, yes, on, 0, false, no, off, "
                      f"not {raw!r}")


def cores_loaded() -> dict[str, bool]:
    """Hot-path modules loaded so far and whether each runs compiled (for honest reports)."""
    return dict(_LOADED)


def load_core(name: str, interpreted: bool | None = None, *, record: bool = True):
    """Import sim.engines.<name> (compiled if built) or its .py source run by the interpreter.
    record=False leaves `cores_loaded` alone (a base type loaded by a core's own source, which
    runs interpreted exactly when that core does)."""
    if interpreted is None:
        interpreted = interpreted_default()
    full = f"{__name__}.{name}"
    if not interpreted:
        mod = importlib.import_module(full)
        _LOADED[name] = is_compiled(mod)
        if not _LOADED[name]:
            import warnings

            warnings.warn(f"the compiled extension {full} is not built: running its Python source "
                          f"(about 200x slower); build it with `make ext`", RuntimeWarning,
                          stacklevel=2)
        return mod
    alias = f"{full}__interpreted"
    if record:
        _LOADED[name] = False
    if alias in sys.modules:
        return sys.modules[alias]
    path = Path(__file__).with_name(name + ".py")
    loader = importlib.machinery.SourceFileLoader(alias, str(path))
    spec = importlib.util.spec_from_loader(alias, loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[alias] = mod
    loader.exec_module(mod)
    return mod


def is_compiled(module) -> bool:
    return not str(getattr(module, "__file__", "")).endswith(".py")
