"""`tpesim train mlp|cnn`: BDWP N:M sparse training on the digits set, with test accuracy, the
engine's cycles per iteration and the speedup over dense on the same engine (docs/training.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Sequence

from tpesim.cli import UsageError
from tpesim.errors import ConfigError

__all__ = ["main", "run"]

PROG = "tpesim train"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def _engine_name(argv: Sequence[str]) -> str:
    """The `--engine` value (default nm_sparse), read first: the engine decides the options."""
    for i, a in enumerate(argv):
        if a == "--engine" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--engine="):
            return a.split("=", 1)[1]
    return "nm_sparse"


def _build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    from tpesim.options import add_engine_options
    from tpesim.registry import ENGINES, engine_names

    from .train import MODELS, TrainConfig

    d = TrainConfig()
    p = _Parser(prog=PROG, description="Train an MLP or a small CNN on scikit-learn's digits with "
                "BDWP N:M sparsity (FF weights pruned along Cin, BP weights along Cout, WG dense), "
                "every GEMM in the engine's int8 arithmetic; report test accuracy, engine cycles "
                "per iteration and the speedup over dense training on the same engine.")
    p.add_argument("model", choices=MODELS, help="mlp (64-256-128-10) or cnn (conv-conv-fc)")
    engine = _engine_name(argv)
    p.add_argument("--engine", default="nm_sparse", choices=engine_names(),
                   help="the engine (default nm_sparse; it needs the ff/bp/wg training modes)")
    if engine in ENGINES:
        add_engine_options(p, ENGINES[engine].config)
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--batch", type=int, default=d.batch, help=f"default {d.batch}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"first seed (default {d.seed})")
    p.add_argument("--seeds", type=int, default=1,
                   help="train with seeds SEED..SEED+SEEDS-1 and report mean and spread")
    p.add_argument("--mask-interval", type=int, default=d.mask_interval,
                   help="recompute the masks from |W| every this many steps (default 1)")
    p.add_argument("--dense-first", action="store_true",
                   help="keep the first layer dense (default: every layer pruned)")
    p.add_argument("--no-pre-generate", action="store_true",
                   help="compress weights on the fly in front of the load port")
    p.add_argument("--no-interleave", action="store_true",
                   help="BP weights read strided from the FF layout (compressor at 1/M rate)")
    p.add_argument("--no-offline-schedule", action="store_true",
                   help="autograd order on the array, compressions in update order")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _config(args: argparse.Namespace):
    from tpesim.options import config_from_args
    from tpesim.registry import get_engine

    eng = get_engine(args.engine)
    names = {f.name for f in dataclasses.fields(eng.config)}
    if not {"sparsity", "mode"} <= names:
        raise ConfigError(f"engine must have N:M training modes (config fields sparsity and "
                          f"mode), not {args.engine!r}")
    from tpesim.options import _dest

    if getattr(args, _dest(eng.config.engine, "mode"), None) is not None:
        raise ConfigError("--mode is set per pass by the training (ff, bp, wg); leave it out")
    return config_from_args(eng.config, args)


# Upper bounds: a training run is minutes at most; a seed is 32-bit, and seed + seeds too.
LIMITS = {"epochs": 10_000, "batch": 1_797, "seeds": 1_000, "mask_interval": 1_000_000}


def _check_args(args: argparse.Namespace) -> None:
    for name, hi in LIMITS.items():
        v = getattr(args, name)
        if not 1 <= v <= hi:
            raise ConfigError(f"--{name.replace('_', '-')} must be an integer from 1 to {hi:,}, "
                              f"not {v}")
    if not 0 <= args.seed <= 2**32 - 1 - args.seeds:
        raise ConfigError(f"--seed must be an integer from 0 to 2**32 - 1 - seeds, not {args.seed}")


def run(args: argparse.Namespace, progress: bool = False) -> dict:
    """Train (sparse and, unless the sparsity is dense, the dense baseline) over the seeds and
    time an iteration at both; the report as a dict."""
    from .train import TrainConfig, iteration_cycles, load_dataset, train

    _check_args(args)
    ecfg = _config(args)
    base = TrainConfig(model=args.model, sparsity=ecfg.sparsity, epochs=args.epochs,
                       batch=args.batch, lr=args.lr, seed=args.seed,
                       mask_interval=args.mask_interval, dense_first=args.dense_first,
                       pre_generate=not args.no_pre_generate, interleave=not args.no_interleave,
                       offline_schedule=not args.no_offline_schedule)
    sparse = base.nm is not None
    seeds = list(range(args.seed, args.seed + args.seeds))
    runs = [(s, base.sparsity) for s in seeds] + ([(s, "dense") for s in seeds] if sparse else [])
    data = load_dataset()
    per_run = args.epochs * (len(data.x_train) // args.batch)
    bar = _Bar(progress, len(runs) * per_run)
    acc: dict[str, list[float]] = {"sparse": [], "dense": []}
    t0 = time.perf_counter()
    try:
        for i, (seed, sp) in enumerate(runs):
            bar.label(f"{args.model} {sp} seed {seed}")
            tc = dataclasses.replace(base, sparsity=sp, seed=seed)
            res = train(tc, ecfg, data=data,
                        on_step=lambda done, total, i=i: bar.update(i * per_run + done))
            acc["sparse" if (sp != "dense" or not sparse) else "dense"].append(res.accuracy)
    finally:
        bar.close()
    train_s = time.perf_counter() - t0
    if not sparse:
        acc["dense"] = list(acc["sparse"])
    switches = {"pre_generate": base.pre_generate, "interleave": base.interleave,
                "offline_schedule": base.offline_schedule, "dense_first": base.dense_first}
    it = iteration_cycles(ecfg, args.model, args.batch, **switches)
    dense_it = iteration_cycles(ecfg, args.model, args.batch, dense=True)
    report = {
        "model": args.model, "engine_name": ecfg.name, **ecfg.to_dict(),
        "sparsity": base.sparsity, "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
        "seeds": seeds, "mask_interval": args.mask_interval, **switches,
        "accuracy": statistics.fmean(acc["sparse"]),
        "accuracy_std": statistics.pstdev(acc["sparse"]),
        "accuracies": acc["sparse"],
        "dense_accuracy": statistics.fmean(acc["dense"]),
        "dense_accuracy_std": statistics.pstdev(acc["dense"]),
        "dense_accuracies": acc["dense"],
        **it.to_dict(),
        "dense_cycles_per_iteration": dense_it.cycles,
        "speedup": dense_it.cycles / it.cycles,
        "array_order": list(it.array_order), "compressor_order": list(it.compressor_order),
        "train_wall_s": train_s,
    }
    report.pop("mode", None)  # set per pass
    return report


class _Bar:
    """A rich progress bar on stderr over every training step of the run (when enabled)."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("training", total=total)
            self.bar.start()

    def label(self, text: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=text)

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _pm(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.2f} %"
    return f"{mean:.2f} ± {100 * statistics.pstdev(values):.2f} % (n={len(values)})"


