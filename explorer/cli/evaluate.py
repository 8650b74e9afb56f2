"""``explorer evaluate``: every method and metric over an image or a folder, resumable, shardable.

    explorer evaluate DIR_OR_IMAGE --methods rise,gradcam [--metric deletion,insertion,confidence,...]
                      [--param rise.n=2000] [--target CLASS] [--shard i/n|auto] [--summary-only] --out DIR

Results are written as they come, one CSV per (image, method) under ``OUT/per_image/``; a CSV that exists
is not recomputed, so an interrupted run resumes where it stopped. At the end the summary (markdown + CSV,
mean ± std per method) and the PNG of the average curves are rebuilt from all CSVs present. Memory does
not grow with the folder: one image and its maps at a time. Unreadable files are listed as skipped.

Sharding: ``--shard i/n`` takes every n-th image starting at i (sorted names); ``--shard auto`` reads
RANK/WORLD_SIZE (and LOCAL_RANK for the GPU) as set by ``torchrun``. Each shard writes its own CSVs into
the same folder (or copy them together afterwards) and ``--summary-only`` merges.

This module turns the options into an ``explorer.evaluation.config.EvalConfig``; the run itself is
``explorer.evaluation.runner`` (``prepare_evaluation``, ``execute``), which Python callers use directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable

from explorer.cli.common import Bar, add_model_args, method_names, model_options
from explorer.core import argtypes as T
from explorer.core.errors import FileError, ParamError
from explorer.core.params import Param
from explorer.evaluation.config import DEFAULT_METRICS, RANDOM, EvalConfig, metric_names


def _infill_names() -> list[str]:
    from explorer.perturb.infill import INFILLERS

    return list(INFILLERS)


def param_argtype(p: Param) -> Callable[[str], Any]:
    """The command-line type of a metric setting, from its declaration (bounds, choices, substrate)."""
    if p.kind == "int":
        return T.integer(None if p.low is None else int(p.low), None if p.high is None else int(p.high))
    if p.kind == "float":
        return T.number(p.low, p.high, p.low_open, p.high_open)
    if p.kind == "floats":
        return T.numbers(p.low, p.high, p.low_open, p.high_open)
    if p.kind == "choice":
        return T.name(p.name.replace("_", " "), lambda: list(p.choices))
    if p.kind == "str" and p.picker == "substrate":
        return T.substrate(_infill_names)
    raise ValueError(f"metric setting {p.name!r} of kind {p.kind!r} has no command-line type; declare it as "
                     "int, float, floats, choice or a substrate")


def add_metric_options(p: argparse.ArgumentParser) -> None:
    """One flag per setting of the registered metrics (``road_noise`` -> ``--road-noise``), grouped by the
    metric that declares it first; the default is the declaration's (None here: ``Options`` fills it)."""
    from explorer.evaluation.registry import METRICS

    taken = {o for a in p._actions for o in a.option_strings}
    for name, s in METRICS.items():
        group = None
        for prm in s.params:
            flag = "--" + prm.name.replace("_", "-")
            if flag in taken:
                continue
            taken.add(flag)
            if group is None:
                group = p.add_argument_group(f"metric {name}", s.summary)
            group.add_argument(flag, dest=prm.name, type=param_argtype(prm), default=None,
                               help=prm.help.replace("%", "%%"))


