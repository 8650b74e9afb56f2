"""``explorer sessions [--json]``: the autosaves kept in the user's state folder, newest first (issue 28).

Each with its time, image, model and runs (method, status, progress); ``--json`` prints a list of objects with
the keys ``path``, ``saved``, ``image``, ``model``, ``runs`` (each ``method``, ``status``, ``progress`` in
[0, 1]), plus ``crashed`` (left by a window that did not quit normally) and ``error`` (why an unreadable one
cannot be opened; its other fields are then empty). ``explorer --restore`` opens the newest that loads.
"""

from __future__ import annotations

from datetime import datetime

from explorer.core.jsonable import to_json


def add_parser(sub) -> None:
    p = sub.add_parser("sessions", help="list the autosaved sessions (explorer --restore opens the newest)")
    p.add_argument("--json", action="store_true", help="print them as a JSON list")
    p.set_defaults(func=cmd_sessions)


def listing() -> list[dict]:
    from explorer.io.autosave import entries

    out = []
    for e in entries():
        saved = datetime.fromtimestamp(e.mtime).astimezone().isoformat(timespec="seconds")
        if e.summary is None:
            out.append({"path": str(e.path), "saved": saved, "image": None, "model": None, "runs": [],
                        "crashed": e.crashed, "error": e.error})
            continue
        s = e.summary
        out.append({"path": s["path"], "saved": s["saved"] or saved, "image": s["image"], "model": s["model"],
                    "runs": [{"method": r["method"], "status": r["status"], "progress": r["progress"],
                              "resumable": r["resumable"]} for r in s["runs"]],
                    "crashed": e.crashed, "error": ""})
    return out


def cmd_sessions(args) -> int:
    from explorer.io.autosave import autosave_dir

    items = listing()
    if args.json:
        print(to_json(items))
        return 0
    if not items:
        print(f"no autosaved sessions in {autosave_dir()}")
        return 0
    print(f"autosaved sessions in {autosave_dir()} (newest first; explorer --restore opens the newest):")
    for it in items:
        when = it["saved"].replace("T", " ")[:19]
        if it["error"]:
            print(f"  {when}  unreadable: {it['error']}")
            continue
        flag = "  (not closed normally)" if it["crashed"] else ""
        print(f"  {when}  {it['image'] or '(image)'}  {it['model']}{flag}")
        for r in it["runs"]:
            more = " (can continue)" if r["resumable"] else ""
            print(f"      {r['method']:14s} {r['status']:10s} {r['progress']:6.0%}{more}")
        print(f"      {it['path']}")
    return 0
