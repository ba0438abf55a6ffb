"""SRAM beyond two blocks gives reuse (issue 7): an operand's DRAM reads never grow as its SRAM
grows, and reach the compulsory traffic (every block once) when the SRAM holds the whole operand;
for every registered engine, with the tile level equal to the cycle level at every size."""

import numpy as np
import pytest

from tpesim.kernels.gemm import random_operands, run_gemm
from tpesim.memory import MemoryConfig
from tpesim.registry import ENGINES

CONFIGS = [pytest.param(e, e.examples[0], id=e.name) for e in ENGINES.values()]


@pytest.mark.parametrize("eng,fields", CONFIGS)
def test_dram_reads_fall_monotonically_to_compulsory(eng, fields, seed):
    cfg = eng.config(**fields)
    m, n, k = 13, 11, 29
    timing = eng.load("timing")(cfg)
    stream = timing.gemm_stream(m, n, k)
    a, b = random_operands(cfg, m, n, k, seed)
    gained = False
    for use in stream.inputs:
        op = use.name
        biggest = int(np.max(use.block_bytes))
        # compulsory: each distinct block's bytes once
        _, idx = np.unique(use.block, return_index=True)
        compulsory = int(np.asarray(use.block_bytes)[idx].sum())
        reads = []
        for nblocks in range(2, len(idx) + 2):
            mem = MemoryConfig(**{f"sram_kib_{op}": nblocks * biggest / 1024})
            tile = run_gemm(cfg, a, b, memory=mem, fidelity="tile")
            reads.append(getattr(tile, f"dram_read_bytes_{op}"))
            if nblocks in (2, 3, len(idx) + 1):   # the cycle level agrees (same policy, same bytes)
                cyc = run_gemm(cfg, a, b, memory=mem)
                assert cyc.matched and cyc.to_dict()[f"dram_read_bytes_{op}"] == reads[-1]
                assert cyc.cycles == tile.cycles, f"{cfg.name} {op} {nblocks} blocks seed {seed}"
        assert all(x >= y for x, y in zip(reads, reads[1:])), (cfg.name, op, reads)
        assert reads[-1] == compulsory, (cfg.name, op, reads)
        # every size between two blocks and the whole operand pays off (the known future decides)
        gained |= len(set(reads)) > 2 or (len(reads) == 2 and reads[0] > reads[1])
        unbounded = run_gemm(cfg, a, b, fidelity="tile")
        assert getattr(unbounded, f"dram_read_bytes_{op}") == compulsory
    assert gained, f"{cfg.name}: no operand is read twice in this GEMM, the test shows nothing"
