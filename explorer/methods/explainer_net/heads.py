"""The two explainer heads a checkpoint can hold.

``ClassHead`` (checkpoint version 1, the first demonstration): an FPN over the tapped features ending in a
K-channel 1x1 convolution, one learned output per class. A class that no training image showed gets an
untrained map, so it is only read for old checkpoints.

``TiedHead`` (version 2, what ``explorer train-explainer`` trains now): the same FPN, but it outputs a
*feature* map f(x, y) in the classifier's own pre-logit space (D channels, D = the input width of its final
linear layer) and every class's logit map is that linear layer applied per pixel:

    z_c(x, y) = W_c . f(x, y) + b_c
    S_c(x, y) = exp(a) * (z_c(x, y) - logsumexp_k z_k(x, y)) + t

with f = upsample(F) + delta, F the classifier's own last feature map (whose spatial mean W turns into the
logits), delta a learned refinement from the finer taps (zero at initialisation, so an untrained head is CAM
upsampled), and a learned global log-scale a and shift t. W and b are the
classifier's, read from it at load time and never stored: each of the K classes, including classes no
training photo showed, gets a map from the same learned features. That is this project's design for
generalising to unseen classes; the paper learns one output channel per class.

z_c - logsumexp_k z_k is the per-pixel log-softmax of the classifier's class evidence: a pixel counts for
class c only where c outweighs the other classes there, not wherever c has some positive evidence (the
classifier's CAM is positive over most of a photo). On a frame holding several objects this is what keeps
one class's mask off the others. The scale and shift are global on purpose: a first version learned them per
pixel from the fused features, and that class-agnostic shift learned "objectness": after one epoch on the
shared photos each class's mask spread onto the other objects of a composite (class-specificity on held-out
composites fell from 0.96 untrained to 0.88).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WIDTH = 64
# Initial mask logit: 1.0 * (log-softmax of the CAM) + 1: where the class dominates the pixel (log-softmax
# near 0) the untrained mask is about 0.7, where it shares the pixel with a few classes it is small.
INIT_LOG_SCALE = 0.0
INIT_SHIFT = 1.0


def _fpn(channels: Sequence[int], width: int) -> tuple[nn.ModuleList, nn.Sequential]:
    groups = math.gcd(8, width)  # GroupNorm: small batches, same behaviour in training and at explain time
    lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
    fuse = nn.Sequential(
        nn.Conv2d(width, width, 3, padding=1, bias=False), nn.GroupNorm(groups, width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, bias=False), nn.GroupNorm(groups, width), nn.ReLU(),
    )
    return lateral, fuse


def _top_down(lateral: nn.ModuleList, fuse: nn.Sequential, feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Coarsest first: project, upsample onto the next finer tap and add; then the 3x3 fusion (finest size)."""
    if len(feats) != len(lateral):
        raise ValueError(f"the head expects {len(lateral)} feature maps, got {len(feats)}")
    p = lateral[-1](feats[-1])
    for lat, f in zip(reversed(lateral[:-1]), reversed(feats[:-1])):
        p = F.interpolate(p, size=f.shape[-2:], mode="bilinear", align_corners=False) + lat(f)
    return fuse(p)


class ClassHead(nn.Module):
    """Version 1: one learned output channel per class."""

    kind = "class"

    def __init__(self, channels: Sequence[int], num_classes: int, width: int = DEFAULT_WIDTH):
        super().__init__()
        self.channels = [int(c) for c in channels]
        self.num_classes = int(num_classes)
        self.width = int(width)
        self.lateral, self.fuse = _fpn(self.channels, self.width)
        self.classify = nn.Conv2d(self.width, self.num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.classify(_top_down(self.lateral, self.fuse, feats))


class TiedHead(nn.Module):
    """Version 2: class maps through the classifier's own final linear layer (see the module docstring)."""

    kind = "tied"

    def __init__(self, channels: Sequence[int], num_classes: int, width: int = DEFAULT_WIDTH):
        super().__init__()
        self.channels = [int(c) for c in channels]
        self.num_classes = int(num_classes)
        self.width = int(width)
        self.dim = self.channels[-1]  # the last tap is the classifier's pre-pooling feature map
        self.lateral, self.fuse = _fpn(self.channels, self.width)
        self.delta = nn.Conv2d(self.width, self.dim, 1)
        nn.init.zeros_(self.delta.weight)  # untrained: f is the classifier's own map, upsampled
        nn.init.zeros_(self.delta.bias)
        # Adam moves each weight by about the learning rate per step, and f feeds D-long dot products with
        # the classifier's weights: unscaled, one step moved class evidence by several logits (the loss of
        # a few steps rose instead of falling). 1/sqrt(width * D) keeps a step to a fraction of a logit.
        self.delta_gain = 1.0 / math.sqrt(self.width * self.dim)
        self.log_scale = nn.Parameter(torch.tensor(INIT_LOG_SCALE))
        self.shift = nn.Parameter(torch.tensor(INIT_SHIFT))
        # The classifier's final layer, bound by ``bind``; not persistent: never written to a checkpoint.
        self.register_buffer("weight", torch.zeros(self.num_classes, self.dim), persistent=False)
        self.register_buffer("bias", torch.zeros(self.num_classes), persistent=False)

    def bind(self, weight: torch.Tensor, bias: torch.Tensor | None) -> "TiedHead":
        if tuple(weight.shape) != (self.num_classes, self.dim):
            raise ValueError(f"the classifier's final layer is {tuple(weight.shape)}, the head needs "
                             f"({self.num_classes}, {self.dim})")
        self.weight = weight.detach().float().clone().to(self.weight.device)
        bias = bias.detach().float().clone() if bias is not None else torch.zeros(self.num_classes)
        self.bias = bias.to(self.weight.device)
        return self

    def features(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(f (B, D, h, w) at the finest tap's resolution, scale, shift)."""
        p = _top_down(self.lateral, self.fuse, feats)
        base = F.interpolate(feats[-1], size=p.shape[-2:], mode="bilinear", align_corners=False)
        return base + self.delta_gain * self.delta(p), self.log_scale.exp(), self.shift

    def maps(self, f: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
             classes: torch.Tensor | None = None) -> torch.Tensor:
        """Class logit maps: every class (B, K, h, w), or per image the classes ``classes`` (B, k) -> (B, k, h, w).
        The log-softmax needs every class's evidence at every pixel (K x D multiply-adds per pixel) either way."""
        z = torch.einsum("kd,bdhw->bkhw", self.weight, f) + self.bias[None, :, None, None]
        lse = z.logsumexp(1, keepdim=True)
        if classes is not None:
            z = z.gather(1, classes[:, :, None, None].expand(-1, -1, *z.shape[-2:]))
        return (z - lse) * scale + shift

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.maps(*self.features(feats))


HEADS = {1: ClassHead, 2: TiedHead}
