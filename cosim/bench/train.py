"""Bench suite "train": the wall and CPU time of a whole BDWP training run (`tpesim train`), each in
a fresh process; kept in docs/bench_train.json and rendered as a section of docs/bench.md."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["TRAIN_CASES", "run_train_suite", "append_train_section"]

SECTION = "## BDWP training run (`tpesim train`)"
# (model, sparsity, epochs): the docs/training.md configuration, one seed, sparse run + dense baseline
TRAIN_CASES = (("mlp", "2:8", 30), ("cnn", "2:8", 30))
QUICK_CASES = (("mlp", "2:8", 2),)


def _measure(model: str, sparsity: str, epochs: int) -> dict:
    cmd = [sys.executable, "-m", "tpesim.cli", "train", model, "--sparsity", sparsity,
           "--epochs", str(epochs), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = {"model": model, "sparsity": sparsity, "epochs": epochs, "wall_s": wall,
           "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
           "load_avg": os.getloadavg()[0]}
    if r.returncode != 0:
        return {**row, "status": "error", "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    rep = json.loads(r.stdout)
    return {**row, "status": "ok", "accuracy": rep["accuracy"], "dense_accuracy": rep["dense_accuracy"],
            "speedup": rep["speedup"]}


def run_train_suite(cases=TRAIN_CASES, *, log=print, json_path: Path | None = None) -> list[dict]:
    rows = []
    for model, sparsity, epochs in cases:
        log(f"[train] {model} {sparsity} {epochs} epochs ...")
        rows.append(_measure(model, sparsity, epochs))
        log(f"[train] {model}: {rows[-1].get('wall_s', 0):.1f} s wall")
    if json_path is not None:
        json_path.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                         "rows": rows}, indent=1) + "\n")
    return rows


def _markdown(doc: dict, carried: bool) -> str:
    out = [SECTION, ""]
    if carried:
        out += [f"Carried over from the run of {doc['date']} (not re-run).", ""]
    out += ["One `tpesim train MODEL --sparsity S --epochs E --json` per row in a fresh process: the "
            "sparse run and its dense baseline, every FF/BP/WG GEMM in the engine's integer "
            "arithmetic, cycles from the tile level (docs/training.md).", "",
            "| model | sparsity | epochs | wall s | CPU s | accuracy | dense accuracy | speedup | "
            "load (1 min) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        if r["status"] != "ok":
            out.append(f"| {r['model']} | {r['sparsity']} | {r['epochs']} | error: {r['error']} |"
                       + " |" * 5)
            continue
        out.append(f"| {r['model']} | {r['sparsity']} | {r['epochs']} | {r['wall_s']:.1f} | "
                   f"{r['cpu_s']:.1f} | {r['accuracy']:.4f} | {r['dense_accuracy']:.4f} | "
                   f"{r['speedup']:.3f}x | {r['load_avg']:.1f} |")
    return "\n".join(out) + "\n"


def append_train_section(md_path: Path, json_path: Path, measured: bool) -> None:
    """Append the training section to the bench markdown, from this run or the last (json_path)."""
    if not json_path.exists():
        return
    doc = json.loads(json_path.read_text())
    text = md_path.read_text() if md_path.exists() else ""
    if SECTION in text:
        head, _, rest = text.partition(SECTION)
        nxt = rest.find("\n## ")
        text = head.rstrip() + "\n" + (rest[nxt:] if nxt >= 0 else "")
    md_path.write_text(text.rstrip() + "\n\n" + _markdown(doc, carried=not measured))
