"""`tpesim sweep`: spec parsing and one-line errors, one tiny sweep end to end (CSV, JSON, Pareto
plot, energy only when asked), resume after a kill (a subprocess killed mid-sweep loses nothing that
finished; the rerun skips it), a torn last line, and the same points on a 2-worker Dask cluster."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tpesim.errors import ConfigError, FileFormatError, TpesimError, WorkloadError
from tpesim.sweep import (KINDS, Kind, load_spec, main, parse_spec, pareto_front, point_key,
                          read_results, run_sweep)

ROOT = Path(__file__).resolve().parent.parent

TINY = """
[sweep]
name = "tiny"

[[engines]]
engine = "systolic"
rows = [4, 8]
cols = 4
dataflow = ["os", "ws"]

[[engines]]
engine = "adder_tree"
lanes = 8
cols = 4
encoding = ["plain", "ent"]

[[memory]]
sram_kib_a = 16
sram_kib_b = 16
sram_kib_c = 16
dram_bw = [8, 32]

[[workloads]]
kind = "gemm"
m = [64, 100]
n = 48
k = 80

[[workloads]]
kind = "scalesim"
topology = "{topo}"
format = "gemm"
layers = ["q_proj", "ffn1"]
"""
# two layers in SCALE-Sim's GEMM topology format (small: the test is about the sweep)
TOPOLOGY = "Layer, M, N, K,\nq_proj,40,24,64,\nout_proj,16,8,8,\nffn1,72,16,40,\n"


def _tiny(tmp_path: Path, extra: str = "") -> Path:
    topo = tmp_path / "small_encoder.csv"
    topo.write_text(TOPOLOGY)
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY.format(topo=topo) + extra)
    return spec


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_sweep_outputs_and_rerun_skips(tmp_path, capsys):
    spec = _tiny(tmp_path)
    out = tmp_path / "out"
    assert main([str(spec), "-o", str(out), "-j", "2"]) == 0  # the local process pool
    line = capsys.readouterr().out
    # 6 configs (systolic 2 x 2, adder tree 2) x 2 memories x 4 workloads
    assert "48 points, 0 already finished, 48 run" in line
    rows = _csv(out / "results.csv")
    assert len(rows) == 48 and all(r["status"] == "ok" for r in rows)
    assert not any(k.startswith("energy") for k in rows[0])  # no table: no energy fields
    # every row equals a direct tile-level run of the same point
    from tpesim import MemoryConfig, config_from_dict, time_gemm

    for r in rows[:: 7]:
        rec = read_results(out / "results.jsonl")[r["key"]]
        cfg = config_from_dict(rec["config"])
        direct = time_gemm(cfg, int(r["m"]), int(r["n"]), int(r["k"]),
                           memory=MemoryConfig(**rec["memory"]))
        assert int(r["cycles"]) == direct.cycles
        assert int(r["dram_read_bytes_a"]) == direct.dram_read_bytes_a
    assert {r["workload"] for r in rows} == {"gemm 64x48x80", "gemm 100x48x80",
                                             "small_encoder:q_proj",
                                             "small_encoder:ffn1"}
    meta = json.loads((out / "results.json").read_text())
    assert meta["points"] == 48 and meta["energy_table"] is None
    pareto = _csv(out / "pareto.csv")
    assert len(pareto) == 12 and any(p["pareto"] == "true" for p in pareto)
    assert "peak_macs_per_cycle" in pareto[0]  # no LUTs, no energy: peak MACs/cycle
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"

    # the rerun runs nothing and writes the same rows; with --energy every row gains energy fields
    before = (out / "results.jsonl").read_bytes()
    assert main([str(spec), "-o", str(out), "-j", "1", "--energy"]) == 0
    assert "48 points, 48 already finished, 0 run" in capsys.readouterr().out
    assert (out / "results.jsonl").read_bytes() == before
    rows2 = _csv(out / "results.csv")
    assert [r["cycles"] for r in rows2] == [r["cycles"] for r in rows]
    for r in rows2:
        assert r["energy_table"] == "horowitz-45nm"
        parts = sum(float(r[f"energy_{c}_pj"]) for c in ("mac", "sram", "dram"))
        assert float(r["energy_pj"]) == pytest.approx(parts)
    assert "total_energy_pj" in _csv(out / "pareto.csv")[0]


def test_spec_errors_are_one_line(tmp_path, capsys):
    spec = _tiny(tmp_path)
    base = spec.read_text()
    cases = [
        (base.replace('name = "tiny"', 'name = "tiny"\nfidelty = "tile"'),
         "[sweep] has no key 'fidelty'"),
        (base.replace('name = "tiny"', 'fidelity = "rtl"'),
         "[sweep] fidelity must be 'tile' or 'cycle', not 'rtl'"),
        (base.replace("rows = [4, 8]", "rowz = 4"), "[[engines]] #1 (systolic) has no key 'rowz'"),
        (base.replace("rows = [4, 8]", "rows = [0, -1]"),
         "[[engines]] #1 (systolic): rows must be a positive integer, not 0"),
        (base.replace('kind = "gemm"', 'kind = "gemv"'),
         "workload kind must be one of 'gemm', 'scalesim'"),
        (base.replace('"ffn1"', '"ffn9"'), "small_encoder.csv has no layer 'ffn9'"),
        (base.replace("m = [64, 100]", "m = []"), "m must list at least one value, not []"),
        (base + "\n[[bogus]]\n", "the spec has no key 'bogus'"),
        ("[[engines]\n", "malformed TOML"),
    ]
    for i, (text, want) in enumerate(cases):
        p = tmp_path / f"bad{i}.toml"
        p.write_text(text)
        with pytest.raises(TpesimError) as ei:
            load_spec(p)
        assert want in str(ei.value) and "\n" not in str(ei.value), (want, str(ei.value))
        assert main([str(p), "-o", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("tpesim: error: ") and want in err
    with pytest.raises(FileFormatError, match="no such file"):
        load_spec(tmp_path / "missing.toml")
    # a combination a config refuses is skipped with a note; the others run
    s = parse_spec(base.replace("cols = 4\ndataflow", "cols = 4\ndouble_buffer = [false, true]\n"
                                "dataflow"), name="x")
    assert len(s.configs) == 2 * 3 + 2 and any("double_buffer" in n for n in s.skipped)


def test_point_key_covers_what_a_result_depends_on():
    cfg, mem, w = {"engine": "systolic", "rows": 4}, {"dram_bw": 8}, {"kind": "gemm", "m": 4}
    k = point_key("gemm", cfg, mem, w, "tile", 0, version="1")
    assert k == point_key("gemm", dict(reversed(list(cfg.items()))), mem, w, "tile", 0,
                          version="1")
    assert k == point_key("gemm", cfg, mem, w, "tile", 5, version="1")  # seed: cycle level only
    for other in (point_key("gemm", {**cfg, "rows": 5}, mem, w, "tile", 0, version="1"),
                  point_key("gemm", cfg, {"dram_bw": 9}, w, "tile", 0, version="1"),
                  point_key("gemm", cfg, mem, {**w, "m": 5}, "tile", 0, version="1"),
                  point_key("gemm", cfg, mem, w, "cycle", 0, version="1"),
                  point_key("gemm", cfg, mem, w, "tile", 0, version="2")):
        assert other != k
    assert point_key("gemm", cfg, mem, w, "cycle", 0, version="1") != \
        point_key("gemm", cfg, mem, w, "cycle", 1, version="1")


def test_pareto_front_is_the_non_dominated_set(seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        pts = [tuple(map(float, p)) for p in rng.integers(0, 20, (int(rng.integers(1, 30)), 2))]
        front = set(pareto_front(pts))
        for i, p in enumerate(pts):
            dominated = any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in pts)
            # of equal points, the front keeps one
            first = all(q != p for q in pts[:i])
            assert (i in front) == (not dominated and first), (pts, sorted(front))


def test_missing_kind_module_is_one_line():
    kind = Kind("nope", expand="tpesim.sweep:gemm_expand", run="tpesim.sweep:gemm_run",
                requires="tpesim.kernels.no_such_module")
    with pytest.raises(WorkloadError) as ei:
        kind.load("run")
    assert str(ei.value) == ("workload kind 'nope' needs tpesim.kernels.no_such_module, which "
                             "this installation does not have")
    assert {"gemm", "scalesim", "llm"} <= set(KINDS)


KILL_SPEC = """
[sweep]
name = "kill"
fidelity = "cycle"
seed = 3

