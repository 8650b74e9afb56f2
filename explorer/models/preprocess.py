"""Preprocessing carried by each model: input size, resize/crop policy, mean/std normalisation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from explorer.core.normalisation import channel_values
from explorer.core.types import Placement

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Weights ported from TensorFlow releases (EfficientNet-Lite, tf_* in timm) expect pixels in [-1, 1].
HALF = (0.5, 0.5, 0.5)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")


@dataclass(frozen=True)
class Preprocess:
    """``policy``: ``resize`` squashes the whole image to ``input_size`` (maps cover every pixel);
    ``center_crop`` resizes the shorter side to ``input_size / crop_pct`` and takes the central crop (maps
    are NaN outside it). ``interpolation`` is the resampling the weights were trained and evaluated with: it
    moves top-1 by up to 3 points (EfficientNet-Lite0: 0.79 bilinear, 0.82 bicubic on the shared photos)."""

    input_size: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN  # three values (RGB), or one for a grey model
    std: tuple[float, ...] = IMAGENET_STD
    policy: str = "resize"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.policy not in ("resize", "center_crop"):
            raise ValueError(f"unknown preprocessing policy {self.policy!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; valid: {', '.join(INTERPOLATIONS)}")
        if len(self.mean) != len(self.std) or len(self.mean) not in (1, 3):
            raise ValueError(f"preprocess mean and std need one value per channel (3 for RGB, 1 for grey), got "
                             f"{self.mean!r} and {self.std!r}")

    @property
    def channels(self) -> int:
        """The model's input channels: 3 (RGB) or 1 (grey: see models/outputs.py for the conversion)."""
        return len(self.mean)

    def grey(self) -> Preprocess:
        """The same preprocessing for a one-channel model: mean and std averaged over the colour channels (what
        timm does for ``in_chans=1``)."""
        if self.channels == 1:
            return self
        return replace(self, mean=(sum(self.mean) / 3,), std=(sum(self.std) / 3,))

    def _stats(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """mean and std as (1, 3, 1, 1): a grey model's one value is replicated over R, G, B, whose luma (the
        grey image the model sees) is then the normalised grey value exactly (the luma weights sum to 1)."""
        mean = torch.tensor(self.mean, device=device, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device, dtype=torch.float32).view(1, -1, 1, 1)
        return mean.expand(1, 3, 1, 1), std.expand(1, 3, 1, 1)

    def with_size(self, size: int | tuple[int, int]) -> Preprocess:
        hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        return replace(self, input_size=hw)

    def with_stats(self, mean=None, std=None) -> Preprocess:
        """The same preprocessing with the normalisation a model was trained with (``x' = (x - mean) / std``
        on pixels in [0, 1]); either may be left as it is. One value stands for every channel, or give three
        (R, G, B). A ValueError says what is wrong with a value."""
        m = channel_values(mean, "mean") if mean is not None else self.mean
        sd = channel_values(std, "std") if std is not None else self.std
        if len(m) != len(sd):  # a grey preprocessing given three of one and none of the other
            m, sd = (m * 3 if len(m) == 1 else m), (sd * 3 if len(sd) == 1 else sd)
        return replace(self, mean=m, std=sd)

    def record(self) -> dict:
        return asdict(self)

    def placement(self, image_hw: tuple[int, int]) -> Placement:
        H, W = image_hw
        h, w = self.input_size
        if self.policy == "resize":
            return Placement.whole((H, W), (h, w))
        scale = max(h, w) / self.crop_pct / min(H, W)
        ch, cw = min(H, round(h / scale)), min(W, round(w / scale))
        top, left = (H - ch) // 2, (W - cw) // 2
        return Placement((H, W), (h, w), (top, left, ch, cw))

    def input_rgb(self, rgb: np.ndarray) -> tuple[np.ndarray, Placement]:
        """The image as the model sees it, before normalisation: (h, w, 3) uint8, and its placement."""
        from PIL import Image

        placement = self.placement(rgb.shape[:2])
        top, left, ch, cw = placement.box
        crop = rgb[top : top + ch, left : left + cw]
        h, w = self.input_size
        if crop.shape[:2] != (h, w):
            resample = getattr(Image.Resampling, self.interpolation.upper())
            crop = np.asarray(Image.fromarray(crop).resize((w, h), resample))
        return np.ascontiguousarray(crop), placement

    def normalise(self, rgb_input: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """(h, w, 3) uint8 (or a (N, 3, h, w) float tensor in [0, 1]) to a normalised (N, 3, h, w) tensor."""
        if isinstance(rgb_input, np.ndarray):
            t = torch.from_numpy(np.array(rgb_input, copy=True)).to(device).permute(2, 0, 1)[None].float() / 255.0
        else:
            t = rgb_input.to(device).float()
        mean, std = self._stats(t.device)
        return (t - mean) / std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (N, 3, h, w) back to [0, 1]."""
        mean, std = self._stats(x.device)
        return x * std + mean

    def to_input(self, rgb: np.ndarray, device: torch.device | str = "cpu") -> tuple[torch.Tensor, Placement]:
        small, placement = self.input_rgb(rgb)
        return self.normalise(small, device), placement

    def resize_batch(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(x, size=hw, mode="bilinear", align_corners=False)
