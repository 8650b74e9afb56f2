"""Hugging Face image classifiers: ``hf:FOLDER_OR_REPO_ID`` specs and in-memory ``transformers`` modules.

A model is ``AutoModelForImageClassification`` from a ``save_pretrained`` folder, or from the local hub cache
by repo id (``local_files_only`` unless downloads are allowed and the hub answers: never a silent download on
an offline machine). What explorer needs is read from the model's own files:

- class names from ``config.id2label``; the activation from ``config.problem_type`` (multi-label: sigmoid,
  single-label: softmax, regression: none; unset: chosen from the number of outputs);
- preprocessing from its image processor (``preprocessor_config.json``): size (height/width, or shortest
  edge), resampling, rescale (must be 1/255, what explorer does), mean/std, centre crop (crop size or
  ``crop_pct``). The resize policy stays the user's choice (``resize`` by default, as for timm:NAME).

The module returns an ``ImageClassifierOutput``; its ``logits`` are selected by ``models.outputs``.
Layer methods find HF ViT/DeiT/Swin token grids and ConvNeXt/ResNet maps by the same discovery as timm's
(models/layers.py): nothing here is specific to them.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from explorer.core.errors import FileError, ModelLoadError
from explorer.models.outputs import PROBLEM_TYPES
from explorer.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
# PIL's resampling codes, which image processors store (an int or a PILImageResampling member)
RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}
# Families whose position embeddings fix the input size (no interpolation unless asked for)
FIXED_SIZE = ("vit", "deit")


def is_hf_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith("transformers.") and hasattr(module, "config")


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ModelLoadError("hf: models need the 'transformers' package: pip install 'explorer[hf]'") from None
    return transformers


def load(ref: str, allow_download: bool) -> tuple[nn.Module, Any, str]:
    """(module, image processor or None, source) for ``hf:REF``: a save_pretrained folder or a hub repo id."""
    tf = _transformers()
    path = Path(ref).expanduser()
    folder = path.exists() or "/" not in ref.strip("/") or ref.startswith((".", "~", "/"))
    if folder:
        if not path.is_dir():
            raise FileError(path, "no such folder: hf: takes a save_pretrained folder or a hub repo id (owner/name)")
        if not (path / "config.json").is_file():
            raise FileError(path, "has no config.json, so it is not a Hugging Face model folder (write one with "
                                  "model.save_pretrained(FOLDER))")
        if not any((path / n).is_file() for n in WEIGHT_FILES):
            raise FileError(path, "has config.json but no weights (model.safetensors or pytorch_model.bin): save the "
                                  "model with model.save_pretrained(FOLDER)")
        src, local_only = str(path), True
    else:
        src, local_only = ref, not allow_download
        if allow_download:
            from explorer.models.network import reachable

            local_only = not reachable("huggingface.co")
    where = str(path) if folder else f"{ref} (hub cache)"
    with _quiet(tf):
        return _from_pretrained(tf, src, local_only, folder, path, ref, allow_download, where)


@contextmanager
def _quiet(tf):
    """No progress bar or info lines from transformers on stderr while loading (the CLI's stderr is its own
    one-line errors and progress); the library's settings come back afterwards."""
    log = tf.utils.logging
    bar, level = log.is_progress_bar_enabled(), log.get_verbosity()
    log.disable_progress_bar()
    log.set_verbosity_error()
    try:
        yield
    finally:
        log.set_verbosity(level)
        if bar:
            log.enable_progress_bar()


def _from_pretrained(tf, src, local_only, folder, path, ref, allow_download, where):
    try:
        module = tf.AutoModelForImageClassification.from_pretrained(src, local_files_only=local_only)
    except Exception as exc:  # noqa: BLE001 - transformers fails many ways; each means no usable model here
        msg = str(exc).splitlines()[0][:240] if str(exc) else type(exc).__name__
        if not folder:
            raise ModelLoadError(f"hf:{ref} is not in the local Hugging Face cache"
                                 f"{'' if allow_download else ' (offline: nothing is downloaded)'} or cannot be "
                                 f"loaded ({type(exc).__name__}: {msg}); save it with save_pretrained and give "
                                 "hf:FOLDER") from None
        raise FileError(path / "config.json",
                        f"not a loadable image classifier ({type(exc).__name__}: {msg})") from None
    try:
        processor = tf.AutoImageProcessor.from_pretrained(src, local_files_only=True)
    except Exception:  # noqa: BLE001 - no preprocessor_config.json: the config's size, said in the notes
        processor = None
    return module, processor, where