[[engines]]
engine = "systolic"
rows = 4
cols = 4
dataflow = ["os", "ws"]

[[workloads]]
kind = "gemm"
m = [160, 192, 224, 256]
n = 192
k = 192
"""


def test_killed_sweep_loses_nothing_and_resumes(tmp_path):
    """A sweep killed (SIGKILL) mid-run keeps every point it finished; a torn last line is
    dropped; the rerun runs only the rest, and the results equal the tile level's cycles."""
    spec = tmp_path / "kill.toml"
    spec.write_text(KILL_SPEC)
    out = tmp_path / "out"
    jsonl = out / "results.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "tpesim.sweep", str(spec), "-o", str(out),
                             "-j", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if jsonl.exists() and jsonl.read_bytes().count(b"\n") >= 2:
                break
            if proc.poll() is not None:
                pytest.fail(f"the sweep ended before it was killed: {proc.stderr.read()!r}")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    finished = read_results(jsonl)
    assert 2 <= len(finished) < 8
    # a write torn by a kill: no newline, never a finished point; the rerun drops it
    with open(jsonl, "ab") as f:
        f.write(b'{"key": "torn", "status": "ok", "res')
    res = run_sweep(load_spec(spec), out, workers=1)
    assert (res.points, res.skipped, res.ran, res.failed) == (8, len(finished), 8 - len(finished),
                                                              [])
    records = read_results(jsonl)
    assert len(records) == 8 and "torn" not in records
    for key, rec in finished.items():  # finished points were kept as they were
        assert records[key] == rec
    from tpesim import config_from_dict, time_gemm

    for row in res.rows:
        assert row["status"] == "ok" and row["matched"] is True and row["fidelity"] == "cycle"
        rec = records[row["key"]]
        tile = time_gemm(config_from_dict(rec["config"]), row["m"], row["n"], row["k"])
        assert row["cycles"] == tile.cycles


