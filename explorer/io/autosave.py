"""The autosave: the open session kept on disk as it changes, so that a crash, a kill or a power cut loses
at most the last few seconds of work (issue 28). No Qt here; the window ticks ``Autosave.tick`` from a timer.

Where: ``platformdirs.user_state_dir("explorer")/autosave`` (``$XDG_STATE_HOME/explorer/autosave`` on Linux).
What: the session file format itself (``io.session_file``: JSON + NPZ, a running sampling run with its
resumable state), one pair per window, named ``session-<start time>-<pid>``:

- ``NAME.json`` names its arrays ``NAME.<n>.npz``, a fresh name at every save: the NPZ is written first, then
  the JSON is renamed over the previous one, then the previous NPZ is removed. A crash at any moment leaves
  the previous save or the new one whole; the JSON holds the NPZ's SHA-256, so a damaged or cut pair is refused
  (``load_session`` raises FileError), never loaded half.
- ``NAME.lock`` holds the pid of the window writing it and is removed by an ordinary quit: an autosave whose
  lock names a process that no longer runs is what an unclean exit left (``crashed``), and the next start offers
  it. Elsewhere than POSIX a lock left behind counts as a crash (the pid is not checked).

When: a run that settles (done, cancelled, failed) saves within ``SETTLED_DELAY`` s; a layer, target or view
change within ``EDIT_DELAY`` s (debounced: a slider dragged for a minute saves once it stops); a run streaming
partial results at least every ``interval`` s (30, or ``$EXPLORER_AUTOSAVE_INTERVAL``). Only a session with
runs is saved. Opening another photo starts a new autosave, so the previous photo's runs stay restorable.
The newest ``KEEP`` autosaves are kept, older ones pruned (never one another running window holds, nor a
recent one left by an unclean exit whose restore offer is still unanswered).
An ordinary quit removes the autosave of a session saved by the user and unchanged since.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from explorer.core.errors import ExplorerError, FileError
from explorer.session.document import Session

log = logging.getLogger(__name__)

KEEP = 5
SETTLED_DELAY = 0.5
EDIT_DELAY = 2.0
DEFAULT_INTERVAL = 30.0
CRASH_KEPT_DAYS = 7
PREFIX = "session-"
_names = itertools.count(1)


def autosave_dir() -> Path:
    """The folder of the autosaves (created by the first save)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("explorer", appauthor=False)) / "autosave"


