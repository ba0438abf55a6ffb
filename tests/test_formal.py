"""Formal proofs of every engine's datapath (tpesim.rtl.formal, docs/formal.md): each proof must
pass on the Amaranth datapath and its broken twin must be refuted by the same harness (a
counterexample from reset, naming the failed assertion), so a proof that cannot fail proves
nothing. Small widths in `make test` (3-25 s each with yices, mostly tool start-up); wider in
`make regress`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tpesim.errors import ConfigError
from tpesim.registry import ENGINES, get_engine
from tpesim.rtl import formal

pytestmark = pytest.mark.skipif(not formal.sby_available(),
                                reason="yowasp-sby, yices or z3 missing (make setup installs them)")


def _cases(kind: str):
    out = []
    for p in formal.proofs():
        for fields in getattr(p, kind):
            cfg = get_engine(p.engine).config(**fields)
            marks = [pytest.mark.regress] if kind == "regress" else []
            out.append(pytest.param(p, cfg, id=f"{p.id}-{cfg.name}", marks=marks))
    return out


CASES = _cases("fast") + _cases("regress")
# the 16-lane tree takes minutes (regress)
TIMEOUT_S = 1800


@pytest.mark.parametrize("proof,cfg", CASES)
def test_datapath_proved(proof, cfg):
    res = formal.prove(proof, cfg, timeout_s=TIMEOUT_S)
    assert res.status == "proved", (proof.id, cfg.name, res.failed, res.log[-2000:])
    assert res.failed == []


@pytest.mark.parametrize("proof,cfg", CASES)
def test_broken_twin_refuted(proof, cfg, tmp_path):
    res = formal.prove(proof, cfg, broken=True, workdir=tmp_path, timeout_s=TIMEOUT_S)
    assert res.status == "refuted", (proof.id, cfg.name, res.log[-2000:])
    # a counterexample from reset, naming the assertion it breaks, with its trace
    assert res.failed and not any(f.startswith("check_") for f in res.failed), res.failed
    assert res.trace is not None and res.trace.endswith(".vcd")


def test_opt2_overflow_is_the_tree_counterexample(tmp_path):
    """The published OPT2 bit-weight tree (13 bits for 16 partial products of 10 bits) is refuted:
    the exact sum of 16 leaves needs 14 bits."""
    proof = next(p for p in formal.proofs("adder_tree") if p.name == "reduction_tree")
    cfg = get_engine("adder_tree").config(lanes=16, cols=1, encoding="ent")
    res = formal.prove(proof, cfg, broken=True, workdir=tmp_path)
    assert res.status == "refuted" and res.failed == ["tree_sum"]


def test_every_proof_names_a_registered_engine_and_valid_configs():
    assert formal.PROOFS and set(formal.PROOFS) <= set(ENGINES)
    for p in formal.proofs():
        assert p.fast, p.id
        assert p.claim and p.broken and p.solver in formal.SOLVERS
        for fields in p.fast + p.regress:
            assert get_engine(p.engine).config(**fields).engine == p.engine


def test_bad_input_is_one_line():
    proof = formal.proofs("systolic")[0]
    with pytest.raises(ConfigError, match="cfg must be a systolic config"):
        formal.prove(proof, get_engine("adder_tree").config())
    with pytest.raises(ConfigError, match="engine must be one of .* not 'nope'"):
        formal.proofs("nope")
    lut = formal.proofs("lut")[0]
    with pytest.raises(ConfigError, match="integer activations"):
        lut.miter(get_engine("lut").config(act="fp16", w_interp="pm1"), False)
    nm = formal.proofs("nm_sparse")[0]
    with pytest.raises(ConfigError, match="needs a window of 2 or more lanes, not 1"):
        nm.miter(get_engine("nm_sparse").config(sparsity="dense"), True)
    pre = next(p for p in formal.proofs("systolic") if p.name == "preload_pe")
    with pytest.raises(ConfigError, match="single-buffered"):
        pre.miter(get_engine("systolic").config(dataflow="ws", double_buffer=True), False)
    col = next(p for p in formal.proofs("adder_tree") if p.name == "ent_column")
    with pytest.raises(ConfigError, match="needs encoding 'ent' .* not encoding 'plain'"):
        col.miter(get_engine("adder_tree").config(lanes=4, cols=1), False)
    pow2 = next(p for p in formal.proofs("lut") if p.name == "fp16_pow2")
    with pytest.raises(ConfigError, match="scaler proof covers fp16 activations, not act 'int8'"):
        pow2.miter(get_engine("lut").config(), False)
    with pytest.raises(ConfigError, match="solver must be one of 'yices', 'z3', not 'cvc9'"):
        formal.prove(proof, get_engine("systolic").config(rows=1, cols=1), solver="cvc9")


def test_a_renamed_internal_signal_is_a_tool_error():
    """The N:M and EN-T column proofs read signals inside the datapath by name: a name the RTL
    no longer has stops the proof (neither proved nor refuted), it is not skipped."""
    from amaranth.hdl import Fragment

    from tpesim.rtl.nm_sparse import SparseLane

    frag = Fragment.get(SparseLane(get_engine("nm_sparse").config(rows=1, cols=1)), None)
    assert formal._internal(frag, "act_0").name == "act_0"
    with pytest.raises(formal.FormalToolError, match="no internal signal 'act_9'"):
        formal._internal(frag, "act_9")
    with pytest.raises(formal.FormalToolError, match="no submodule 'tree_b9'"):
        formal._subfragment(frag, "tree_b9")


@pytest.mark.parametrize("solver", sorted(formal.SOLVERS))
def test_every_solver_gives_the_same_outcomes(solver, tmp_path):
    """Each PyPI solver through the same harness (a proof names the faster one): the N:M lane
    proved for every weight, its reversed-window twin refuted."""
    proof = formal.proofs("nm_sparse")[0]
    cfg = get_engine("nm_sparse").config(rows=1, cols=1, sparsity="2:4")
    assert formal.prove(proof, cfg, solver=solver).status == "proved"
    res = formal.prove(proof, cfg, broken=True, workdir=tmp_path, solver=solver)
    assert res.status == "refuted" and res.failed and res.failed[0].startswith("select_")


def test_time_limit_is_neither_proved_nor_refuted(tmp_path):
    """A proof cut by its time limit raises FormalToolError (never a pass), and its solver
    processes are ended with it."""
    proof = formal.proofs("lut")[0]
    cfg = get_engine("lut").config(tile_m=2, tile_n=2, w_bits=2, group=4)   # a minute or more
    with pytest.raises(formal.FormalToolError, match="ran past 2 s"):
        formal.prove(proof, cfg, workdir=tmp_path, timeout_s=2)
    # the kill is sent when the limit passes; the processes are gone once they have exited, which on
    # a loaded machine can take a moment (the clean-clone CI saw two still there): wait up to 20 s
    deadline = time.monotonic() + 20
    while True:
        left = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if str(tmp_path) in str((proc / "cwd").resolve()) and \
                        (proc / "stat").read_text().rsplit(") ", 1)[-1][:1] != "Z":
                    left.append(proc.name)
            except OSError:
                pass
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left
