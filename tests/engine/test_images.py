"""Image loading in every mode torch-imfit users meet, weights, previews, folders; files made in tmp_path."""

import logging
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imfit_engine.errors import ImfitError
from imfit_engine.io import images
from support import DATA


@pytest.fixture(scope="module")
def astronaut():
    """A 64x48 crop of the test photo as uint8 RGB."""
    with Image.open(DATA / "astronaut.png") as img:
        return np.asarray(img.convert("RGB").resize((128, 128)))[40:88, 32:96].copy()


def png_bytes(width, height, bit_depth, colour_type, rows: bytes) -> bytes:
    """A PNG written from its specification (filter 0 on every row), independent of pillow's writer."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_rgb_png_loads_as_float_values_of_the_stored_bytes(tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    loaded = images.load_image(tmp_path / "a.png")
    assert loaded.rgb.dtype == np.float32 and loaded.rgb.shape == (48, 64, 3)
    assert np.array_equal(loaded.rgb, astronaut.astype(np.float32) / 255)
    assert loaded.alpha is None and (loaded.width, loaded.height) == (64, 48)
    assert loaded.path == tmp_path / "a.png"


def test_16_bit_greyscale_png_keeps_its_precision(tmp_path, astronaut):
    grey16 = (astronaut.astype(np.uint32) @ np.array([77, 150, 29], dtype=np.uint32)).astype(np.uint16)
    grey16[0, :4] = [0, 1, 65534, 65535]  # values 8 bits cannot tell apart
    rows = b"".join(b"\x00" + grey16[j].astype(">u2").tobytes() for j in range(48))
    path = tmp_path / "grey16.png"
    path.write_bytes(png_bytes(64, 48, 16, 0, rows))
    loaded = images.load_image(path)
    assert np.allclose(loaded.rgb, (grey16 / 65535.0)[..., None], atol=1e-7, rtol=0)
    assert loaded.rgb[0, 1, 0] > 0 and loaded.rgb[0, 2, 0] < 1  # 1/65535 and 65534/65535 survive
    assert np.array_equal(loaded.rgb[..., 0], loaded.rgb[..., 2]) and loaded.alpha is None


def test_32_bit_integer_greyscale_is_read_on_the_16_bit_scale(tmp_path):
    values = np.array([[0, 32768], [65535, 1000]], dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "i.tif")
    assert np.allclose(images.load_image(tmp_path / "i.tif").rgb[..., 1], values / 65535.0, atol=1e-7)


def test_greyscale_and_palette_images_become_rgb(tmp_path, astronaut):
    grey = Image.fromarray(astronaut).convert("L")
    grey.save(tmp_path / "grey.png")
    loaded = images.load_image(tmp_path / "grey.png")
    assert np.array_equal(loaded.rgb, np.repeat(np.asarray(grey)[..., None], 3, axis=2) / np.float32(255))
    palette = Image.fromarray(astronaut).quantize(16)
    palette.save(tmp_path / "pal.png")
    loaded = images.load_image(tmp_path / "pal.png")
    assert np.array_equal(loaded.rgb * 255, np.asarray(palette.convert("RGB"), dtype=np.float32))
    assert loaded.alpha is None and len(np.unique(loaded.rgb.reshape(-1, 3), axis=0)) <= 16


def test_palette_transparency_becomes_alpha(tmp_path, astronaut, caplog):
    palette = Image.fromarray(astronaut).quantize(16)
    index = np.asarray(palette)
    palette.save(tmp_path / "pal-t.png", transparency=int(index[0, 0]))
    with caplog.at_level(logging.INFO, logger="imfit"):
        loaded = images.load_image(tmp_path / "pal-t.png")
    assert np.array_equal(loaded.alpha, (index != index[0, 0]).astype(np.float32))
    assert "alpha is the default fit weight" in caplog.text


def test_rgba_alpha_is_kept_and_opaque_alpha_is_dropped(tmp_path, astronaut, caplog):
    alpha = np.tile(np.linspace(0, 255, 64).round().astype(np.uint8), (48, 1))
    Image.fromarray(np.dstack([astronaut, alpha])).save(tmp_path / "rgba.png")
    with caplog.at_level(logging.INFO, logger="imfit"):
        loaded = images.load_image(tmp_path / "rgba.png")
    assert np.array_equal(loaded.rgb, astronaut / np.float32(255))  # colour under alpha is not premultiplied
    assert np.array_equal(loaded.alpha, alpha / np.float32(255))
    assert "rgba.png has transparency" in caplog.text
    Image.fromarray(np.dstack([astronaut, np.full_like(alpha, 255)])).save(tmp_path / "opaque.png")
    assert images.load_image(tmp_path / "opaque.png").alpha is None
    Image.fromarray(np.dstack([astronaut, np.zeros_like(alpha)])).save(tmp_path / "clear.png")
    loaded = images.load_image(tmp_path / "clear.png")  # the caller decides what an empty weight means
    assert np.array_equal(loaded.alpha, np.zeros((48, 64), np.float32))
    assert np.array_equal(loaded.rgb, astronaut / np.float32(255))
    grey_alpha = Image.fromarray(np.dstack([astronaut[..., 0], alpha])).convert("LA")
    grey_alpha.save(tmp_path / "la.png")
    loaded = images.load_image(tmp_path / "la.png")
    assert np.array_equal(loaded.alpha, alpha / np.float32(255))
    assert np.array_equal(loaded.rgb[..., 1], astronaut[..., 0] / np.float32(255))


def test_cmyk_jpeg_and_float_tiff(tmp_path, astronaut, caplog):
    Image.fromarray(astronaut).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    loaded = images.load_image(tmp_path / "cmyk.jpg")
    assert loaded.rgb.shape == (48, 64, 3)
    assert np.abs(loaded.rgb - astronaut / 255).mean() < 0.03  # JPEG loss only
    ramp = np.linspace(-0.5, 1.5, 64, dtype=np.float32)[None, :].repeat(4, axis=0)
    Image.fromarray(ramp).save(tmp_path / "f.tif")
    with caplog.at_level(logging.WARNING, logger="imfit"):
        loaded = images.load_image(tmp_path / "f.tif")
    assert np.array_equal(loaded.rgb[..., 0], np.clip(ramp, 0, 1))
    assert "clipped to [0, 1]" in caplog.text


def test_unreadable_images_raise_one_clear_error(tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "ok.png")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes((tmp_path / "ok.png").read_bytes()[:300])  # cut off mid-image
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not a picture")
    (tmp_path / "zero.png").write_bytes(png_bytes(0, 0, 8, 2, b""))
    (tmp_path / "folder.png").mkdir()
    for name, reason in [
        ("corrupt.png", "truncated"),
        ("empty.png", "not an image pillow can decode"),
        ("text.jpg", "not an image"),
        ("zero.png", "not an image"),
        ("missing.png", "no such file"),
        ("folder.png", "it is a folder"),
    ]:
        with pytest.raises(
            ImfitError,
            match=rf"^cannot read image .*{name}: .*{reason}.*"
            r"Use a PNG, JPEG, TIFF, BMP or WebP file",
        ):
            images.load_image(tmp_path / name)


def test_weight_is_luminance_resized_with_a_warning(tmp_path, astronaut, caplog):
    Image.fromarray(astronaut).convert("L").save(tmp_path / "w.png")
    same = images.load_weight(tmp_path / "w.png", 64, 48)
    luma = astronaut.astype(np.float64) @ [0.299, 0.587, 0.114] / 255
    assert same.shape == (48, 64) and same.dtype == np.float32
    assert np.abs(same - luma).max() <= 0.5 / 255 + 1e-6  # pillow's L rounds to 8 bits
    with caplog.at_level(logging.WARNING, logger="imfit"):
        small = images.load_weight(tmp_path / "w.png", 32, 24)
    assert "w.png is 64x48 but the image is 32x24; resized" in caplog.text
    expected = np.asarray(Image.fromarray(same).resize((32, 24), Image.Resampling.BILINEAR))
    assert small.shape == (24, 32) and np.allclose(small, expected, atol=1e-6)


def test_weight_alpha_multiplies_and_black_weights_are_refused(tmp_path):
    white = np.full((8, 8, 4), 255, dtype=np.uint8)
    white[:, :4, 3] = 0
    Image.fromarray(white).save(tmp_path / "half.png")
    assert np.array_equal(
        images.load_weight(tmp_path / "half.png", 8, 8),
        np.repeat([[0.0] * 4 + [1.0] * 4], 8, axis=0).astype(np.float32),
    )
    Image.new("RGB", (8, 8)).save(tmp_path / "black.png")
    with pytest.raises(
        ImfitError,
        match=r"weight image .*black\.png is all black: nothing would be fitted\. "
        r"Use white where the fit matters",
    ):
        images.load_weight(tmp_path / "black.png", 16, 16)


def test_save_png_writes_8_bit_rgb_atomically(tmp_path):
    rgb = np.linspace(-0.2, 1.2, 5 * 4 * 3).reshape(4, 5, 3)
    rgb[0, 0, 0] = np.nan
    path = tmp_path / "out" / "preview.png"
    images.save_png(path, rgb)
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.size == (5, 4)
        stored = np.asarray(img)
    expected = np.round(np.clip(np.nan_to_num(rgb), 0, 1) * 255)
    assert np.array_equal(stored, expected)
    assert [p.name for p in path.parent.iterdir()] == ["preview.png"]
    with pytest.raises(ValueError):
        images.save_png(path, rgb[..., 0])


def test_list_images_and_find_weight_follow_torch_imfit_naming(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("img0002.png", "img0001.JPG", "img0001-wt.png", "notes.txt", ".hidden.png", "img0003.webp"):
        (folder / name).write_bytes(b"x")
    (folder / "sub.png").mkdir()
    assert [p.name for p in images.list_images(folder)] == ["img0001.JPG", "img0002.png", "img0003.webp"]
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "img0001-wt.png").write_bytes(b"x")
    (weights / "img0001.png").write_bytes(b"x")
    (weights / "img0002.png").write_bytes(b"x")
    assert images.find_weight(folder / "img0001.JPG", None) is None
    assert images.find_weight(folder / "img0001.JPG", weights) == weights / "img0001-wt.png"
    assert images.find_weight(folder / "img0002.png", weights) == weights / "img0002.png"
    assert images.find_weight(folder / "img0003.webp", weights) is None
    assert images.find_weight(folder / "img0003.webp", weights / "img0002.png") == weights / "img0002.png"
    with pytest.raises(ImfitError, match=r"weight path .*nowhere does not exist"):
        images.find_weight(folder / "img0001.JPG", tmp_path / "nowhere")
    with pytest.raises(ImfitError, match=r"image folder .*missing does not exist"):
        images.list_images(tmp_path / "missing")
    with pytest.raises(ImfitError, match=r"image folder .*weights holds no images"):
        (weights / "img0001.png").unlink()
        (weights / "img0002.png").unlink()
        images.list_images(weights)


def test_file_modules_do_not_need_torch():
    """Blender's Python reads fits and images without torch."""
    code = (
        "import sys; import imfit_engine.io.formats, imfit_engine.io.images, imfit_engine.io.atomic; "
        "sys.exit('torch' in sys.modules)"
    )
    root = Path(__file__).parent.parent
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
