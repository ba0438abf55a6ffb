"""The batch cosim of `make regress` (cosim/regress.py): configs drawn from each engine's declared
space are valid and deterministic per seed; many cases in one simulator process give exactly the
cycles of the same cases run one by one; a failing case is named with its single-case reproduce
command. The 10,000-cases-per-engine run itself is `make regress` (README: count and wall time)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tpesim.cosim.regress import (MAX_PEAK, draw_cases, field_space, main, plan, regress,
                                  run_batch, sample_configs)
from tpesim.cosim.runner import run_cosim
from tpesim.errors import ConfigError
from tpesim.registry import ENGINES


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_sampled_configs_cover_the_declared_space(engine, seed):
    e = ENGINES[engine]
    space = field_space(e.config, e.examples)
    for ex in e.examples:  # every example's values are in the space
        for k, v in ex.items():
            assert v in space[k], (k, v)
    cfgs = sample_configs(engine, np.random.default_rng(seed), 12)
    assert len({c.name for c in cfgs}) == 12
    assert all(c.peak_macs_per_cycle <= MAX_PEAK for c in cfgs)
    again = sample_configs(engine, np.random.default_rng(seed), 12)
    assert [c.to_json() for c in again] == [c.to_json() for c in cfgs]
    # every choice field with more than one value takes at least two across 60 draws
    many = sample_configs(engine, np.random.default_rng(seed + 1), 60, tries=60000)
    for k, vals in space.items():
        if 1 < len(vals) <= 8:
            assert len({getattr(c, k) for c in many}) >= 2, k


def test_plan_splits_cases_and_logs_seeds():
    jobs = plan(["systolic", "adder_tree"], 25, 4, seed=9)
    assert [sum(len(cs) for n, _, cs in jobs if n == name) for name in ("systolic",
                                                                         "adder_tree")] == [25, 25]
    assert plan(["systolic", "adder_tree"], 25, 4, seed=9)[0][2] == jobs[0][2]
    # one engine's draw does not depend on which other engines run
    alone = plan(["adder_tree"], 25, 4, seed=9)
    assert [c.to_json() for _, c, _ in alone] == [c.to_json() for n, c, _ in jobs
                                                   if n == "adder_tree"]
    for _, cfg, cases in jobs:
        for c in cases:
            assert set(c) == {"seed", "tiles", "kmax", "p_valid", "p_ready"}
            assert 0 <= c["seed"] < 2**32 and 1 <= c["tiles"] <= 4
    with pytest.raises(ConfigError, match="seed must be an integer from 0 to 2\\*\\*32 - 1"):
        plan(["systolic"], 1, 1, seed=-1)


@pytest.mark.cosim
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_batch_equals_single_cases(engine, seed, tmp_path):
    """One simulator process running a batch gives each case exactly the cycles of that case run
    alone (each case starts from a reset with a fresh model), every port equal every cycle."""
    rng = np.random.default_rng(seed)
    (cfg,) = sample_configs(engine, rng, 1, max_peak=16)
    cases = draw_cases(cfg, rng, 5)
    res = run_batch(cfg, cases, sim="icarus", build_root=tmp_path)
    assert (res.status, res.passed, res.message) == ("pass", 5, "")
    singles = [run_cosim(cfg, sim="icarus", seed=c["seed"], tiles=c["tiles"], kmax=c["kmax"],
                         p_valid=c["p_valid"], p_ready=c["p_ready"], waves=False,
                         build_root=tmp_path).cycles for c in cases[:2]]
    assert res.case_cycles[:2] == singles
    assert res.cycles == sum(res.case_cycles)


@pytest.mark.cosim
def test_batch_failure_names_the_case_and_its_reproduce_command(tmp_path):
    cfg = ENGINES["systolic"].config(rows=2, cols=3)
    cases = draw_cases(cfg, np.random.default_rng(4), 3)
    res = run_batch(cfg, cases, sim="icarus", build_root=tmp_path, inject_fault=9)
    assert res.status == "fail" and res.passed == 0
    assert res.message.startswith("cycle 9: port out_c lane 0:")
    c = cases[0]
    assert res.failed_case == {"index": 0, **c}
    assert f"--seed {c['seed']} --tiles {c['tiles']} --kmax {c['kmax']}" in res.repro
    assert res.repro.startswith("tpesim cosim systolic --rows 2 --cols 3 ")


@pytest.mark.cosim
def test_regress_cli_logs_every_case(tmp_path, capsys):
    log = tmp_path / "log.jsonl"
    assert main(["--engines", "systolic", "--cases", "5", "--configs", "2", "--sim", "icarus",
                 "--seed", "3", "--jobs", "2", "--out-dir", str(tmp_path / "b"), "--log",
                 str(log)]) == 0
    out = capsys.readouterr().out
    assert "cosim regression: seed 3" in out and "systolic: 5/5 cases passed on 2 configs" in out
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines[0]["regress"]["seed"] == 3
    assert sum(len(x["case_list"]) for x in lines[1:]) == 5
    assert all(x["status"] == "pass" for x in lines[1:])
    with pytest.raises(ConfigError, match="cases must be a positive integer, not 0"):
        regress(["systolic"], cases=0)
