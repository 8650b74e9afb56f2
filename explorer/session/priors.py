"""The maps a refining method (BOREx) can start from, as the GUI's prior picker lists them. Qt-free.

A prior is named by a plain string, the value of the method's ``prior`` parameter:

- a run of this session: its label, ``"Grad-CAM #1"`` (its headline map) or ``"Grad-CAM #1 · signed"``
  (one of its layers). The run is found by the ``#id`` alone, so a title that arrives later (the catalog)
  does not break a reference;
- a method or layer name (``"rise"``, ``"salient"``): the newest finished result of that name, or, for a
  method with no result yet, the method run first inside BOREx (the method's own behaviour);
- ``"flat"``: no prior.

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


def choices(session, methods: list[tuple[str, str]], exclude: int | None = None) -> list[PriorChoice]:
    """Every finished run and each of its layers (newest first), then the methods that can run first
    (``methods``: (name, title), the refining method itself left out by the caller), then ``flat``."""
    out = []
    for run in sorted(session.runs.values(), key=lambda r: -r.id):
        if run.id == exclude or not _usable(run):
            continue
        names = run.explanation.map_names
        out.append(PriorChoice(ref_of(run), f"{ref_of(run)}  ({names[0]})", "run"))
        out.extend(PriorChoice(ref_of(run, n), ref_of(run, n), "run") for n in names[1:])
    out.extend(PriorChoice(name, f"run {title} first", "method") for name, title in methods)
    out.append(PriorChoice("flat", "flat (no prior)", "flat"))
    return out


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

    Method and layer names map to the newest result of that name; run references to that very map."""
    priors: dict[str, np.ndarray] = {}
    for r in sorted(session.runs.values(), key=lambda r: -r.id):  # the newest result of a name wins
        if r.id == run.id or not _usable(r):
            continue
        exp = r.explanation
        priors.setdefault(r.method, exp.raw[exp.main])
        priors[ref_of(r)] = exp.raw[exp.main]
        for name, m in exp.raw.items():
            priors.setdefault(name, m)
            priors[ref_of(r, name)] = m
    for value in run.params.values():  # the reference as typed, when the label it carries has changed
        ref = run_ref(value) if isinstance(value, str) else None
        if ref is not None and value not in priors:
            other = session.runs.get(ref[0])
            if other is not None and other.id != run.id and _usable(other):
                layer = ref[1] or other.explanation.main
                if layer in other.explanation.raw:
                    priors[value] = other.explanation.raw[layer]
    return priors
