"""``explorer [--image PATH] [--model SPEC] [--method NAME --param k=v ... --screenshot OUT.png]``: the window.

Its options live on the top-level parser (no subcommand opens the GUI). Before Qt is touched, a broken
install, a missing display and missing xcb libraries are each refused in one line, exit code 2."""

from __future__ import annotations

import argparse
import sys

from explorer.cli.common import add_model_args
from explorer.core import argtypes as T
from explorer.core.errors import ExplorerError


def add_gui_args(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--restore", action="store_true",
                        help="open the newest autosave (explorer sessions lists them), e.g. after a crash")
    add_model_args(parser)
    parser.set_defaults(func=cmd_gui)


def cmd_gui(args) -> int:
    from explorer import resources

    resources.check()  # a broken install stops here: one line naming the missing file, exit 2
    from explorer.gui.platform_check import check_display, check_xcb

    check_display()

    missing = check_xcb()  # Qt would abort the process on a missing xcb library, naming none: name them first
    if missing:
        raise ExplorerError(missing)
    if getattr(args, "restore", False):
        if args.session:
            raise ExplorerError("--restore opens the newest autosave: give either it or --session, not both")
        args.restore_path = newest_autosave()
    from explorer.gui.app import main as gui_main

    return gui_main(args)


def newest_autosave() -> str:
    """The newest autosave that loads whole; a newer damaged one is named on stderr and skipped."""
    from explorer.core.errors import FileError
    from explorer.io.autosave import autosave_dir, entries
    from explorer.io.session_file import load_session

    found = entries()
    for e in found:
        try:
            load_session(e.path)  # the window loads it again; this only proves it whole before choosing it
        except FileError as exc:
            print(f"explorer: skipping a damaged autosave: {exc}", file=sys.stderr)
            continue
        return str(e.path)
    raise ExplorerError(f"no autosave to restore in {autosave_dir()}"
                        + (f" ({len(found)} damaged)" if found else ""))
