"""``explorer explain IMAGE --method NAME [--param k=v ...] [--target CLASS] --out DIR``: one image, one
method, its maps and a manifest written to a folder."""

from __future__ import annotations

import sys
import time

from explorer.cli.common import Bar, add_model_args, method_names, model_from_args
from explorer.core import argtypes as T


def add_parser(sub) -> None:
    p = sub.add_parser("explain", help="explain one image with one method, writing maps and a manifest")
    p.add_argument("image", type=T.existing_file("image file"))
    p.add_argument("--method", required=True, type=T.name("method", method_names))
    p.add_argument("--param", action="append", default=[], metavar="K=V", type=T.assignment())
    p.add_argument("--target", default=None, type=T.target(), help="class index or name (default: top-1)")
    p.add_argument("--seed", type=T.integer(0, 2**32 - 1), default=0)
    p.add_argument("--out", required=True, type=T.output_dir(), help="output folder")
    add_model_args(p)
    p.set_defaults(func=cmd_explain)


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
    if get_method(args.method).scoring:
        model.resolve_engine()  # a score-only method: the engine is decided with the load, not inside the timing
    t_load = time.perf_counter() - t0
    final = None
    bar = Bar()
    # the same path as the Python API's explorer.explain: same checks, same messages, same manifest
    for final in stream(model, image.rgb, args.method, args.target, seed=args.seed, image_path=image.path, **values):
        bar.update(final.progress, final.message)
    bar.close()
    final.timings["model_load_seconds"] = t_load
    manifest = final.save(args.out)
    for warning in manifest.get("warnings", []):
        print(f"explorer: warning: {warning}", file=sys.stderr)
    print(f"{final.method}: target {manifest['target_index']} ({model.labels[manifest['target_index']]}), "
          f"{final.timings['seconds']:.2f} s; wrote {', '.join(manifest['files'])} to {args.out}")
    return 0
