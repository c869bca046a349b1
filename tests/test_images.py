"""mfnet.utils.images: formats, orientation, transparency, bad files, downscaling, duplicates."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from mfnet.utils.images import (
    MIN_SIDE,
    ImageError,
    ImageNotFoundError,
    ImageReadError,
    ImageTooSmallError,
    ImageView,
    ImageWarning,
    load_image,
    load_view,
    load_views,
)
from mfnet.errors import MfnetError

skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astro() -> np.ndarray:
    return skdata.astronaut()


def _save(arr_or_img, path, **kw):
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    img.save(path, **kw)
    return path


def _exif(orientation: int) -> Image.Exif:
    e = Image.Exif()
    e[0x0112] = orientation
    return e


@pytest.mark.parametrize("ext", ["png", "bmp", "tiff"])
def test_lossless_formats_roundtrip(astro, tmp_path, ext):
    p = _save(astro, tmp_path / f"a.{ext}")
    out = load_image(p)
    assert out.dtype == np.uint8 and out.shape == astro.shape
    np.testing.assert_array_equal(out, astro)


def test_jpeg(astro, tmp_path):
    out = load_image(_save(astro, tmp_path / "a.jpg", quality=95))
    assert out.shape == astro.shape and np.abs(out.astype(int) - astro).mean() < 3


def test_grayscale_becomes_rgb(astro, tmp_path):
    gray = np.asarray(Image.fromarray(astro).convert("L"))
    out = load_image(_save(gray, tmp_path / "g.png"))
    assert out.shape == astro.shape
    np.testing.assert_array_equal(out[..., 0], gray)
    np.testing.assert_array_equal(out[..., 1], out[..., 2])


def test_16bit_grayscale(tmp_path):
    a = (np.arange(128 * 96, dtype=np.uint32).reshape(96, 128) * 5 % 65536).astype(np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(a).save(p)
    out = load_image(p)
    assert out.shape == (96, 128, 3)
    np.testing.assert_allclose(out[..., 0].astype(float), np.rint(a / 257.0), atol=1)


def test_rgba_la_and_palette_composited_on_white(astro, tmp_path):
    rgba = np.dstack([astro, np.full(astro.shape[:2], 255, np.uint8)])
    rgba[:100, :, 3] = 0  # fully transparent top band
    rgba[100:200, :, 3] = 128
    out = load_image(_save(rgba, tmp_path / "a.png"))
    assert out.shape == astro.shape
    assert (out[:100] == 255).all()
    np.testing.assert_array_equal(out[200:], astro[200:])
    half = out[100:200].astype(int)
    expect = (astro[100:200].astype(int) * 128 + 255 * 127) / 255
    assert np.abs(half - expect).max() <= 2

    la = Image.fromarray(rgba).convert("LA")
    out = load_image(_save(la, tmp_path / "la.png"))
    assert out.shape == astro.shape and (out[:100] == 255).all()

    pal = Image.fromarray(astro).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pal.info["transparency"] = int(np.asarray(pal)[0, 0])
    out = load_image(_save(pal, tmp_path / "p.png", transparency=int(np.asarray(pal)[0, 0])))
    assert out.shape == astro.shape and (out[0, 0] == 255).all()


@pytest.mark.parametrize("orientation, stored", [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
                                                 (3, Image.Transpose.ROTATE_180), (2, Image.Transpose.FLIP_LEFT_RIGHT)])
def test_exif_orientation_is_applied(astro, tmp_path, orientation, stored):
    """The stored pixels are the upright image transposed; the EXIF tag says how to undo it."""
    src = Image.fromarray(astro[:, :400])  # non-square, so a missed rotation changes the shape
    p = tmp_path / f"o{orientation}.png"
    src.transpose(stored).save(p, exif=_exif(orientation))
    out = load_image(p)
    np.testing.assert_array_equal(out, astro[:, :400])


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageNotFoundError, match="nope.jpg"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageNotFoundError, match=str(tmp_path.name)) as e:
        load_image(tmp_path)
    assert "directory" in str(e.value)


def test_not_an_image(tmp_path, astro):
    txt = tmp_path / "notes.jpg"
    txt.write_text("these are my holiday notes, not a photo\n")
    with pytest.raises(ImageReadError, match=r"cannot read .*notes\.jpg as an image"):
        load_image(txt)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png"):
        load_image(empty)
    rnd = tmp_path / "noise.jpg"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageReadError, match="noise.jpg"):
        load_image(rnd)


def test_truncated_jpeg(tmp_path, astro):
    good = _save(astro, tmp_path / "good.jpg", quality=90)
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(ImageReadError, match="cut.jpg"):
        load_image(bad)


def test_tiny_image(tmp_path, astro):
    p = _save(astro[::16, ::16], tmp_path / "tiny.png")  # 32 x 32
    with pytest.raises(ImageTooSmallError) as e:
        load_image(p)
    msg = str(e.value)
    assert "tiny.png" in msg and "32x32" in msg and str(MIN_SIDE) in msg


def test_errors_are_mfnet_errors():
    for cls in (ImageError, ImageNotFoundError, ImageReadError, ImageTooSmallError):
        assert issubclass(cls, MfnetError)


def test_downscale_keeps_scale(tmp_path, astro):
    wide = np.concatenate([astro, astro[:, ::-1]], axis=1)  # 512 x 1024
    p = _save(wide, tmp_path / "wide.png")
    with pytest.warns(ImageWarning, match=r"wide.png is 1024x512 px: downscaled to 300x150"):
        v = load_view(p, max_side=300)
    assert v.image.shape == (150, 300, 3)
    assert v.original_size == (512, 1024)
    assert v.scale_to_original == pytest.approx(1024 / 300)
    pts = np.array([[0.0, 0.0], [149.0, 299.0], [10.5, 20.25]])
    np.testing.assert_allclose(v.from_original(v.to_original(pts)), pts, atol=1e-4)
    # pixel-centre convention: the first and last pixel centres map to the original's
    np.testing.assert_allclose(v.to_original([[-0.5, -0.5], [299.5, 149.5]]), [[-0.5, -0.5], [1023.5, 511.5]], atol=1e-3)
    # no warning, no scaling below the limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = load_view(p)
    assert v.scale_to_original == 1.0 and v.image.shape == wide.shape


def test_downscale_jpeg_draft_and_exif(tmp_path, astro):
    """Large JPEGs are decoded reduced; orientation still applies, sizes are the upright ones."""
    src = np.concatenate([astro, astro], axis=1)  # upright 512 x 1024
    p = tmp_path / "big.jpg"
    Image.fromarray(src).transpose(Image.Transpose.ROTATE_90).save(p, exif=_exif(6), quality=95)
    with pytest.warns(ImageWarning):
        v = load_view(p, max_side=256)
    assert v.original_size == (512, 1024) and v.image.shape == (128, 256, 3)
    ref = np.asarray(Image.fromarray(src).resize((256, 128), Image.Resampling.BOX), dtype=float)
    assert np.abs(v.image - ref).mean() < 6
    with pytest.warns(ImageWarning):
        assert load_image(p, max_side=256).shape == (128, 256, 3)


def test_huge_default_limit(tmp_path):
    a = np.zeros((80, 4200, 3), np.uint8)
    a[:, ::7] = 255
    with pytest.warns(ImageWarning, match="4200x80"):
        v = load_view(_save(a, tmp_path / "strip.png"))
    assert max(v.image.shape[:2]) == 4096 and v.original_size == (80, 4200)


def test_load_views_and_duplicates(tmp_path, astro):
    a = _save(astro, tmp_path / "a.png")
    b = _save(astro[:, ::-1], tmp_path / "b.png")
    c = _save(astro, tmp_path / "copy_of_a.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vs = load_views([a, b])
    assert [v.path for v in vs] == [a, b] and all(isinstance(v, ImageView) for v in vs)
    with pytest.warns(ImageWarning, match=r"copy_of_a.png has the same pixels as .*a.png"):
        vs = load_views([a, b, c])
    assert len(vs) == 3 and vs[0].digest == vs[2].digest != vs[1].digest
    with pytest.raises(ImageNotFoundError):
        load_views([])
    with pytest.raises(ImageNotFoundError, match="missing.png"):
        load_views([a, tmp_path / "missing.png"])


def test_view_from_array(astro):
    v = ImageView.from_array(astro, "mem")
    assert v.original_size == (512, 512) and v.scale_xy == (1.0, 1.0) and v.name == "mem"
    with pytest.raises(ValueError):
        ImageView.from_array(astro.astype(np.float32))
