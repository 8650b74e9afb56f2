"""Image reading over a corpus of good and bad files generated here."""

import numpy as np
import pytest
from PIL import Image

from explorer.core.errors import ImageReadError
from explorer.io.images import read_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (40, 60, 3), dtype=np.uint8)


def _save(path, im, **kw):
    im.save(path, **kw)
    return path


@pytest.mark.parametrize("fmt, ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp"),
                                      ("TIFF", "tif"), ("GIF", "gif")])
def test_formats(tmp_path, fmt, ext):
    p = _save(tmp_path / f"a.{ext}", Image.fromarray(RGB), format=fmt)
    im = read_image(p)
    assert im.rgb.shape == (40, 60, 3) and im.rgb.dtype == np.uint8
    if fmt in ("PNG", "BMP", "TIFF"):
        np.testing.assert_array_equal(im.rgb, RGB)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "F", "1", "I"])
def test_modes_become_rgb(tmp_path, mode):
    base = Image.fromarray(RGB)
    if mode == "I;16":
        im = Image.fromarray((RGB[:, :, 0].astype(np.uint16) * 257))
        assert im.mode.startswith("I;16")
        ext = "png"
    elif mode == "F":
        im = Image.fromarray(RGB[:, :, 0].astype(np.float32) / 7.0)
        ext = "tif"
    elif mode == "I":
        im = Image.fromarray(RGB[:, :, 0].astype(np.int32) * 1000)
        ext = "tif"
    else:
        im = base.convert(mode)
        ext = "tif" if mode == "CMYK" else "png"
    p = _save(tmp_path / f"m.{ext}", im)
    out = read_image(p).rgb
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    if mode == "I;16":
        np.testing.assert_array_equal(out[:, :, 0], RGB[:, :, 0])


def test_alpha_composited_over_white(tmp_path):
    a = np.zeros((10, 10, 4), dtype=np.uint8)
    a[..., 0] = 200
    a[:5, :, 3] = 255
    out = read_image(_save(tmp_path / "a.png", Image.fromarray(a, "RGBA"))).rgb
    assert tuple(out[0, 0]) == (200, 0, 0) and tuple(out[9, 9]) == (255, 255, 255)


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    out = read_image(p).rgb
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50


def test_exif_orientation_applied(tmp_path):
    im = Image.fromarray(RGB)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif)
    assert read_image(p).rgb.shape == (60, 40, 3)


def _truncated(tmp_path):
    p = tmp_path / "cut.jpg"
    Image.fromarray(RGB).save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _write(name, data):
    def make(t):
        (t / name).write_bytes(data)
        return t / name
    return make


@pytest.mark.parametrize("make, reason", [
    (lambda t: t / "missing.png", "no such file"),
    (lambda t: t, "folder"),
    (_write("empty.png", b""), "empty"),
    (_write("noise.png", bytes(range(256)) * 4), "not an image"),
    (_write("text.jpg", b"hello"), "not an image"),
    (_truncated, "corrupt or truncated"),
])
def test_bad_files_give_typed_errors_naming_the_file(tmp_path, make, reason):
    p = make(tmp_path)
    with pytest.raises(ImageReadError) as err:
        read_image(p)
    assert str(p) in str(err.value) and reason in str(err.value)


def test_decompression_bomb_refused(tmp_path):
    p = tmp_path / "bomb.png"
    Image.new("1", (10_001, 10_001)).save(p)  # 100 megapixels, a few kilobytes on disk
    with pytest.raises(ImageReadError, match="megapixels"):
        read_image(p)
