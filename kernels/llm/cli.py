"""`tpesim run llm`: whole-model prefill + decode timing (or one forward pass of an ONNX graph or a
SCALE-Sim topology) with a report, JSON, per-op CSV and a plot (time breakdown and roofline)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tpesim.errors import ConfigError, TpesimError

from .model import SHIPPED, Gemm
from .run import F, LlmRun, VectorUnit, run_graph, run_llm

__all__ = ["cli_main", "parse_engine_spec", "format_report", "op_csv", "plot_run",
           "PROGRESS_AFTER_S"]

PROGRESS_AFTER_S = 1.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise TpesimError(f"run llm: {message}")


def _engine_name(argv: Sequence[str]) -> str:
    for i, a in enumerate(argv):
        if a == "--engine" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--engine="):
            return a.split("=", 1)[1]
    return "systolic"


def _field_value(cls, f: dataclasses.Field, text: str, option: str):
    if "parse" in f.metadata:
        return f.metadata["parse"](text)
    if isinstance(f.default, bool):
        t = text.strip().lower()
        if t in ("1", "true", "yes", "on"):
            return True
        if t in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{option}: {f.name} must be true or false, not {text!r}")
    if isinstance(f.default, str):
        return text
    try:
        return int(text)
    except ValueError:
        if f.default is None:
            return text
        raise ConfigError(f"{option}: {f.name} must be an integer, not {text!r}") from None


def parse_engine_spec(spec: str, option: str = "--attention-engine"):
    """An engine config from "NAME[:field=value,...]" (field names as in `tpesim engines`)."""
    from tpesim.registry import ENGINES

    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in ENGINES:
        raise ConfigError(f"{option} engine must be one of {', '.join(ENGINES)}, not {name!r}")
    cls = ENGINES[name].config
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kw = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, val = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in fields:
            raise ConfigError(f"{option}: {item!r} must be field=value with a field of {name} "
                              f"({', '.join(fields)})")
        kw[key] = _field_value(cls, fields[key], val.strip(), option)
    return cls(**kw)


class _Progress:
    """A progress bar on stderr once a run has lasted PROGRESS_AFTER_S."""

    def __init__(self, label: str, enabled: bool):
        self.label, self.enabled = label, enabled
        self.t0 = time.perf_counter()
        self.bar = self.task = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.perf_counter() - self.t0 < PROGRESS_AFTER_S or done >= total:
                return
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(self.label, total=total)
            self.bar.start()
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(head: list[str], body: list[list]) -> str:
    cells = [[_fmt(c) for c in r] for r in body]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(head)]
    line = lambda cs: "| " + " | ".join(c.rjust(w) for c, w in zip(cs, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells])


def format_report(run: LlmRun, clock_ghz: float) -> str:
    """The terminal report: headline figures with units, per-op table per phase, per-layer
    summary, KV traffic, definitions."""
    s = run.summary(clock_ghz)
    p = run.placement
    mem = p.memory
    out = []
    model = run.model
    out.append(model.summary() if hasattr(model, "summary") else f"graph {model}")
    out.append(f"engines: linears {p.linear.name}; attention {p.attention.name}; vector unit "
               f"{p.vector.lanes} lanes, latency {p.vector.latency}, {p.vector.elem_bytes} B/elem")
    out.append("memory: " + ("ideal (unbounded SRAM and DRAM bandwidth)" if mem.ideal else
                             ", ".join(f"{k} {v}" for k, v in mem.report_fields().items()
                                       if v is not None))
               + "; every op starts with empty SRAM (operands from DRAM, results back)")
    ms = lambda c: 1e3 * c / (clock_ghz * 1e9)  # noqa: E731
    if "forward" in run.phases:
        out.append(f"forward pass: {s['forward_cycles']:,} cycles = {ms(s['forward_cycles']):.3f} "
                   f"ms at {clock_ghz:g} GHz")
    else:
        out.append(f"batch {run.batch}, prefill {run.prefill} tokens, decode {run.decode} steps, "
                   f"causal query blocks of {run.q_block}")
        out.append(f"time to first token: {s['ttft_cycles']:,} cycles = {s['ttft_ms']:.3f} ms "
                   f"({s['prefill_tokens_per_s']:,.1f} prefill tokens/s)")
        if run.decode:
            out.append(f"time per output token: {s['tpot_cycles']:,.1f} cycles = "
                       f"{s['tpot_ms']:.3f} ms; decode {s['decode_tokens_per_s']:,.2f} tokens/s "
                       f"(batch {run.batch}) at {clock_ghz:g} GHz")
            if "kv_read_bytes_decode" in s:
                out.append(f"KV cache read from DRAM per decode step: first "
                           f"{s['kv_read_bytes_first_step']:,} B, last "
                           f"{s['kv_read_bytes_last_step']:,} B, all steps "
                           f"{s['kv_read_bytes_decode']:,} B")
    out.append(f"total: {s['cycles']:,} cycles = {ms(s['cycles']):.3f} ms, {s['macs']:,} MACs, "
               f"stall {s['stall_cycles']:,} cycles, DRAM read {s['dram_read_bytes']:,} B, "
               f"DRAM write {s['dram_write_bytes']:,} B, SRAM read {s['sram_read_bytes']:,} B")
    util = [f"{c} {s[c + '_utilization']:.3f}" for c in ("linear", "attention")
            if c + "_utilization" in s]
    out.append("utilization (MACs / (cycles x engine peak)): " + ", ".join(util))
    out.append(f"GEMMs: {s['gemm_instances']:,} accounted, {s['gemms_timed']:,} distinct timed "
               f"(the rest reuse identical ones); wall {s['wall_s']:.3f} s")
    rows = run.op_rows()
    for phase in run.phases:
        pr = [r for r in rows if r["phase"] == phase]
        out.append(f"\n{phase}: per op (all layers{', all steps' if phase == 'decode' else ''})")
        out.append(_table(["op", "class", "instances", "cycles", "share", "MACs", "util",
                           "stall cyc", "roofline cyc", "DRAM rd B", "DRAM wr B"],
                          [[r["op"], r["op_class"], r["instances"], r["cycles"], r["share"],
                            r["macs"], r["utilization"], r["stall_cycles"],
                            r["roofline_cycles"], r["dram_read_bytes"], r["dram_write_bytes"]]
                           for r in pr]))
    lay = [(k, v) for k, v in run.layers.items() if k.startswith("layer")]
    if lay:
        phases = list(run.phases)
        distinct = {tuple(v.get(p, 0) for p in phases) for _, v in lay}
        out.append(f"\nper layer ({len(lay)} layers"
                   + (", identical" if len(distinct) == 1 else "") + "): cycles by phase")
        show = lay if len(distinct) > 1 and len(lay) <= 64 else lay[:1] + lay[-1:]
        out.append(_table(["layer"] + phases, [[k] + [v.get(p, 0) for p in phases]
                                               for k, v in show]))
    out.append("\ncycles: engine clock cycles; share: of the phase's cycles; util: MACs / (cycles "
               "x the op's engine peak); roofline cyc: max(MACs / peak, DRAM bytes / bandwidth) "
               "(every op's cycles are at least this); instances: GEMMs (or vector ops) counted")
    return "\n".join(out)


def op_csv(run: LlmRun) -> str:
    import csv
    import io

    from tpesim.outputs import csv_cell, provenance

    rows = [{**provenance(), **r} for r in run.op_rows()]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [*provenance(), "phase"],
                       lineterminator="\n")
    w.writeheader()
    w.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


def plot_run(run: LlmRun, path, clock_ghz: float) -> None:
    """Two panels: per-op time (ms at the clock) by phase, stacked; roofline of the ops (achieved
    MACs/cycle against arithmetic intensity, MACs per DRAM byte) with each engine's ceilings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run.op_rows()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5))
    names = list(dict.fromkeys(r["op"] for r in rows))
    bottom = [0.0] * len(names)
    for phase in run.phases:
        vals = []
        for n in names:
            c = sum(r["cycles"] for r in rows if r["op"] == n and r["phase"] == phase)
            vals.append(1e3 * c / (clock_ghz * 1e9))
        ax1.bar(names, vals, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax1.set_ylabel(f"time (ms at {clock_ghz:g} GHz)")
    ax1.set_title("time per op (all layers and steps)")
    ax1.tick_params(axis="x", rotation=60)
    ax1.legend()
    bw = run.placement.memory.dram_bw
    peaks = {}
    seen = []
    for r in rows:
        if r["macs"] == 0:
            continue
        dram = r["dram_read_bytes"] + r["dram_write_bytes"]
        ai = r["macs"] / max(dram, 1)
        perf = r["macs"] / r["cycles"]
        seen.append(ai)
        ax2.scatter(ai, perf, marker="o" if r["phase"] != "decode" else "^")
        ax2.annotate(f"{r['op']} ({r['phase'][0]})", (ai, perf), fontsize=7)
        peaks[r["engine"]] = run.ops[r["op"]]["peak"]
    lo, hi = (min(seen) / 10, max(seen) * 10) if seen else (0.1, 1e3)
    ais = [lo * (hi / lo) ** (i / 100) for i in range(101)]
    for eng, peak in peaks.items():
        ax2.plot(ais, [min(peak, bw * a) if bw else peak for a in ais], "--",
                 label=f"{eng} roof")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("arithmetic intensity (MACs per DRAM byte)")
    ax2.set_ylabel("MACs per cycle")
    ax2.set_title("roofline (o prefill/forward, ^ decode)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    tmp = Path(path)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _model_help() -> str:
    return (f"a shipped model ({', '.join(SHIPPED)}), a Hugging Face config.json, an .onnx graph "
            f"with static shapes, or a SCALE-Sim topology .csv")


def cli_main(argv: Sequence[str]) -> int:
    """`tpesim run llm`."""
    from tpesim.memory import MemoryConfig
    from tpesim.options import add_engine_options, config_from_args
    from tpesim.outputs import check_output_path, write_text_atomic
    from tpesim.registry import ENGINES

    argv = list(argv)
    engine = _engine_name(argv)
    p = _Parser(prog="tpesim run llm",
                description="Whole-model LLM timing at the tile level (RTL-proven): prefill P "
                            "tokens then decode D tokens, every layer and step accounted for.")
    p.add_argument("--model", required=True, help=_model_help())
    p.add_argument("--prefill", type=int, default=None, metavar="P",
                   help="prompt tokens per sequence (config.json models; required there)")
    p.add_argument("--decode", type=int, default=None, metavar="D",
                   help="generated tokens per sequence after the first (default 0)")
    p.add_argument("--batch", type=int, default=1, metavar="B", help="sequences (default 1)")
    p.add_argument("--q-block", type=int, default=128, metavar="ROWS",
                   help="query rows per causal attention block in the prefill (default 128)")
    p.add_argument("--engine", default="systolic", choices=tuple(ENGINES),
                   help="engine of every GEMM (default systolic); options below")
    if engine in ENGINES:
        add_engine_options(p, ENGINES[engine].config)
    p.add_argument("--linear-engine", default=None, metavar="NAME[:field=v,...]",
                   help="run the linears here instead (e.g. lut:w_bits=2, nm_sparse:sparsity=2:4"
                        ",rows=64,cols=64)")
    p.add_argument("--attention-engine", default=None, metavar="NAME[:field=v,...]",
                   help="run QK^T and PV here instead (e.g. systolic:rows=128,cols=128)")
    p.add_argument("--topology-kind", default="gemm", choices=("gemm", "conv"),
                   help="format of a SCALE-Sim topology .csv (default gemm)")
    p.add_argument("--vector-lanes", type=int, default=VectorUnit.lanes, metavar="N",
                   help=f"vector unit elements per cycle (default {VectorUnit.lanes})")
    p.add_argument("--vector-latency", type=int, default=VectorUnit.latency, metavar="CYCLES",
                   help=f"vector unit pipeline latency per op (default {VectorUnit.latency})")
    p.add_argument("--vector-elem-bytes", type=int, default=VectorUnit.elem_bytes, metavar="B",
                   help=f"bytes per vector element (default {VectorUnit.elem_bytes})")
    for op, what in (("a", "A (activations)"), ("b", "B (weights, K/V cache)"),
                     ("c", "C (results)")):
        p.add_argument(f"--sram-kib-{op}", type=float, default=None, metavar="KIB",
                       help=f"SRAM for {what} in KiB, two halves (default: unbounded)")
    p.add_argument("--dram-bw", type=float, default=None, metavar="BYTES_PER_CYCLE",
                   help="DRAM link bandwidth shared by all operands (default: unbounded)")
    p.add_argument("--dram-latency", type=int, default=0, metavar="CYCLES")
    p.add_argument("--clock-ghz", type=float, default=1.0, metavar="F",
                   help="engine clock for ms and tokens/s (default 1.0)")
    p.add_argument("--no-cache", action="store_true",
                   help="time every GEMM instance separately (same cycles, much slower)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--csv", metavar="FILE", default=None, help="write the per-op rows as CSV")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="draw the per-op time breakdown and a roofline of the ops")
    args = p.parse_args(argv)
    model_path = Path(args.model)
    check_output_path("--csv", args.csv, [model_path])
    check_output_path("--plot", args.plot, [model_path])
    if not (args.clock_ghz > 0):
        raise ConfigError(f"--clock-ghz must be a positive number, not {args.clock_ghz!r}")
    cfg = config_from_args(ENGINES[args.engine].config, args)
    linear = parse_engine_spec(args.linear_engine, "--linear-engine") if args.linear_engine \
        else cfg
    att = parse_engine_spec(args.attention_engine) if args.attention_engine else None
    if att is None and args.linear_engine:
        att = cfg
    memory = MemoryConfig(sram_kib_a=args.sram_kib_a, sram_kib_b=args.sram_kib_b,
                          sram_kib_c=args.sram_kib_c, dram_bw=args.dram_bw,
                          dram_latency=args.dram_latency)
    vector = VectorUnit(lanes=args.vector_lanes, latency=args.vector_latency,
                        elem_bytes=args.vector_elem_bytes)
    suffix = model_path.suffix.lower()
    bar = _Progress(f"llm {args.model}", enabled=sys.stderr.isatty())
    try:
        if suffix in (".onnx", ".csv"):
            for opt in ("prefill", "decode"):
                if getattr(args, opt) is not None:
                    raise ConfigError(f"--{opt} applies to config.json models, not to "
                                      f"{model_path.name} (its shapes are fixed)")
            if suffix == ".onnx":
                from .onnx_graph import load_onnx

                name, layers = load_onnx(model_path)
            else:
                from tpesim.kernels.scalesim.parse import read_topology

                layers = [(r.name, [Gemm(r.name, "linear", r.M, r.N, r.K,
                                         roles=("ifmap", "filter", "ofmap"))])
                          for r in read_topology(model_path, kind=args.topology_kind)]
                name = model_path.stem
            run = run_graph(name, layers, engine=linear, attention_engine=att, vector=vector,
                            memory=memory, cache=not args.no_cache)
        else:
            if args.prefill is None:
                raise ConfigError("--prefill must be given for a config.json model (prompt "
                                  "tokens per sequence)")
            run = run_llm(args.model, prefill=args.prefill, decode=args.decode or 0,
                          batch=args.batch, engine=linear, attention_engine=att, vector=vector,
                          memory=memory, q_block=args.q_block, cache=not args.no_cache,
                          on_stage=bar)
    finally:
        bar.close()
    if args.csv is not None:
        write_text_atomic(args.csv, op_csv(run), "--csv")
    if args.plot is not None:
        plot_run(run, args.plot, args.clock_ghz)
    if args.json:
        s = run.summary(args.clock_ghz)
        s.update(engine_linear=run.placement.linear.name,
                 engine_attention=run.placement.attention.name,
                 memory=run.placement.memory.report_fields(),
                 vector_unit=dataclasses.asdict(run.placement.vector),
                 ops=run.op_rows(), layers=run.layers,
                 steps=[{"step": i, "cycles": int(v[F["cycles"]]),
                                "kv_read_bytes": int(run.step_kv_read_bytes[i]),
                                "dram_read_bytes": int(v[F["dram_read_bytes"]])}
                               for i, v in enumerate(run.steps)] if run.steps is not None else [])
        from tpesim.outputs import provenance

        print(json.dumps({**provenance(), **s}, indent=1))
    else:
        print(format_report(run, args.clock_ghz))
        if args.plot is not None:
            print(f"plot: {args.plot}")
    return 0