def _describe(p: argparse.ArgumentParser) -> None:
    p.description = __doc__.split("\n\n")[0] + "\n\nMetrics: " + ", ".join(metric_names())


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate", help="faithfulness metrics of methods over an image or a folder (CSV, summary, plot)",
        late=_describe, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="DIR_OR_IMAGE", type=T.existing_path("image or folder"))
    p.add_argument("--methods", default=None, type=T.name_list("method", method_names, (RANDOM,)),
                   help="comma-separated method names (required unless --summary-only); 'random' adds a baseline map")
    p.add_argument("--metric", "--metrics", dest="metric", default=",".join(DEFAULT_METRICS),
                   type=T.name_list("metric", lambda: list(metric_names()), ("all",)),
                   help=f"comma-separated metrics (default {','.join(DEFAULT_METRICS)}); 'all' for every one whose "
                        "inputs are given")
    p.add_argument("--param", action="append", default=[], metavar="METHOD.K=V", type=T.assignment("METHOD.K=V"),
                   help="method parameter, e.g. rise.n=2000 (K=V without a method applies to every method that has K)")
    p.add_argument("--target", default=None, type=T.target(),
                   help="class index or name for every image (default: each image's top-1)")
    p.add_argument("--seed", type=T.integer(0, 2**32 - 1), default=0)
    p.add_argument("--protocol", default="rise", type=T.name("protocol", lambda: ["rise", "quick"]),
                   help="deletion/insertion steps: rise (default, HW/224 pixels a step, ~225 forwards a curve) or "
                        "quick (32 steps a curve, ~7x fewer forwards, for a first look); recorded in every result")
    p.add_argument("--boxes", default=None, type=T.existing_file("boxes file"),
                   help="pointing game: JSON {image name: [top, left, height, width] or mask image path}")
    p.add_argument("--reference", default=None, type=T.existing_dir("reference folder"),
                   help="folder of reference maps (NAME.npy or a grey image NAME.png) for PCC/SIM")
    p.add_argument("--shard", default=None, type=T.shard(),
                   help="i/n: evaluate every n-th image from i; auto: from RANK/WORLD_SIZE (torchrun)")
    p.add_argument("--limit", type=T.integer(1), default=None,
                   help="evaluate at most this many images (after sharding)")
    p.add_argument("--ray", default=None, metavar="ADDRESS", type=T.address(),
                   help="run the photos as Ray tasks: local (start a cluster here), auto, or HOST:PORT (pip install "
                        "'explorer[ray]')")
    p.add_argument("--ray-cpus", type=T.integer(1), default=None,
                   help="with --ray local: CPUs of the local cluster (default all)")
    p.add_argument("--summary-only", action="store_true", help="only rebuild summary and plot from OUT/per_image")
    p.add_argument("--out", required=True, type=T.output_dir(), help="output folder")
    add_metric_options(p)
    add_model_args(p)
    p.set_defaults(func=cmd_evaluate)
    return p


def parse_list(text: str | None, what: str) -> list[str]:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not items:
        raise ParamError(f"no {what} given")
    return list(dict.fromkeys(items))


def parse_shard(text: str | None) -> tuple[int, int, int | None]:
    """(index, count, local_rank or None)."""
    if not text:
        return 0, 1, None
    if text == "auto":
        try:
            rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        except ValueError:
            raise ParamError("--shard auto: RANK/WORLD_SIZE are not integers") from None
        local = os.environ.get("LOCAL_RANK")
        return rank, max(1, world), int(local) if local and local.isdigit() else None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ParamError(f"--shard {text!r} must be i/n (e.g. 0/4) or auto") from None
    if n < 1 or not 0 <= i < n:
        raise ParamError(f"--shard {text!r}: need n >= 1 and 0 <= i < n")
    return i, n, None


def config_from_args(args) -> EvalConfig:
    """The options as an ``EvalConfig``; 'all' metrics = every metric whose inputs were given."""
    from explorer.evaluation.registry import Options

    methods = parse_list(args.methods, "methods (--methods a,b,c)")
    if args.metric.strip() == "all":
        metrics = [m for m in metric_names() if not ((m == "pointing" and not args.boxes)
                                                     or (m == "reference" and not args.reference))]
    else:
        metrics = parse_list(args.metric, "metrics")
    shard_i, shard_n, local_rank = parse_shard(args.shard)
    return EvalConfig(methods=methods, metrics=metrics, params=list(args.param), target=args.target,
                      protocol=args.protocol, options=Options.from_namespace(args), boxes=args.boxes,
                      reference=args.reference, shard=(shard_i, shard_n), local_rank=local_rank, limit=args.limit,
                      ray=args.ray, ray_cpus=args.ray_cpus, model=model_options(args))


def _wrote(out: Path) -> str:
    return ", ".join(n for n in ("summary.md", "summary.csv", "curves.png") if (out / n).exists())


def cmd_evaluate(args) -> int:
    out = Path(args.out)
    if args.summary_only:
        from explorer.evaluation.report import summarise

        s = summarise(out)
        if not s["methods"]:
            raise FileError(out / "per_image", "no results to summarise")
        print(f"summary of {s['n_images']} images: wrote {_wrote(out)} in {out}")
        return 0
    from explorer.evaluation import runner

    config = config_from_args(args)
    run = runner.prepare_evaluation(config, args.path)
    r = runner.execute(run, out, Bar(run.units, log=True))
    if r.deferred:
        print(r.deferred)
    methods = run.config.methods
    print(f"evaluated {r.photos} images x {len(methods)} methods ({r.computed} computed, {r.reused} already done, "
          f"{len(r.skipped)} skipped); wrote {_wrote(out) if r.summary else 'no summary yet'} in {out}")
    for name, reason in r.skipped:
        print(f"  skipped {name}: {reason}", file=sys.stderr)
    return 0
