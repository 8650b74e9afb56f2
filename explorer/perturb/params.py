"""Parameters shared by several methods, each declared once here and used by name.

A method lists them in its ``Params`` (``Params(N_MASKS, CELLS, DENSITY, INFILL, SIGMA, ...)``); a variant
that differs in one field is ``dataclasses.replace(INFILL_OR_LEARNED, default="blur")``. ``infill_for``
builds the in-filler those parameters name, so every method reads them the same way.
"""

from __future__ import annotations

import dataclasses

from explorer.core.errors import ParamError
from explorer.core.params import Param
from explorer.perturb.infill import ALL_INFILLS, INFILLS, LEARNED, Infill, make_infill

# Offset of the in-filler's generator from the run's seed, so in-fill noise never repeats the masks' draws.
INFILL_SEED_OFFSET = 7919

N_MASKS = Param("n", "int", 1000, "number of random masks", low=10, high=100_000, step=100, gpu_default=4000, log=True)
CELLS = Param("cells", "int", 7, "grid cells per side (s)", low=2, high=64, step=1)
DENSITY = Param("p", "float", 0.5, "mask density: probability that a cell is kept", low=0.05, high=0.95, step=0.05)
INFILL = Param("infill", "choice", "zero", "what replaces removed pixels", choices=INFILLS)
# The same choice widened to a user's learned in-painter (which needs the INPAINTER file).
INFILL_OR_LEARNED = dataclasses.replace(INFILL, choices=ALL_INFILLS)
SIGMA = Param("sigma", "float", 10.0, "blur sigma in pixels (infill=blur)", low=0.5, high=100.0, step=0.5)
INPAINTER = Param("inpainter", "str", None, "in-painter for infill=learned: a checkpoint from `explorer "
                  "train-inpainter` or a TorchScript (image, mask) -> image; empty = the shipped one", live=False)
SCORE = Param("score", "choice", "prob", "score the model's probabilities (its activation) or raw logits",
              choices=("prob", "logit"), aliases=(("softmax", "prob"),))
BATCH_SIZE = Param("batch_size", "int", 0, "images per forward (and backward) pass (0 = the model's batch policy)",
                   low=0, high=4096, live=False, advanced=True)


def check_inpainter(p, model=None) -> None:
    """For infill=learned, load and check the in-painter (``p.inpainter``, empty: the shipped one) before any
    compute: a missing or corrupt file, or one made for another input size or channel count, is refused here
    (``model``: the classifier whose input it must fit; without it only the file is checked)."""
    if p.infill != LEARNED:
        return
    if model is None:
        from explorer.perturb.inpainter import shipped_path

        if not p.inpainter and not shipped_path().is_file():
            raise ParamError(f"infill=learned: the shipped in-painter {shipped_path()} is missing; set parameter "
                             "'inpainter' (train one with `explorer train-inpainter`)")
        return
    from explorer.perturb.infill import load_learned

    load_learned(p.inpainter, model.device, tuple(model.preprocess.input_size), 3)


def infill_for(p, ctx, *, x=None, sigma: float | None = None) -> Infill:
    """The in-filler named by ``p.infill`` / ``p.sigma`` (/ ``p.inpainter``) for ``ctx``'s input, or for ``x``
    (a resized copy, FIDO's ``scale``) with its own ``sigma``."""
    x = ctx.x if x is None else x
    kw = {"sigma": p.sigma if sigma is None else sigma, "generator": ctx.generator(offset=INFILL_SEED_OFFSET)}
    if p.infill == LEARNED:
        kw["path"] = p.inpainter
    return make_infill(p.infill, x, ctx.model.preprocess, **kw)
