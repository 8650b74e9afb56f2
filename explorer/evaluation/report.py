"""Results of ``explorer evaluate`` on disk: one CSV per image and method, and the summary built from them.

Layout of the output folder::

    per_image/<image file name>__<method>.csv     rows: image, method, target, metric, quantity, value, fraction
    per_image/<image file name>__agreement.csv    pairwise agreement of the methods on that image
    skipped*.csv                                  images that could not be used, with the reason
    summary.csv, summary.md                       mean ± std per method of every scalar quantity
    curves.csv, curves.png                        average deletion / insertion curves per method

The summary is rebuilt by streaming over the per-image CSVs (one file in memory at a time), so it covers
every shard whose CSVs were copied into ``per_image/`` — this is also the merge step of a sharded run.
numpy + PIL only (no matplotlib: the PNG is drawn with PIL).
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

FIELDS = ("image", "method", "target", "metric", "quantity", "value", "fraction")
GRID = np.linspace(0.0, 1.0, 101)
CURVE_MODES = ("deletion", "insertion", "pixel_flipping", "region_perturbation", "road_morf", "road_lerf")
X_LABEL = {"deletion": "fraction of pixels removed", "insertion": "fraction of pixels inserted",
           "pixel_flipping": "fraction of pixels flipped",
           "region_perturbation": "fraction of pixels in replaced regions",
           "road_morf": "fraction removed (most relevant first)",
           "road_lerf": "fraction removed (least relevant first)"}
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def result_path(out: Path, image_name: str, method: str) -> Path:
    return Path(out) / "per_image" / f"{safe_name(image_name)}__{safe_name(method)}.csv"


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write atomically (temporary file, then rename): an interrupted run never leaves a partial CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, "")) for k in FIELDS})
    os.replace(tmp, path)


def _fmt(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.8g}"
    return v


def _num(v: str) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class _Acc:
    """Running count, sum and sum of squares (Welford would be overkill at these sizes)."""

    def __init__(self) -> None:
        self.n = 0
        self.s = 0.0
        self.s2 = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        self.s += x
        self.s2 += x * x

    @property
    def mean(self) -> float:
        return self.s / self.n if self.n else float("nan")

    @property
    def std(self) -> float:
        if self.n < 2:
            return 0.0 if self.n == 1 else float("nan")
        return math.sqrt(max(0.0, (self.s2 - self.s * self.s / self.n) / (self.n - 1)))


@dataclass
class _Gathered:
    """What the per-image CSVs say, accumulated: scalar quantities per method, summed curves on GRID (with their
    counts and the largest fraction each reaches), the images per method and each metric's protocol notes."""

    scal: dict[str, dict[tuple[str, str], _Acc]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(_Acc)))
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=lambda: defaultdict(dict))
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    spans: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    images: dict[str, set] = field(default_factory=lambda: defaultdict(set))
    notes: dict[str, set] = field(default_factory=lambda: defaultdict(set))

    def read(self, path: Path) -> None:
        """One image's CSV: its scalar rows into the accumulators, its curve points onto GRID."""
        pts: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                method, metric, q = r["method"], r["metric"], r["quantity"]
                self.images[method].add(r["image"])
                if r.get("fraction", "") != "":
                    v, fr = _num(r["value"]), _num(r["fraction"])
                    if v is not None and fr is not None:  # "score": the metric's curve; "morf.score": a named one
                        key = metric if q == "score" else f"{metric}_{q.removesuffix('.score')}"
                        pts[(method, key)].append((fr, v))
                    continue
                v = _num(r["value"])
                if v is None:
                    if r["value"] and q in ("substrate", "step", "protocol"):
                        self.notes[metric].add(f"{q} {r['value']}")
                    continue
                if q == "step":
                    self.notes[metric].add(f"step {int(v)} px")
                    continue
                if q in ("target",):
                    continue
                self.scal[method][(metric, q)].add(v)
        for (method, metric), p in pts.items():
            p.sort()
            fr, sc = np.array([a for a, _ in p]), np.array([b for _, b in p])
            self.spans[method][metric] = max(self.spans[method].get(metric, 0.0), float(fr.max()))
            acc = self.curves[method].setdefault(metric, np.zeros(GRID.size))
            acc += np.interp(GRID, fr, sc)
            self.counts[method][metric] += 1

    def methods(self) -> list[str]:
        return sorted(self.scal, key=lambda m: (" vs " in m, m))

    def columns(self) -> list[tuple[str, str]]:
        """Every (metric, quantity) any method has, the headline metrics first."""
        columns: list[tuple[str, str]] = []
        for m in self.methods():
            columns += [key for key in self.scal[m] if key not in columns]
        return sorted(columns, key=lambda k: (_COLUMN_ORDER.get(k[0], 8), k[0], k[1]))

    def mean_curves(self) -> dict[str, dict[str, np.ndarray]]:
        return {m: {k: v / self.counts[m][k] for k, v in c.items()} for m, c in self.curves.items()}


