"""GUI responsiveness, offscreen (QT_QPA_PLATFORM=offscreen).

1. launch: process start to the first shown (painted) main window, and whether torch was loaded by then.
2. display sliders: a display control change (opacity, clipping, colormap, top-k mode) to a finished repaint
   of the canvas, for a 1024x1024 image with 4 visible 1024x1024 layers.
3. heartbeat: a 10 ms QTimer on the GUI thread while RISE runs on the worker thread (with live partial maps
   streaming onto the canvas, 1024x1024, with 3 finished layers shown beside RISE's: 4 visible layers); the
   longest gap minus the period is the longest time the GUI thread blocked. A wall-clock gap also counts the
   time the process waited for a CPU, so on a loaded machine the GUI thread's own CPU time in each gap is
   reported too (time.thread_time at each beat): its maximum is the longest stretch of GUI-thread work.
4. per-call costs (CPU time, independent of the machine's load): what each streamed partial costs the GUI
   thread now (accept + swapping the finished images in + a repaint of 4 layers) and what was moved off it
   (statistics and colouring of a layer, the baseline rule), at 1024x1024.

    .venv/bin/python benchmarks/bench_gui.py [--quick]

Prints a table and writes benchmarks/results/bench_gui.json. The wall-clock rows (1-3) are only figures
for an idle machine when the load average recorded with them is low: the JSON's machine.loaded is true
(and the table says so) when the 1-minute load at the start exceeded half the CPU count.
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

    from explorer.core.types import MethodResult, Placement

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32)
    cy, cx = rng.uniform(0.2, 0.8, 2) * hw
    m = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (hw[0] / 6) ** 2)) + 0.05 * rng.random(hw, dtype=np.float32)
    return MethodResult(method, {"salient": m.astype(np.float32)}, {"salient": False}, Placement.whole(hw, hw), 0,
                       "x", {}, seed, "bench", {"seconds": 0.0}, {}, 1.0, True)


def _settle_renders(app, win, timeout_s: float = 60.0) -> None:
    """Process events until no layer is waiting on the canvas's render thread."""
    end = time.monotonic() + timeout_s
    app.processEvents()
    while getattr(win.canvas, "rendering", False):  # (absent before the render thread: nothing to wait for)
        if time.monotonic() > end:
            raise SystemExit("the render thread did not finish")
        time.sleep(0.001)
        app.processEvents()


def _add_finished_layers(win, hw, n: int) -> None:
    for i in range(n):
        run = win.session.new_run(f"m{i}", {})
        win.session.accept(run.id, 1, _fake_explanation(hw, i, f"m{i}"), True)


def _noise_window(hw: tuple[int, int], layers: int):
    """A shown window (no model started) on a seeded noise image with ``layers`` finished layers, and the
    generator that drew the image (for the caller's further draws)."""
    import numpy as np

    from explorer.gui.main_window import MainWindow

    win = MainWindow()
    win.resize(1440, 900)
    win.show()
    rng = np.random.default_rng(0)
    win.session.set_image(rng.integers(0, 255, hw + (3,), dtype=np.uint8), "noise.png")
    _add_finished_layers(win, hw, layers)
    return win, rng


def bench_sliders(app, repeats: int) -> dict:
    hw = (1024, 1024)
    win, _ = _noise_window(hw, 4)
    for layer in win.session.layers:
        win.session.set_layer(layer, visible=True, opacity=0.4)
    _settle_renders(app, win)
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


