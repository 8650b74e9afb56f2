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
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.errors import ExplorerError, FileError, ParamError, UnknownNameError

BASE_METRICS = ("deletion", "insertion", "confidence", "pointing", "reference", "agreement", "sanity")
DEFAULT_METRICS = ("deletion", "insertion", "confidence")
# metrics computed through explorer.evaluation.registry alone (the older ones above have their rows here)
REGISTRY_ONLY = ("road", "pixel_flipping", "region_perturbation", "smprt", "emprt")
RERUNS_METHOD = ("sanity", "smprt", "emprt")  # re-run the method on a randomised copy of the model


def has_removal_gain() -> bool:
    return importlib.util.find_spec("explorer.evaluation.removal_gain") is not None


def metric_names() -> tuple[str, ...]:
    from explorer.evaluation.registry import metric_names as all_names

    return tuple(m for m in all_names() if m != "removal_gain" or has_removal_gain())


# --------------------------------------------------------------------------- parser
def _infill_names() -> list[str]:
    from explorer.methods.infill import INFILLERS

    return list(INFILLERS)


def add_parser(sub) -> argparse.ArgumentParser:
    from explorer.cli import _method_names, add_model_args
    from explorer.core import argtypes as T

    p = sub.add_parser(
        "evaluate", help="faithfulness metrics of methods over an image or a folder (CSV, summary, plot)",
        description=__doc__.split("\n\n")[0] + "\n\nMetrics: " + ", ".join(metric_names()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="DIR_OR_IMAGE", type=T.existing_path("image or folder"))
    p.add_argument("--methods", default=None, type=T.name_list("method", _method_names, (RANDOM,)),
                   help="comma-separated method names (required unless --summary-only); 'random' adds a baseline map")
    p.add_argument("--metric", "--metrics", dest="metric", default=",".join(DEFAULT_METRICS),
                   type=T.name_list("metric", lambda: list(metric_names()), ("all",)),
                   help=f"comma-separated metrics (default {','.join(DEFAULT_METRICS)}); 'all' for every one whose inputs are given")
    p.add_argument("--param", action="append", default=[], metavar="METHOD.K=V", type=T.assignment("METHOD.K=V"),
                   help="method parameter, e.g. rise.n=2000 (K=V without a method applies to every method that has K)")
    p.add_argument("--target", default=None, type=T.target(),
                   help="class index or name for every image (default: each image's top-1)")
    p.add_argument("--seed", type=T.integer(0, 2**32 - 1), default=0)
    p.add_argument("--step", type=T.integer(1), default=None, help="pixels per deletion/insertion step (default: the protocol's)")
    p.add_argument("--protocol", default="rise", type=T.name("protocol", lambda: ["rise", "quick"]),
                   help="deletion/insertion steps: rise (default, HW/224 pixels a step, ~225 forwards a curve) or quick "
                        "(32 steps a curve, ~7x fewer forwards, for a first look); recorded in every result")
    sub_t = T.substrate(_infill_names)
    p.add_argument("--deletion-substrate", default="zero", type=sub_t, help="zero (default), black, blur[:SIGMA[:KERNEL]], mean, ...")
    p.add_argument("--insertion-substrate", default="blur", type=sub_t, help="blur (default: kernel 11, sigma 5), zero, black, ...")
    p.add_argument("--confidence-substrate", default="black", type=sub_t, help="what the map's soft mask fades to (default black)")
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
    p.add_argument("--limit", type=T.integer(1), default=None, help="evaluate at most this many images (after sharding)")
    p.add_argument("--road-noise", type=T.number(0.0), default=None, help="ROAD imputation noise, normalised units (default 0.01)")
    p.add_argument("--flip-step", type=T.integer(1), default=None, help="pixel flipping: pixels per step (default 1%% of the pixels)")
    p.add_argument("--flip-substrate", default=None, type=sub_t, help="pixel flipping baseline (default black)")
    p.add_argument("--region-patch", type=T.integer(1), default=None, help="region perturbation patch size (default 8)")
    p.add_argument("--region-count", type=T.integer(1), default=None, help="region perturbation: regions replaced (default 100)")
    p.add_argument("--region-substrate", default=None, type=sub_t, help="region perturbation baseline (default black; Samek: noise)")
    p.add_argument("--mprt-stages", type=T.integer(1), default=None, help="sMPRT: bottom-up randomisation stages (default 4)")
    p.add_argument("--smprt-samples", type=T.integer(1), default=None, help="sMPRT: noisy copies averaged per map (default 10)")
    p.add_argument("--smprt-noise", type=T.number(0.0), default=None, help="sMPRT: noise σ as a fraction of the input range (default 0.1)")
    p.add_argument("--ray", default=None, metavar="ADDRESS", type=T.address(),
                   help="run the photos as Ray tasks: local (start a cluster here), auto, or HOST:PORT (pip install 'explorer[ray]')")
    p.add_argument("--ray-cpus", type=T.integer(1), default=None, help="with --ray local: CPUs of the local cluster (default all)")
    p.add_argument("--summary-only", action="store_true", help="only rebuild summary and plot from OUT/per_image")
    p.add_argument("--out", required=True, type=T.output_dir(), help="output folder")
    add_model_args(p)
    p.set_defaults(func=cmd_evaluate)
    return p


# --------------------------------------------------------------------------- argument helpers
def parse_list(text: str | None, what: str) -> list[str]:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not items:
        raise ParamError(f"no {what} given")
    return list(dict.fromkeys(items))


def parse_metrics(text: str) -> list[str]:
    names = metric_names()
    items = list(names) if text.strip() == "all" else parse_list(text, "metrics")
    for m in items:
        if m not in names:
            if m == "removal_gain":
                raise ParamError("metric 'removal_gain' is not available yet (explorer/evaluation/removal_gain.py is missing)")
            raise UnknownNameError("metric", m, list(names))
    return items


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


def split_params(pairs: list[str], methods: list[str]) -> dict[str, dict[str, str]]:
    from explorer.core.params import parse_assignments
    from explorer.methods import get_method

    out: dict[str, dict[str, str]] = {m: {} for m in methods}
    for key, value in parse_assignments(pairs).items():
        if "." in key:
            m, k = key.split(".", 1)
            if m not in out:
                raise ParamError(f"--param {key}={value}: method {m!r} is not among --methods ({', '.join(methods)})")
            out[m][k] = value
        else:
            takers = [m for m in methods if key in get_method(m).params]
            if not takers:
                raise ParamError(f"--param {key}={value}: no method among {', '.join(methods)} has a parameter {key!r}")
            for m in takers:
                out[m][key] = value
    return out


def list_images(path: Path) -> list[Path]:
    if not path.exists():
        raise FileError(path, "no such file or folder")
    if path.is_file():
        return [path]
    return sorted((p for p in path.iterdir() if not p.name.startswith(".") and not p.is_dir()), key=lambda p: p.name)


def load_boxes(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    try:
        if p.stat().st_size > 64 << 20:  # boxes for a million images fit in far less
            raise FileError(p, "too large for a boxes file (limit 64 MB)")
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileError(p, "no such file") from None
    except RecursionError:
        raise FileError(p, "not a JSON object of boxes: nested too deeply") from None
    except (OSError, ValueError) as exc:
        raise FileError(p, f"not a JSON object of boxes: {exc}") from None
    if not isinstance(data, dict):
        raise FileError(p, "must be a JSON object {image name: [top, left, height, width] or mask path}")
    for k, v in data.items():
        # a mask is only ever decoded as an image (explorer.io.images); a box must be finite and non-empty
        ok = isinstance(v, str) and v.strip() != "" or (
            isinstance(v, (list, tuple)) and len(v) == 4
            and all(isinstance(t, (int, float)) and not isinstance(t, bool) and np.isfinite(t) for t in v)
            and v[0] >= 0 and v[1] >= 0 and v[2] > 0 and v[3] > 0)
        if not ok:
            raise FileError(p, f"entry {k!r}: expected [top, left, height, width] (finite, top/left >= 0, "
                               "height/width > 0) or a mask image path")
    return data


def load_reference(folder: str | None, image_name: str) -> np.ndarray | None:
    if not folder:
        return None
    stem = Path(image_name).stem
    d = Path(folder)
    for cand in [d / f"{stem}.npy"] + sorted(d.glob(f"{stem}.*")):
        if not cand.is_file():
            continue
        if cand.suffix == ".npy":
            from explorer.core.types import as_map2d
            from explorer.io.arrays import read_npy

            a = as_map2d(read_npy(cand), f"{cand}: a reference map")  # never a pickle, never a 10 GB header
            if not np.isfinite(a).all():
                raise FileError(cand, "a reference map holds NaN or infinite values")
            return a
        from explorer.io.images import read_image

        rgb = read_image(cand).rgb.astype(np.float32)
        return rgb.mean(axis=2)
    return None


def check_names_in_folder(files: list[Path], boxes: dict, boxes_path: str | None, reference: str | None) -> None:
    """Refuse a boxes file or a reference folder that names photos the folder does not hold (a typo or the
    wrong folder would otherwise score nothing and look complete)."""
    names = {p.name for p in files}
    stems = {p.stem for p in files}
    stray = sorted(k for k in boxes if k not in names)
    if stray:
        more = f" (and {len(stray) - 5} more)" if len(stray) > 5 else ""
        raise FileError(boxes_path, f"names {len(stray)} photo(s) not in the folder: {', '.join(stray[:5])}{more}")
    if reference:
        refs = sorted(p.name for p in Path(reference).iterdir()
                      if p.is_file() and not p.name.startswith(".") and p.stem not in stems)
        if refs:
            more = f" (and {len(refs) - 5} more)" if len(refs) > 5 else ""
            raise FileError(reference, f"holds {len(refs)} map(s) for photos not in the folder: {', '.join(refs[:5])}{more}")


class Bar:
    """A progress bar on stderr: redrawn in place on a terminal, one line per image otherwise."""

    def __init__(self, total: int, stream=None):
        self.total, self.done, self.t0 = max(1, total), 0, time.perf_counter()
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def update(self, done: int, msg: str) -> None:
        self.done = done
        frac = min(1.0, done / self.total)
        el = time.perf_counter() - self.t0
        eta = el / done * (self.total - done) if done else 0.0
        line = f"[{'#' * int(frac * 30):<30}] {done}/{self.total} {frac * 100:5.1f}% eta {eta:6.0f}s {msg}"
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(150))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --------------------------------------------------------------------------- per image and method
RANDOM = "random"  # a baseline "method": a seeded random 7x7 grid upsampled (explorer.evaluation.base.random_map)


def random_explanation(model, ctx, image_name: str, seed: int):
    """The random baseline as an Explanation (seeded by the image name and --seed: reproducible)."""
    import zlib

    from explorer.core.types import Explanation
    from explorer.evaluation.base import random_map

    s = (zlib.crc32(image_name.encode()) + 7919 * int(seed)) % (2 ** 32)
    raw = {"salient": random_map(tuple(ctx.placement.input_hw), 7, s)}
    return Explanation(method=RANDOM, raw=raw, signed={"salient": False}, placement=ctx.placement,
                       target=ctx.target, target_name=model.labels[ctx.target], params={"cells": 7}, seed=s,
                       model_id=model.id, timings={"seconds": 0.0})


def _flatten(prefix: str, obj: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(obj, (list, tuple)) and len(obj) <= 64 and all(isinstance(v, (int, float, np.number)) for v in obj):
        for i, v in enumerate(obj):
            out.append((f"{prefix}[{i}]", v))
    elif isinstance(obj, (bool, np.bool_)):
        out.append((prefix, int(obj)))
    elif isinstance(obj, (int, float, np.number, str)):
        out.append((prefix, obj))
    elif isinstance(obj, np.ndarray) and obj.size <= 64:
        _flatten(prefix, obj.tolist(), out)


def evaluate_map(model, image, ctx, method: str, exp, metrics: list[str], args, boxes: dict,
                 cancel=None) -> list[dict[str, Any]]:
    """All per-(image, method) metrics of one explanation, as CSV rows."""
    from explorer.evaluation import agreement
    from explorer.evaluation.causal import causal_curve, protocol_step
    from explorer.evaluation.metrics import confidence, sanity_check

    name = Path(image.path).name if image.path else "(array)"
    base = {"image": name, "method": method, "target": ctx.target}
    rows: list[dict[str, Any]] = []

    def add(metric: str, quantity: str, value: Any, fraction: Any = "") -> None:
        rows.append({**base, "metric": metric, "quantity": quantity, "value": value, "fraction": fraction})

    add("run", "seconds", exp.timings.get("seconds", 0.0))
    add("run", "images", exp.timings.get("images", 0))  # the forwards the method needed (benchmarks/bench_cold.py)
    add("run", "grad_images", exp.timings.get("grad_images", 0))
    add("run", "target_name", model.labels[ctx.target])
    sal = exp.raw[exp.main]
    aucs = {}
    for mode in ("deletion", "insertion"):
        if mode not in metrics:
            continue
        sub = args.deletion_substrate if mode == "deletion" else args.insertion_substrate
        protocol = getattr(args, "protocol", "rise")
        step = args.step or protocol_step(protocol, ctx.x.shape[-2:])
        c = causal_curve(model, image.rgb, sal, mode=mode, step=step, substrate=sub, context=ctx, cancel=cancel)
        aucs[mode] = c.auc
        add(mode, "auc", c.auc)
        add(mode, "step", c.step)
        add(mode, "protocol", protocol if not args.step else f"step {args.step} px")
        add(mode, "substrate", c.substrate)
        for f, s in zip(c.fractions, c.scores):
            add(mode, "score", float(s), float(f))
    if len(aucs) == 2:
        add("causal", "ins_minus_del", aucs["insertion"] - aucs["deletion"])
    if "confidence" in metrics:
        r = confidence(model, image.rgb, sal, context=ctx, substrate=args.confidence_substrate, cancel=cancel)
        add("confidence", "drop", r["drop"])
        add("confidence", "increase", r["increase"])
        add("confidence", "p_image", r["p_image"])
        add("confidence", "p_masked", r["p_masked"])
        add("confidence", "substrate", r["substrate"])
    img_map = exp.maps[exp.main]
    if "pointing" in metrics and name in boxes:
        spec = boxes[name]
        if isinstance(spec, str):
            from explorer.io.images import read_image

            mpath = Path(spec) if Path(spec).is_absolute() else Path(args.boxes).parent / spec
            mask = read_image(mpath).rgb.max(axis=2) > 0
            r = agreement.pointing_game(img_map, mask=mask, tolerance=args.tolerance)
        else:
            r = agreement.pointing_game(img_map, box=tuple(int(v) for v in spec), tolerance=args.tolerance)
        add("pointing", "hit", r["hit"])
        add("pointing", "distance", r["distance"])
    if "reference" in metrics:
        ref = load_reference(args.reference, name)
        if ref is not None:
            add("reference", "pcc", agreement.pcc(img_map, ref))
            add("reference", "sim", agreement.sim(img_map, ref))
    if "sanity" in metrics and method != RANDOM:
        r = sanity_check(model, image.rgb, method, ctx.target, params=exp.params, n_stages=args.sanity_stages,
                         seed=args.seed, topk=args.topk, reference=sal, cancel=cancel)
        for st in r["stages"]:
            add("sanity", f"spearman@stage{st['stage']}", st["spearman"])
            add("sanity", f"spearman_abs@stage{st['stage']}", st["spearman_abs"])
        if r["stages"]:
            add("sanity", "spearman_final", r["stages"][-1]["spearman"])
            add("sanity", "topk_iou_final", r["stages"][-1]["topk_iou"])
    extra = [m for m in metrics if m in REGISTRY_ONLY and not (m in RERUNS_METHOD and method == RANDOM)]
    if extra:
        from explorer.evaluation import registry

        opts = registry.Options.from_namespace(args)
        for mname in extra:
            call = registry.MetricCall(model, image.rgb, sal, context=ctx, method=method, params=dict(exp.params or {}),
                                       options=opts, maps=dict(exp.raw), cancel=cancel)
            for metric, q, v, f in registry.rows(mname, registry.compute(mname, call)):
                add(metric, q, v, f)
    if "removal_gain" in metrics:
        from explorer.evaluation.removal_gain import removal_gain

        r = removal_gain(model, image.rgb, dict(exp.raw), ctx.target, seed=args.seed)
        flat: list[tuple[str, Any]] = []
        _flatten("", r, flat)
        for q, v in flat:
            add("removal_gain", q, v)
    return rows


def agreement_rows(image_name: str, target: int, maps: dict[str, np.ndarray], k: float) -> list[dict[str, Any]]:
    from explorer.evaluation.agreement import agreement_table

    rows = []
    for (a, b), vals in agreement_table(maps, k).items():
        for q, v in vals.items():
            rows.append({"image": image_name, "method": f"{a} vs {b}", "target": target, "metric": "agreement",
                         "quantity": q, "value": v, "fraction": ""})
    return rows


# --------------------------------------------------------------------------- command
def cmd_evaluate(args) -> int:
    from explorer.evaluation.report import summarise, write_skipped

    out = Path(args.out)
    if args.summary_only:
        s = summarise(out)
        if not s["methods"]:
            raise FileError(out / "per_image", "no results to summarise")
        wrote = ", ".join(n for n in ("summary.md", "summary.csv", "curves.png") if (out / n).exists())
        print(f"summary of {s['n_images']} images: wrote {wrote} in {out}")
        return 0
    methods = parse_list(args.methods, "methods (--methods a,b,c)")
    metrics = parse_metrics(args.metric)
    if args.metric.strip() == "all":  # 'all' = every metric whose inputs were given
        metrics = [m for m in metrics if not ((m == "pointing" and not args.boxes)
                                              or (m == "reference" and not args.reference))]
    shard_i, shard_n, local_rank = parse_shard(args.shard)
    if args.sanity_stages < 1:
        raise ParamError("--sanity-stages must be >= 1")
    if not 0 < args.topk <= 1:
        raise ParamError("--topk must be in (0, 1]")
    if args.step is not None and args.step < 1:
        raise ParamError("--step must be >= 1 pixel")
    boxes = load_boxes(args.boxes) if "pointing" in metrics else {}
    if "pointing" in metrics and not boxes:
        raise ParamError("metric 'pointing' needs --boxes FILE.json ({image name: [top, left, height, width]})")
    if "reference" in metrics and not args.reference:
        raise ParamError("metric 'reference' needs --reference DIR (reference maps named like the images)")
    if args.reference and not Path(args.reference).is_dir():
        raise FileError(args.reference, "reference folder not found")
    from explorer.evaluation.registry import Options

    Options.from_namespace(args).validate()
    files = list_images(Path(args.path))
    if Path(args.path).is_dir():
        check_names_in_folder(files, boxes, args.boxes, args.reference if "reference" in metrics else None)
    if getattr(args, "ray", None):
        if shard_n > 1:
            raise ParamError("--ray and --shard do not mix: Ray spreads the photos itself")
        from explorer.evaluation.ray_runner import check_address

        check_address(args.ray)  # before loading anything: an address that does not answer fails in seconds
    from explorer.methods import get_method

    from explorer.methods import method_names

    real = [m for m in methods if not (m == RANDOM and RANDOM not in method_names())]
    classes = {m: get_method(m) for m in real}  # unknown names fail here, before loading anything
    values = split_params(args.param, real)
    if local_rank is not None and args.device is None:
        import torch

        if torch.cuda.is_available():
            args.device = f"cuda:{local_rank % torch.cuda.device_count()}"
    from explorer.cli import model_from_args
    from explorer.evaluation.causal import make_substrate  # noqa: F401 - import cost paid before the loop

    model = model_from_args(args)
    instances = {m: classes[m](model, **values[m]) for m in real}  # refuses e.g. gradients on a black box
    reruns = [m for m in metrics if m in RERUNS_METHOD]
    if reruns and model.module is None:
        from explorer.core.errors import UnsupportedError

        raise UnsupportedError(f"metric {reruns[0]!r} re-initialises the model's weights, which the {model.kind} model "
                               f"{model.id!r} does not expose (black box); drop it from --metric")
    from explorer.evaluation import runner

    mine = runner.run_photos(files, (shard_i, shard_n), args.limit)
    suffix = "" if shard_n == 1 else f".shard{shard_i}of{shard_n}"
    bar = Bar(len(mine) * len(methods))
    if getattr(args, "ray", None):
        from explorer.evaluation.ray_runner import run_with_ray

        t = run_with_ray(args.ray, args, mine, methods, metrics, boxes, out, bar)
        computed, reused, skipped = t["computed"], t["reused"], t["skipped"]
    else:
        units = computed = reused = 0
        skipped = []

        def tick(msg: str) -> None:
            nonlocal units
            units += 1
            bar.update(units, msg)

        for path in mine:
            r = runner.evaluate_photo(model, instances, path, methods, metrics, args, boxes, out, on_unit=tick)
            computed, reused = computed + r.computed, reused + r.reused
            skipped += r.skipped
    bar.close()
    write_skipped(out / f"skipped{suffix}.csv", skipped)
    s = runner.finish(out, files, methods, shard_n, args.limit)
    wrote = ", ".join(n for n in ("summary.md", "summary.csv", "curves.png") if (out / n).exists()) if s else "no summary yet"
    print(f"evaluated {len(mine)} images x {len(methods)} methods ({computed} computed, {reused} already done, "
          f"{len(skipped)} skipped); wrote {wrote} in {out}")
    for name, reason in skipped:
        print(f"  skipped {name}: {reason}", file=sys.stderr)
    return 0
