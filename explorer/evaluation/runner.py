"""One photo of ``explorer evaluate``, and the end of a run: the unit a process, a shard or a Ray task runs.

``evaluate_photo`` computes every method that has no result yet on one photo and writes one CSV per
(photo, method) atomically, so a photo (or a method of it) that finished is never recomputed, whoever
runs it next. ``finish`` merges the summary only once *every* photo of the whole run has its results: a
shard that ends before the others leaves the summary alone (it would cover its own part only, and the
last writer would win), and the last one to end writes it for all. ``--summary-only`` forces a merge.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from explorer.core.errors import ExplorerError


@dataclass
class PhotoResult:
    name: str
    computed: int = 0
    reused: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def evaluate_photo(model, instances: dict, path: Path, methods: list[str], metrics: list[str], args, boxes: dict,
                   out: Path, on_unit: Callable[[str], None] | None = None,
                   after_write: Callable[[str, str], None] | None = None) -> PhotoResult:
    """Every missing (photo, method) result of one photo; ``on_unit(msg)`` after each method,
    ``after_write(photo, method)`` after each CSV is in place (the Ray crash test hooks in there)."""
    from explorer.evaluation.cli import RANDOM, agreement_rows, evaluate_map, random_explanation
    from explorer.evaluation.report import result_path, write_rows
    from explorer.io.images import read_image
    from explorer.methods import run
    from explorer.methods.base import prepare

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
        ctx = prepare(model, image.rgb, args.target, args.seed)
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
                exp = random_explanation(model, ctx, name, args.seed)
            if need_agree:
                maps[m] = exp.raw[exp.main]
            if m in todo:
                write_rows(result_path(out, name, m), evaluate_map(model, image, ctx, m, exp, metrics, args, boxes))
                res.computed += 1
                if after_write is not None:
                    after_write(name, m)
            else:
                res.reused += 1
        except ExplorerError as exc:
            res.skipped.append((f"{name} [{m}]", str(exc)))
        tick(f"{name}: {m}")
    if need_agree and len(maps) > 1:
        write_rows(agree_path, agreement_rows(name, ctx.target, maps, args.topk))
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


def finish(out: Path, files: list[Path], methods: list[str], shard_n: int, limit: int | None,
           stream=None) -> dict[str, Any] | None:
    """Merge the summary if the whole run (all ``shard_n`` shards) is complete; else say what is missing.

    Returns the summary table, or None when it was deferred."""
    from explorer.evaluation.report import summarise

    stream = stream or sys.stdout
    expected = [p for i in range(shard_n) for p in run_photos(files, (i, shard_n), limit)]
    left = missing(out, expected, methods)
    if left:
        print(f"summary deferred: {len(left)} of {len(expected)} photos still lack results (other shards are "
              f"running, or stopped); the last shard to finish writes it, or run `explorer evaluate "
              f"PHOTOS --summary-only --out {out}` to merge what is there", file=stream)
        return None
    return summarise(out)
