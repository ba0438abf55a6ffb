"""One behavioural suite for every registered engine and every fidelity level: the tensors of all
levels equal the functional reference, and the tile level's cycles, stalls, per-row output cycles
and bytes equal the cycle level's, with and without a memory that stalls.

A new engine is covered by adding `examples` to its registry entry. Seeds are in the test ids.
"""

from __future__ import annotations

import numpy as np
import pytest

from levels import LEVELS, run_level
from tpesim.memory import MemoryConfig
from tpesim.numerics import value_range
from tpesim.registry import ENGINES

CASES = [(name, ex) for name, e in ENGINES.items() for ex in e.examples]
MEMORIES = [None, MemoryConfig(sram_kib_a=1, sram_kib_b=1, sram_kib_c=4, dram_bw=3,
                               dram_latency=7)]


def _operands(cfg, rng, m, n, k):
    ops = {op.role: op for op in cfg.operands()}
    a = rng.integers(*value_range(ops["a"].bits, ops["a"].signed), size=(m, k), endpoint=True)
    b = rng.integers(*value_range(ops["b"].bits, ops["b"].signed), size=(k, n), endpoint=True)
    return a, b


def _id(case):
    name, ex = case
    return ENGINES[name].config(**ex).name


@pytest.mark.parametrize("mem", range(len(MEMORIES)), ids=["ideal", "stalling"])
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_levels_agree(case, seed, mem):
    name, ex = case
    cfg = ENGINES[name].config(**ex)
    rng = np.random.default_rng(seed)
    m, n, k = (int(x) for x in rng.integers(1, 23, 3))
    a, b = _operands(cfg, rng, m, n, k)
    memory = MEMORIES[mem]
    ctx = f"{cfg.name} {m}x{n}x{k} seed {seed} memory {memory}"
    out = {lvl: run_level(lvl, cfg, a, b, memory) for lvl in LEVELS}
    # the exact product of the operands as the engine uses them (an N:M engine prunes B)
    ref = (np.asarray(cfg.operand_as_used("a", a)).astype(object)
           @ np.asarray(cfg.operand_as_used("b", b)).astype(object))
    c_bits = next(op for op in cfg.operands() if op.role == "c")
    lo, hi = value_range(c_bits.bits, c_bits.signed)
    if all(lo <= v <= hi for v in ref.flat):  # no wrap: the exact product, independent of our helpers
        assert np.array_equal(out["functional"][0], ref.astype(np.int64)), ctx
    for lvl in LEVELS:
        assert np.array_equal(out[lvl][0], out["functional"][0]), f"{lvl}: {ctx}"
    tile, cyc = out["tile"][1], out["cycle"][1]
    for f in ("cycles", "compute_cycles", "stall_cycles", "blocks", "writeback_done_cycle",
              "sram_read_bytes_a", "sram_read_bytes_b", "dram_read_bytes_a", "dram_read_bytes_b",
              "dram_write_bytes_c"):
        assert getattr(tile, f) == getattr(cyc, f), f"{f}: {ctx}"
    assert np.array_equal(tile.out_cycles, cyc.out_cycles), ctx
    assert cyc.utilization == pytest.approx(m * n * k / (cyc.cycles * cfg.peak_macs_per_cycle))


def _integer(case) -> bool:
    name, ex = case
    return all(op.kind == "int" for op in ENGINES[name].config(**ex).operands())


@pytest.mark.parametrize("case", [c for c in CASES if _integer(c)], ids=_id)
def test_conv_on_every_engine(case):
    """conv2d lowered by im2col runs on every engine at both fidelities: the output equals a direct
    numpy integer convolution, and the two fidelities agree in cycles (every example whose operands
    are integers; floating-point examples are checked bit for bit at the GEMM level above)."""
    from tpesim.kernels.conv import ConvLayer
    from tpesim.kernels.conv import random_operands as conv_operands
    from tpesim.kernels.gemm import run_conv

    name, ex = case
    cfg = ENGINES[name].config(**ex)
    layer = ConvLayer(in_h=5, in_w=6, in_channels=3, out_channels=4, kernel_h=3, kernel_w=2,
                      stride_h=2, pad_h=1, pad_w=1, batch=2)
    ops = {op.role: op for op in cfg.operands()}
    x, _ = conv_operands(layer, np.random.default_rng(7), *value_range(ops["a"].bits, ops["a"].signed))
    # weights over the B operand's own range (a low-bit weight engine's B is narrower than A)
    _, w = conv_operands(layer, np.random.default_rng(8), *value_range(ops["b"].bits, ops["b"].signed))
    cyc = run_conv(cfg, layer, x, w, fidelity="cycle")
    tile = run_conv(cfg, layer, x, w, fidelity="tile", verify=True)
    assert cyc.matched is True and tile.matched is True, cfg.name
    assert cyc.cycles == tile.cycles and np.array_equal(cyc.c, tile.c), cfg.name