def test_results_file_is_locked_and_checked(tmp_path):
    from tpesim.sweep import ResultsFile

    store = ResultsFile(tmp_path / "r.jsonl")
    try:
        with pytest.raises(ConfigError, match="is in use by another sweep"):
            ResultsFile(tmp_path / "r.jsonl")
    finally:
        store.close()
    (tmp_path / "bad.jsonl").write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(FileFormatError, match="line 2 is not a sweep result"):
        read_results(tmp_path / "bad.jsonl")


def test_dask_cluster_runs_the_same_points(tmp_path):
    """The same sweep on a Dask LocalCluster (2 worker processes on localhost, reached through
    its scheduler address) gives the same records as the local run; a rerun skips them."""
    distributed = pytest.importorskip("distributed")
    spec = load_spec(_tiny(tmp_path))
    local = run_sweep(spec, tmp_path / "local", workers=1, plot=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        res = run_sweep(spec, tmp_path / "dask", scheduler=cluster.scheduler_address,
                        plot=False)
        assert (res.ran, res.failed) == (48, [])
        hosts = {r["host"] for r in read_results(tmp_path / "dask" / "results.jsonl").values()}
        assert hosts == {os.uname().nodename}
        again = run_sweep(spec, tmp_path / "dask", scheduler=cluster.scheduler_address,
                          plot=False)
        assert (again.skipped, again.ran) == (48, 0)
    drop = {"wall_s"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in res.rows] == \
        [{k: v for k, v in r.items() if k not in drop} for r in local.rows]


def test_llm_points_equal_direct_runs(tmp_path):
    """The llm kind runs tpesim.kernels.llm's whole-model prefill + decode per config."""
    from tpesim import MemoryConfig, SystolicConfig
    from tpesim.kernels.llm import run_llm

    spec = tmp_path / "llm.toml"
    spec.write_text("""
[[engines]]
engine = "systolic"
rows = [8, 16]
cols = 8

[[memory]]
sram_kib_a = 256
sram_kib_b = 256
sram_kib_c = 256
dram_bw = 32

[[workloads]]
kind = "llm"
model = "gpt2"
prefill = 16
decode = [1, 2]
""")
    res = run_sweep(load_spec(spec), tmp_path / "out", workers=1, plot=False)
    assert (res.ran, res.errors) == (4, 0)
    mem = MemoryConfig(sram_kib_a=256, sram_kib_b=256, sram_kib_c=256, dram_bw=32)
    row = next(r for r in res.rows if r["cfg_rows"] == 16 and r["wl_decode"] == 2)
    direct = run_llm("gpt2", prefill=16, decode=2, engine=SystolicConfig(rows=16, cols=8),
                     memory=mem).summary()
    assert row["cycles"] == direct["cycles"] and row["ttft_cycles"] == direct["ttft_cycles"]
    bad = tmp_path / "bad.toml"
    bad.write_text(spec.read_text().replace('model = "gpt2"', 'model = "gpt5"'))
    with pytest.raises(ConfigError, match="model must be one of .*not 'gpt5'"):
        load_spec(bad)


def test_synth_figures_join_their_config_rows(tmp_path, monkeypatch):
    """`synth = {...}` in [sweep] runs the synthesis hook (tpesim.kernels.synth.resources) once
    per engine config; its figures join that config's rows as synth_* and pareto.png plots
    cycles against LUTs. (The hook's module is replaced here: the real flow takes minutes.)"""
    import types

    calls = []

    def resources(cfg, **opts):
        calls.append((cfg.name, opts))
        return {"luts": 100 * cfg.peak_macs_per_cycle + cfg.rows, "ffs": 7, "fmax_mhz": 99.5,
                "target": opts.get("target", "ecp5-45k")}

    monkeypatch.setitem(sys.modules, "tpesim.kernels.synth",
                        types.SimpleNamespace(resources=resources))
    text = _tiny(tmp_path).read_text()
    text = text.replace('name = "tiny"', 'name = "tiny"\nsynth = {target = "ice40", pnr = false}')
    text = text[:text.index("[[engines]]\nengine = \"adder_tree\"")] + \
        text[text.index("[[memory]]"):]
    spec = tmp_path / "synth.toml"
    spec.write_text(text)
    res = run_sweep(load_spec(spec), tmp_path / "out", workers=1)
    assert len(calls) == 4 and all(o == {"target": "ice40", "pnr": False} for _, o in calls)
    assert res.points == 4 + 4 * 2 * 4 and len(res.rows) == 32
    for r in res.rows:
        assert r["synth_luts"] == 100 * r["peak_macs_per_cycle"] + r["cfg_rows"]
        assert r["synth_target"] == "ice40"
    pareto = _csv(tmp_path / "out" / "pareto.csv")
    assert "synth_luts" in pareto[0]
    again = run_sweep(load_spec(spec), tmp_path / "out", workers=1, plot=False)
    assert (again.ran, len(calls)) == (0, 4)  # synthesis points are resumable too
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("pnr = false", "place = false"))
    with pytest.raises(ConfigError, match="\\[sweep\\] synth has no key 'place'"):
        load_spec(bad)


