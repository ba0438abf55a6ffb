"""The LUT bench adapter (cosim/bench/lut.py): its chunked model run equals one call on the whole
stream and numpy's per-tile A @ W, and the harness gets the codes the model's values come from."""

from __future__ import annotations

import numpy as np
import pytest

from tpesim.cosim.bench.lut import LutAdapter
from tpesim.cosim.bench.stimulus import checksum_rows
from tpesim.engines.lut import LutConfig, LutModel, decode_weights


@pytest.mark.parametrize("cfg", [LutConfig(tile_m=2, tile_n=5, w_bits=2),
                                 LutConfig(tile_m=3, tile_n=4, w_bits="ternary", pipe_stages=2)],
                         ids=lambda c: c.name)
def test_chunked_stream_equals_one_call_and_numpy(cfg):
    ad = LutAdapter()
    s = ad.make_stream(cfg, k=6, tiles_per_block=3, reps=4, seed=7)
    run = ad.run_model(cfg, s, keep_rows=True)
    w = decode_weights(cfg, s.b)
    oc, st, cyc = LutModel(cfg).run_beats(np.concatenate([s.a] * s.reps),
                                          np.concatenate([w] * s.reps),
                                          np.concatenate([s.last] * s.reps))
    assert run.cycles == cyc and run.rows == len(oc) == ad.expected_rows(cfg, s)
    assert np.array_equal(run.out_rows, oc)
    assert run.checksum == checksum_rows(oc, 32)
    M, N, g = cfg.tile_m, cfg.tile_n, cfg.group
    tiles = []
    for t in range(s.tiles // s.reps):
        a = s.a[t * 6:(t + 1) * 6].reshape(6, M, g).transpose(1, 0, 2).reshape(M, 6 * g)
        tiles.append(a @ w[t * 6:(t + 1) * 6].reshape(6 * g, N))
    assert np.array_equal(oc, np.concatenate(tiles * s.reps))
    beats = ad.in_beats(cfg, s)["in"]
    assert np.array_equal(beats[0][1], s.b) and beats[0][1].max() < 1 << cfg.code_bits
