"""What to use instead: the methods that do work on a given model, for the "use X instead" of refusals.

A refusal that suggests a method the same model would refuse too (lrp on a ViT, an attention method on a
CNN) sends the user in a circle, so every refusal that offers replacements asks this module, which checks
each candidate against the model: its needs (gradients, layer hooks, readable attention) and the structural
checks the candidate itself makes before computing (its ``refuses``: LRP's layers without a rule; a default
layer for Grad-CAM). Candidates are a short list, one per family, in the order a user would usually try them.
"""

from __future__ import annotations

from explorer.core.errors import ExplorerError
from explorer.core.types import Needs

# one representative per family: CAM, path gradients, relevance, transformer attention, perturbation
CANDIDATES = ("gradcam", "integrated_gradients", "lrp", "chefer", "rise")


def _works(name: str, model) -> bool:
    from explorer.methods.base import METHODS

    cls = METHODS.get(name)
    needs = cls.needs
    if needs & ~model.supports or cls.refuses(model):
        return False
    if Needs.ATTENTION in needs:
        from explorer.models.attention import attention_problem

        return not attention_problem(model)
    if Needs.LAYER in needs:
        try:
            model.default_layer()
        except ExplorerError:
            return False
    return True


def working_alternatives(model, exclude: tuple[str, ...] | set[str] = ()) -> list[str]:
    """The candidates (``CANDIDATES`` order) that would run on ``model``, without the ones in ``exclude``.

    Every candidate is registered by then: this module is ``explorer.methods.alternatives``, so importing it ran
    the package's ``__init__``, which imports every method module (importing the package here would close a
    cycle through the methods that ask this module)."""
    return [n for n in CANDIDATES if n not in exclude and _works(n, model)]


def use_instead(model, exclude: tuple[str, ...] | set[str] = ()) -> str:
    """'use a, b or c instead' for a refusal message, naming only methods that work on ``model``."""
    names = working_alternatives(model, exclude)
    if not names:  # rise needs scores only, so this means the caller excluded it
        return "no other method of this kind applies to this model"
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"use {listed} instead"
