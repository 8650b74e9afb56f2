"""In-fill: what replaces the removed pixels of a perturbed image, shared by every perturbation method.

An in-filler turns a batch of keep-masks M (B, 1, h, w) into perturbed inputs M*x + (1-M)*B(x, M), all in
the model's normalised space. The global ones build the baseline image once; mask-dependent ones (local
mean, in-painting) override ``apply``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from explorer.core.errors import ParamError
from explorer.models.preprocess import Preprocess

INFILLS = ("zero", "mean", "blur", "noise", "constant")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (kernel radius 3σ, capped by the image size)."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, min(int(math.ceil(3 * sigma)), min(x.shape[-2:]) - 1))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    pad = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    y = F.conv2d(pad, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    pad = F.pad(y, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(pad, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class Infill:
    """The baseline image B for ``kind``; ``apply(x, masks)`` builds the perturbed batch."""

    def __init__(self, kind: str, x: torch.Tensor, preprocess: Preprocess, *, sigma: float = 10.0,
                 colour: tuple[int, int, int] = (128, 128, 128), generator: torch.Generator | None = None):
        self.kind = kind
        if kind == "zero":  # zero in normalised space = the dataset mean colour
            base = torch.zeros_like(x)
        elif kind == "mean":  # the image's own mean colour
            base = x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
        elif kind == "blur":
            base = gaussian_blur(x, sigma)
        elif kind == "noise":  # uniform noise over the valid pixel range
            u = torch.rand(x.shape, generator=generator, device=x.device) if generator is not None else torch.rand_like(x)
            base = preprocess.normalise(u)
        elif kind == "constant":
            c = torch.tensor(colour, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255.0
            base = preprocess.normalise(c.expand_as(x))
        else:
            raise ParamError(f"unknown in-fill {kind!r}; valid: {', '.join(INFILLS)}")
        self.base = base

    def apply(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """x: (1, 3, h, w); masks: (B, 1, h, w) keep-masks in [0, 1] -> (B, 3, h, w)."""
        return torch.lerp(self.base, x, masks)  # base + m * (x - base)


# In-fillers by name; mask-dependent ones (local mean, in-painting) register here too.
INFILLERS: dict[str, type[Infill]] = {k: Infill for k in INFILLS}


def make_infill(kind: str, x: torch.Tensor, preprocess: Preprocess, **kw) -> Infill:
    """The in-filler ``kind`` for input ``x`` (keyword options are passed to its constructor)."""
    cls = INFILLERS.get(kind)
    if cls is None:
        raise ParamError(f"unknown in-fill {kind!r}; valid: {', '.join(INFILLERS)}")
    return cls(kind, x, preprocess, **kw)
