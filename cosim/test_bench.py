"""The `make bench` machinery itself (not its numbers): tile-level rows in a fresh process, report rendering.

SCALE-Sim is not run here (it needs its own venv and seconds per GEMM); its rows are rendered from
hand-made values, including a compat mismatch, which must show as a failure.
"""

from __future__ import annotations

import json

from tpesim.cosim.bench.cases import SCALESIM_TARGETS, TILE_TARGETS, TileCase, tile_cases
from tpesim.cosim.bench.report import markdown, scalesim_table, tile_table
from tpesim.cosim.bench.scalesim import ScaleSimRow
from tpesim.cosim.bench.tile import measure_tile, run_tile_suite


def _info() -> dict:
    keys = ("date", "cpu", "cores", "os", "python", "verilator", "cocotb", "cython", "numpy", "amaranth",
            "gxx", "iverilog", "ccache", "load_avg")
    return {k: "x" for k in keys}


def test_tile_row_in_fresh_process():
    from tpesim.timing import tile_gemm

    case = TileCase("t", 40, 24, 33, 8, 8, "os", target=True)
    (row,) = run_tile_suite([case], reps=2, seconds=0.5, log=lambda s: None, targets=TILE_TARGETS)
    assert row.status == "ok", row.error
    assert row.cycles == tile_gemm(40, 24, 33, 8, 8).cycles
    assert row.reps == 2 and row.wall_first_s > 0 and row.rss_peak_bytes > row.rss_base_bytes / 2
    assert {t["metric"] for t in row.targets} == {"wall_first_s", "rss_peak_bytes"}
    assert all(t["met"] for t in row.targets)


def test_tile_row_with_memory_stalls():
    mem = {"sram_kib_a": 64, "sram_kib_b": 64, "sram_kib_c": 64, "dram_bw": 4, "dram_latency": 10}
    row = measure_tile(TileCase("m", 64, 64, 64, 8, 8, "os", memory=mem), reps=1, seconds=0.5)
    assert row.status == "ok", row.error
    assert row.event_run and row.stall_cycles > 0


def test_unknown_dataflow_and_bad_memory_are_errors():
    row = measure_tile(TileCase("x", 8, 8, 8, 4, 4, "xx"), reps=1)
    assert row.status == "error" and "xx" in row.error
    row = measure_tile(TileCase("bad", 8, 8, 8, 4, 4, "os", memory={"dram_bw": -1}), reps=1)
    assert row.status == "error"


def test_default_tile_cases_cover_the_issue_targets():
    cases = tile_cases()
    big = [c for c in cases if c.target]
    assert {c.dataflow for c in big} == {"os", "ws", "is"}
    assert all((c.m, c.n, c.k, c.rows, c.cols) == (4096, 4096, 4096, 128, 128) for c in big)
    assert any(c.memory for c in big)


def test_report_renders_all_suites():
    case = TileCase("t", 16, 16, 16, 4, 4, "os", target=True)
    trows = run_tile_suite([case, TileCase("w", 16, 16, 16, 4, 4, "xx")], reps=1, seconds=0.2,
                           log=lambda s: None, targets=TILE_TARGETS)
    ok = ScaleSimRow("512^3-32x32-os", 512, 512, 512, 32, 32, "os", True, scalesim_total_cycles=146943,
                     scalesim_stall_cycles=0, scalesim_wall_s=30.0, scalesim_rss_bytes=5 << 27,
                     compat_cycles=146943, compat_match=True, tile_status="ok", tile_cycles=131167,
                     tile_wall_first_s=0.001, tile_wall_median_s=0.0005, delta_cycles=131167 - 146943,
                     speedup=30000.0, speedup_events=9000.0, reason="why")
    ok.targets = [{"text": t.text, "metric": t.metric, "op": t.op, "goal": t.value,
                   "value": getattr(ok, t.metric), "met": t.check(ok)} for t in SCALESIM_TARGETS]
    bad = ScaleSimRow("512^3-32x32-ws", 512, 512, 512, 32, 32, "ws", True, scalesim_total_cycles=155135,
                      scalesim_stall_cycles=0, scalesim_wall_s=30.0, scalesim_rss_bytes=1 << 29,
                      compat_cycles=155134, compat_match=False, tile_status="error",
                      tile_error="TpesimError: no")
    md = markdown([], _info(), {"total_s": 1.0, "suites": ["tile", "scalesim"]}, trows, [ok, bad],
                  {"scalesim": "3.0.0", "numpy": "2.3.5", "python": "3.11", "venv": ".venv-scalesim"})
    assert "**30,000×**" in md and "**met**" in md
    assert "**NO (the bench fails)**" in md and "**NO**" in scalesim_table([bad])
    json.dumps([ok.__dict__, bad.__dict__])


def test_train_section_is_carried_over(tmp_path):
    """The training suite's section is replaced when re-run and kept (marked carried) when not."""
    import json

    from tpesim.cosim.bench.train import SECTION, append_train_section

    md, js = tmp_path / "bench.md", tmp_path / "bench_train.json"
    row = {"model": "mlp", "sparsity": "2:8", "epochs": 2, "wall_s": 3.0, "cpu_s": 2.0,
           "load_avg": 1.0, "status": "ok", "accuracy": 0.9, "dense_accuracy": 0.91, "speedup": 1.9}
    js.write_text(json.dumps({"date": "2026-12-02 16:00 UTC", "rows": [row]}))
    md.write_text("# tpesim benchmark\n\n## Targets\n")
    append_train_section(md, js, measured=True)
    append_train_section(md, js, measured=False)
    text = md.read_text()
    assert text.count(SECTION) == 1 and "Carried over from the run of 2026-12-02 16:00 UTC" in text
    assert "| mlp | 2:8 | 2 | 3.0 | 2.0 | 0.9000 | 0.9100 | 1.900x | 1.0 |" in text
    assert text.startswith("# tpesim benchmark\n\n## Targets")