def bench_heartbeat(app, n_masks: int, size: int, others: int = 3) -> dict:
    import threading

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
    win.runs.set_image(img, f"chelsea_{size}.png")
    t_end = time.monotonic() + 600
    while not (win.runs.catalog and win.session.predictions):
        app.processEvents()
        time.sleep(0.005)
        if time.monotonic() > t_end:
            raise SystemExit("model did not load")
    _add_finished_layers(win, (size, size), others)
    _settle_renders(app, win)
    beats: list[tuple[float, float]] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: beats.append((time.perf_counter(), time.thread_time())))
    timer.start()
    renders0, stale0 = win.canvas.renders, getattr(win.canvas, "stale_renders", 0)
    run = win.runs.start("rise", {"n": n_masks}, 0)
    t0 = time.perf_counter()
    shown = False
    while run.active:
        app.processEvents()
        if not shown and run.explanation is not None:  # the new run hid the others: show them again
            for layer in win.session.layers:
                if layer.run_id != run.id:
                    win.session.set_layer(layer, visible=True)
            shown = True
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    _settle_renders(app, win)
    timer.stop()
    visible = sum(l.visible for l in win.session.layers)
    b = np.asarray(beats)
    gaps = np.diff(b[:, 0]) * 1000
    cpu = np.diff(b[:, 1]) * 1000
    partials = run.explanation.timings.get("steps", 0)
    ids = getattr(getattr(win.canvas, "renderer", None), "thread_ids", set())
    off_gui = bool(ids) and threading.main_thread().ident not in ids
    win.close()
    return {"run_seconds": elapsed, "status": run.status, "n_masks": n_masks, "image": f"{size}x{size}",
            "visible_layers": visible, "beats": int(gaps.size + 1), "max_gap_ms": float(gaps.max()),
            "p99_gap_ms": float(np.percentile(gaps, 99)), "median_gap_ms": float(np.median(gaps)),
            "max_block_ms": float(gaps.max() - 10.0), "max_gui_cpu_in_gap_ms": float(cpu.max()),
            "p99_gui_cpu_in_gap_ms": float(np.percentile(cpu, 99)), "steps": partials,
            "renders_shown": win.canvas.renders - renders0,
            "renders_dropped_stale": getattr(win.canvas, "stale_renders", 0) - stale0,
            "coloured_off_gui_thread": off_gui}


def _cpu_ms(fn, repeats: int) -> float:
    """Median CPU time of the calling thread per call, in ms (load-independent, unlike wall time)."""
    import statistics as st

    fn()
    out = []
    for _ in range(repeats):
        c = time.thread_time()
        fn()
        out.append(time.thread_time() - c)
    return st.median(out) * 1000