def describe_module(module: nn.Module, processor: Any, model_id: str, policy: Any = None,
                    where: str = "") -> tuple[Preprocess, list[str] | None, str | None]:
    """(preprocessing, labels, activation) read from an HF module's config and its image processor."""
    cfg = module.config
    id2label = getattr(cfg, "id2label", None) or {}
    try:
        labels = [str(id2label[k]) for k in sorted(id2label, key=int)] or None
    except (TypeError, ValueError):
        labels = None
    activation = PROBLEM_TYPES.get(getattr(cfg, "problem_type", None) or "")
    channels = int(getattr(cfg, "num_channels", 3) or 3)
    pol = policy if isinstance(policy, str) else None
    if processor is None:
        size = _config_size(cfg)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.449,), (0.226,))
        pre = Preprocess((size, size), mean, std, pol or "resize")
    else:
        pre = processor_preprocess(processor, model_id, pol, where)
    if channels == 1:
        pre = pre.grey()  # a grey model whose processor lists RGB statistics: averaged, as validate_output does
    elif pre.channels != channels:
        raise ModelLoadError(f"model {model_id!r}: its image processor{_at(where)} normalises {pre.channels} "
                             f"channel(s) but the model takes {channels} (config num_channels): give the processor "
                             "that was saved with the model")
    size = _config_size(cfg) if getattr(cfg, "model_type", "") in FIXED_SIZE else None
    if size and pre.input_size != (size, size):
        raise ModelLoadError(f"model {model_id!r}: its image processor{_at(where)} makes {pre.input_size[0]}x"
                             f"{pre.input_size[1]} inputs, but the model's position embeddings take {size}x{size} "
                             "(config image_size): fix the processor's size or give the one saved with the model")
    return pre, labels, activation


def _at(where: str) -> str:
    """Where the processor came from, for messages: the folder's preprocessor_config.json."""
    return f" ({Path(where) / 'preprocessor_config.json'})" if where and Path(where).is_dir() else ""


def _config_size(cfg) -> int:
    s = getattr(cfg, "image_size", 224) or 224
    return int(s[0] if isinstance(s, (list, tuple)) else s)


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def processor_preprocess(proc: Any, model_id: str, policy: str | None = None, where: str = "") -> Preprocess:
    """Explorer's ``Preprocess`` for a Hugging Face image processor (see the module docstring)."""
    size, crop = getattr(proc, "size", None), getattr(proc, "crop_size", None)
    h, w, short = _get(size, "height"), _get(size, "width"), _get(size, "shortest_edge")
    do_crop = bool(getattr(proc, "do_center_crop", False)) and crop is not None
    crop_pct = getattr(proc, "crop_pct", None)
    if do_crop:
        ch, cw = int(_get(crop, "height")), int(_get(crop, "width"))
        resized = int(short) if short else int(h or ch)
        hw, pct = (ch, cw), min(1.0, min(ch, cw) / resized)
    elif h and w:
        hw, pct = (int(h), int(w)), 1.0
    elif short:
        s = int(short)
        # ConvNeXt's processor: below 384 px it resizes to s / crop_pct and crops s; from 384 it warps to s×s
        hw, pct = (s, s), float(crop_pct) if crop_pct and s < 384 else 1.0
    else:
        raise ModelLoadError(f"model {model_id!r}: its image processor{_at(where)} gives no input size (size "
                             f"{size!r}); explorer needs height/width or shortest_edge")
    if getattr(proc, "do_rescale", True):
        factor = float(getattr(proc, "rescale_factor", 1 / 255))
        if abs(factor * 255 - 1) > 1e-3:
            raise ModelLoadError(f"model {model_id!r}: its image processor{_at(where)} rescales pixels by {factor:g}; "
                                 "explorer supports 1/255 (pixels in [0, 1]) before mean/std only")
    else:
        raise ModelLoadError(f"model {model_id!r}: its image processor{_at(where)} does not rescale pixels to [0, 1] "
                             "(do_rescale false); explorer supports the 1/255 rescale only")
    if getattr(proc, "do_normalize", True):
        mean = tuple(float(v) for v in _as_list(getattr(proc, "image_mean", IMAGENET_MEAN)))
        std = tuple(float(v) for v in _as_list(getattr(proc, "image_std", IMAGENET_STD)))
    else:
        mean, std = (0.0,) * 3, (1.0,) * 3
    resample = getattr(proc, "resample", 2)
    code = getattr(resample, "value", resample)
    interp = RESAMPLE.get(code, str(code).lower() if isinstance(code, str) else "bilinear")
    try:
        # a centre crop is the processor's evaluation recipe; explorer keeps the user's policy (resize by default)
        return Preprocess(hw, mean, std, policy or "resize", pct if pct > 0 else 1.0,
                          interp if interp in RESAMPLE.values() else "bilinear")
    except ValueError as exc:
        raise ModelLoadError(f"model {model_id!r}: its image processor{_at(where)} does not fit explorer: "
                             f"{exc}") from None


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]
