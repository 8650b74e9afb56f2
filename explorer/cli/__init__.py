"""Command line: ``explorer`` opens the GUI; subcommands run headless.

    explorer [--image PATH] [--model SPEC] [--method NAME --param k=v ... --screenshot OUT.png]
    explorer explain IMAGE --method NAME [--param k=v ...] [--target CLASS] [--model SPEC] --out DIR
    explorer methods | explorer models | explorer sessions [--json]
    explorer evaluate ... | explorer train-explainer ... | explorer train-inpainter ...   (see --help of each)

One module per command (``gui``, ``explain``, ``listings``, ``evaluate``, ``train_explainer``,
``train_inpainter``, ``sessions``), each with
its parser, built from argparse, ``explorer.core.argtypes`` and ``explorer.evaluation.config``'s defaults
alone, and its command function, which imports the heavy modules it needs. So every parser is built on
every start at no cost, and ``explorer`` (the GUI) opens without loading torch. User errors print one clear line
and exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from explorer.cli import evaluate, explain, listings, sessions, train_explainer, train_inpainter
from explorer.cli.common import Parser, VersionAction
from explorer.cli.gui import add_gui_args, cmd_gui
from explorer.core.errors import Cancelled, ExplorerError


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="explorer", description="See why an image classifier decides what it decides.")
    parser.add_argument("--version", action=VersionAction, help="print the version, torch's and the device, and exit")
    add_gui_args(parser)
    sub = parser.add_subparsers(dest="command")
    explain.add_parser(sub)
    listings.add_parsers(sub)
    train_explainer.add_parser(sub)
    train_inpainter.add_parser(sub)
    evaluate.add_parser(sub)
    sessions.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from explorer.core import allocator

    allocator.tune()  # before anything allocates: the fast CPU state from the first forward (core/allocator.py)
    parser = build_parser()
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

