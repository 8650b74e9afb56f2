"""Small random-weight classifiers whose target logit depends only on a known region of the input.

Every planted model multiplies its input by the region's indicator before anything else, so no pixel outside
the region can change any score. The convolutional families (a ResNet, ConvNeXt, Swin from timm) then keep
only the feature cells inside the region (a head that reads the pooled features of one quadrant) and score
the target with positive weights; the ViT gets a positional "region flag" that every query and key reads, so
its attention goes to the region's tokens. Weights are random (seeded): nothing is trained, each model builds
in well under a second.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

INPUT_HW = (64, 96)  # non-square, so a transposed or flipped map cannot pass
REGION = (0, 32, 48, 96)  # top-right quadrant: rows 0..32, columns 48..96
TARGET = 1
CLASSES = 4


def region_mask(hw=INPUT_HW, region=REGION) -> np.ndarray:
    m = np.zeros(hw, dtype=bool)
    m[region[0]:region[1], region[2]:region[3]] = True
    return m


def positive_share(m: np.ndarray, baseline: float = 0.0, region=REGION) -> float:
    """The share of the map's positive mass (above ``baseline``, the value that means "no evidence") that lies
    in the region."""
    pos = np.clip(np.asarray(m, dtype=np.float64) - baseline, 0, None)
    total = pos.sum()
    return float(pos[region_mask(m.shape, region)].sum() / total) if total > 0 else 0.0


class RegionGate(nn.Module):
    """Zero the feature cells whose centre lies outside the region (NCHW)."""

    def __init__(self, region=REGION, hw=INPUT_HW):
        super().__init__()
        self.region, self.hw = region, hw

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        h, w = f.shape[-2:]
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) * self.hw[0] / h
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) * self.hw[1] / w
        r = self.region
        keep = ((ys >= r[0]) & (ys < r[1]))[:, None] & ((xs >= r[2]) & (xs < r[3]))[None, :]
        return f * keep.to(f.dtype)


class PlantedCNN(nn.Module):
    """input ⊙ region -> backbone features -> region gate -> global average pool -> linear head."""

    def __init__(self, features: nn.Module, channels: int, nhwc: bool = False):
        super().__init__()
        mask = torch.as_tensor(region_mask(), dtype=torch.float32)
        self.register_buffer("mask", mask[None, None])
        self.features, self.nhwc = features, nhwc
        self.gate = RegionGate()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x * self.mask)
        f = f[-1] if isinstance(f, (list, tuple)) else f
        if self.nhwc:
            f = f.permute(0, 3, 1, 2)
        return self.fc(self.pool(self.gate(f)).flatten(1))


def plant_head(head: nn.Linear, pooled_image: torch.Tensor, pooled_blank: torch.Tensor, margin: float = 3.0) -> None:
    """Only the target scores: its weights point from the blank image's pooled features to the photo's, scaled
    so the target's logit is -margin on a blank input and +margin on the photo (the other classes stay at 0).
    Partly masked copies fall in between, so the score grows with how much of the region is kept."""
    d = (pooled_image - pooled_blank).flatten()
    w = d / d.dot(d) * 2 * margin
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[TARGET] = w
        head.bias[TARGET] = -margin - w.dot(pooled_blank.flatten())


def loaded(net: nn.Module, name: str):
    from tests.conftest import wrap_module

    return wrap_module(net, f"planted_{name}", INPUT_HW, classes=CLASSES)


def photo(seed: int = 1) -> np.ndarray:
    """A textured random image at the model's input size (so no resampling blurs the region's edge)."""
    return (np.random.default_rng(seed).random((*INPUT_HW, 3)) * 255).astype(np.uint8)


def normalised(image: np.ndarray) -> torch.Tensor:
    from explorer.models.preprocess import Preprocess

    return Preprocess(INPUT_HW).normalise(image, torch.device("cpu"))


def cnn(family: str, image: np.ndarray, seed: int = 0) -> nn.Module:
    """A planted ResNet-18, ConvNeXt-atto or small Swin (timm, random weights, features of one stage), or a
    two-convolution net (``tiny``)."""
    import timm

    torch.manual_seed(seed)
    if family == "tiny":  # two convolutions: the cheapest planted model, for the tests of signed maps' zero
        feats = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1, stride=2),
                              nn.ReLU())
    elif family == "resnet":
        feats = timm.create_model("resnet18", pretrained=False, features_only=True, out_indices=(2,))
    elif family == "convnext":
        feats = timm.create_model("convnext_atto", pretrained=False, features_only=True, out_indices=(1,))
    elif family == "swin":
        feats = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, features_only=True,
                                  out_indices=(1,), img_size=INPUT_HW, window_size=4, embed_dim=24, depths=(1, 1),
                                  num_heads=(1, 2))
    else:
        raise ValueError(family)
    feats.eval()
    with torch.no_grad():
        out = feats(torch.zeros(1, 3, *INPUT_HW))
        out = out[-1] if isinstance(out, (list, tuple)) else out
    nhwc = family == "swin"
    channels = out.shape[-1] if nhwc else out.shape[1]
    net = PlantedCNN(feats, channels, nhwc).eval()
    pooled = []
    with torch.no_grad():
        for x in (normalised(image), torch.zeros(1, 3, *INPUT_HW)):
            f = feats(x * net.mask)
            f = f[-1] if isinstance(f, (list, tuple)) else f
            pooled.append(net.pool(net.gate(f.permute(0, 3, 1, 2) if nhwc else f)).flatten())
    plant_head(net.fc, *pooled)
    return net


def vit(image: np.ndarray, seed: int = 0, flag: float = 6.0) -> nn.Module:
    """A planted timm ViT (patch 8, 8x12 tokens): the input is masked to the region, and one embedding
    dimension is a positional flag (set on the class token and the region's patch tokens) that the queries and
    keys of every head read with a large gain, so attention flows to the region's tokens."""
    from timm.models.vision_transformer import VisionTransformer

    class PlantedViT(VisionTransformer):
        def forward(self, x):
            return super().forward(x * self.region)

    torch.manual_seed(seed)
    net = PlantedViT(img_size=INPUT_HW, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=CLASSES,
                     qkv_bias=False)
    net.register_buffer("region", torch.as_tensor(region_mask(), dtype=torch.float32)[None, None])
    gh, gw = INPUT_HW[0] // 8, INPUT_HW[1] // 8
    tok = torch.as_tensor(region_mask((gh, gw), tuple(v // 8 for v in REGION)), dtype=torch.float32).flatten()
    dim = net.embed_dim
    with torch.no_grad():
        net.patch_embed.proj.weight[0] = 0  # the flag dimension carries no image content
        net.patch_embed.proj.bias[0] = 0
        net.pos_embed[0, :, 0] = torch.cat([torch.ones(1), tok]) * flag  # class token, then the patches
        for blk in net.blocks:
            a = blk.attn
            w = a.qkv.weight  # rows: q (heads x head_dim), then k, then v
            for h in range(a.num_heads):
                for part in (0, 1):  # the first q and k component of every head reads only the flag
                    w[part * dim + h * a.head_dim] = 0
                    w[part * dim + h * a.head_dim, 0] = flag
    net.eval()
    with torch.no_grad():
        pooled = [net.forward_head(net.forward_features(x * net.region), pre_logits=True)[0]
                  for x in (normalised(image), torch.zeros(1, 3, *INPUT_HW))]
    plant_head(net.head, *pooled)
    return net
