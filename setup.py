"""Builds the Cython extensions from the pure-Python-mode sources (the same .py files run interpreted)."""
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HOT = ["sim/event/_core.py", "sim/engines/_systolic_core.py", "sim/engines/_preload_core.py",
       "sim/engines/_held_core.py", "sim/engines/_adder_tree_core.py",
       "sim/engines/_nm_sparse_core.py", "sim/engines/_lut_core.py"]

# A core's .pxd cimports another by its installed name (tpesim.engines._held_core): Cython finds it
# through an include directory whose tpesim/ is sim/
_inc = Path(__file__).resolve().parent / "build" / "cython_include"
_inc.mkdir(parents=True, exist_ok=True)
if not (_inc / "tpesim").exists():
    (_inc / "tpesim").symlink_to(Path(__file__).resolve().parent / "sim", target_is_directory=True)

ext = [
    # sim/ is installed as the `tpesim` package (pyproject.toml's package-dir)
    Extension("tpesim." + p[len("sim/"):-3].replace("/", "."), [p], include_dirs=[numpy.get_include()],
              extra_compile_args=["-O3", "-fwrapv"])
    for p in HOT
]
setup(ext_modules=cythonize(ext, language_level=3, include_path=[str(_inc)], compiler_directives={
    "boundscheck": False, "wraparound": False, "cdivision": True, "initializedcheck": False}))
