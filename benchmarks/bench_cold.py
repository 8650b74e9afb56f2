"""Each method as the user runs it: ``explorer explain`` in a fresh process, against the sustained bound.

For every method: the bound (benchmarks/_bound.py, a fresh process, best batch and memory format, 1000
images) is measured right before and right after the method's own fresh ``explorer explain`` process, and the
method's time (the runner's ``timings.seconds``, model loading excluded) is divided by what its forwards cost
at that bound: ``images / forward_rate + grad_images / grad_rate`` (the runner counts both). Interleaving
(bound, method, bound) keeps the ratio meaningful on a shared, noisy machine: the machine's speed at the time
of the method is bracketed by the two bounds, and their mean is used.

Score-only forwards have two bounds (issue 29): torch eager's, and the fastest engine's - ONNX Runtime on the
model's export where that is faster (explorer/models/engine.py; ``explorer explain`` scores through it by
default). Perturbation methods are held to <= 1.10x the fastest engine's bound, bracketed by it before and after;
torch eager's bound is measured once beside it. Gradient methods: <= 1.3x their forward+backward bound (torch).
The engine's decision (export, check, timing) happens with the model load, outside the method's time.

Peers, each in its own fresh process on the same model, photo, batch and number of forwards as our default run
(benchmarks/_peers.py): Captum's Occlusion, Lime and KernelShap and xaitk-saliency's RISE; the table gives their
time over ours. ``--shared``: RISE N=1000 idle and while a second process keeps every core busy (a bounded
torch matmul loop that stops by itself), for each thread setting (ONNX Runtime spinning or not, torch's OpenMP
wait policy, one thread): goal <= 2.5x the idle time (a fair share of two cores is 2x).

BOREx and FIDO also spend time outside the model (the GP, the mask optimiser), so their
ratio shows that overhead. ``--allocator-default`` adds rows with glibc's default allocator
(EXPLORER_MALLOC=default) to show what the start-up tuning buys.

Also timed: the whole ``explorer explain IMG --method gradient`` process (cold start, goal <= 3 s idle) and
``python -X importtime`` of it. Prints a table, writes benchmarks/results/bench_cold.json, and with
``--readme`` rewrites the performance table between the bench_cold markers of docs/performance.md (the table
lived in the README until issue 32; the flag kept its name).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine

PHOTO = ROOT / "resources" / "samples" / "chelsea.png"
EXPLORER = [sys.executable, "-m", "explorer"]
# name, bound kind, params (each method at its defaults unless the issue names a setting)
METHODS = [
    ("rise", "forward", {"n": 1000}),
    ("occlusion", "forward", {}),
    ("lime", "forward", {}),
    ("kernelshap", "forward", {}),
    ("undesirable", "forward", {}),
    ("scorecam", "forward", {}),
    ("integrated_gradients", "grad", {}),
    ("smoothgrad", "grad", {}),
    ("borex", "forward", {"iterations": 50}),
    ("fido", "grad", {"steps": 300}),
]
GOAL = {"forward": 1.10, "grad": 1.30}
QUICK = {"rise": {"n": 40}, "undesirable": {"n": 40}, "lime": {"samples": 40}, "kernelshap": {"samples": 40},
         "occlusion": {"window": 64, "stride": 64}, "integrated_gradients": {"steps": 4},
         "smoothgrad": {"samples": 4}, "borex": {"iterations": 3, "prior": "gradcam"}, "fido": {"steps": 3},
         "scorecam": {"top_channels": 16}}
MARK_START, MARK_END = "<!-- bench_cold:start -->", "<!-- bench_cold:end -->"


BATCHES = "1,2,4,8,16"


PEER_BATCHES = "1,2,4,8,16,32"


def bound(kind: str, images: int, engine: str = "torch") -> dict:
    batches = PEER_BATCHES if engine == "onnxruntime" and BATCHES != "4" else BATCHES
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "_bound.py"), "--mode", kind,
                          "--images", str(images), "--batches", batches, "--engine", engine],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"bound {kind}/{engine}: exit {out.returncode}: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fastest_engine(images: int) -> str:
    """The engine whose forward bound is higher here (one fresh-process measurement of each)."""
    rates = {"torch": bound("forward", images)["images_per_s"]}
    try:
        rates["onnxruntime"] = bound("forward", images, "onnxruntime")["images_per_s"]
    except RuntimeError as exc:  # no export here (the notes say why): torch is the only engine
        print(f"onnxruntime bound not measured: {exc}", flush=True)
    print(f"forward bounds: {', '.join(f'{e} {r:.1f} img/s' for e, r in rates.items())}", flush=True)
    return max(rates, key=rates.get)


def explain(method: str, params: dict, env_extra: dict | None = None, engine: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [*EXPLORER, "explain", str(PHOTO), "--method", method, "--out", str(out), "--seed", "0"]
        for k, v in params.items():
            cmd += ["--param", f"{k}={v}"]
        if engine:
            cmd += ["--engine", engine]
        env = {**os.environ, **(env_extra or {})}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{method}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
        manifest = json.loads((out / "manifest.json").read_text())
    t = manifest["timings"]
    return {"seconds": t["seconds"], "images": t.get("images", 0), "grad_images": t.get("grad_images", 0),
            "process_seconds": wall, "model_load_seconds": t.get("model_load_seconds"),
            "allocator": manifest["model_info"].get("allocator"), "engine": manifest["model_info"].get("engine", {})}


def cold_start(repeats: int) -> dict:
    """The whole `explorer explain IMG --method gradient` process, and where its imports go."""
    walls = []
    for _ in range(repeats):
        walls.append(explain("gradient", {})["process_seconds"])
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "explorer", "explain", str(PHOTO),
                               "--method", "gradient", "--out", str(Path(tmp) / "o")],
                              capture_output=True, text=True, cwd=ROOT)
    tops = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = (s.strip() for s in line[len("import time:"):].split("|"))
        if cum.isdigit() and not name.startswith(" ") and "." not in name.strip():
            tops[name.strip()] = max(tops.get(name.strip(), 0), int(cum))
    heavy = sorted(tops.items(), key=lambda kv: -kv[1])[:8]
    return {"process_seconds": walls, "best": min(walls),
            "top_imports_ms": {k: round(v / 1000) for k, v in heavy}}


EVAL_METHODS = "rise,gradcam,lime,occlusion,integrated_gradients,random"
SHARED = ROOT.parent / "shared" / "data" / "imagenet-sample"


def evaluate_row(photos: int, last: dict, images: int, overhead: float, protocol: str = "rise") -> dict:
    """`explorer evaluate` over ``photos`` shared photos x 6 methods, deletion + insertion, fresh process.

    Its bound: every forward the protocol needs (the methods' own, counted by the runner, plus one per curve
    point) at the sustained rates. The process's fixed start-up (imports, model load: ``overhead``, the cold
    start of a one-gradient explain) is taken off its wall time before the ratio."""
    import csv

    folder = SHARED if SHARED.is_dir() else ROOT / "resources" / "samples"
    engine = last.get("engine", "torch")  # the curves' forwards are score-only: the fastest engine's bound
    for kind in ("forward", "grad"):
        last.setdefault(kind, bound(kind, images, engine if kind == "forward" else "torch")["images_per_s"])
    before = bound("forward", images, engine)
    with tempfile.TemporaryDirectory() as tmp:
        out, pick = Path(tmp) / "ev", Path(tmp) / "photos"
        pick.mkdir()  # the first photos of the folder, linked (never copied), without its README
        for f in sorted(f for f in folder.iterdir() if f.suffix.lower() in (".jpeg", ".jpg", ".png"))[:photos]:
            (pick / f.name).symlink_to(f)
        cmd = [*EXPLORER, "evaluate", str(pick), "--methods", EVAL_METHODS,
               "--metric", "deletion,insertion", "--protocol", protocol, "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"evaluate: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
        fwd = grad = points = 0
        method_s = 0.0
        for f in (out / "per_image").glob("*.csv"):
            with open(f, newline="") as fh:
                for r in csv.DictReader(fh):
                    if r["metric"] == "run" and r["quantity"] == "images":
                        fwd += int(float(r["value"]))
                    elif r["metric"] == "run" and r["quantity"] == "grad_images":
                        grad += int(float(r["value"]))
                    elif r["metric"] == "run" and r["quantity"] == "seconds":
                        method_s += float(r["value"])
                    elif r["metric"] in ("deletion", "insertion") and r["quantity"] == "score":
                        points += 1
    after = bound("forward", images, engine)
    rate = (before["images_per_s"] + after["images_per_s"]) / 2
    need = (fwd + points) / rate + grad / last["grad"]
    work = wall - overhead
    row = {"method": f"evaluate ({photos} photos x 6 methods, {protocol})", "params": {"methods": EVAL_METHODS},
           "bound": "forward", "bound_engine": engine, "bound_before": before, "bound_after": after,
           "bound_images_per_s": rate,
           "bound_seconds": need, "ratio": work / need, "goal": 1.2, "seconds": work, "images": fwd + points,
           "grad_images": grad, "curve_points": points, "method_seconds": method_s, "process_seconds": wall,
           "photos_per_minute": 60 * photos / wall, "allocator_env": {}}
    print(f"{row['method']:22s} forward {fwd + points:6d} {grad:6d} {work:8.2f} s {need:8.2f} s {work / need:5.2f}x "
          f"({60 * photos / wall:.2f} photos/min; curves {points} forwards, methods {method_s:.1f} s)", flush=True)
    return row


def measure(name: str, kind: str, params: dict, images: int, last: dict, env_extra=None) -> dict:
    """One method's fresh process between two bounds: the fastest engine's for score-only forwards (torch
    eager's measured once beside it), torch's forward+backward for gradient methods."""
    engine = last.get("engine", "torch") if kind == "forward" else "torch"
    torch_beside = bound(kind, images) if kind == "forward" and engine != "torch" else None
    before = bound(kind, images, engine)
    run = explain(name, params, env_extra)
    after = bound(kind, images, engine)
    rate = (before["images_per_s"] + after["images_per_s"]) / 2
    last[kind] = rate
    rates = {"forward": last.get("forward"), "grad": last.get("grad")}
    need = 0.0
    for count_key, k in (("images", "forward"), ("grad_images", "grad")):
        if run[count_key]:
            if rates[k] is None:  # a kind not measured yet: measure it once now
                rates[k] = last[k] = bound(k, images)["images_per_s"]
            need += run[count_key] / rates[k]
    ratio = run["seconds"] / need if need else None
    torch_rate = torch_beside["images_per_s"] if torch_beside else (rate if kind == "forward" else None)
    torch_need = (run["images"] / torch_rate + (run["grad_images"] / rates["grad"] if run["grad_images"] else 0)
                  if torch_rate else None)
    row = {"method": name, "params": params, "bound": kind, "bound_engine": engine, "bound_before": before,
           "bound_after": after, "bound_images_per_s": rate, "bound_seconds": need, "ratio": ratio,
           "goal": GOAL[kind], "torch_bound": torch_beside, "torch_bound_seconds": torch_need, **run,
           "allocator_env": env_extra or {}}
    r = f"{ratio:5.2f}x" if ratio else "  -  "
    tb = f" torch eager {torch_need:.2f} s" if torch_beside else ""
    print(f"{name:22s} {kind:7s} {run['images']:6d} {run['grad_images']:6d} {run['seconds']:8.2f} s "
          f"{need:8.2f} s {r}  (bound {engine} {before['images_per_s']:.0f}/{after['images_per_s']:.0f} img/s, "
          f"batch {before['batch']} {before['format']}; scored by {run['engine'].get('engine', '?')}{tb})"
          f"{'  glibc defaults' if env_extra else ''}", flush=True)
    return row


PEERS = (("captum_occlusion", "occlusion"), ("captum_lime", "lime"), ("captum_kernelshap", "kernelshap"),
         ("xaitk_rise", "rise"))


def defaults(method: str) -> dict:
    from explorer.methods import get_method

    return {q.name: q.default for q in get_method(method).params}


def peers(rows: list[dict]) -> list[dict]:
    """Each peer in a fresh process at the settings of our row of the same method: their time over ours."""
    ours = {r["method"]: r for r in rows if not r.get("allocator_env") and "photos_per_minute" not in r}
    out = []
    for peer, method in PEERS:
        if method not in ours:
            continue
        mine = ours[method]
        p = {**defaults(method), **mine["params"]}  # the run of ours, spelt out for the peer
        n = p.get("n", p.get("samples")) or mine["images"]  # occlusion has no count: its windows are its forwards
        cmd = [sys.executable, str(ROOT / "benchmarks" / "_peers.py"), "--peer", peer,
               "--n", str(n), "--window", str(p.get("window", 32)),
               "--stride", str(p.get("stride", 16)), "--segments", str(p.get("segments", 50))]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"{peer}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        row = {**res, "method": method, "ours_seconds": mine["seconds"], "ours_images": mine["images"],
               "ours_engine": mine["engine"].get("engine"), "ratio": res["seconds"] / mine["seconds"]}
        out.append(row)
        print(f"{peer:22s} {res['forwards']:6d} forwards {res['seconds']:8.2f} s; ours ({method}, {mine['images']} "
              f"forwards, {row['ours_engine']}) {mine['seconds']:.2f} s: peer / ours {row['ratio']:.2f}x", flush=True)
    return out


# A second process keeping every core busy: torch matmuls on all cores, stopping by itself after its cap.
BUSY = ("import time, torch\ntorch.set_num_threads({threads})\na = torch.randn(384, 384)\n"
        "end = time.time() + {cap}\nwhile time.time() < end:\n    a @ a\n")
# name, environment, engine: the thread settings compared (ONNX Runtime's spinning, torch's OpenMP waiting)
SHARED_SETTINGS = (
    ("default (auto engine, ORT not spinning)", {}, None),
    ("auto engine, ORT spinning", {"EXPLORER_ORT_SPINNING": "1"}, None),
    ("auto engine, one thread", {"OMP_NUM_THREADS": "1"}, None),
    ("torch engine", {}, "torch"),
    ("torch engine, OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}, "torch"),
    ("torch engine, one thread", {"OMP_NUM_THREADS": "1"}, "torch"),
)


def shared(n: int, cap: float) -> list[dict]:
    """RISE N=n idle and beside a busy process, for each thread setting; busy / idle is the figure."""
    out = []
    for name, env, engine in SHARED_SETTINGS:
        idle = explain("rise", {"n": n}, env, engine)
        busy_proc = subprocess.Popen([sys.executable, "-c", BUSY.format(threads=os.cpu_count() or 2, cap=cap)],
                                     cwd=ROOT)
        try:
            time.sleep(1.0)  # the busy loop is running before the method starts
            busy = explain("rise", {"n": n}, env, engine)
        finally:
            busy_proc.terminate()
            busy_proc.wait()
        row = {"setting": name, "env": env, "engine_requested": engine or "auto", "n": n,
               "idle_seconds": idle["seconds"], "busy_seconds": busy["seconds"],
               "idle_engine": idle["engine"].get("engine"), "busy_engine": busy["engine"].get("engine"),
               "ratio": busy["seconds"] / idle["seconds"], "goal": 2.5}
        out.append(row)
        print(f"shared: {name:42s} idle {idle['seconds']:7.2f} s ({row['idle_engine']}), busy {busy['seconds']:7.2f} s "
              f"({row['busy_engine']}): {row['ratio']:.2f}x (goal <= 2.5x)", flush=True)
    return out


def readme_table(rows: list[dict], cold: dict | None, meta: dict) -> str:
    lines = [f"Measured by `python benchmarks/bench_cold.py --readme` on {meta['machine']['cpu_count']} cores "
             f"({meta['machine']['cpu']}), load average at start {meta['machine']['loadavg_start']}; "
             "each method is a fresh `explorer explain` process, bracketed by two fresh-process bounds.", "",
             "Score-only forwards are held to the fastest engine's bound (ONNX Runtime on the model's export where it "
             "is faster: explorer/models/engine.py); torch eager's bound is beside it.", "",
             "| method | images (fwd / grad) | scored by | method s | bound s (fastest engine) | torch eager bound s "
             "| ratio | goal |", "|---|---|---|---|---|---|---|---|"]
    evals = [r for r in rows if "photos_per_minute" in r]
    for r in rows:
        tag = " (glibc defaults)" if r["allocator_env"] else ""
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] else "-"
        by = r.get("engine", {}).get("engine", "torch") if r["bound"] == "forward" else "torch"
        if "photos_per_minute" in r:  # `explorer evaluate` writes no manifest: its default engine (auto) scored
            by = "auto"
        eng = f" ({r.get('bound_engine', 'torch')})" if r["bound"] == "forward" else ""
        tb = f"{r['torch_bound_seconds']:.2f}" if r.get("torch_bound_seconds") else "-"
        lines.append(f"| {r['method']}{tag} | {r['images']} / {r['grad_images']} | {by} | {r['seconds']:.2f} | "
                     f"{r['bound_seconds']:.2f}{eng} | {tb} | {ratio} | <= {r['goal']:.2f}x |")
    if meta.get("peers"):
        lines += ["", "Peers, each in a fresh process on the same model, photo, batch and number of forwards "
                      "(benchmarks/_peers.py; torch eager, as they call the model):", "",
                  "| peer | method | forwards | peer s | ours s (scored by) | peer / ours |",
                  "|---|---|---|---|---|---|"]
        for r in meta["peers"]:
            lines.append(f"| {r['peer']} | {r['method']} | {r['forwards']} | {r['seconds']:.2f} | "
                         f"{r['ours_seconds']:.2f} ({r.get('ours_engine')}) | {r['ratio']:.2f}x |")
    if meta.get("shared"):
        lines += ["", f"A shared machine: RISE N={meta['shared'][0]['n']} while a second process keeps every core "
                      "busy, against the same run idle (goal <= 2.5x; a fair share of two cores is 2x):", "",
                  "| thread setting | idle s | busy s | busy / idle |", "|---|---|---|---|"]
        for r in meta["shared"]:
            lines.append(f"| {r['setting']} | {r['idle_seconds']:.2f} ({r['idle_engine']}) | {r['busy_seconds']:.2f} "
                         f"({r['busy_engine']}) | {r['ratio']:.2f}x |")
    for r in evals:
        lines.append(f"\n`{r['method']}`: {r['photos_per_minute']:.2f} photos/minute; {r['curve_points']} curve "
                     f"forwards + the methods' own, {r['ratio']:.2f}x their sustained bound (goal <= 1.2x).")
    if cold:
        lines += ["", f"Cold start, the whole `explorer explain IMG --method gradient` process: best of "
                      f"{len(cold['process_seconds'])} {cold['best']:.2f} s (goal <= 3 s on an idle machine)"
                      + (f", measured {cold['started']} at load {cold['machine']['loadavg_start'][0]:.2f}."
                         if "started" in cold else ".")]
    return "\n".join(lines)


TABLE_DOC = ROOT / "docs" / "performance.md"  # the page whose bench_cold section --readme rewrites


def write_readme(text: str, doc: Path = TABLE_DOC) -> None:
    s = doc.read_text(encoding="utf-8")
    if MARK_START not in s or MARK_END not in s:
        raise SystemExit(f"{doc.relative_to(ROOT)} has no {MARK_START} ... {MARK_END} section to rewrite")
    head, rest = s.split(MARK_START, 1)
    _, tail = rest.split(MARK_END, 1)
    doc.write_text(f"{head}{MARK_START}\n{text}\n{MARK_END}{tail}", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(m for m, _, _ in METHODS))
    ap.add_argument("--images", type=int, default=1000, help="images per bound measurement")
    ap.add_argument("--allocator-default", action="store_true", help="also run RISE with glibc's defaults")
    ap.add_argument("--cold-repeats", type=int, default=3)
    ap.add_argument("--evaluate-photos", type=int, default=5, help="photos for the evaluate row (0 = skip)")
    ap.add_argument("--no-peers", action="store_true", help="skip Captum's and xaitk-saliency's rows")
    ap.add_argument("--shared", type=int, default=1000, metavar="N",
                    help="RISE masks of the shared-machine figure (0 = skip)")
    ap.add_argument("--readme", action="store_true",
                    help="rewrite the performance table of docs/performance.md (between its bench_cold markers)")
    ap.add_argument("--cold-only", action="store_true",
                    help="re-measure only the cold start; keep the method rows of the existing --out JSON")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_cold.json"))
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run of the mechanics (batch 4 only, 40 images, small method settings): not a figure")
    a = ap.parse_args()
    global BATCHES
    if a.quick:
        BATCHES, a.images = "4", 40
        a.shared = min(a.shared, 20)
        for i, (name, kind, params) in enumerate(METHODS):
            METHODS[i] = (name, kind, {**params, **QUICK.get(name, {})})
    meta = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if a.cold_only:  # the rows keep the machine and time they were measured at; the cold start records its own
        old = json.loads(Path(a.out).read_text())
        cold = {**cold_start(a.cold_repeats), "machine": meta["machine"], "started": meta["started"]}
        print(f"cold start: {cold['process_seconds']} -> best {cold['best']:.2f} s; {cold['top_imports_ms']}")
        Path(a.out).write_text(json.dumps({**old, "cold_start": cold}, indent=1))
        if a.readme:
            write_readme(readme_table(old["rows"], cold, old))
        return
    wanted = a.methods.split(",")
    print(f"{'method':22s} {'bound':7s} {'fwd':>6s} {'grad':>6s} {'method':>10s} {'bound':>10s} ratio", flush=True)
    rows, last = [], {}
    explain("rise", {"n": 10}, engine="auto")  # the export is built (or found) before any timing
    last["engine"] = fastest_engine(a.images)
    for name, kind, params in METHODS:
        if name not in wanted:
            continue
        rows.append(measure(name, kind, params, a.images, last))
        if name == "rise" and a.allocator_default:
            rows.append(measure(name, kind, params, a.images, last, {"EXPLORER_MALLOC": "default"}))
        Path(a.out).write_text(json.dumps({**meta, "rows": rows}, indent=1))
    cold = cold_start(a.cold_repeats) if a.cold_repeats else None
    if cold:
        print(f"cold start (explain --method gradient, whole process): {cold['process_seconds']} "
              f"-> best {cold['best']:.2f} s; heaviest imports (ms): {cold['top_imports_ms']}")
    if a.evaluate_photos:
        overhead = cold["best"] if cold else 0.0
        for protocol in ("rise", "quick"):
            rows.append(evaluate_row(a.evaluate_photos, last, a.images, overhead, protocol))
        Path(a.out).write_text(json.dumps({**meta, "rows": rows}, indent=1))
    if not a.no_peers:
        meta["peers"] = peers(rows)
    if a.shared:
        meta["shared"] = shared(a.shared, cap=600.0)
    meta["machine"]["loadavg_end"] = os.getloadavg()
    Path(a.out).write_text(json.dumps({**meta, "rows": rows, "cold_start": cold}, indent=1))
    print(f"wrote {a.out}")
    if a.readme:
        write_readme(readme_table(rows, cold, meta))
        print(f"rewrote the performance table of {TABLE_DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