def interval_s() -> float:
    """Seconds between saves while a run streams: 30, or ``$EXPLORER_AUTOSAVE_INTERVAL`` (at least 0.2)."""
    try:
        return max(0.2, float(os.environ.get("EXPLORER_AUTOSAVE_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return False  # no safe probe (os.kill would end the process): a lock left behind counts as a crash
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return False
    return True


def _lock_pid(lock: Path) -> int | None:
    try:
        return int(lock.read_text(encoding="ascii").strip() or 0) or None
    except (OSError, ValueError):
        return None


@dataclass
class Entry:
    """One autosave on disk, as ``explorer sessions`` and the recovery offer describe it."""

    path: Path
    mtime: float
    summary: dict | None  # session_file.summary(), None when the JSON is unreadable
    error: str = ""  # why it is unreadable
    crashed: bool = False  # its window ended without an ordinary quit
    running: bool = False  # a live window is writing it

    def describe(self) -> str:
        """"the session of 14:02: chelsea.png, efficientnet_lite0, 4 runs (1 partial)"."""
        when = datetime.fromtimestamp(self.mtime)
        day = "" if when.date() == datetime.now().date() else when.strftime("%Y-%m-%d ")
        if self.summary is None:
            return f"the session of {day}{when:%H:%M} (unreadable: {self.error})"
        s = self.summary
        runs = s["runs"]
        partial = sum(1 for r in runs if r["status"] != "done" and 0.0 < r["progress"] < 1.0)
        image = Path(s["image"]).name if s.get("image") else "(image)"
        more = f" ({partial} partial)" if partial else ""
        return (f"the session of {day}{when:%H:%M}: {image}, {s['model']}, {len(runs)} run"
                f"{'s' if len(runs) != 1 else ''}{more}")


def entries(folder: Path | None = None) -> list[Entry]:
    """Every autosave in ``folder``, newest first."""
    from explorer.io.session_file import summary

    folder = autosave_dir() if folder is None else Path(folder)
    out = []
    for p in folder.glob(f"{PREFIX}*.json") if folder.is_dir() else ():
        try:
            mtime = p.stat().st_mtime
        except OSError:
            continue  # pruned meanwhile
        lock = p.with_suffix(".lock")
        pid = _lock_pid(lock) if lock.exists() else None
        running = pid is not None and _alive(pid)
        crashed = lock.exists() and not running
        try:
            e = Entry(p, mtime, summary(p), crashed=crashed, running=running)
        except FileError as exc:
            e = Entry(p, mtime, None, exc.reason, crashed, running)
        out.append(e)
    return sorted(out, key=lambda e: e.mtime, reverse=True)


def crashed(folder: Path | None = None) -> list[Entry]:
    """Autosaves left by a window that did not quit normally, newest first (what the next start offers)."""
    return [e for e in entries(folder) if e.crashed]


def dismiss(entry: Entry) -> None:
    """The offer was answered: the autosave stays listed (``explorer sessions``) but is not offered again."""
    try:
        entry.path.with_suffix(".lock").unlink(missing_ok=True)
    except OSError:
        pass


def remove(json_path: Path) -> None:
    """An autosave's JSON, every NPZ of it and its lock."""
    stem = json_path.name[: -len(".json")]
    for f in list(json_path.parent.glob(f"{stem}.*")):
        if f.name == f"{stem}.json" or f.name == f"{stem}.lock" or (f.suffix == ".npz"
                                                                    and f.name[len(stem) + 1:-4].isdigit()):
            try:
                f.unlink()
            except OSError:
                pass


def prune(folder: Path, keep: int = KEEP, spare: Path | None = None) -> None:
    """Remove all but the newest ``keep`` autosaves; never ``spare``, one a live window is writing, nor one an
    unclean exit left less than ``CRASH_KEPT_DAYS`` ago whose restore offer has not been answered yet."""
    now = time.time()
    for e in entries(folder)[keep:]:
        if e.running or (spare is not None and e.path == spare):
            continue
        if e.crashed and now - e.mtime < CRASH_KEPT_DAYS * 86400:
            continue
        remove(e.path)


class Autosave:
    """Keeps one window's session on disk as it changes (see the module docstring)."""

    def __init__(self, session: Session, folder: Path | str | None = None, keep: int = KEEP,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic,
                 background: bool = False):
        self.session = session
        # background: compress and write on a thread (the window's choice: a large photo takes a second to
        # compress), taking the snapshot here; the arrays are never changed in place, so it stays consistent
        self.background = background
        self._executor = None
        self._pending = None
        self.folder = Path(folder) if folder is not None else autosave_dir()
        self.keep = keep
        self.interval = interval_s() if interval is None else float(interval)
        self.clock = clock
        self.due_at: float | None = None
        self.last_save = clock()
        self.saves = 0
        self.error = ""  # why the last save failed ("" when it worked)
        self.user_saved = False  # the session was saved by the user and has not changed since
        self.path: Path | None = None
        self._npz: Path | None = None
        self._new_name()
        s = session
        s.run_changed.connect(self._on_run)
        s.run_removed.connect(lambda _run: self.changed(EDIT_DELAY))
        s.layers_changed.connect(lambda: self.changed(EDIT_DELAY))
        s.layer_changed.connect(lambda _layer, field: field != "data" and self.changed(EDIT_DELAY))
        s.target_changed.connect(lambda: self.changed(EDIT_DELAY))
        s.views_changed.connect(lambda _name: self.changed(EDIT_DELAY))
        s.image_changed.connect(self._on_image)

    def _new_name(self) -> None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        k = next(_names)  # a name this process never gave before (a pruned one is not reused)
        name = f"{PREFIX}{stamp}-{os.getpid()}" + (f"-{k}" if k > 1 else "")
        while (self.folder / f"{name}.json").exists():
            name = f"{PREFIX}{stamp}-{os.getpid()}-{next(_names)}"
        self.path = self.folder / f"{name}.json"
        self._npz = None
        self._seq = 0

    # ------------------------------------------------------------------ what changed
    def changed(self, delay: float) -> None:
        """Save within ``delay`` seconds (an earlier deadline stays)."""
        self.user_saved = False
        at = self.clock() + delay
        self.due_at = at if self.due_at is None else min(self.due_at, at)

    def _on_run(self, run) -> None:
        if run.active:  # streaming: at least every ``interval`` since the last save
            self.user_saved = False
            at = self.last_save + self.interval
            self.due_at = at if self.due_at is None else min(self.due_at, at)
        else:
            self.changed(SETTLED_DELAY)

    def _on_image(self) -> None:
        if self.saves:  # the previous photo's runs stay in their own autosave
            self.wait()
            self._release_lock()
            self._new_name()
            self.saves = 0
        self.changed(EDIT_DELAY)

    # ------------------------------------------------------------------ saving
    def tick(self) -> Path | None:
        """Save when a change is due (the window's timer calls this every fraction of a second)."""
        if self.due_at is None or self.clock() < self.due_at or self.writing:
            return None
        return self.save()

    @property
    def writing(self) -> bool:
        """A background write is still under way (the next save waits for it)."""
        return self._pending is not None and not self._pending.done()

    def save(self) -> Path | None:
        """Take the session now and write it (on the background thread when ``background``); the path, or None
        when there is nothing to keep (no runs) or the write failed (``error`` says why)."""
        from explorer.io.session_file import snapshot

        self.due_at = None
        self.last_save = self.clock()
        s = self.session
        if s.image is None or not s.runs:
            return None
        self.wait()
        self._seq += 1
        npz = self.path.with_name(f"{self.path.stem}.{self._seq}.npz")
        try:
            snap = snapshot(self.path, s, arrays_name=npz.name, live=True)
        except ExplorerError as exc:
            self.error = str(exc)
            return None
        previous, self._npz = self._npz, npz
        self.saves += 1
        if not self.background:
            return self._write(snap, previous)
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(1, thread_name_prefix="explorer-autosave")
        self._pending = self._executor.submit(self._write, snap, previous)
        return self.path

    def _write(self, snap, previous: Path | None) -> Path | None:
        from explorer.io.session_file import write

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = snap.path.with_suffix(".lock")
            if not lock.exists():
                lock.write_text(str(os.getpid()), encoding="ascii")
            write(snap)
        except (ExplorerError, OSError) as exc:
            self.error = str(exc)
            log.warning("autosave failed: %s", exc)
            try:
                snap.npz.unlink(missing_ok=True)
            except OSError:
                pass
            return None
        self.error = ""
        try:
            if previous is not None and previous != snap.npz:
                previous.unlink(missing_ok=True)
            prune(self.folder, self.keep, spare=snap.path)
        except OSError:
            pass
        return snap.path

    def wait(self) -> None:
        """Until the background write under way (if any) has finished."""
        if self._pending is not None:
            try:
                self._pending.result()
            except Exception as exc:  # noqa: BLE001 - a write that failed is in self.error, never raised here
                self.error = str(exc)
            self._pending = None

    def saved_by_user(self) -> None:
        """The user saved the session: until it changes, quitting needs no autosave of it."""
        self.user_saved = True
        self.due_at = None

    def _release_lock(self) -> None:
        try:
            self.path.with_suffix(".lock").unlink(missing_ok=True)
        except OSError:
            pass

    def close(self) -> None:
        """An ordinary quit: pending changes are saved, the lock removed (no recovery offer next time), and the
        autosave of a session saved by the user and unchanged since is removed."""
        if self.due_at is not None and not self.user_saved:
            self.save()
        self.wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self.user_saved:
            remove(self.path)
        else:
            self._release_lock()
