"""The three explainer heads a checkpoint can hold (its ``version``: ``HEADS``; training picks one by ``kind``).

``ClassHead`` (checkpoint version 1, the first demonstration): an FPN over the tapped features ending in a
K-channel 1x1 convolution, one learned output per class. A class that no training image showed gets an
untrained map, so it is only read for old checkpoints.

``TiedHead`` (version 2, what ``explorer train-explainer`` trains by default, and what ships): the same FPN,
but it outputs a *feature* map f(x, y) in the classifier's own pre-logit space (D channels, D = the input width
of its final linear layer) and every class's logit map is that linear layer applied per pixel:

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

``GuidedHead`` (version 3, ``--head guided``): the tied head with the bilinear upsampling of F replaced by a
learned, content-aware guide (its docstring). Measured on the held-out photos, its training does not beat an
untrained head either (docs/explainer.md).
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

    def evidence(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z (B, K, h, w): every class's evidence per pixel at the finest tap's resolution, scale, shift)."""
        p = _top_down(self.lateral, self.fuse, feats)
        base = F.interpolate(feats[-1], size=p.shape[-2:], mode="bilinear", align_corners=False)
        f = base + self.delta_gain * self.delta(p)
        z = torch.einsum("kd,bdhw->bkhw", self.weight, f) + self.bias[None, :, None, None]
        return z, self.log_scale.exp(), self.shift

    @staticmethod
    def maps(z: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
             classes: torch.Tensor | None = None) -> torch.Tensor:
        """Class logit maps from the evidence ``z``: every class (B, K, h, w), or per image the classes
        ``classes`` (B, k) -> (B, k, h, w). The log-softmax needs every class's evidence at every pixel."""
        lse = z.logsumexp(1, keepdim=True)
        if classes is not None:
            z = z.gather(1, classes[:, :, None, None].expand(-1, -1, *z.shape[-2:]))
        return (z - lse) * scale + shift

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.maps(*self.evidence(feats))


HEADS = {1: ClassHead, 2: TiedHead}


# --------------------------------------------------------------------------- version 3: guided upsampling
GUIDE_DIM = 32  # query/key width of the guided upsampling
PRIOR_SIGMA = 0.4  # in coarse cells: the untrained guide is close to bilinear upsampling


def _neighbour_index(fine: int, coarse: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per fine row (or column): the coarse cell nearest to it in a replicate-padded grid (index + 1), and the
    log prior of its 3 neighbours (offsets -1, 0, +1): a Gaussian in the distance to each cell's centre,
    with the fine pixel's centre placed as bilinear upsampling (align_corners=False) places it."""
    u = (torch.arange(fine, dtype=torch.float32) + 0.5) * coarse / fine - 0.5
    c = torch.floor(u + 0.5).clamp(0, coarse - 1)
    offs = torch.tensor([-1.0, 0.0, 1.0])
    d = u[:, None] - (c[:, None] + offs[None, :])
    return c.long() + 1, -(d ** 2) / (2 * PRIOR_SIGMA ** 2)


class GuidedHead(TiedHead):
    """Version 3: the classifier's own last feature map F (stride 32), upsampled to the fine taps' resolution
    (stride 8) by a learned, content-aware guide instead of bilinear interpolation.

    Each fine pixel p takes a convex combination of F over the 3x3 coarse cells around it,

        f(p) = sum_n a_n(p) F_n,   a(p) = softmax_n(log prior_n(p) + q(p) . k_n / sqrt(GUIDE_DIM)),

    with q(p) read from the fused fine features (what p looks like at stride 8) and k_n from F (what cell n
    holds). So f stays inside the span of the classifier's own evidence (no free per-class correction that
    could move one class's evidence onto another object) and training can only decide *which* neighbouring
    cell a fine pixel belongs to: the boundaries. The query starts at zero, so an untrained head is the
    Gaussian-prior upsampling of F (close to bilinear, ``PRIOR_SIGMA``), the version-2 design's starting point.
    """

    kind = "guided"

    def __init__(self, channels: Sequence[int], num_classes: int, width: int = DEFAULT_WIDTH):
        super().__init__(channels, num_classes, width)
        del self.delta
        self.query = nn.Conv2d(self.width, GUIDE_DIM, 1)
        nn.init.zeros_(self.query.weight)
        nn.init.zeros_(self.query.bias)
        self.key = nn.Conv2d(self.dim, GUIDE_DIM, 1)

    def guide(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """The guide: weights a (B, 9, h, w) over each fine pixel's 3x3 coarse neighbours, and per neighbour
        the (rows, columns) of the replicate-padded coarse grid it reads."""
        p = _top_down(self.lateral, self.fuse, feats)
        (hf, wf), (hc, wc) = p.shape[-2:], feats[-1].shape[-2:]
        iy, py = (t.to(p.device) for t in _neighbour_index(hf, hc))
        ix, px = (t.to(p.device) for t in _neighbour_index(wf, wc))
        q = self.query(p)
        k = F.pad(self.key(feats[-1]), (1, 1, 1, 1), mode="replicate")
        logits, cells = [], []
        for oy in range(3):
            for ox in range(3):
                rows, cols = iy + oy - 1, ix + ox - 1
                kn = k.index_select(2, rows).index_select(3, cols)
                prior = (py[:, oy, None] + px[None, :, ox])[None, None]
                logits.append((q * kn).sum(1, keepdim=True) / math.sqrt(GUIDE_DIM) + prior)
                cells.append((rows, cols))
        return torch.cat(logits, 1).softmax(1), cells

    def evidence(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z = W f + b with f the guided upsampling of F. The weights sum to 1 and z is linear in f, so the
        classes' evidence is computed on the coarse grid (1/16 of the pixels) and then spread: as one batched
        product with the (coarse cells x fine pixels) matrix of guide weights, which is far faster than
        gathering K-channel maps nine times."""
        a, cells = self.guide(feats)
        zc = torch.einsum("kd,bdhw->bkhw", self.weight, feats[-1]) + self.bias[None, :, None, None]
        zc = F.pad(zc, (1, 1, 1, 1), mode="replicate")
        (B, K, hp, wp), (hf, wf) = zc.shape, a.shape[-2:]
        flat = torch.stack([(r[:, None] * wp + c[None, :]).flatten() for r, c in cells])  # (9, hf*wf)
        spread = a.new_zeros(B, hp * wp, hf * wf).scatter_add(1, flat.expand(B, -1, -1), a.flatten(2))
        z = torch.bmm(zc.flatten(2), spread).view(B, K, hf, wf)
        return z, self.log_scale.exp(), self.shift


HEADS[3] = GuidedHead
KINDS = {head.kind: version for version, head in HEADS.items()}
