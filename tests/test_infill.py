"""In-fillers: the global ones still work; local mean, random colour + noise, OpenCV in-painting and a learned
TorchScript in-painter fill only the removed pixels, as specified; bad in-painter files are named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explorer.core.errors import FileError, ParamError
from explorer.models.preprocess import Preprocess
from explorer.perturb.infill import ALL_INFILLS, INFILLERS, INFILLS, Infill, gaussian_blur, load_inpainter, make_infill

PRE = Preprocess((64, 64))


@pytest.fixture(scope="module")
def photo(chelsea):
    """chelsea as a (1, 3, 64, 64) normalised input, and its uint8 RGB."""
    from PIL import Image

    rgb = np.asarray(Image.fromarray(chelsea).resize((64, 64), Image.BILINEAR))
    return PRE.normalise(rgb), rgb


def hole_masks(n=3, hw=(64, 64)):
    m = torch.ones(n, 1, *hw)
    m[0, :, 20:40, 20:40] = 0
    m[1, :, :, 32:] = 0
    m[2, :, 5:15, 40:60] = 0
    return m


def test_names_kept_and_extended():
    assert {"zero", "mean", "blur", "noise", "constant"} <= set(INFILLS)
    assert {"local_mean", "random_colour", "telea", "navier_stokes", "exemplar"} <= set(INFILLS)
    assert set(ALL_INFILLS) == set(INFILLERS) and "learned" in ALL_INFILLS
    with pytest.raises(ParamError, match="valid"):
        make_infill("nope", torch.zeros(1, 3, 8, 8), PRE)


def _has_contrib() -> bool:
    import cv2

    return hasattr(cv2, "xphoto")


# exemplar needs OpenCV's contrib build (opencv-contrib-python-headless, the project's dependency)
CONTRIB = pytest.mark.skipif(not _has_contrib(), reason="cv2.xphoto missing: opencv-contrib-python-headless")


@pytest.mark.parametrize("kind", [pytest.param(k, marks=CONTRIB) if k == "exemplar" else k for k in INFILLS])
def test_every_infill_keeps_kept_pixels(kind, photo):
    x, _ = photo
    masks = hole_masks()
    out = make_infill(kind, x, PRE, generator=torch.Generator().manual_seed(0)).apply(x, masks)
    assert out.shape == (3, 3, 64, 64) and torch.isfinite(out).all()
    kept = masks.expand_as(out) > 0.5
    torch.testing.assert_close(out[kept], x.expand_as(out)[kept])
    assert not torch.allclose(out[~kept], x.expand_as(out)[~kept])


def test_global_infill_unchanged(photo):
    x, _ = photo
    inf = Infill("blur", x, PRE, sigma=10)
    torch.testing.assert_close(inf.base, gaussian_blur(x, 10))
    m = torch.rand(4, 1, 64, 64)
    torch.testing.assert_close(inf.apply(x, m), inf.base + m * (x - inf.base))


def test_local_mean_is_the_mean_of_kept_pixels_in_the_window(photo):
    x, _ = photo
    masks = hole_masks()
    fill = make_infill("local_mean", x, PRE).baseline(x, masks)
    for b, (i, j) in [(0, (21, 22)), (1, (10, 33)), (2, (14, 45)), (0, (39, 39))]:
        win = (slice(max(0, i - 7), i + 8), slice(max(0, j - 7), j + 8))
        m = masks[b, 0][win]
        expected = (x[0][:, win[0], win[1]] * m).sum((1, 2)) / m.sum()
        torch.testing.assert_close(fill[b, :, i, j], expected, atol=1e-5, rtol=1e-5)
    # deep inside a hole bigger than the window: the mean of all kept pixels of that mask
    m = torch.ones(1, 1, 64, 64)
    m[..., 4:60, 4:60] = 0
    fill = make_infill("local_mean", x, PRE).baseline(x, m)
    expected = (x[0] * m[0]).sum((1, 2)) / m.sum()
    torch.testing.assert_close(fill[0, :, 32, 32], expected, atol=1e-5, rtol=1e-5)


def test_random_colour_plus_noise(photo):
    x, _ = photo
    g = torch.Generator().manual_seed(3)
    fill = make_infill("random_colour", x, PRE, generator=g).baseline(x, torch.zeros(64, 1, 64, 64))
    rgb = PRE.denormalise(fill)
    colours = rgb.mean((2, 3))
    assert colours.std(0).min() > 0.15  # a different colour per mask, spread over [0, 1]
    mid = ((colours > 0.3) & (colours < 0.7)).all(1)  # away from the clamp at 0 and 1
    noise_sd = (rgb[mid] - colours[mid][..., None, None]).std()
    assert 0.17 < noise_sd < 0.23


@pytest.mark.parametrize("kind", ["telea", "navier_stokes"])
def test_opencv_inpainting_beats_the_mean_colour(kind, photo):
    x, _ = photo
    m = torch.ones(1, 1, 64, 64)
    m[..., 28:36, 28:36] = 0  # a small hole in the photo
    hole = m[0, 0] < 0.5
    err_inpaint = (make_infill(kind, x, PRE).apply(x, m)[0][:, hole] - x[0][:, hole]).abs().mean()
    err_mean = (make_infill("mean", x, PRE).apply(x, m)[0][:, hole] - x[0][:, hole]).abs().mean()
    assert err_inpaint < 0.6 * err_mean
    # a smooth ramp is in-painted almost exactly
    ramp = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    out = make_infill(kind, ramp, PRE).apply(ramp, m)
    assert (out[0][:, hole] - ramp[0][:, hole]).abs().max() < 0.15


@CONTRIB
def test_exemplar_inpainting_copies_texture_that_telea_smears():
    """Vertical stripes 4 px wide with a 12x12 hole: the shift-map fills it with the stripes, Telea with grey."""
    pre = Preprocess((48, 48))
    cols = ((np.arange(48) // 4) % 2 * 255).astype(np.uint8)
    rgb = np.repeat(np.broadcast_to(cols, (48, 48))[..., None], 3, axis=2).copy()
    x = pre.normalise(rgb)
    m = torch.ones(1, 1, 48, 48)
    m[..., 18:30, 18:30] = 0
    hole = m[0, 0] < 0.5
    err = {k: (make_infill(k, x, pre).apply(x, m)[0][:, hole] - x[0][:, hole]).abs().mean() for k in ("exemplar",
                                                                                                      "telea")}
    assert err["exemplar"] < 0.25 * err["telea"], err


def test_exemplar_without_contrib_is_refused_naming_the_package(photo, monkeypatch):
    import cv2

    from explorer.core.errors import UnsupportedError

    x, _ = photo
    monkeypatch.delattr(cv2, "xphoto", raising=False)
    with pytest.raises(UnsupportedError, match="opencv-contrib-python-headless"):
        make_infill("exemplar", x, PRE)


class _Grey(nn.Module):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image * (1 - mask) + 0.25 * mask


class _OneChannel(nn.Module):
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image[:, :1]


def test_learned_inpainter_from_torchscript(tmp_path, photo):
    x, _ = photo
    path = tmp_path / "grey.pt"
    torch.jit.script(_Grey()).save(str(path))
    masks = hole_masks()
    out = make_infill("learned", x, PRE, path=str(path)).apply(x, masks)
    rgb = PRE.denormalise(out)
    hole = masks.expand_as(out) < 0.5
    torch.testing.assert_close(rgb[hole], torch.full_like(rgb[hole], 0.25), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[~hole], x.expand_as(out)[~hole])


def test_bad_inpainter_files_are_named(tmp_path, photo):
    x, _ = photo
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a TorchScript archive")
    with pytest.raises(FileError, match="junk.pt.*not a TorchScript"):
        make_infill("learned", x, PRE, path=str(junk))
    wrong = tmp_path / "wrong_shape.pt"
    torch.jit.script(_OneChannel()).save(str(wrong))
    with pytest.raises(FileError, match=r"wrong_shape.pt.*returned \(2, 1, 64, 64\)"):
        make_infill("learned", x, PRE, path=str(wrong))
    with pytest.raises(FileError, match="missing.pt"):
        load_inpainter(tmp_path / "missing.pt", "cpu", (64, 64))
    # without a file, 'learned' is the shipped in-painter (tests/test_inpainter.py), no longer a refusal


def test_rise_offers_the_new_infills(tiny_model):
    from explorer.methods import explain

    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for kind in ("local_mean", "telea"):
        exp = explain("rise", tiny_model, rgb, params={"n": 20, "infill": kind}, target=1, seed=0)
        assert np.isfinite(exp.raw["salient"]).all() and exp.raw["salient"].std() > 0
