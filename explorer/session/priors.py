"""The maps a refining method (BOREx) can start from, as the GUI's prior picker lists them. Qt-free.

A prior is named by a plain string, the value of the method's ``prior`` parameter:

- a run of this session: its label, ``"Grad-CAM #1"`` (its headline map) or ``"Grad-CAM #1 · signed"``
  (one of its layers). The run is found by the ``#id`` alone, so a title that arrives later (the catalog)
  does not break a reference;
- a method or layer name (``"rise"``, ``"salient"``): the newest finished result of that name of the same
  photo, model and class, or, for a method with no such result, the method run first inside BOREx (the
  method's own behaviour). A map of another class or model is never taken by name: refining a map of "cup"
  for "espresso" would give a plausible, wrong map;
- ``"flat"``: no prior.

``default_prior`` is what a new refinement starts from: the newest finished RISE run of this photo, model and
class, else the newest other finished map that ranks evidence (an unsigned headline), else None (the
parameter's own default, running RISE first).

``priors_for`` builds the maps a run is submitted with; ``check_prior`` refuses, with a message that names
the run, a reference to a run that was removed, failed, was cancelled or is still computing: refining a
map that is not there would silently refine something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from explorer.core.errors import ExplorerError
from explorer.session.document import RunStatus

SEP = " · "
_REF = re.compile(r"#(\d+)(?:" + re.escape(SEP) + r"(\S+))?\s*$")


class PriorError(ExplorerError):
    """A prior that names a run of this session that cannot be used (removed, failed, not finished)."""


@dataclass(frozen=True)
class PriorChoice:
    value: str  # what goes into the parameter
    text: str  # what the picker shows
    kind: str  # run | method | flat | file


def run_ref(value) -> tuple[int, str | None] | None:
    """(run id, layer name or None) when ``value`` names a run of the session, else None."""
    m = _REF.search(str(value or ""))
    return (int(m.group(1)), m.group(2)) if m else None


def ref_of(run, layer: str | None = None) -> str:
    return run.label if layer is None else f"{run.label}{SEP}{layer}"


def _usable(run) -> bool:
    return run.status == RunStatus.DONE and run.explanation is not None


def run_class(session, run) -> int | None:
    """The class ``run`` explains (the photo's top-1 class when it was asked for none)."""
    if run.target is not None:
        return run.target
    if run.explanation is not None and run.explanation.target is not None:
        return int(run.explanation.target)
    return session.predictions[0][0] if session.predictions else None


def _serving(session, cls: int | None, exclude: int | None = None) -> list:
    """The finished runs of this photo and model for class ``cls``, newest first: the maps a refinement of
    ``cls`` may start from."""
    return [r for r in sorted(session.runs.values(), key=lambda r: -r.id)
            if r.id != exclude and _usable(r) and not session.is_stale(r) and run_class(session, r) == cls]


def _class_for(session, exclude: int | None) -> int | None:
    """The class a refinement explains: the bound run's (``exclude``), else the session's target."""
    run = session.runs.get(exclude) if exclude is not None else None
    return run_class(session, run) if run is not None else session.effective_target()


def choices(session, methods: list[tuple[str, str]], exclude: int | None = None) -> list[PriorChoice]:
    """Every finished run of this photo, model and class and each of its layers (newest first), then the
    methods (``methods``: (name, title), the refining method itself left out by the caller): the newest map
    of that method when there is one, else the method run first, then ``flat``."""
    out = []
    serving = _serving(session, _class_for(session, exclude), exclude)
    for run in serving:
        names = run.explanation.map_names
        out.append(PriorChoice(ref_of(run), f"{ref_of(run)}  ({names[0]})", "run"))
        out.extend(PriorChoice(ref_of(run, n), ref_of(run, n), "run") for n in names[1:])
    for name, title in methods:
        newest = next((r for r in serving if r.method == name), None)
        out.append(PriorChoice(name, f"the newest {title} ({newest.label})" if newest is not None
                               else f"run {title} first", "method"))
    out.append(PriorChoice("flat", "flat (no prior)", "flat"))
    return out


def default_prior(session, methods: list[str], exclude: int | None = None, first: str = "rise") -> str | None:
    """What a new refinement's prior starts on: the newest finished ``first`` (RISE) run of this photo, model
    and class, else the newest finished run of another of ``methods`` whose headline map ranks evidence
    (unsigned), as a run reference; None when there is none (the parameter's own default then holds)."""
    serving = [r for r in _serving(session, _class_for(session, exclude), exclude) if r.method in methods]
    pick = next((r for r in serving if r.method == first), None) or next(
        (r for r in serving if not r.explanation.signed.get(r.explanation.main, False)), None)
    return ref_of(pick) if pick is not None else None


def check_prior(session, value, run_id: int | None = None) -> None:
    """Raise PriorError when ``value`` names a run that cannot serve as a prior now."""
    ref = run_ref(value)
    if ref is None:
        return
    rid, layer = ref
    run = session.runs.get(rid)
    if run is None:
        raise PriorError(f"the prior {value!r} was removed from the session: pick another prior")
    if rid == run_id:
        raise PriorError(f"the prior {value!r} is this run itself: pick another prior")
    if run.status == RunStatus.ERROR:
        raise PriorError(f"the prior {run.label} failed ({run.error or 'error'}): pick another prior")
    if not _usable(run):
        raise PriorError(f"the prior {run.label} is {run.status}, not finished: wait for it or pick another")
    if layer is not None and layer not in run.explanation.raw:
        raise PriorError(f"the prior {run.label} has no layer {layer!r} "
                         f"(it has {', '.join(run.explanation.map_names)})")


def priors_for(session, run) -> dict[str, np.ndarray]:
    """The finished maps of the other runs (input space), by method name, layer name and run reference.

    Method and layer names map to the newest result of that name of ``run``'s photo, model and class; run
    references to that very map (the user named it)."""
    priors: dict[str, np.ndarray] = {}
    same = {r.id for r in _serving(session, run_class(session, run), run.id)}
    for r in sorted(session.runs.values(), key=lambda r: -r.id):  # the newest result of a name wins
        if r.id == run.id or not _usable(r):
            continue
        exp = r.explanation
        priors[ref_of(r)] = exp.raw[exp.main]
        for name, m in exp.raw.items():
            priors[ref_of(r, name)] = m
        if r.id in same:
            priors.setdefault(r.method, exp.raw[exp.main])
            for name, m in exp.raw.items():
                priors.setdefault(name, m)
    for value in run.params.values():  # the reference as typed, when the label it carries has changed
        ref = run_ref(value) if isinstance(value, str) else None
        if ref is not None and value not in priors:
            other = session.runs.get(ref[0])
            if other is not None and other.id != run.id and _usable(other):
                layer = ref[1] or other.explanation.main
                if layer in other.explanation.raw:
                    priors[value] = other.explanation.raw[layer]
    return priors
