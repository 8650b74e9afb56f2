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

from explorer.cli.common import Bar, add_model_args, method_names, model_options
from explorer.core import argtypes as T
from explorer.core.errors import FileError, ParamError
from explorer.evaluation.config import DEFAULT_METRICS, RANDOM, EvalConfig, metric_names


def _infill_names() -> list[str]:
    from explorer.perturb.infill import INFILLERS

    return list(INFILLERS)


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
    p.add_argument("--step", type=T.integer(1), default=None,
                   help="pixels per deletion/insertion step (default: the protocol's)")
    p.add_argument("--protocol", default="rise", type=T.name("protocol", lambda: ["rise", "quick"]),
                   help="deletion/insertion steps: rise (default, HW/224 pixels a step, ~225 forwards a curve) or "
                        "quick (32 steps a curve, ~7x fewer forwards, for a first look); recorded in every result")
    sub_t = T.substrate(_infill_names)
    p.add_argument("--deletion-substrate", default="zero", type=sub_t,
                   help="zero (default), black, blur[:SIGMA[:KERNEL]], mean, ...")
    p.add_argument("--insertion-substrate", default="blur", type=sub_t,
                   help="blur (default: kernel 11, sigma 5), zero, black, ...")
    p.add_argument("--confidence-substrate", default="black", type=sub_t,
                   help="what the map's soft mask fades to (default black)")
    p.add_argument("--boxes", default=None, type=T.existing_file("boxes file"),
                   help="pointing game: JSON {image name: [top, left, height, width] or mask image path}")
    p.add_argument("--tolerance", type=T.integer(0), default=15, help="pointing game tolerance in pixels (default 15)")
    p.add_argument("--reference", default=None, type=T.existing_dir("reference folder"),
                   help="folder of reference maps (NAME.npy or a grey image NAME.png) for PCC/SIM")
    p.add_argument("--topk", type=T.number(0.0, 1.0, low_open=True), default=0.1,
                   help="top-k fraction for IoU (agreement, sanity; default 0.1)")
    p.add_argument("--sanity-stages", type=T.integer(1), default=4, help="cascading randomisation stages (default 4)")
    p.add_argument("--shard", default=None, type=T.shard(),
                   help="i/n: evaluate every n-th image from i; auto: from RANK/WORLD_SIZE (torchrun)")
    p.add_argument("--limit", type=T.integer(1), default=None,
                   help="evaluate at most this many images (after sharding)")
    p.add_argument("--road-noise", type=T.number(0.0), default=None,
                   help="ROAD imputation noise, normalised units (default 0.01)")
    p.add_argument("--flip-step", type=T.integer(1), default=None,
                   help="pixel flipping: pixels per step (default 1%% of the pixels)")
    p.add_argument("--flip-substrate", default=None, type=sub_t, help="pixel flipping baseline (default black)")
    p.add_argument("--region-patch", type=T.integer(1), default=None, help="region perturbation patch size (default 8)")
    p.add_argument("--region-count", type=T.integer(1), default=None,
                   help="region perturbation: regions replaced (default 100)")
    p.add_argument("--region-substrate", default=None, type=sub_t,
                   help="region perturbation baseline (default black; Samek: noise)")
    p.add_argument("--mprt-stages", type=T.integer(1), default=None,
                   help="sMPRT: bottom-up randomisation stages (default 4)")
    p.add_argument("--smprt-samples", type=T.integer(1), default=None,
                   help="sMPRT: noisy copies averaged per map (default 10)")
    p.add_argument("--smprt-noise", type=T.number(0.0), default=None,
                   help="sMPRT: noise σ as a fraction of the input range (default 0.1)")
    p.add_argument("--ray", default=None, metavar="ADDRESS", type=T.address(),
                   help="run the photos as Ray tasks: local (start a cluster here), auto, or HOST:PORT (pip install "
                        "'explorer[ray]')")
    p.add_argument("--ray-cpus", type=T.integer(1), default=None,
                   help="with --ray local: CPUs of the local cluster (default all)")
    p.add_argument("--summary-only", action="store_true", help="only rebuild summary and plot from OUT/per_image")
    p.add_argument("--out", required=True, type=T.output_dir(), help="output folder")
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
