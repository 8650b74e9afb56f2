"""An ``explorer evaluate`` run without the command line: ``prepare_evaluation`` checks an ``EvalConfig`` and
loads what it names, ``execute`` runs it; ``evaluate_photo`` is the unit a process, a shard or a Ray task runs.

``evaluate_photo`` computes every method that has no result yet on one photo and writes one CSV per
(photo, method) atomically, so a photo (or a method of it) that finished is never recomputed, whoever
runs it next. ``finish`` merges the summary only once *every* photo of the whole run has its results: a
shard that ends before the others leaves the summary alone (it would cover its own part only, and the
last writer would win), and the last one to end writes it for all. ``--summary-only`` forces a merge.

    run = prepare_evaluation(EvalConfig(methods=["gradcam", "random"], metrics=["deletion", "insertion"]), "photos/")
    result = execute(run, "out/")            # per_image/*.csv, summary.md, summary.csv, curves.png
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from explorer.core.errors import ExplorerError, FileError, ParamError, UnsupportedError
from explorer.evaluation.config import RANDOM, EvalConfig


@dataclass
class PhotoResult:
    name: str
    computed: int = 0
    reused: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class PreparedEvaluation:
    """A checked run, its model loaded: ``files`` are the photos of every shard, ``photos`` this shard's."""

    config: EvalConfig
    files: list[Path]
    photos: list[Path]
    boxes: dict[str, Any]
    model: Any
    instances: dict[str, Any]  # method name -> instance ("random" has none)

    @property
    def units(self) -> int:
        """(photo, method) pairs of this shard: what a progress bar counts."""
        return len(self.photos) * len(self.config.methods)


@dataclass
class EvaluationResult:
    photos: int
    computed: int
    reused: int
    skipped: list[tuple[str, str]]
    summary: dict[str, Any] | None  # None while other shards still lack results
    deferred: str = ""  # why there is no summary yet (for the caller to show), "" when there is one


def prepare_evaluation(config: EvalConfig, path: str | Path) -> PreparedEvaluation:
    """Check ``config`` against the files it names and the photos at ``path`` (an image or a folder), then
    load the model and the methods. Everything a user can get wrong fails here, before any compute."""
    from explorer.evaluation import registry
    from explorer.evaluation.inputs import check_names_in_folder, list_images, load_boxes, split_params
    from explorer.methods import get_method, method_names
    from explorer.models import load_model

    config.check()
    metrics = config.metrics
    boxes = load_boxes(config.boxes) if "pointing" in metrics else {}
    if "pointing" in metrics and not boxes:
        raise ParamError("metric 'pointing' needs --boxes FILE.json ({image name: [top, left, height, width]})")
    if config.reference and not Path(config.reference).is_dir():
        raise FileError(config.reference, "reference folder not found")
    files = list_images(Path(path))
    if Path(path).is_dir():
        check_names_in_folder(files, boxes, config.boxes, config.reference if "reference" in metrics else None)
    if config.ray:
        from explorer.evaluation.ray_runner import check_address

        check_address(config.ray)  # before loading anything: an address that does not answer fails in seconds
    real = [m for m in config.methods if not (m == RANDOM and RANDOM not in method_names())]
    classes = {m: get_method(m) for m in real}  # unknown names fail here, before loading anything
    values = split_params(config.params, real)
    if config.local_rank is not None and config.model.get("device") is None:
        import torch

        if torch.cuda.is_available():
            config = replace(config, model={**config.model,
                                            "device": f"cuda:{config.local_rank % torch.cuda.device_count()}"})
    from explorer.evaluation.causal import make_substrate  # noqa: F401 - import cost paid before the loop

    model = load_model(**config.model)
    model.resolve_engine()  # every curve is score-only: decide the engine before the first photo
    instances = {m: classes[m](model, **values[m]) for m in real}  # refuses e.g. gradients on a black box
    reruns = [m for m in metrics if "weights" in registry.spec(m).needs]
    if reruns and model.module is None:
        raise UnsupportedError(f"metric {reruns[0]!r} re-initialises the model's weights, which the {model.kind} model "
                               f"{model.id!r} does not expose (black box); drop it from --metric")
    return PreparedEvaluation(config, files, run_photos(files, config.shard, config.limit), boxes, model, instances)


def execute(run: PreparedEvaluation, out: str | Path, bar=None) -> EvaluationResult:
    """Every missing result of this shard's photos into ``out``, then the summary if the whole run is done.
    ``bar``: anything with ``update(units_done, message)`` and ``close()`` (the command line's progress bar)."""
    from explorer.evaluation.report import summarise, write_skipped

    cfg, out = run.config, Path(out)
    shard_i, shard_n = cfg.shard
    if cfg.ray:
        from explorer.evaluation.ray_runner import run_with_ray

        t = run_with_ray(cfg, run.photos, run.boxes, out, evaluate_photo, bar)
        computed, reused, skipped = t["computed"], t["reused"], t["skipped"]
    else:
        units = computed = reused = 0
        skipped = []

        def tick(msg: str) -> None:
            nonlocal units
            units += 1
            if bar is not None:
                bar.update(units, msg)

        for path in run.photos:
            r = evaluate_photo(run.model, run.instances, path, cfg, run.boxes, out, on_unit=tick)
            computed, reused = computed + r.computed, reused + r.reused
            skipped += r.skipped
    if bar is not None:
        bar.close()
    write_skipped(out / ("skipped.csv" if shard_n == 1 else f"skipped.shard{shard_i}of{shard_n}.csv"), skipped)
    deferred = deferral(out, run.files, cfg.methods, shard_n, cfg.limit)
    summary = None if deferred else summarise(out)
    return EvaluationResult(len(run.photos), computed, reused, skipped, summary, deferred)


