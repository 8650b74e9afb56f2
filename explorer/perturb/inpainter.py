"""The project's own learned in-painter: a small U-Net that fills the holes of an RGB image (docs/methods.md §2.2).

``InpaintNet(image, hole) -> image``: ``image`` (B, 3, h, w) RGB in [0, 1], ``hole`` (B, 1, h, w) with 1 = pixel
to fill, the result (B, 3, h, w) in [0, 1] with the kept pixels unchanged (the same contract as a user's
TorchScript in-painter, ``explorer.perturb.infill``). The holes are first filled by a push-pull pyramid
(``pyramid_fill``: each hole pixel gets the colour of the nearest context, smoothly, at whatever distance), and
the network, which sees that fill and the hole mask as a fourth channel, learns only what to change in it:
its output is a correction of the fill's logit, zero at initialisation. Without the prior, the 1 200-step
training left the middle of a large hole a uniform grey-green (the network's receptive field reaches across a
hole, but learning to carry colour 60 px inwards takes far longer than an hour on a CPU). Three stride-2
levels and a dilated bottleneck give it a receptive field of about 150 px. Any size works (the input is
padded to a multiple of 8 and cropped back).

A checkpoint (``explorer train-inpainter`` writes it) is a plain dict read with ``weights_only=True``:
``format``, ``version``, ``width``, ``channels`` (image channels, 3), ``size`` (the training crop side),
``state_dict``, and for resuming the trainer's state under ``training``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from explorer.core.errors import FileError

FORMAT = "explorer-inpainter"
VERSION = 2  # 2: the network corrects a pyramid fill (1: it filled grey holes; never shipped)
SHIPPED = ("checkpoints", "inpainter.pt")
# The in-painter runs at the classifier's input size; beyond these factors of its training crop the holes
# and textures are at scales it never saw, and its fill is silently poor: refused instead (train at that size).
SIZE_RANGE = (0.5, 4.0)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation),
                         nn.LeakyReLU(0.2, inplace=True))


def pyramid_fill(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """``image`` with its holes filled by push-pull: kept colour averaged down a 2x pyramid (weighted by the
    fraction of kept pixels) until every cell has some, then pulled back up, each level keeping what its own
    kept pixels say and taking the rest from the coarser level, bilinearly. Kept pixels are unchanged; a hole
    pixel gets a smooth blend of the context nearest to it. (B, C, h, w) and (B, 1, h, w), 1 = hole."""
    weight = 1 - hole.to(image.dtype)
    sums, weights = [image * weight], [weight]
    while max(sums[-1].shape[-2:]) > 1 and bool((weights[-1] <= 0).any()):
        s, w = sums[-1], weights[-1]
        ph, pw = s.shape[-2] % 2, s.shape[-1] % 2
        if ph or pw:  # an odd side: repeat its last row/column so every cell averages four
            s, w = F.pad(s, (0, pw, 0, ph), mode="replicate"), F.pad(w, (0, pw, 0, ph), mode="replicate")
        sums.append(F.avg_pool2d(s, 2))
        weights.append(F.avg_pool2d(w, 2))
    filled = sums[-1] / weights[-1].clamp_min(1e-6)
    for s, w in zip(reversed(sums[:-1]), reversed(weights[:-1])):
        up = F.interpolate(filled, size=s.shape[-2:], mode="bilinear", align_corners=False)
        filled = s + (1 - w) * up  # the kept share from this level, the missing share from the coarser one
    return filled


class InpaintNet(nn.Module):
    """U-Net: 4 -> w -> 2w -> 4w -> 4w (dilated 2, 4, 8) -> back up with skips -> a correction of the pyramid
    fill's logit -> RGB (sigmoid)."""

    def __init__(self, width: int = 32, channels: int = 3):
        super().__init__()
        w = int(width)
        self.width, self.channels = w, int(channels)
        self.enc1 = nn.Sequential(_conv(channels + 1, w), _conv(w, w))
        self.enc2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))
        self.mid = nn.Sequential(_conv(4 * w, 4 * w, 2), _conv(4 * w, 4 * w, dilation=2),
                                 _conv(4 * w, 4 * w, dilation=4), _conv(4 * w, 4 * w, dilation=8))
        self.dec3 = nn.Sequential(_conv(8 * w, 4 * w), _conv(4 * w, 4 * w))
        self.dec2 = nn.Sequential(_conv(6 * w, 2 * w), _conv(2 * w, 2 * w))
        self.dec1 = nn.Sequential(_conv(3 * w, w), _conv(w, w))
        self.out = nn.Conv2d(w, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # untrained, the network returns the pyramid fill itself
        nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        hole = hole.to(image.dtype)
        prior = pyramid_fill(image, hole).clamp(1e-3, 1 - 1e-3)
        x = torch.cat([prior - 0.5, hole], 1)  # the prior fill, with its holes flagged by channel 4
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        m = self.mid(e3)
        d3 = self.dec3(torch.cat([F.interpolate(m, size=e3.shape[-2:], mode="bilinear", align_corners=False), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, size=e2.shape[-2:], mode="bilinear", align_corners=False), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False), e1], 1))
        pred = torch.sigmoid(torch.logit(prior) + self.out(d1)[..., :h, :w])
        return image * (1 - hole) + pred * hole