def _print(r: dict) -> None:
    rows = [
        ("model / engine", f"{r['model']} on {r['engine_name']}"),
        ("sparsity", r["sparsity"] if r["sparsity"] == "dense" else
         f"{r['sparsity']} (first layer {'dense' if r['dense_first'] else 'pruned'})"),
        ("epochs / batch / seeds", f"{r['epochs']} / {r['batch']} / {r['seeds']}"),
        ("test accuracy", _pm(r["accuracies"])),
        ("dense test accuracy", _pm(r["dense_accuracies"])),
        ("cycles per iteration", f"{r['cycles_per_iteration']:,}"),
        ("  FF / BP / WG", f"{r['ff_cycles']:,} / {r['bp_cycles']:,} / {r['wg_cycles']:,}"),
        ("  compression (exposed)", f"{r['compress_cycles']:,} "
                                    f"(compressor busy {r['compressor_busy_cycles']:,})"),
        ("dense cycles per iteration", f"{r['dense_cycles_per_iteration']:,}"),
        ("speedup vs dense", f"{r['speedup']:.3f}x"),
        ("switches", ", ".join(f"{k}={'on' if r[k] else 'off'}" for k in
                               ("pre_generate", "interleave", "offline_schedule"))),
        ("training wall time", f"{r['train_wall_s']:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def main(argv: Sequence[str] | None = None) -> int:
    """`tpesim train ...` (forwarded by tpesim.cli; errors propagate as TpesimError)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser(argv).parse_args(argv)
    report = run(args, progress=sys.stderr.isatty())
    if args.json:
        from tpesim.outputs import provenance

        print(json.dumps({**provenance(), **report}))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    from tpesim.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
