"""GUI responsiveness, offscreen (QT_QPA_PLATFORM=offscreen).

1. launch: process start to the first shown (painted) main window, and whether torch was loaded by then.
2. display sliders: a display control change (opacity, clipping, colormap, top-k mode) to a finished repaint
   of the canvas, for a 1024x1024 image with 4 visible 1024x1024 layers.
3. heartbeat: a 10 ms QTimer on the GUI thread while RISE runs on the worker thread (with live partial maps
   streaming onto the canvas); the longest gap minus the period is the longest time the GUI thread blocked.

    .venv/bin/python benchmarks/bench_gui.py [--quick]

Prints a table and writes benchmarks/results/bench_gui.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("EXPLORER_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAUNCH_CHILD = r"""
import sys, time
import explorer.cli  # what `explorer` imports first
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
from explorer.gui.main_window import MainWindow
w = MainWindow()
w.show()
app.processEvents()
w.repaint()
t = time.time()
torch_loaded = 'torch' in sys.modules
w.start()  # the worker now imports torch, off the GUI thread
print(t, torch_loaded, flush=True)
import os
os._exit(0)  # do not wait for the worker's torch import
"""


def bench_launch(repeats: int) -> dict:
    times, torch_flags = [], []
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for _ in range(repeats):
        t0 = time.time()
        r = subprocess.run([sys.executable, "-c", LAUNCH_CHILD], capture_output=True, text=True, env=env, cwd=ROOT)
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        t_shown, flag = r.stdout.split()[-2:]
        times.append(float(t_shown) - t0)
        torch_flags.append(flag == "True")
    return {"median_s": statistics.median(times), "all_s": times, "torch_loaded_at_window": any(torch_flags)}


def _fake_explanation(hw, seed, method):
    import numpy as np

    from explorer.core.types import Explanation, Placement

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32)
    cy, cx = rng.uniform(0.2, 0.8, 2) * hw
    m = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (hw[0] / 6) ** 2)) + 0.05 * rng.random(hw, dtype=np.float32)
    return Explanation(method, {"salient": m.astype(np.float32)}, {"salient": False}, Placement.whole(hw, hw), 0,
                       "x", {}, seed, "bench", {"seconds": 0.0}, {}, 1.0, True)


def bench_sliders(app, repeats: int) -> dict:
    import numpy as np

    from explorer.gui.main_window import MainWindow

    hw = (1024, 1024)
    win = MainWindow()
    win.resize(1440, 900)
    win.show()
    rng = np.random.default_rng(0)
    win.session.set_image(rng.integers(0, 255, hw + (3,), dtype=np.uint8), "noise.png")
    for i in range(4):
        run = win.session.new_run(f"m{i}", {})
        win.session.accept(run.id, 1, _fake_explanation(hw, i, f"m{i}"), True)
    for layer in win.session.layers:
        win.session.set_layer(layer, visible=True, opacity=0.4)
    app.processEvents()
    vp = win.canvas.view.viewport()
    vp.repaint()
    panel = win.layer_panel
    layer = win.session.active_layer()
    results: dict[str, list[float]] = {"opacity": [], "clip": [], "colormap": [], "top-k mode": []}
    cpu: dict[str, list[float]] = {k: [] for k in results}
    cmaps = ["viridis", "inferno", "magma", "jet"]
    for i in range(repeats):
        for name, act in (
            ("opacity", lambda: panel.opacity.spin.setValue(0.3 + 0.4 * ((i % 5) / 5))),
            ("clip", lambda: panel.clip.spin.setValue(95.0 + (i % 9) * 0.5)),
            ("colormap", lambda: panel.colormap.setCurrentText(cmaps[i % 4])),
            ("top-k mode", lambda: panel.mode.setCurrentText("top-k" if i % 2 == 0 else "heat")),
        ):
            t0, c0 = time.perf_counter(), time.process_time()
            act()
            vp.repaint()  # synchronous: the change is on screen when this returns
            results[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            app.processEvents()
    assert sum(l.visible for l in win.session.layers) == 4 and layer is not None
    win.close()
    out = {k: {"median_ms": statistics.median(v) * 1000, "max_ms": max(v) * 1000,
               "median_cpu_ms": statistics.median(cpu[k]) * 1000} for k, v in results.items()}
    allv = [x for v in results.values() for x in v]
    allc = [x for v in cpu.values() for x in v]
    out["all"] = {"median_ms": statistics.median(allv) * 1000, "max_ms": max(allv) * 1000, "n": len(allv),
                  "median_cpu_ms": statistics.median(allc) * 1000}
    return out


def bench_heartbeat(app, n_masks: int, size: int) -> dict:
    import numpy as np
    from PIL import Image
    from PySide6.QtCore import QTimer

    from explorer.gui.main_window import MainWindow
    from explorer.io.images import read_image

    win = MainWindow(throttle_s=0.08)
    win.resize(1440, 900)
    win.show()
    win.start()
    img = read_image(ROOT / "resources" / "samples" / "chelsea.png").rgb
    img = np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))
    win.set_image(img, f"chelsea_{size}.png")
    t_end = time.monotonic() + 600
    while not (win.catalog and win.session.predictions):
        app.processEvents()
        time.sleep(0.005)
        if time.monotonic() > t_end:
            raise SystemExit("model did not load")
    beats: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    timer.start()
    run = win.start_run("rise", {"n": n_masks}, 0)
    t0 = time.perf_counter()
    while run.active:
        app.processEvents()
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    timer.stop()
    gaps = np.diff(np.asarray(beats)) * 1000
    partials = run.explanation.timings.get("steps", 0)
    win.close()
    return {"run_seconds": elapsed, "status": run.status, "n_masks": n_masks, "image": f"{size}x{size}",
            "beats": int(gaps.size + 1), "max_gap_ms": float(gaps.max()), "p99_gap_ms": float(np.percentile(gaps, 99)),
            "median_gap_ms": float(np.median(gaps)), "max_block_ms": float(gaps.max() - 10.0), "steps": partials}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, fewer masks")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    launch = bench_launch(2 if args.quick else 5)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    sliders = bench_sliders(app, 10 if args.quick else 40)
    heart = bench_heartbeat(app, 200 if args.quick else 1000, 1024)
    import torch

    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "load_avg": os.getloadavg(),
               "qt_platform": os.environ.get("QT_QPA_PLATFORM")}
    rows = [
        ("launch to first window (s)", f"{launch['median_s']:.2f}", "<= 2", launch["median_s"] <= 2.0),
        ("torch loaded when window shown", str(launch["torch_loaded_at_window"]), "False",
         not launch["torch_loaded_at_window"]),
    ]
    for k, v in sliders.items():
        rows.append((f"display change -> repaint, {k} (median ms)", f"{v['median_ms']:.1f}", "<= 16",
                     v["median_ms"] <= 16.0))
        rows.append((f"   same, process CPU time (median ms)", f"{v['median_cpu_ms']:.1f}", "", True))
    rows.append(("GUI thread longest block during RISE (ms)", f"{heart['max_block_ms']:.1f}", "<= 50",
                 heart["max_block_ms"] <= 50.0))
    rows.append(("GUI heartbeat p99 gap (ms, 10 ms timer)", f"{heart['p99_gap_ms']:.1f}", "", True))
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'value':>8}  {'target':>7}  ok")
    for name, val, target, ok in rows:
        print(f"{name:<{w}}  {val:>8}  {target:>7}  {'yes' if ok else 'NO'}")
    print(f"RISE run: {heart['n_masks']} masks on {heart['image']} in {heart['run_seconds']:.1f} s ({heart['status']}); "
          f"machine: {machine['cpu_count']} CPUs, torch threads {machine['torch_threads']}, load {machine['load_avg']}")
    out = ROOT / "benchmarks" / "results" / "bench_gui.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"launch": launch, "sliders": sliders, "heartbeat": heart, "machine": machine,
                               "quick": args.quick}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
