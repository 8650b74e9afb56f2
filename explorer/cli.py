"""Command line: ``explorer`` opens the GUI; subcommands run headless.

    explorer [--image PATH] [--model SPEC] [--method NAME --param k=v ... --screenshot OUT.png]
    explorer explain IMAGE --method NAME [--param k=v ...] [--target CLASS] [--model SPEC] --out DIR
    explorer methods | explorer models
    explorer evaluate ... | explorer train-explainer ...   (see --help of each)

User errors print one clear line and exit with code 2; heavy libraries are imported only when needed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

from explorer.core.errors import Cancelled, ExplorerError

# Subcommands contributed by other modules: name -> ("module:function" that adds its parser, one-line help).
# The function receives the subparsers object and must set ``func`` on its parser. The module is imported
# only when that subcommand is asked for, so ``explorer`` (the GUI) and the light commands never pay for it
# (the explainer's module imports torch, for instance).
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "train-explainer": ("explorer.methods.explainer_net.train:add_parser",
                        "train the explainer network for a classifier over a folder of images"),
    "evaluate": ("explorer.evaluation.cli:add_parser",
                 "run methods and faithfulness metrics over an image or a folder"),
}


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help="efficientnet_lite0 (default), torchvision:NAME, timm:NAME, FILE.pt, FILE.onnx")
    g.add_argument("--weights", default=None, help="weights file for a torchvision:/timm: architecture")
    g.add_argument("--labels", default=None, help="class names file (one per line, or JSON)")
    g.add_argument("--trust-pickle", action="store_true", help="allow loading pickled Python objects (only for files you trust)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    g.add_argument("--input-size", type=int, default=None, help="override the model's input size (pixels)")
    g.add_argument("--offline", action="store_true", help="never try to download weights")


def model_from_args(args) -> "object":
    from explorer.models import load_model

    return load_model(args.model, weights=args.weights, labels=args.labels, device=args.device,
                      trust_pickle=args.trust_pickle, allow_download=False if args.offline else None,
                      input_size=args.input_size)


def _progress(frac: float, msg: str, stream=sys.stderr) -> None:
    if stream.isatty():
        bar = "#" * int(frac * 30)
        stream.write(f"\r[{bar:<30}] {frac * 100:5.1f}% {msg:<30}")
        stream.flush()


# --------------------------------------------------------------------------- explain
def cmd_explain(args) -> int:
    from explorer.core.params import parse_assignments
    from explorer.io.export import write_explanation
    from explorer.io.images import read_image
    from explorer.methods import get_method, run
    from explorer.methods.base import prepare

    image = read_image(args.image)
    cls = get_method(args.method)
    values = parse_assignments(args.param or [])
    t0 = time.perf_counter()
    model = model_from_args(args)
    t_load = time.perf_counter() - t0
    method = cls(model, **values)
    ctx = prepare(model, image.rgb, args.target, args.seed)
    preds = model.predict(ctx.x, 5)
    final = None
    for update in run(method, model, image.rgb, context=ctx):
        _progress(update.progress, update.message)
        final = update
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    exp = final.explanation
    exp.timings["model_load_seconds"] = t_load
    manifest = write_explanation(args.out, exp, image.rgb, {
        "image": image.path,
        "model_info": model.describe(),
        "target_index": ctx.target,
        "top5": [{"index": p.index, "name": p.name, "prob": p.prob} for p in preds],
    })
    print(f"{cls.name}: target {ctx.target} ({model.labels[ctx.target]}), "
          f"{exp.timings['seconds']:.2f} s; wrote {', '.join(manifest['files'])} to {args.out}")
    return 0


# --------------------------------------------------------------------------- listings
def cmd_methods(args) -> int:
    from explorer.methods import METHODS, method_names

    names = method_names()
    if args.json:
        print(json.dumps([METHODS.get(n).describe() for n in names], indent=2))
        return 0
    for n in names:
        d = METHODS.get(n).describe()
        print(f"{n:22s} {d['title']} [{d['needs']}]{' (class-agnostic)' if d['class_agnostic'] else ''}")
        print(f"{'':22s} layers: {', '.join(o['name'] + ('±' if o['signed'] else '') for o in d['outputs'])}")
        for p in d["params"]:
            rng = ""
            if "choices" in p:
                rng = " {" + "|".join(p["choices"]) + "}"
            elif "low" in p or "high" in p:
                rng = f" [{p.get('low', '')}..{p.get('high', '')}]"
            print(f"{'':24s}--param {p['name']}={p['default']}{rng}  {p['help']}")
    return 0


def cmd_models(args) -> int:
    from explorer.models import model_specs

    print("Models explorer can load (--model SPEC):")
    for s in model_specs():
        print(f"  {s}")
    print("The default, efficientnet_lite0, ships its ImageNet weights and works offline.")
    if args.names:
        import timm
        import torchvision

        print("\ntorchvision:", ", ".join(sorted(torchvision.models.list_models(module=torchvision.models))))
        print(f"\ntimm: {len(timm.list_models())} architectures (timm.list_models())")
    return 0


# --------------------------------------------------------------------------- GUI
def cmd_gui(args) -> int:
    from explorer import resources

    resources.check()  # a broken install stops here: one line naming the missing file, exit 2
    import os

    if sys.platform.startswith("linux") and not any(
            os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise ExplorerError("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset): run it in a "
                            "desktop session, set QT_QPA_PLATFORM=offscreen to use --screenshot headless, or use "
                            "the headless commands (explorer explain ..., see explorer --help)")
    from explorer.gui.app import main as gui_main

    return gui_main(args)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="explorer", description="See why an image classifier decides what it decides.")
    parser.add_argument("--image", default=None, help="image to open (default: the bundled chelsea.png)")
    parser.add_argument("--method", default=None, help="run this method at start")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", help="method parameter (repeatable)")
    parser.add_argument("--target", default=None, help="class index or name (default: top-1)")
    parser.add_argument("--screenshot", default=None, metavar="OUT.png", help="save a screenshot after the run and exit")
    parser.add_argument("--session", default=None, help="open a saved session file")
    add_model_args(parser)
    parser.set_defaults(func=cmd_gui)
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("explain", help="explain one image with one method, writing maps and a manifest")
    p.add_argument("image")
    p.add_argument("--method", required=True)
    p.add_argument("--param", action="append", default=[], metavar="K=V")
    p.add_argument("--target", default=None, help="class index or name (default: top-1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    add_model_args(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("methods", help="list methods and their parameters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("models", help="list the kinds of model that can be loaded")
    p.add_argument("--names", action="store_true", help="also list torchvision and timm architecture names")
    p.set_defaults(func=cmd_models)

    import importlib

    wanted = set(sys.argv[1:] if argv is None else argv)
    for name, (target, help_text) in EXTRA_COMMANDS.items():
        if name in wanted:
            mod, fn = target.split(":")
            add: Callable = getattr(importlib.import_module(mod), fn)
            add(sub)
        else:  # listed in --help; its real parser is built when the command is used
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ExplorerError as exc:
        print(f"explorer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Cancelled:
        print("explorer: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("explorer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
