"""What the window says about its runs, from one place: the progress line, each run's status in the layer
list, and the time a sampling run has left. Qt-free: the window only puts these strings on widgets.

Everything is computed from the session as it is now (the runs of the current image and model), so a view
that asks again after any change (new image, new model, session opened, run removed or cancelled) can never
keep describing something that is gone. Runs of another model are never described as current.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from explorer.session.document import Run, RunStatus, Session

# A sampling run whose estimate of the time left exceeds this is offered its method's Quick settings.
SLOW_S = 30.0
# Below this progress the rate is too noisy for an estimate (the first batch also pays for warm-up).
MIN_PROGRESS = 0.02
_COUNT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s+(\w[\w ]*)$")  # "400/4000 masks", as sampling methods report


@dataclass(frozen=True)
class Pace:
    """How fast a run advances: its rate (a method's own unit when its message counts them) and time left."""

    rate: str  # "120 masks/s" or "4.0 %/s"
    left_s: float

    @property
    def text(self) -> str:
        return f"{self.rate}, {duration(self.left_s)} left"


def duration(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def pace(run: Run, elapsed_s: float | None) -> Pace | None:
    """The rate and the time left of a running run that has been computing ``elapsed_s`` seconds; None when
    it is not running, has not advanced enough for an estimate, or the time is unknown."""
    p = float(run.progress)
    if run.status != RunStatus.RUNNING or elapsed_s is None or elapsed_s <= 0 or not MIN_PROGRESS <= p < 1:
        return None
    left = elapsed_s * (1 - p) / p
    m = _COUNT.match(run.message or "")
    if m and int(m.group(2)) > 0:
        rate = f"{int(m.group(1)) / elapsed_s:.3g} {m.group(3)}/s"
    else:
        rate = f"{100 * p / elapsed_s:.2g} %/s"
    return Pace(rate, left)


def run_status(session: Session, run: Run, elapsed_s: float | None = None) -> str:
    """The short status of one run (the layer list's status column)."""
    if session.is_stale(run):
        return "other model"
    if run.status == RunStatus.RUNNING:
        pc = pace(run, elapsed_s)
        return f"{run.progress * 100:.0f} %" + (f" · {duration(pc.left_s)} left" if pc else "")
    if run.status == RunStatus.DONE and run.explanation is not None:
        return f"done {run.explanation.timings.get('seconds', 0):.1f} s"
    if run.status == RunStatus.CANCELLED and run.explanation is not None:
        return f"cancelled at {run.explanation.progress * 100:.0f} %"
    return str(run.status)


def progress_line(session: Session, elapsed: dict[int, float] | None = None) -> tuple[float | None, str]:
    """(fraction or None when nothing computes, text) for the progress line under the method panel.

    The run being computed leads (the worker takes runs one at a time in the order they were submitted, so
    while one runs the others are queued behind it; before the first report the oldest queued one leads),
    then how many wait. Nothing computing: the newest run of this image and model and how it ended, or
    "idle"."""
    elapsed = elapsed or {}
    runs = sorted(session.current_runs(), key=lambda r: r.id)
    running = [r for r in runs if r.status == RunStatus.RUNNING]
    queued = [r for r in runs if r.status == RunStatus.QUEUED]
    if running or queued:
        lead = running[0] if running else queued[0]
        waiting = len(running) + len(queued) - 1
        more = f" (+{waiting} queued)" if waiting else ""
        if lead.status == RunStatus.QUEUED:
            return 0.0, f"{lead.label}: queued{more}"
        detail = lead.message if lead.message and lead.message != "running" else ""
        pc = pace(lead, elapsed.get(lead.id))
        parts = [p for p in (detail, pc.text if pc else "") if p]
        return lead.progress, f"{lead.label}: " + (" · ".join(parts) or "running") + more
    if not runs:
        return None, "idle"
    last = runs[-1]
    return None, f"{last.label}: {run_status(session, last)}"