def _flaky_expand(table, base):
    return [{"kind": "flaky", "name": f"flaky {i}", "i": i} for i in range(3)]


def _flaky_run(cfg, w, memory, fidelity, seed):
    if w["i"] == 1:
        raise RuntimeError("worker lost")
    if w["i"] == 2:
        raise WorkloadError("does not fit")
    return {"cycles": 10, "macs": 1}


def test_a_crashed_point_is_not_recorded_and_is_retried(tmp_path, monkeypatch, capsys):
    """A point whose run raises a tpesim error is a recorded result (status error, not retried);
    any other exception is reported, not recorded, exits 1, and the rerun retries it."""
    monkeypatch.setitem(KINDS, "flaky", Kind("flaky", expand="tests.test_sweep:_flaky_expand",
                                             run="tests.test_sweep:_flaky_run"))
    monkeypatch.syspath_prepend(str(ROOT))
    spec = tmp_path / "f.toml"
    spec.write_text('[[engines]]\nengine = "systolic"\n[[workloads]]\nkind = "flaky"\n')
    out = tmp_path / "o"
    assert main([str(spec), "-o", str(out), "-j", "1", "--no-plot"]) == 1
    cap = capsys.readouterr()
    assert "3 points, 0 already finished, 2 run" in cap.out and "1 recorded errors, 1 failed" \
        in cap.out
    assert "failed (not recorded; a rerun retries it): flaky 1 on " in cap.err
    assert "RuntimeError: worker lost" in cap.err
    recs = read_results(out / "results.jsonl")
    assert sorted(r["workload"]["name"] for r in recs.values()) == ["flaky 0", "flaky 2"]
    assert {r["workload"]["name"]: r["status"] for r in recs.values()}["flaky 2"] == "error"
    assert main([str(spec), "-o", str(out), "-j", "1", "--no-plot"]) == 1
    assert "3 points, 2 already finished, 0 run" in capsys.readouterr().out