def record(net: InpaintNet, size: int, **extra: Any) -> dict[str, Any]:
    """The checkpoint dict of ``net`` (CPU tensors), trained on ``size``² crops."""
    return {"format": FORMAT, "version": VERSION, "width": net.width, "channels": net.channels, "size": int(size),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}, **extra}


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict (``weights_only=True``), or a one-line FileError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise FileError(p, "no such in-painter checkpoint" if not p.exists() else "is not a file")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the file's fault
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise FileError(p, f"not a readable in-painter checkpoint ({type(exc).__name__}{': ' + first if first else ''})"
                        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise FileError(p, "not an in-painter checkpoint (train one with `explorer train-inpainter`)")
    if ckpt.get("version") != VERSION:
        # version 1's network filled grey holes, 2's corrects a pyramid fill: the same weights mean other things
        raise FileError(p, f"in-painter checkpoint version {ckpt.get('version')!r} is not one this explorer reads "
                           f"({VERSION}): retrain it with `explorer train-inpainter`")
    for key, kind in (("width", int), ("channels", int), ("size", int), ("state_dict", dict)):
        if not isinstance(ckpt.get(key), kind):
            raise FileError(p, f"in-painter checkpoint lacks a valid {key!r} (corrupt, or not written by explorer)")
    return ckpt


def build(ckpt: dict[str, Any], path: str | Path) -> InpaintNet:
    """The network of a checkpoint read by ``read_checkpoint`` (eval mode, CPU)."""
    if not 4 <= ckpt["width"] <= 512 or not 1 <= ckpt["channels"] <= 4:
        raise FileError(path, f"in-painter checkpoint has width {ckpt['width']} and {ckpt['channels']} channel(s): "
                              "not an architecture explorer builds")
    net = InpaintNet(ckpt["width"], ckpt["channels"])
    try:
        net.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise FileError(path, f"in-painter weights do not fit its declared architecture ({first})") from None
    return net.eval()


def check_fits(ckpt: dict[str, Any], channels: int, hw: tuple[int, int], path: str | Path) -> None:
    """Refuse a checkpoint for another channel count, or for an input size far from its training crops,
    naming both."""
    if ckpt["channels"] != channels:
        raise FileError(path, f"the in-painter takes {ckpt['channels']}-channel images; this model's input has "
                              f"{channels} channels")
    size = ckpt["size"]
    side = max(hw)
    lo, hi = SIZE_RANGE
    if not lo * size <= side <= hi * size:
        raise FileError(path, f"the in-painter was trained on {size}x{size} crops; this model's input is "
                              f"{hw[0]}x{hw[1]} (more than {hi:g}x or less than {lo:g}x its size): train one at that "
                              "size with `explorer train-inpainter --size`")


def shipped_path() -> Path:
    """The in-painter shipped in resources/ (the default of ``infill=learned``)."""
    from explorer import resources

    return resources.root().joinpath(*SHIPPED)


def param_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
