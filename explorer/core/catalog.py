"""The method catalog as the front ends see it: one frozen ``CatalogEntry`` per registered method.

The compute worker builds the entries (``Method.catalog_entry``) once the method registry is imported, marks the
ones the loaded model cannot run, and hands them to the run controller and the panels, which never import a
method (torch). Everything they read is a typed attribute here, so a misspelt key is an AttributeError at the
reader rather than a silent default. ``describe()`` is the JSON form ``explorer methods --json`` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from explorer.core.params import Params
from explorer.core.types import MapSpec, Needs


class Family(StrEnum):
    """What kind of method a method is (grouped so in the GUI's method list, a column of the methods table).
    A ``str``: the JSON listing, the tables and session records carry the plain words."""

    GRADIENTS = "gradients"
    CAM = "cam"
    FEATURE_MAPS = "feature maps"
    RELEVANCE = "relevance"
    ATTENTION = "attention"
    PERTURBATION = "perturbation"
    OPTIMISED_MASK = "perturbation (optimised mask)"
    COUNTERFACTUAL = "counterfactual"
    TRAINED_EXPLAINER = "trained explainer"
    # a method that refines another method's map (BOREx): never offered as another refinement's prior
    REFINEMENT = "refinement"


def _never_resumable(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return False


@dataclass(frozen=True)
class CatalogEntry:
    """One method, as declared by its class, plus whether the loaded model can run it (and why not)."""

    name: str
    title: str = ""
    family: str = ""  # a ``Family`` member for every registered method ("" only in a hand-made entry)
    paper: str = ""
    summary: str = ""
    needs: Needs = Needs.SCORES
    class_agnostic: bool = False
    outputs: tuple[MapSpec, ...] = ()
    params: Params = field(default_factory=Params)
    quick: Mapping[str, Any] = field(default_factory=dict)  # settings that keep a run to seconds on a CPU
    # ``Method.resumable``: may a finished run with resolved params ``old`` continue from its state to ``new``
    resumable: Callable[[dict[str, Any], dict[str, Any]], bool] = _never_resumable
    available: bool = True  # False: the loaded model lacks what ``needs`` asks (``reason`` says what)
    reason: str = ""

    def __post_init__(self) -> None:
        # frozen all the way down: an entry is shared by the controller and every panel
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "quick", MappingProxyType(dict(self.quick)))

    @property
    def needs_text(self) -> str:
        """What the method needs from a model, in words ("gradients + layer hooks", "scores only")."""
        return self.needs.describe()

    def on_model(self, supports: Needs, kind: str) -> CatalogEntry:
        """This entry as offered with a model that ``supports`` these needs (``kind``: "onnx", "torchscript"...)."""
        missing = self.needs & ~supports
        if not missing:
            return replace(self, available=True, reason="")
        return replace(self, available=False,
                       reason=f"needs {missing.describe()}, which the {kind} model does not offer")

    def describe(self) -> dict[str, Any]:
        """The JSON form (``explorer methods --json``, the README's tables): the declaration, no model state."""
        return {
            "name": self.name, "title": self.title or self.name, "family": str(self.family), "paper": self.paper,
            "summary": self.summary, "needs": self.needs_text, "class_agnostic": self.class_agnostic,
            "outputs": [{"name": o.name, "signed": o.signed, "help": o.help, "meaning": o.meaning, "zero": o.zero}
                        for o in self.outputs],
            "params": self.params.describe(),
        }