def evaluate_photo(model, instances: dict, path: Path, config: EvalConfig, boxes: dict, out: Path,
                   on_unit: Callable[[str], None] | None = None,
                   after_write: Callable[[str, str], None] | None = None) -> PhotoResult:
    """Every missing (photo, method) result of one photo; ``on_unit(msg)`` after each method,
    ``after_write(photo, method)`` after each CSV is in place."""
    from explorer.evaluation.report import result_path, write_rows
    from explorer.evaluation.scoring import agreement_rows, evaluate_map, random_explanation
    from explorer.io.images import read_image
    from explorer.methods import run
    from explorer.methods.base import prepare_context

    methods, metrics, seed = config.methods, config.metrics, config.options.seed
    name = path.name
    res = PhotoResult(name)
    tick = on_unit or (lambda _msg: None)
    todo = [m for m in methods if not result_path(out, name, m).exists()]
    agree_path = result_path(out, name, "agreement")
    need_agree = "agreement" in metrics and len(methods) > 1 and not agree_path.exists()
    if not todo and not need_agree:
        res.reused = len(methods)
        for _ in methods:
            tick(f"{name}: done before")
        return res
    try:
        image = read_image(path)
        ctx = prepare_context(model, image.rgb, config.target, seed)
    except ExplorerError as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        res.skipped.append((name, reason))
        for _ in methods:
            tick(f"{name}: skipped ({reason})")
        return res
    maps: dict[str, np.ndarray] = {}
    for m in methods:
        if m not in todo and not need_agree:
            res.reused += 1
            tick(f"{name}: {m} done before")
            continue
        try:
            if m in instances:
                final = None
                for upd in run(instances[m], model, image.rgb, context=ctx):
                    final = upd
                exp = final.explanation
            else:
                exp = random_explanation(model, ctx, name, seed)
            if need_agree:
                maps[m] = exp.raw[exp.main]
            if m in todo:
                write_rows(result_path(out, name, m), evaluate_map(model, image, ctx, m, exp, config, boxes))
                res.computed += 1
                if after_write is not None:
                    after_write(name, m)
            else:
                res.reused += 1
        except ExplorerError as exc:
            res.skipped.append((f"{name} [{m}]", str(exc)))
        tick(f"{name}: {m}")
    if need_agree and len(maps) > 1:
        write_rows(agree_path, agreement_rows(name, ctx.target, maps, config.options.topk))
    return res


def run_photos(files: list[str | Path], shard: tuple[int, int], limit: int | None) -> list[Path]:
    """The photos of shard (i, n): every n-th from i in sorted order, at most ``limit`` of them."""
    i, n = shard
    mine = [Path(f) for f in files][i::n]
    return mine if limit is None else mine[: max(0, int(limit))]


def missing(out: Path, photos: list[Path], methods: list[str]) -> list[str]:
    """Names of the photos whose results are not all there (a skipped photo or method counts as done)."""
    from explorer.evaluation.report import read_skipped, result_path

    skipped = {name for name, _ in read_skipped(out)}
    gone = []
    for p in photos:
        if p.name in skipped:
            continue
        if any(not result_path(out, p.name, m).exists() and f"{p.name} [{m}]" not in skipped for m in methods):
            gone.append(p.name)
    return gone


def deferral(out: Path, files: list[Path], methods: list[str], shard_n: int, limit: int | None) -> str:
    """Why the summary must wait: the photos of the whole run (all ``shard_n`` shards) that still lack results,
    said for the user; "" when every photo has its results. A message, never printed here: the caller (the
    command line) decides where it goes."""
    expected = [p for i in range(shard_n) for p in run_photos(files, (i, shard_n), limit)]
    left = missing(out, expected, methods)
    if not left:
        return ""
    return (f"summary deferred: {len(left)} of {len(expected)} photos still lack results (other shards are "
            f"running, or stopped); the last shard to finish writes it, or run `explorer evaluate "
            f"PHOTOS --summary-only --out {out}` to merge what is there")


def finish(out: Path, files: list[Path], methods: list[str], shard_n: int, limit: int | None) -> dict[str, Any] | None:
    """Merge the summary if the whole run (all ``shard_n`` shards) is complete. Returns the summary table,
    or None when it was deferred (``deferral`` says why)."""
    from explorer.evaluation.report import summarise

    return None if deferral(out, files, methods, shard_n, limit) else summarise(out)


# The names before issue 32 (three functions were called prepare then), for Python callers.
prepare = prepare_evaluation  # old name kept
Run = PreparedEvaluation  # old name kept
RunResult = EvaluationResult  # old name kept
