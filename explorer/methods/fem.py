"""Feature Explanation Method (FEM, Fuad et al. 2020, the group of the survey Ayyar, Benois-Pineau, Zemmari
2021) and its multi-layer fusion MLFEM (Bourroux et al. 2022). Class-agnostic: no class score, no gradient.

FEM on a layer's feature maps A (K×h×w), per channel k: threshold T_k = μ_k + k_sigma·σ_k over space
(population standard deviation), binary map M_k = [A_k ≥ T_k], channel weight w_k = mean(A_k);
map = Σ_k w_k M_k, upsampled bilinearly to the input size.

MLFEM (our formulation of the fusion, as the paper's exact fusion rule was not available to us): FEM maps of
several layers, each upsampled to the input and scaled to [0, 1] by its maximum, averaged. ``layers`` default:
for the last ``depth`` spatial resolutions of the model, the last layer at that resolution.
"""

from __future__ import annotations

from typing import Iterator

import torch

from explorer.core.catalog import Family
from explorer.core.errors import ParamError, UnknownNameError
from explorer.core.params import Param, Params
from explorer.core.types import MapSpec, MethodStep, Needs
from explorer.methods.base import Context, Method, register
from explorer.methods.cam import LAYER_PARAM, upsample
from explorer.models.layers import as_grid, block_norms, recording

K_PARAM = Param("k_sigma", "float", 2.0, "threshold = mean + k_sigma * std of each feature map", low=0.0,
                high=10.0, step=0.1)


def fem_map(act: torch.Tensor, k_sigma: float) -> torch.Tensor:
    """(K, h, w) activations -> (h, w) FEM map."""
    a = act.float()
    mu = a.mean(dim=(1, 2), keepdim=True)
    sd = a.std(dim=(1, 2), keepdim=True, unbiased=False)
    mask = (a >= mu + k_sigma * sd).float()
    return (mu * mask).sum(0)


def record(model, modules: dict, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each named layer's feature map (K, h, w), token sequences and channels-last grids included."""
    with torch.inference_mode(), recording(modules) as store:
        model(x)
    return {k: as_grid(v, model.layer_info(k))[0].detach().float() for k, v in store.items()}


@register("fem")
class FEM(Method):
    title = "FEM (feature explanation method)"
    family = Family.FEATURE_MAPS
    paper = "Fuad, Benois-Pineau, Zemmari et al. 2020, Feature Explanation Method (FEM), survey of Ayyar et al. 2021"
    summary = "class-agnostic: feature maps above mean + 2 std, weighted by their mean activation"
    needs = Needs.LAYER
    class_agnostic = True
    outputs = (MapSpec("salient", signed=False, help="FEM map, upsampled",
                         meaning="where the strongest features of the last layer fire (class-agnostic)"),)
    params = Params(LAYER_PARAM, K_PARAM)
    quick: dict = {}

    def validate(self) -> None:
        self.layer_name, self.layer_module = self.model.layer(self.p.layer)

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        act = record(self.model, {self.layer_name: self.layer_module}, ctx.x)[self.layer_name]
        m = upsample(fem_map(act, self.p.k_sigma), tuple(ctx.x.shape[-2:]))
        li = self.model.layer_info(self.layer_name)
        yield MethodStep(1.0, {"salient": m}, info={"layer": self.layer_name, "layer_shape": list(act.shape),
                                             "layer_layout": li.layout, "prefix_tokens": li.prefix})


def auto_layers(model, depth: int) -> list[str]:
    """The last layer at each of the model's last ``depth`` spatial resolutions (execution order).

    On a transformer only the blocks' first norms are candidates (the default FEM layer of each block); a
    ViT has a single resolution, so there the last ``depth`` blocks are used."""
    infos = model.layers()
    blocks = set(block_norms(infos))
    if blocks:
        infos = [i for i in infos if i.name in blocks]
    last_at: dict[tuple[int, int], str] = {}
    order: list[tuple[int, int]] = []
    for info in infos:
        res = tuple(info.shape[-2:])
        if res not in last_at:
            order.append(res)
        last_at[res] = info.name
    valid = model.layer_names()
    if blocks and len(order) < depth:
        return [i.name for i in infos][-depth:]
    # resolutions by decreasing size as the network goes deeper; keep the deepest ``depth``
    order = sorted(order, key=lambda r: r[0] * r[1])[:depth]
    names = [last_at[r] for r in order]
    return sorted(names, key=valid.index)


@register("mlfem")
class MLFEM(Method):
    title = "MLFEM (multi-layer FEM)"
    family = Family.FEATURE_MAPS
    paper = "Bourroux, Benois-Pineau, Bourqui, Giot 2022, Multi Layered Feature Explanation Method for CNNs"
    summary = "class-agnostic: FEM maps of several layers, normalised and averaged"
    needs = Needs.LAYER
    class_agnostic = True
    outputs = (MapSpec("salient", signed=False, help="mean of the max-normalised FEM maps of the layers",
                         meaning="where the strongest features of several layers fire (class-agnostic)"),)
    params = Params(
        Param("layers", "layers", None, "comma-separated layer names (default: the last layer of each of the "
              "deepest `depth` resolutions)", live=False),
        Param("depth", "int", 4, "number of resolutions used when layers is auto", low=1, high=10, step=1),
        K_PARAM,
    )
    quick: dict = {}

    def validate(self) -> None:
        self.model.check_supports(Needs.LAYER, "mlfem")
        names = list(self.p.layers) if self.p.layers else auto_layers(self.model, self.p.depth)
        if not names:
            raise ParamError("mlfem needs at least one layer")
        valid = self.model.layer_names()
        for n in names:
            if n not in valid:
                raise UnknownNameError("layer", n, valid)
        self.layer_names = names

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        mods = {n: self.model.module.get_submodule(n) for n in self.layer_names}
        acts = record(self.model, mods, ctx.x)
        hw = tuple(ctx.x.shape[-2:])
        total = torch.zeros(hw, device=ctx.x.device)
        for n in self.layer_names:
            m = upsample(fem_map(acts[n], self.p.k_sigma), hw)
            total += m / m.max().clamp(min=1e-12)
        yield MethodStep(1.0, {"salient": total / len(self.layer_names)}, info={"layers": list(self.layer_names)})