def bench_costs(app, repeats: int) -> dict:
    """GUI-thread CPU per streamed partial now, and the per-call cost of what moved off the GUI thread."""
    import dataclasses

    import numpy as np

    from explorer.session import display, render
    from explorer.workers.compute import _prepare_display

    hw = (1024, 1024)
    win, rng = _noise_window(hw, 3)
    rise = win.session.new_run("rise", {})

    def partial(seed):  # what the compute worker sends: RISE-like maps (224² in model space), prepared
        e = _fake_explanation(hw, seed, "rise")
        small = (0.6 + 0.05 * rng.random((224, 224))).astype(np.float32)
        e.raw = {"salient": small, "uncertainty": small * 0.01}
        e.signed = {"salient": False, "uncertainty": False}
        e._maps = {"salient": e.maps["salient"] + 0.6, "uncertainty": e.maps["salient"] * 0.01}
        _prepare_display(e)
        return e

    win.session.accept(rise.id, 1, partial(100), False)
    for layer in win.session.layers:
        win.session.set_layer(layer, visible=layer.name != "uncertainty")
    _settle_renders(app, win)
    vp = win.canvas.view.viewport()
    exps = [partial(200 + i) for i in range(repeats + 1)]
    accept, swap, paint = [], [], []
    for e in exps:
        c = time.thread_time()
        win.runs.on_partial(rise.id, 1, e)  # the session takes the result; the canvas submits the colouring
        accept.append(time.thread_time() - c)
        time.sleep(0.05)  # the render thread colours meanwhile
        c = time.thread_time()
        _settle_renders(app, win)  # the finished array is swapped into the item
        swap.append(time.thread_time() - c)
        c = time.thread_time()
        vp.repaint()
        paint.append(time.thread_time() - c)
    visible = sum(l.visible for l in win.session.layers)
    layer = dataclasses.replace(win.session.layers_of(rise)[0])
    m = exps[-1].maps["salient"]
    moved = {}
    # (before the render thread the canvas called render_rgba on the display map itself: the same work)
    colour = getattr(render, "render_layer", None) or (lambda l, a: render.render_rgba(l, render.display_map(a)))
    for mode in ("heat", "top-k", "contour"):
        layer.mode = mode
        moved[f"colour a layer, {mode} (render_layer)"] = _cpu_ms(lambda: colour(layer, m), repeats)
    moved["statistics of a 1024² map (compute_stats)"] = _cpu_ms(lambda: render.compute_stats(m), repeats)
    moved["baseline rule of a 224² map (on_baseline)"] = _cpu_ms(lambda: display.on_baseline(exps[-1].raw["salient"]),
                                                                 repeats)
    win.close()

    def med(v):  # milliseconds
        return statistics.median(v) * 1000

    return {"visible_layers": visible, "gui_accept_ms": med(accept), "gui_swap_ms": med(swap),
            "gui_repaint_ms": med(paint), "gui_total_ms": med(accept) + med(swap) + med(paint),
            "moved_per_call_ms": moved,
            "moved_per_partial_ms": (moved["colour a layer, heat (render_layer)"]
                                     + moved["baseline rule of a 224² map (on_baseline)"] * 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, fewer masks")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    load_start = os.getloadavg()
    launch = bench_launch(2 if args.quick else 5)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    sliders = bench_sliders(app, 10 if args.quick else 40)
    costs = bench_costs(app, 10 if args.quick else 30)
    heart = bench_heartbeat(app, 200 if args.quick else 1000, 1024)
    import torch

    machine = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "load_avg_start": load_start, "load_avg": os.getloadavg(),
               "qt_platform": os.environ.get("QT_QPA_PLATFORM")}
    machine["loaded"] = load_start[0] > 0.5 * (os.cpu_count() or 1)
    rows = [
        ("launch to first window (s)", f"{launch['median_s']:.2f}", "<= 1", launch["median_s"] <= 1.0),
        ("torch loaded when window shown", str(launch["torch_loaded_at_window"]), "False",
         not launch["torch_loaded_at_window"]),
    ]
    for k, v in sliders.items():
        rows.append((f"display change -> repaint, {k} (median ms)", f"{v['median_ms']:.1f}", "<= 16",
                     v["median_ms"] <= 16.0))
        rows.append(("   same, process CPU time (median ms)", f"{v['median_cpu_ms']:.1f}", "", True))
    rows.append(("GUI thread longest block during RISE (ms)", f"{heart['max_block_ms']:.1f}", "<= 50",
                 heart["max_block_ms"] <= 50.0))
    rows.append(("GUI heartbeat p99 gap (ms, 10 ms timer)", f"{heart['p99_gap_ms']:.1f}", "", True))
    rows.append(("GUI thread CPU in the longest-working gap (ms)", f"{heart['max_gui_cpu_in_gap_ms']:.1f}", "<= 50",
                 heart["max_gui_cpu_in_gap_ms"] <= 50.0))
    rows.append(("   visible layers / partial maps / renders shown / dropped stale",
                 f"{heart['visible_layers']}/{heart['steps']}/{heart['renders_shown']}/{heart['renders_dropped_stale']}",
                 "", True))
    rows.append(("   layers coloured off the GUI thread", str(heart["coloured_off_gui_thread"]), "True",
                 heart["coloured_off_gui_thread"]))
    rows.append((f"GUI thread CPU per partial, {costs['visible_layers']} visible (ms)", f"{costs['gui_total_ms']:.1f}",
                 "", True))
    for k in ("gui_accept_ms", "gui_swap_ms", "gui_repaint_ms"):
        rows.append((f"   {k[4:-3]}", f"{costs[k]:.1f}", "", True))
    rows.append(("moved off the GUI thread, per partial (ms CPU)", f"{costs['moved_per_partial_ms']:.1f}", "", True))
    for k, v in costs["moved_per_call_ms"].items():
        rows.append((f"   {k}", f"{v:.1f}", "", True))
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'value':>8}  {'target':>7}  ok")
    for name, val, target, ok in rows:
        print(f"{name:<{w}}  {val:>8}  {target:>7}  {'yes' if ok else 'NO'}")
    print(f"RISE run: {heart['n_masks']} masks on {heart['image']} in {heart['run_seconds']:.1f} s "
          f"({heart['status']}); machine: {machine['cpu_count']} CPUs, torch threads {machine['torch_threads']}, load "
          f"{machine['load_avg_start']} at the start, {machine['load_avg']} at the end")
    if machine["loaded"]:
        print(f"NOTE: the machine was loaded (1-min load {load_start[0]:.1f} on {machine['cpu_count']} CPUs): the "
              "wall-clock rows are not idle figures; the CPU-time rows are the comparable ones")
    out = ROOT / "benchmarks" / "results" / "bench_gui.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"launch": launch, "sliders": sliders, "heartbeat": heart, "costs": costs,
                               "machine": machine,
                               "quick": args.quick}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
