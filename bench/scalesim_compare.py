#!/usr/bin/env python3
"""Ground truth for tpesim's SCALE-Sim compat mode: run the real SCALE-Sim v3.0.0 and compare.

Every case is written to disk with kernels.scalesim's own writers (`format_config`,
`format_topology`), run by the real SCALE-Sim through its Python API (no traces), and its
COMPUTE_REPORT / DETAILED_ACCESS_REPORT are compared with `kernels.scalesim.scalesim_compute`
(closed forms), and SCALE-Sim's own parse of the topology with `kernels.scalesim.read_topology`.

Needs the SCALE-Sim venv (git-ignored; numpy 2.4 breaks scalesim 3.0.0):

    python3 -m venv bench/scalesim_venv
    bench/scalesim_venv/bin/pip install scalesim==3.0.0 "numpy<2.4"
    bench/scalesim_venv/bin/python bench/scalesim_compare.py          # -> bench/scalesim_compare.md
    bench/scalesim_venv/bin/python bench/scalesim_compare.py --quick  # only the tiny cases

SCALE-Sim simulates ~5k cycles/s (32x32), so every case is chosen to finish in seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import random
import resource
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernels.scalesim import (  # noqa: E402
    Layer, ScaleSimConfig, format_config, format_topology, parse_topology, read_topology,
    scalesim_compute,
)

WORK = ROOT / "bench" / "work" / "scalesim_compare"
MAX_CASE_CYCLES = 150_000  # keep every SCALE-Sim run to seconds


@dataclass
class Case:
    label: str
    group: str
    kind: str  # "conv" or "gemm"
    layers: list[Layer]
    rows: int
    cols: int
    dataflow: str
    sparsity_support: bool = False
    slug: str = field(default="", init=False)

    def est_cycles(self) -> int:
        sp = lambda ly: ly.sparsity if self.sparsity_support else (1, 1)  # noqa: E731
        return sum(scalesim_compute(ly.M, ly.N, ly.K, self.rows, self.cols, self.dataflow,
                                    sparsity=sp(ly)).compute_cycles for ly in self.layers)


def _shipped(name: str, kind: str, layer_name: str) -> Layer:
    for ly in read_topology(ROOT / "kernels" / "workloads" / name, kind=kind):
        if ly.name == layer_name:
            return ly
    raise KeyError(layer_name)


def build_cases(quick: bool, seed: int, n_random: int) -> list[Case]:
    cases: list[Case] = []
    dfs = ("os", "ws", "is")
    # ISPASS'20 Fig. 4 single-fold validation: 1xN ifmap, 1x1 filter, N channels, N filters, NxN.
    for n in (4, 8, 16, 32):
        ly = Layer(f"test_valid_{n}", 1, n, 1, 1, n, n, 1)
        cases += [Case(f"ISPASS N={n}", "ispass", "conv", [ly], n, n, df) for df in dfs]
    cases += [Case("GEMM 64^3", "scalesim.md 8(a)", "gemm", [Layer.gemm("g64", 64, 64, 64)],
                   8, 8, df) for df in dfs]
    # Conv quirks: SCALE-Sim's ceil ofmap with a stride that does not divide (ifmap - filter),
    # rectangular everything, and a depthwise ("DP") layer split per channel.
    cases += [Case("conv 16x16x8 3x3x16 s2", "conv quirks", "conv",
                   [Layer("conv_s2", 16, 16, 3, 3, 8, 16, 2)], 8, 8, df) for df in dfs]
    cases += [Case("conv 12x20x3 3x5x10 s1, 8x16 array", "conv quirks", "conv",
                   [Layer("conv_rect", 12, 20, 3, 5, 3, 10, 1)], 8, 16, df) for df in dfs]
    dp_text = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
               "Num Filter, Strides,\nDPconv,10,10,3,3,4,1,1,\n")
    cases += [Case("depthwise DPconv 10x10x4 3x3", "conv quirks", "conv",
                   parse_topology(dp_text, kind="conv", name="dp.csv"), 8, 8, df) for df in dfs]
    # Layer-wise N:M sparsity (SparsitySupport on): K shrinks to N of every M.
    cases += [Case("GEMM 64^3 2:4 sparse", "sparsity", "gemm",
                   [Layer.gemm("g64s", 64, 64, 64, sparsity=(2, 4))], 8, 8, df,
                   sparsity_support=True) for df in dfs]
    cases += [Case("GEMM 40x24x70 2:4 sparse", "sparsity", "gemm",
                   [Layer.gemm("g70s", 40, 24, 70, sparsity=(2, 4))], 8, 8, df,
                   sparsity_support=True) for df in dfs]
    if not quick:
        # Layers of the shipped workloads (kernels/workloads), on arrays where they run in seconds.
        qk = _shipped("bert_base_encoder.csv", "gemm", "qk_t_head0")
        av = _shipped("bert_base_encoder.csv", "gemm", "av_head0")
        cases += [Case("BERT qk_t_head0", "shipped", "gemm", [qk], 32, 32, df) for df in dfs]
        cases += [Case("BERT av_head0", "shipped", "gemm", [av], 32, 32, df) for df in dfs]
        ib = _shipped("resnet50.csv", "conv", "IB5b_3")
        fc = _shipped("resnet50.csv", "conv", "FC1000")
        cb = _shipped("resnet50.csv", "conv", "CB5a_2")
        cases += [Case("ResNet-50 IB5b_3", "shipped", "conv", [ib], 128, 128, df) for df in dfs]
        cases += [Case("ResNet-50 FC1000", "shipped", "conv", [fc], 128, 128, df) for df in dfs]
        cases += [Case("ResNet-50 CB5a_2 (3x3 s2)", "shipped", "conv", [cb], 128, 128, df)
                  for df in ("os", "is")]
        c1 = _shipped("resnet50.csv", "conv", "Conv1")
        cases += [Case("ResNet-50 Conv1 (7x7 s2, 229 pre-padded)", "shipped", "conv", [c1], 128,
                       128, df) for df in ("os", "ws")]
        q = _shipped("llama2_7b_decoder.csv", "gemm", "decode_q_proj")
        cases += [Case("Llama-2-7B decode_q_proj (GEMV)", "shipped", "gemm", [q], 128, 128, "os")]
        # Random GEMMs on assorted (also non-square) arrays.
        rng = random.Random(seed)
        arrays = [(4, 4), (8, 8), (8, 16), (16, 8), (16, 16), (12, 20), (32, 32), (5, 7)]
        i = 0
        while i < n_random:
            m, n, k = (rng.randint(1, 160) for _ in range(3))
            r, c = rng.choice(arrays)
            case = Case(f"random {i}", "random", "gemm", [Layer.gemm(f"r{i}", m, n, k)], r, c,
                        dfs[i % 3])
            if case.est_cycles() <= 25_000:
                cases.append(case)
                i += 1
    for j, case in enumerate(cases):
        case.slug = f"c{j:03d}_{case.dataflow}"
        if case.est_cycles() > MAX_CASE_CYCLES:
            raise SystemExit(f"case {case.label} {case.dataflow}: {case.est_cycles()} cycles is "
                             f"too slow for SCALE-Sim")
    return cases


def _read_report(path: Path) -> list[list[str]]:
    with open(path) as f:
        rows = list(csv.reader(f))
    return [[v.strip() for v in row if v.strip() != ""] for row in rows[1:] if any(row)]


def run_case(case: Case) -> dict:
    """Run SCALE-Sim on one case (in a worker process); return its numbers and SCALE-Sim's parse."""
    from scalesim.scale_sim import scalesim

    d = WORK / case.slug
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    cfg = ScaleSimConfig(rows=case.rows, cols=case.cols, dataflow=case.dataflow,
                         ifmap_sram_kb=64, filter_sram_kb=64, ofmap_sram_kb=64,
                         run_name=case.slug, sparsity_support=case.sparsity_support)
    (d / "arch.cfg").write_text(format_config(cfg))
    (d / "topo.csv").write_text(format_topology(case.layers, case.kind))
    (d / "layout.csv").write_text("Layer name,\n")  # 3.0.0 always parses a layout file
    t0 = time.time()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        s = scalesim(save_disk_space=True, verbose=False, config=str(d / "arch.cfg"),
                     topology=str(d / "topo.csv"), layout=str(d / "layout.csv"),
                     input_type_gemm=case.kind == "gemm")
        theirs_parse = [s.topo.get_spatiotemporal_dims(layer_id=i, df="os")
                        for i in range(s.topo.get_num_layers())]
        s.run_scale(top_path=str(d))
    wall = time.time() - t0
    out = d / case.slug
    compute = _read_report(out / "COMPUTE_REPORT.csv")
    detail = _read_report(out / "DETAILED_ACCESS_REPORT.csv")
    ours_parse = read_topology(d / "topo.csv", kind=case.kind)
    return {"compute": compute, "detail": detail, "wall_s": wall,
            "parse_theirs": [tuple(int(v) for v in t) for t in theirs_parse],
            "parse_ours": [(ly.M, ly.N, ly.K) for ly in ours_parse],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def compare(case: Case, res: dict) -> list[dict]:
    out = []
    for i, ly in enumerate(case.layers):
        sc = scalesim_compute(ly.M, ly.N, ly.K, case.rows, case.cols, case.dataflow,
                              sparsity=ly.sparsity if case.sparsity_support else (1, 1))
        c = res["compute"][i]
        incl, total, stall = int(float(c[1])), int(float(c[2])), int(float(c[3]))
        util, mapeff, cutil = (float(v) for v in c[4:7])
        dt = [int(float(v)) for v in res["detail"][i][1:]]
        sram = (dt[2], dt[5], dt[8])  # ifmap reads, filter reads, ofmap writes
        ours_sram = (sc.ifmap_sram_read_bytes, sc.filter_sram_read_bytes,
                     sc.ofmap_sram_write_bytes)
        out.append({
            "case": case, "layer": ly, "sc": sc, "incl": incl, "total": total, "stall": stall,
            "util": util, "mapeff": mapeff, "cutil": cutil, "sram": sram, "ours_sram": ours_sram,
            "cycles_ok": total - stall == sc.compute_cycles,
            "metrics_ok": (abs(util - 100 * sc.utilization) < 1e-6 * max(1, util)
                           and abs(mapeff - 100 * sc.mapping_efficiency) < 1e-6 * 100
                           and abs(cutil - 100 * sc.compute_utilization) < 1e-6 * 100)
            if stall == 0 else None,
            "sram_ok": sram == ours_sram,
            "parse_ok": res["parse_theirs"][i] == res["parse_ours"][i],
            "wall_s": res["wall_s"],
        })
    return out


def render(results: list[dict], args, elapsed: float) -> str:
    import numpy
    from importlib.metadata import version

    n = len(results)
    ok = sum(r["cycles_ok"] for r in results)
    met = sum(bool(r["metrics_ok"]) for r in results)
    sram = sum(r["sram_ok"] for r in results)
    parse = sum(r["parse_ok"] for r in results)
    stalls = sum(r["stall"] for r in results)
    lines = [
        "# SCALE-Sim v3.0.0 vs tpesim's compat closed form",
        "",
        "Generated by `bench/scalesim_venv/bin/python bench/scalesim_compare.py"
        + (" --quick" if args.quick else "") + f"` (seed {args.seed}) on {platform.node()}: "
        f"scalesim {version('scalesim')}, numpy {numpy.__version__}, Python "
        f"{platform.python_version()}; {n} layers in {elapsed:.0f} s of wall time "
        f"({args.jobs} worker processes).",
        "",
        "Every case is written with `kernels.scalesim.format_config` / `format_topology` "
        "(CALC mode, 64 kB SRAMs per operand, no traces) and run by the real SCALE-Sim through its "
        "Python API (`save_disk_space=True`). "
        "*closed form* is `kernels.scalesim.scalesim_compute_cycles`: "
        "OS `ceil(M/R)ceil(N/C)(R+C+K-2)-1`, WS `ceil(K/R)ceil(N/C)(2R+C+M-2)-1`, "
        "IS `ceil(K/R)ceil(M/C)(2R+C+N-2)-1` (K replaced by the compressed K for N:M sparse "
        "layers). "
        "*SCALE-Sim* is COMPUTE_REPORT `Total Cycles`.",
        "",
        "## Summary",
        "",
        f"* `Total Cycles` − `Stall Cycles` equals the closed form: **{ok} / {n}** layers.",
        f"* Stall cycles (CALC mode) over all layers: {stalls}.",
        f"* `Overall Util %`, `Mapping Efficiency %`, `Compute Util %` equal "
        f"`scalesim_compute(...)` ×100 (rel. 1e-6): {met} / {n}.",
        f"* DETAILED_ACCESS_REPORT SRAM IFMAP reads / Filter reads / OFMAP writes equal the "
        f"closed-form byte counts: {sram} / {n}.",
        f"* SCALE-Sim's own parse of each topology (Sr, Sc, T for OS = M, N, K) equals "
        f"`kernels.scalesim.read_topology`'s: {parse} / {n}.",
        "",
        "## Per layer",
        "",
        "| case | layer | df | array | M×N×K | folds × per-fold | closed form | SCALE-Sim Total "
        "Cycles | stalls | match | util % | map eff % | compute util % | SRAM if/fl/of | "
        "incl. prefetch | wall s |",
        "|---|---|---|---|---|---|---:|---:|---:|:-:|---:|---:|---:|:-:|---:|---:|",
    ]
    for r in results:
        c, ly, sc = r["case"], r["layer"], r["sc"]
        mnk = f"{ly.M}×{ly.N}×{ly.K}"
        if c.sparsity_support and ly.sparsity != (1, 1):
            mnk += f" ({ly.sparsity[0]}:{ly.sparsity[1]}, K'={sc.k_eff})"
        sram = "=" if r["sram_ok"] else f"{'/'.join(map(str, r['sram']))} vs " \
            f"{'/'.join(map(str, r['ours_sram']))}"
        lines.append(
            f"| {c.label} | {ly.name} | {c.dataflow} | {c.rows}×{c.cols} | {mnk} | "
            f"{sc.folds} × {sc.per_fold_cycles} | {sc.compute_cycles:,} | {r['total']:,} | "
            f"{r['stall']} | {'yes' if r['cycles_ok'] else '**NO**'} | {r['util']:.2f} | "
            f"{r['mapeff']:.2f} | {r['cutil']:.2f} | {sram} | {r['incl']:,} | "
            f"{r['wall_s']:.1f} |")
    lines += ["", "`SRAM if/fl/of` is `=` when SCALE-Sim's SRAM IFMAP reads, Filter reads and "
              "OFMAP writes all equal the closed-form counts; otherwise SCALE-Sim's vs ours.", ""]
    speed: dict[tuple[int, int], list[float]] = {}
    seen = set()
    for r in results:
        c = r["case"]
        if id(c) in seen:
            continue
        seen.add(id(c))
        cyc = sum(x["total"] for x in results if x["case"] is c)
        acc = speed.setdefault((c.rows, c.cols), [0.0, 0.0])
        acc[0] += cyc
        acc[1] += r["wall_s"]
    lines += ["## SCALE-Sim speed in these runs", "",
              f"Wall time of `run_scale` per case, {args.jobs} cases at a time on this machine; "
              "cycles/s is simulated cycles over wall seconds, summed per array size.", "",
              "| array | simulated cycles | wall s | cycles/s |", "|---|---:|---:|---:|"]
    for (rr, cc), (cyc, wall) in sorted(speed.items()):
        if wall >= 1:
            lines.append(f"| {rr}×{cc} | {int(cyc):,} | {wall:.1f} | {cyc / wall:,.0f} |")
    lines += ["", NOTES]
    return "\n".join(lines)


NOTES = """## Notes

* **The closed form is exact** on every case, including the `-1` (SCALE-Sim reports the last
  0-based cycle index, issue #125). It also holds for non-square arrays, partial folds, GEMVs,
  N:M-sparse layers (K replaced by `effective_k`), and depthwise layers. A layer whose name contains
  `DP` is split into one single-channel layer per channel, named `<name>Channel_<i>`.
* **The conv ofmap is `ceil((ifmap − filter + stride)/stride)`**, one pixel more than the usual
  `floor((ifmap − filter)/stride) + 1` whenever the stride does not divide `ifmap − filter`
  (`conv 16x16x8 3x3x16 s2`: 8×8 instead of 7×7). SCALE-Sim's own parse agrees with
  `kernels.scalesim.read_topology` on every layer. The shipped `kernels/workloads/resnet50.csv`
  therefore lists the input extent the windows read, `(out−1)·stride + filter` (e.g. 229 for
  `Conv1`), so that both formulas give ResNet-50's true output sizes.
* **The SRAM counts reproduce two SCALE-Sim artefacts:**
  - OS ofmap writes are over-counted by R+C per fold (`systolic_compute_os.py`).
  - Sparse WS ifmap reads are charged at M/N times the compressed count, which is roughly the
    dense count.
* **CALC mode never stalled** here (64 kB SRAMs), so `Total Cycles` is the pure compute template.
  USER-mode stalls (and their double counting, issue #130) are not modelled by tpesim's compat
  timing.
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the tiny cases")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--seed", type=int, default=2024, help="seed of the random GEMMs")
    ap.add_argument("--random", type=int, default=24, help="number of random GEMMs")
    ap.add_argument("--out", default=str(ROOT / "bench" / "scalesim_compare.md"))
    args = ap.parse_args()
    try:
        import scalesim  # noqa: F401
    except ImportError:
        print("scalesim is not installed in this interpreter; run with bench/scalesim_venv/bin/"
              "python (see the module docstring)", file=sys.stderr)
        return 2
    cases = build_cases(args.quick, args.seed, args.random)
    est = sum(c.est_cycles() for c in cases)
    print(f"{len(cases)} SCALE-Sim runs, {est:,} simulated cycles in all", file=sys.stderr)
    t0 = time.time()
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for case, res in zip(cases, pool.map(run_case, cases), strict=True):
            rows = compare(case, res)
            for r in rows:
                flag = "ok" if r["cycles_ok"] and r["sram_ok"] and r["parse_ok"] else "MISMATCH"
                print(f"{case.label:36s} {case.dataflow} {r['layer'].name:22s} closed "
                      f"{r['sc'].compute_cycles:>8} scalesim {r['total']:>8} stall {r['stall']} "
                      f"{res['wall_s']:6.1f}s {flag}", file=sys.stderr)
            results += rows
    text = render(results, args, time.time() - t0)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)
    bad = [r for r in results if not (r["cycles_ok"] and r["sram_ok"] and r["parse_ok"])]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
