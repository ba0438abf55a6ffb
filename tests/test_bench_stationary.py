"""The WS/IS cycle bench's model path (cosim.bench.cases.StationaryAdapter): streaming a block of folds
`reps` times in chunked run_folds calls must give what one call on the whole, concatenated streams gives
(the Verilator harness streams both ports continuously; the bench fails unless they agree)."""

from __future__ import annotations

import numpy as np
import pytest

from tpesim.cosim.bench.cases import StationaryAdapter
from tpesim.cosim.bench.stimulus import checksum_rows, make_fold_stream
from tpesim.engines.systolic import PreloadModel, SystolicConfig


@pytest.mark.parametrize("db", [False, True])
@pytest.mark.parametrize("dataflow", ["ws", "is"])
def test_chunked_fold_stream_equals_one_call(db, dataflow):
    cfg = SystolicConfig(rows=4, cols=3, dataflow=dataflow, double_buffer=db)
    lo, hi = cfg.in_range
    s = make_fold_stream(cfg.rows, cfg.cols, lo, hi, k=5, folds_per_block=3, reps=4, seed=7)
    run = StationaryAdapter().run_model(cfg, s, keep_rows=True)
    oc, st, cyc = PreloadModel(cfg).run_folds(np.concatenate([s.loads] * s.reps),
                                                 np.concatenate([s.a] * s.reps),
                                                 np.concatenate([s.last] * s.reps))
    assert run.cycles == cyc and run.rows == len(oc) == s.nbeats
    assert np.array_equal(run.out_rows, oc)
    assert run.checksum == checksum_rows(oc, cfg.acc_bits)
    sub = s.prefix(2)
    assert sub.reps == 1 and sub.tiles == 2 and sub.loads.shape == (2 * cfg.rows, cfg.cols)