_COLUMN_ORDER = {"deletion": 0, "insertion": 1, "causal": 2, "confidence": 3, "pointing": 4, "reference": 5,
                 "removal_gain": 6, "sanity": 7, "agreement": 8, "run": 9}


def summarise(out: str | Path, title: str = "explorer evaluate") -> dict[str, Any]:
    """Stream over ``out/per_image/*.csv`` and write summary.csv/.md, curves.csv/.png. Returns the table."""
    out = Path(out)
    g = _Gathered()
    for path in sorted((out / "per_image").glob("*.csv")) if (out / "per_image").is_dir() else []:
        g.read(path)
    methods, columns, mean_curves = g.methods(), g.columns(), g.mean_curves()

    out.mkdir(parents=True, exist_ok=True)
    with _atomic(out / "summary.csv") as f:
        w = csv.writer(f)
        w.writerow(["method", "metric", "quantity", "n", "mean", "std"])
        for m in methods:
            for key in columns:
                a = g.scal[m].get(key)
                if a is not None and a.n:
                    w.writerow([m, key[0], key[1], a.n, repr(a.mean), repr(a.std)])
    with _atomic(out / "curves.csv") as f:
        w = csv.writer(f)
        w.writerow(["method", "mode", "n_images"] + [f"{x:.2f}" for x in GRID])
        for m in sorted(mean_curves):
            for k, v in mean_curves[m].items():
                w.writerow([m, k, g.counts[m][k]] + [f"{x:.6f}" for x in v])
    n_img = len(set().union(*g.images.values())) if g.images else 0
    skipped = read_skipped(out)
    with _atomic(out / "summary.md") as f:
        f.write(_markdown(g, title, n_img, skipped))
    if mean_curves:
        plot_curves(out / "curves.png", mean_curves, {m: dict(g.counts[m]) for m in g.counts},
                    spans={m: dict(v) for m, v in g.spans.items()})
    return {"methods": methods, "columns": columns,
            "table": {m: {f"{a}.{b}": (g.scal[m][(a, b)].mean, g.scal[m][(a, b)].std, g.scal[m][(a, b)].n)
                          for (a, b) in g.scal[m]} for m in methods},
            "curves": mean_curves, "skipped": skipped, "n_images": n_img}


