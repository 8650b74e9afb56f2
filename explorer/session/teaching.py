"""Teaching helpers, Qt-free: what the window runs on first start, stepping through classes and runs in
presentation mode, and which runs a one-click "compare these methods on this photo" needs.
"""

from __future__ import annotations

from explorer.session.document import RunStatus

# Grad-CAM: one backward pass, a map in well under a second on a CPU, so the window opens on an explanation.
DEFAULT_METHOD = "gradcam"
# RISE streams (the map sharpens as masks arrive): offered once the first map is shown, at the user's click.
FOLLOW_UP = "rise"
# Four families side by side (CAM, perturbation, gradients, relevance); all run in seconds on a CPU.
COMPARE_METHODS = ("gradcam", "rise", "integrated_gradients", "lrp")
NO_METHOD = "none"  # --method none: open on the bare photo


def first_method(method_flag: str | None, session_flag: str | None, remembered: bool = False) -> str | None:
    """The method the window runs at start: the command line's, else the default on a first launch; none for
    a saved session (it brings its own runs), ``--method none``, or a window reopening on what the last
    launch left (``remembered``: the explanation is for someone new to the window)."""
    if session_flag:
        return None
    if method_flag:
        return None if method_flag.strip().lower() == NO_METHOD else method_flag
    return None if remembered else DEFAULT_METHOD


def step_target(predictions: list[tuple[int, str, float]], current: int | None, delta: int) -> int | None:
    """The next (delta=+1) or previous top-k class after ``current`` (None = top-1), wrapping around."""
    ids = [int(p[0]) for p in predictions]
    if not ids:
        return current
    pos = ids.index(current) if current in ids else 0
    return ids[(pos + delta) % len(ids)]


def runs_with_maps(session) -> list:
    """The runs of this image and model that have a map, oldest first (another model's are stale)."""
    return sorted((r for r in session.current_runs() if r.explanation is not None), key=lambda r: r.id)


def step_run(session, current: int | None, delta: int) -> int | None:
    """The run after (or before) ``current`` among those with a map, wrapping; None when there is none."""
    runs = runs_with_maps(session)
    if not runs:
        return None
    ids = [r.id for r in runs]
    if current not in ids:
        return ids[0] if delta >= 0 else ids[-1]
    return ids[(ids.index(current) + delta) % len(ids)]


def compare_plan(session, available: set[str], methods=COMPARE_METHODS, target: int | None = None):
    """(methods to run, runs to reuse) so that each of ``methods`` has a run on this photo for ``target``.

    A run is reused when it is done or still computing for the same target (None = top-1); methods the
    model cannot run (``available`` lacks them) are left out."""
    reuse, todo = [], []
    for name in methods:
        if name not in available:
            continue
        same = [r for r in session.current_runs()
                if r.method == name and r.target == target and (r.active or r.status == RunStatus.DONE)]
        if same:
            reuse.append(max(same, key=lambda r: r.id))
        else:
            todo.append(name)
    return todo, reuse
