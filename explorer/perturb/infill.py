"""In-fill: what replaces the removed pixels of a perturbed image, shared by every perturbation method.

An in-filler turns a batch of keep-masks M (B, 1, h, w) into perturbed inputs M*x + (1-M)*B(x, M), all in
the model's normalised space. The global ones build the baseline image B once (``zero``, ``mean``, ``blur``,
``noise``, ``constant``); the mask-dependent ones subclass ``Infill`` and compute B from each mask in
``baseline(x, masks)``:

- ``local_mean``: the mean of the *kept* pixels in a 15x15 window around each pixel (box filters of M*x and
  M), as in FIDO's local-mean in-filler; where a window holds no kept pixel, the mean of all kept pixels.
- ``random_colour``: one uniformly random colour per mask plus N(0, 0.2) pixel noise (FIDO's heuristic;
  colour and noise are drawn in [0, 1] RGB units, then normalised: our reading of the paper).
- ``telea`` / ``navier_stokes``: classical in-painting with OpenCV (``cv2.inpaint``) of the removed pixels
  (M < 0.5) on the uint8 image, one mask at a time on the CPU whatever the device. Cost grows with the hole
  area: measured ~140 ms per 224x224 RISE mask (half the pixels removed) and 2-26 ms for a 60x60 hole on a
  loaded, shared 2-core machine; thousands of RISE masks take minutes, and a FIDO step pays it per sample.
- ``exemplar``: exemplar-based in-painting, OpenCV contrib's shift-map (``cv2.xphoto.inpaint``,
  INPAINT_SHIFTMAP): the hole is filled with shifted copies of the image's own patches. Needs the contrib build
  (opencv-contrib-python-headless); about 2.4 s per 224x224 mask with a 50x60 hole on the shared 2-core
  machine, so it suits FIDO's comparison and removal gain more than thousands of RISE masks.
- ``learned``: a learned in-painter ``(image, mask) -> image``; ``image`` is (B, 3, h, w) RGB in [0, 1],
  ``mask`` is (B, 1, h, w) with 1 = pixel to fill in (the hole) and 0 = pixel kept (the convention of exported
  LaMa models), the result is (B, 3, h, w) RGB in [0, 1]. By default the project's own U-Net shipped in
  resources/checkpoints (``explorer.perturb.inpainter``, trained by ``explorer train-inpainter``); the option
  ``path`` names another checkpoint of that kind (a state dict read with ``weights_only``) or a user's
  TorchScript file. Checked once at load time.

Mask-dependent baselines are computed without gradient (FIDO: no gradient through the in-filler); callers
that need a hard mask (FIDO) pass one.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from explorer.core.errors import FileError, ParamError, UnsupportedError
from explorer.models.preprocess import Preprocess

GLOBAL_INFILLS = ("zero", "mean", "blur", "noise", "constant")
# Every in-fill a parameter can offer without extra options (``learned`` needs a file, see ALL_INFILLS).
INFILLS = GLOBAL_INFILLS + ("local_mean", "random_colour", "telea", "navier_stokes", "exemplar")
LEARNED = "learned"
ALL_INFILLS = INFILLS + (LEARNED,)


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
    """The baseline image B for ``kind``; ``apply(x, masks)`` builds the perturbed batch.

    ``baseline(x, masks)`` returns B: (1, 3, h, w) for the global kinds, (B, 3, h, w) for mask-dependent
    ones (subclasses, ``mask_dependent = True``, ``base is None``).
    """

    mask_dependent = False

    def __init__(self, kind: str, x: torch.Tensor, preprocess: Preprocess, *, sigma: float = 10.0,
                 colour: tuple[int, int, int] = (128, 128, 128), generator: torch.Generator | None = None,
                 **options):
        self.kind = kind
        self.preprocess = preprocess
        self.generator = generator
        self.options = options
        self.base = None if self.mask_dependent else self._global_base(kind, x, preprocess, sigma, colour, generator)

    @staticmethod
    def _global_base(kind, x, preprocess, sigma, colour, generator) -> torch.Tensor:
        if kind == "zero":  # zero in normalised space = the dataset mean colour
            return torch.zeros_like(x)
        if kind == "mean":  # the image's own mean colour
            return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
        if kind == "blur":
            return gaussian_blur(x, sigma)
        if kind == "noise":  # uniform noise over the valid pixel range
            u = (torch.rand(x.shape, generator=generator, device=x.device) if generator is not None
                 else torch.rand_like(x))
            return preprocess.normalise(u)
        if kind == "constant":
            c = torch.tensor(colour, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255.0
            return preprocess.normalise(c.expand_as(x))
        raise ParamError(f"unknown in-fill {kind!r}; valid: {', '.join(INFILLERS)}")

    def baseline(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """What fills the removed pixels for each mask (no gradient flows through it)."""
        return self.base

    def apply(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """x: (1, 3, h, w); masks: (B, 1, h, w) keep-masks in [0, 1] -> (B, 3, h, w)."""
        return torch.lerp(self.baseline(x, masks), x, masks)  # base + m * (x - base)


class _MaskInfill(Infill):
    """Base of the in-fillers whose baseline depends on the mask."""

    mask_dependent = True

    def baseline(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._fill(x.detach(), masks.detach().to(x.dtype))

    def _fill(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LocalMeanInfill(_MaskInfill):
    """Mean of the kept pixels in a ``window`` x ``window`` neighbourhood (default 15)."""

    def _fill(self, x, masks):
        k = int(self.options.get("window", 15))
        k = max(1, k | 1)  # odd
        pad = k // 2
        num = F.avg_pool2d(masks * x, k, stride=1, padding=pad, count_include_pad=True)
        den = F.avg_pool2d(masks, k, stride=1, padding=pad, count_include_pad=True)
        # fallback where the window holds no kept pixel: the mean of every kept pixel of that mask (or 0)
        tot = masks.sum(dim=(2, 3), keepdim=True)
        glob = (masks * x).sum(dim=(2, 3), keepdim=True) / tot.clamp_min(1e-6)
        glob = torch.where(tot > 1e-6, glob, torch.zeros_like(glob))
        ok = den > 1e-4
        return torch.where(ok, num / den.clamp_min(1e-4), glob.expand_as(num))


class RandomColourInfill(_MaskInfill):
    """One random colour per mask plus Gaussian noise (σ = ``noise``, default 0.2, in [0, 1] RGB units)."""

    def _fill(self, x, masks):
        b = masks.shape[0]
        g = self.generator
        dev = x.device
        colour = (torch.rand((b, 3, 1, 1), generator=g, device=dev) if g is not None
                  else torch.rand(b, 3, 1, 1, device=dev))
        shape = (b, 3) + tuple(x.shape[-2:])
        noise = torch.randn(shape, generator=g, device=dev) if g is not None else torch.randn(shape, device=dev)
        rgb = (colour + float(self.options.get("noise", 0.2)) * noise).clamp(0, 1)
        return self.preprocess.normalise(rgb).to(x.dtype)


class OpenCVInpaintInfill(_MaskInfill):
    """``cv2.inpaint`` (Telea or Navier-Stokes) of the pixels with M < 0.5, per mask, on the CPU."""

    def _inpaint(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        import cv2

        flag = cv2.INPAINT_TELEA if self.kind == "telea" else cv2.INPAINT_NS
        return cv2.inpaint(rgb, hole.astype(np.uint8) * 255, float(self.options.get("radius", 3.0)), flag)

    def _fill(self, x, masks):
        rgb = (self.preprocess.denormalise(x)[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        rgb = np.ascontiguousarray(rgb)
        holes = (masks[:, 0] < 0.5).cpu().numpy()
        out = np.empty((masks.shape[0],) + rgb.shape, dtype=np.uint8)
        for i, hole in enumerate(holes):
            if not hole.any():
                out[i] = rgb
            elif hole.all():  # nothing to in-paint from: the dataset mean colour
                mean = np.array(self.preprocess.mean) * 255
                out[i] = np.broadcast_to(mean.round().astype(np.uint8), rgb.shape)
            else:
                out[i] = self._inpaint(rgb, hole)
        t = torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).float() / 255.0
        return self.preprocess.normalise(t).to(x.dtype)


class ExemplarInfill(OpenCVInpaintInfill):
    """Exemplar-based in-painting: OpenCV contrib's shift-map method (``cv2.xphoto.inpaint``, INPAINT_SHIFTMAP),
    which fills the hole with shifted copies of patches from the rest of the image (He and Sun's statistics of
    patch offsets), per mask, on the CPU. Needs the opencv-contrib build of OpenCV."""

    def __init__(self, kind, x, preprocess, **kw):
        import cv2

        if not hasattr(cv2, "xphoto"):
            raise UnsupportedError("infill=exemplar needs OpenCV's contrib modules (cv2.xphoto): install "
                                   "opencv-contrib-python-headless in place of opencv-python-headless (same version)")
        super().__init__(kind, x, preprocess, **kw)

    def _inpaint(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        import cv2

        out = np.zeros_like(rgb)
        known = np.where(hole, 0, 255).astype(np.uint8)  # xphoto's mask: non-zero = known pixel
        cv2.xphoto.inpaint(rgb, known, out, cv2.xphoto.INPAINT_SHIFTMAP)
        return out


_SCRIPTS: dict[tuple[str, float, str], torch.jit.ScriptModule] = {}


def load_inpainter(path: str | os.PathLike, device: torch.device | str, hw: tuple[int, int]) -> torch.jit.ScriptModule:
    """Load and check a TorchScript in-painter (image, mask) -> image; FileError naming the file if unusable."""
    if path is None or str(path).strip() == "":
        raise ParamError("in-fill 'learned' needs a TorchScript in-painter file (parameter 'inpainter')")
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileError(p, "no such in-painter file")
    key = (str(p.resolve()), p.stat().st_mtime, str(device))
    if key in _SCRIPTS:
        return _SCRIPTS[key]
    try:
        module = torch.jit.load(str(p), map_location=device)
    except Exception as exc:  # noqa: BLE001 - any load failure is the file's fault
        raise FileError(
            p, f"not a TorchScript in-painter ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    module.eval()
    h, w = hw
    img = torch.full((2, 3, h, w), 0.5, device=device)
    mask = torch.zeros(2, 1, h, w, device=device)
    mask[:, :, h // 4: h // 2, w // 4: w // 2] = 1
    try:
        with torch.no_grad():
            out = module(img, mask)
    except Exception as exc:  # noqa: BLE001 - a failure of any kind in the user's in-painter is its file's fault
        raise FileError(p, "the in-painter failed on a (2, 3, %d, %d) image and (2, 1, %d, %d) mask: %s: %s"
                        % (h, w, h, w, type(exc).__name__,
                           str(exc).splitlines()[0][:200] if str(exc) else "")) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 3, h, w):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise FileError(p, f"the in-painter returned {got}; expected an image of shape (2, 3, {h}, {w}) "
                           "for a (2, 3, h, w) image and (2, 1, h, w) mask")
    if not torch.isfinite(out).all():
        raise FileError(p, "the in-painter returned NaN or infinite values")
    _SCRIPTS.clear()  # keep one module in memory
    _SCRIPTS[key] = module
    return module


_NETS: dict[tuple[str, float, str], torch.nn.Module] = {}


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive (a zip holding compiled code), as opposed to a ``torch.save`` checkpoint."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_learned(path: str | os.PathLike | None, device: torch.device | str, hw: tuple[int, int],
                 channels: int = 3) -> torch.nn.Module:
    """The ``learned`` in-filler's network: ``path`` (empty: the shipped in-painter) as a TorchScript file or an
    ``explorer train-inpainter`` checkpoint, checked against the input's size and channel count. FileError
    naming the file when it is missing, corrupt, or made for another input."""
    from explorer.perturb import inpainter

    p = inpainter.shipped_path() if path is None or str(path).strip() == "" else Path(path).expanduser()
    if not p.is_file():
        shipped = path is None or str(path).strip() == ""
        raise FileError(p, "the shipped in-painter is missing (a broken install; or train one with `explorer "
                           "train-inpainter` and set parameter 'inpainter')" if shipped else "no such in-painter file")
    if is_torchscript(p):
        return load_inpainter(p, device, hw)
    key = (str(p.resolve()), p.stat().st_mtime, str(device))
    try:
        ckpt = inpainter.read_checkpoint(p)
    except FileError as exc:
        raise FileError(p, f"not a TorchScript in-painter, and {exc.reason}") from None
    inpainter.check_fits(ckpt, channels, hw, p)
    if key not in _NETS:
        _NETS.clear()  # keep one network in memory
        _NETS[key] = inpainter.build(ckpt, p).to(device)
    return _NETS[key]


class LearnedInfill(_MaskInfill):
    """A learned in-painter; option ``path`` (empty: the shipped one). See the module docstring for the contract."""

    def __init__(self, kind, x, preprocess, **kw):
        super().__init__(kind, x, preprocess, **kw)
        self.path = self.options.get("path")
        self.module = load_learned(self.path, x.device, tuple(x.shape[-2:]), x.shape[1])

    def _fill(self, x, masks):
        rgb = self.preprocess.denormalise(x).clamp(0, 1).expand(masks.shape[0], -1, -1, -1).contiguous()
        holes = (masks < 0.5).to(rgb.dtype)
        out = self.module(rgb, holes)
        if not isinstance(out, torch.Tensor) or out.shape != rgb.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise FileError(self.path, f"the in-painter returned {got} for a batch of shape {tuple(rgb.shape)}")
        return self.preprocess.normalise(out.float().clamp(0, 1)).to(x.dtype)


# In-fillers by name; mask-dependent ones (local mean, in-painting) register here too.
INFILLERS: dict[str, type[Infill]] = {k: Infill for k in GLOBAL_INFILLS}
INFILLERS.update({
    "local_mean": LocalMeanInfill,
    "random_colour": RandomColourInfill,
    "telea": OpenCVInpaintInfill,
    "navier_stokes": OpenCVInpaintInfill,
    "exemplar": ExemplarInfill,
    LEARNED: LearnedInfill,
})


def make_infill(kind: str, x: torch.Tensor, preprocess: Preprocess, **kw) -> Infill:
    """The in-filler ``kind`` for input ``x`` (keyword options are passed to its constructor).

    Options: ``sigma`` (blur), ``colour`` (constant), ``generator`` (noise, random_colour), ``window``
    (local_mean), ``noise`` (random_colour), ``radius`` (telea, navier_stokes), ``path`` (learned; empty: the
    shipped in-painter).
    """
    cls = INFILLERS.get(kind)
    if cls is None:
        raise ParamError(f"unknown in-fill {kind!r}; valid: {', '.join(INFILLERS)}")
    return cls(kind, x, preprocess, **kw)