def _markdown(g: _Gathered, title: str, n_img: int, skipped: list) -> str:
    """summary.md: the protocol notes, then one row per method with the headline quantities as columns."""
    methods, head = g.methods(), g.columns()
    lines = [f"# {title}", ""]
    n_methods = len([m for m in methods if " vs " not in m])
    lines.append(f"{n_img} images, {n_methods} methods; mean ± std over images (rows 'a vs b': agreement of two maps).")
    for metric in sorted(g.notes):
        lines.append(f"- {metric}: {', '.join(sorted(g.notes[metric]))}")
    lines.append("")
    lines.append("| method | images | " + " | ".join(f"{a} {b}" for a, b in head) + " |")
    lines.append("|---|---|" + "---|" * len(head))
    for m in methods:
        cells = []
        for key in head:
            a = g.scal[m].get(key)
            cells.append(f"{a.mean:.4g} ± {a.std:.2g}" if a is not None and a.n else "")
        lines.append(f"| {m} | {len(g.images[m])} | " + " | ".join(cells) + " |")
    if skipped:
        lines += ["", f"## Skipped ({len(skipped)})", ""]
        lines += [f"- {name}: {reason}" for name, reason in skipped]
    lines.append("")
    lines.append("Lower deletion AUC and higher insertion AUC are better; causal ins_minus_del = insertion − deletion.")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _atomic(path: Path):
    """Write to a temporary file and rename: two shards merging at once never interleave their bytes."""
    tmp = Path(path).with_name(Path(path).name + f".tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        yield f
    os.replace(tmp, path)


def read_skipped(out: Path) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for path in sorted(Path(out).glob("skipped*.csv")):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                seen[r["image"]] = r["reason"]
    return sorted(seen.items())


def write_skipped(path: Path, skipped: list[tuple[str, str]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "reason"])
        w.writerows(skipped)


# --------------------------------------------------------------------------- plot (PIL)
def plot_curves(path: Path, curves: dict[str, dict[str, np.ndarray]], counts: dict[str, dict[str, int]],
                size: tuple[int, int] = (1000, 440), spans: dict[str, dict[str, float]] | None = None) -> None:
    """Average deletion and insertion curves per method, side by side, drawn with PIL."""
    from PIL import Image, ImageDraw, ImageFont

    present = {k for c in curves.values() for k in c}
    modes = [m for m in CURVE_MODES if m in present] + sorted(present - set(CURVE_MODES))
    modes = modes or list(CURVE_MODES[:2])
    cols = min(len(modes), 2 if len(modes) <= 4 else 3)
    nrows = -(-len(modes) // cols)
    pw, ph = size[0] // 2, size[1]
    W, H = pw * cols, ph * nrows
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    methods = sorted(curves)
    colour = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}
    for j, mode in enumerate(modes):
        row, col = divmod(j, cols)
        x0, y0, x1, y1 = col * pw + 55, row * ph + 30, (col + 1) * pw - 20, (row + 1) * ph - 45
        # region perturbation reaches ~13 % of the pixels, ROAD 90 %: draw each panel over its own span
        xmax = max([(spans or {}).get(m, {}).get(mode, 1.0) for m in methods if mode in curves[m]] + [1e-6])
        ymax = max([float(np.max(c[mode])) for c in curves.values() if mode in c] + [1e-6])
        ymax = 1.0 if ymax > 0.5 else max(0.05, math.ceil(ymax * 20) / 20)
        d.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
        for t in range(6):
            fx = x0 + (x1 - x0) * t / 5
            fy = y1 - (y1 - y0) * t / 5
            d.line([fx, y1, fx, y1 + 4], fill=(0, 0, 0))
            d.text((fx - 8, y1 + 7), f"{xmax * t / 5:.2g}", fill=(0, 0, 0), font=font)
            d.line([x0 - 4, fy, x0, fy], fill=(0, 0, 0))
            d.line([x0 + 1, fy, x1 - 1, fy], fill=(235, 235, 235))
            d.text((x0 - 38, fy - 6), f"{ymax * t / 5:.2f}", fill=(0, 0, 0), font=font)
        d.text(((x0 + x1) / 2 - 70, y1 + 22), X_LABEL.get(mode, "fraction"), fill=(0, 0, 0), font=font)
        d.text((x0, y0 - 20), f"{mode} (mean P_target over images)", fill=(0, 0, 0), font=font)
        ly = y0 + 8
        for m in methods:
            c = curves[m].get(mode)
            if c is None:
                continue
            span = (spans or {}).get(m, {}).get(mode, 1.0)
            g, v = GRID[GRID <= span + 1e-9], c[GRID <= span + 1e-9]
            pts = [(x0 + (x1 - x0) * a / xmax, y1 - (y1 - y0) * min(max(b / ymax, 0.0), 1.0)) for a, b in zip(g, v)]
            if len(pts) > 1:
                d.line(pts, fill=colour[m], width=2)
            auc = float(np.sum((v[1:] + v[:-1]) * np.diff(g)) / 2 / (g[-1] - g[0])) if g.size > 1 else float(v[0])
            label = f"{m}  AUC {auc:.3f}  (n={counts.get(m, {}).get(mode, 0)})"
            d.line([x1 - 190, ly + 6, x1 - 170, ly + 6], fill=colour[m], width=3)
            d.text((x1 - 165, ly), label, fill=(0, 0, 0), font=font)
            ly += 14
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
