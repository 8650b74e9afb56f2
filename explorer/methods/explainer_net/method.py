"""The ``explainer`` method: class masks from a trained explainer head, one classifier forward per image.

At explain time the classifier runs once, forward only (no backward pass), with hooks recording the tapped
feature maps; the head turns them into all K class logit maps at stride 8. Loaded heads and logit maps are
cached in this module, not in a method instance: the GUI builds a new instance for every run, and picking
another class must cost an upsample and a sigmoid of a cached map, never a new forward pass.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import torch

from explorer.core.catalog import Family
from explorer.core.object_cache import token
from explorer.core.params import Param, Params
from explorer.core.types import NON_TARGET, SALIENT, MapSpec, MethodStep, Needs
from explorer.methods.base import Context, Method, register
from explorer.methods.explainer_net.model import SHIPPED, Explainer

_DEFAULT_NAMES = ("", "default", "shipped", "auto", "none")
CACHE_SIZE = 4  # images whose K logit maps stay cached (about 3 MB each for 1000 classes at 28x28)
_heads: OrderedDict[tuple, Explainer] = OrderedDict()
_maps: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
# Both caches are shared by every thread that explains (the GUI's worker, API callers' threads): a look-up and
# its move to the recent end, or an insert and its evictions, happen under this lock as one step.
_lock = threading.RLock()


def _lru_put(cache: OrderedDict, key, value, size: int) -> None:
    with _lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)


def _lru_get(cache: OrderedDict, key):
    """The cached value of ``key`` (now the most recent), or None."""
    with _lock:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value


def load_cached(path: str | Path, model) -> tuple[Explainer, tuple]:
    """The explainer of ``path`` for ``model`` (checked on every call, loaded once per file version)."""
    from explorer.methods.explainer_net.model import fingerprint

    p = Path(path)
    try:
        st = p.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = None  # let Explainer.load name the problem
    # token(model), not id(model): the logit maps cached under this key outlive the head and may outlive the
    # model, whose id() a newer model can then reuse; a token is never handed out twice
    key = (str(p.resolve()) if stamp else str(p), stamp, model.id, fingerprint(model), str(model.device), token(model))
    cached = _lru_get(_heads, key) if stamp is not None else None
    if cached is not None:
        return cached, key
    exp = Explainer.load(p, model)  # refuses another classifier's checkpoint, a corrupt file...
    _lru_put(_heads, key, exp, 2)
    return exp, key


def shipped_checkpoint() -> Path:
    """The checkpoint shipped for the default EfficientNet-Lite0 (trained on ../shared/data/imagenet-sample)."""
    from explorer import resources

    return resources.path("checkpoints", SHIPPED)


def _image_key(x: torch.Tensor) -> str:
    a = x.detach().float().contiguous().cpu().numpy()
    return f"{a.shape}:" + hashlib.blake2b(a.tobytes(), digest_size=16).hexdigest()


@register("explainer")
class ExplainerNet(Method):
    title = "Explainer network"
    family = Family.TRAINED_EXPLAINER
    paper = ("Stalder, Perraudin, Achanta, Perez-Cruz, Volpi 2022, What you see is what you classify: "
             "black box attributions (NeurIPS)")
    summary = ("a head trained on the classifier's frozen features refines its last feature map; every class's "
               "mask is the classifier's own last layer applied per pixel, all classes in one forward pass")
    # Forward hooks on the classifier's feature maps; never its backward pass.
    needs = Needs.SCORES | Needs.LAYER
    outputs = (
        MapSpec(SALIENT, help="sigmoid(S_target): the explainer's keep-mask for the target class, in [0, 1]"),
        MapSpec(NON_TARGET, help="max of the masks of the strongest other classes, in [0, 1]"),
    )
    params = Params(
        Param("checkpoint", "str", "", "explainer checkpoint (.pt) trained for this classifier with "
              "`explorer train-explainer`; empty = the shipped checkpoint for efficientnet_lite0",
              live=False),
        Param("others", "int", 5, "non_target: the strongest other classes by the classifier's score "
              "(0 = every other class, the paper's non-target mask)", low=0, high=100_000, step=1),
    )
    quick = {}

    def validate(self) -> None:
        path = self.p.checkpoint
        if path is None or str(path).strip().lower() in _DEFAULT_NAMES:
            path = shipped_checkpoint()
        self.checkpoint_path = str(path)
        self.explainer, self._key = load_cached(path, self.model)

    def maps_for(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(K, h, w) class logit maps and (K,) class probabilities for one input, cached; and whether cached."""
        key = (self._key, _image_key(x))
        cached = _lru_get(_maps, key)
        if cached is not None:
            return cached[0], cached[1], True
        with torch.inference_mode():
            s, logits = self.explainer.logit_maps(x[:1])
        entry = (s[0], self.model.activate(logits[:1].float())[0])
        _lru_put(_maps, key, entry, CACHE_SIZE)
        return entry[0], entry[1], False

    @staticmethod
    def clear_cache() -> None:
        """Forget every cached logit map (the loaded heads stay)."""
        with _lock:
            _maps.clear()

    def masks(self, x: torch.Tensor, classes: list[int]) -> torch.Tensor:
        """(len(classes), H, W) masks in [0, 1] for any classes of input ``x`` (cached maps: cheap)."""
        s, _, _ = self.maps_for(x)
        with torch.inference_mode():
            return Explainer.upsample(s[list(classes)][None], x.shape[-2:])[0].sigmoid()

    def steps(self, ctx: Context) -> Iterator[MethodStep]:
        ctx.cancel.check()
        s, probs, cached = self.maps_for(ctx.x)
        K = s.shape[0]
        others = probs.clone()
        others[ctx.target] = -1.0
        k = K - 1 if self.p.others == 0 else min(int(self.p.others), K - 1)
        rivals = others.topk(k).indices if k > 0 else torch.zeros(0, dtype=torch.long, device=s.device)
        hw = tuple(ctx.x.shape[-2:])
        with torch.inference_mode():
            salient = Explainer.upsample(s[ctx.target][None, None], hw)[0, 0].sigmoid()
            if k > 0:
                rival_map = s[rivals].amax(0)  # max of logits = logit of the max mask (sigmoid is monotone)
                non_target = Explainer.upsample(rival_map[None, None], hw)[0, 0].sigmoid()
            else:
                non_target = torch.zeros(hw, device=s.device)
        info = {
            "checkpoint": self.checkpoint_path,
            "cached": cached,
            "mask_area": float(salient.mean()),
            "non_target_classes": [int(i) for i in rivals[:10].tolist()],
            "non_target_count": int(k),
            "trained": {key: self.explainer.meta.get(key) for key in ("epochs", "steps", "trained_on", "note")
                        if key in self.explainer.meta},
        }
        yield MethodStep(1.0, {SALIENT: salient, NON_TARGET: non_target}, info, "masks from the explainer network")
