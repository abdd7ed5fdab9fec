"""load_img, img_to_array, array_to_img, save_img: Keras' behaviour on Pillow, and Keras parity."""
import io
import os

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from cnnkit.utils import array_to_img, img_to_array, load_img, save_img  # noqa: E402

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(RGB).save(path)
    return path


def test_load_img_modes_and_sizes(png):
    img = load_img(png)
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (8, 6)
    np.testing.assert_array_equal(np.asarray(img), RGB)
    assert load_img(str(png), color_mode="grayscale").mode == "L"
    assert load_img(png, color_mode="rgba").mode == "RGBA"
    assert load_img(io.BytesIO(png.read_bytes())).size == (8, 6)
    resized = load_img(png, target_size=(3, 5), interpolation="bilinear")
    assert resized.size == (5, 3)
    np.testing.assert_array_equal(
        np.asarray(resized), np.asarray(Image.fromarray(RGB).resize((5, 3), Image.BILINEAR)))
    # keep_aspect_ratio crops the centred 6x6 window before resizing to 3x3.
    square = load_img(png, target_size=(3, 3), keep_aspect_ratio=True)
    expected = Image.fromarray(RGB).resize((3, 3), Image.NEAREST, box=(1, 0, 7, 6))
    np.testing.assert_array_equal(np.asarray(square), np.asarray(expected))


def test_load_img_16bit_grayscale_stays_as_keras(tmp_path):
    values = RNG.integers(0, 65536, (4, 4)).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "g.png")
    img = load_img(tmp_path / "g.png", color_mode="grayscale")
    assert img.mode.startswith("I")
    np.testing.assert_array_equal(img_to_array(img)[:, :, 0], values)
    rgb = np.asarray(load_img(tmp_path / "g.png"))
    np.testing.assert_array_equal(rgb[:, :, 1], values >> 8)


def test_load_img_errors(tmp_path, png):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        load_img(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="color_mode"):
        load_img(png, color_mode="cmyk")
    with pytest.raises(ValueError, match="interpolation"):
        load_img(png, target_size=(2, 2), interpolation="lanczos3")
    with pytest.raises(ValueError, match="target_size"):
        load_img(png, target_size=(0, 2))
    with pytest.raises(TypeError):
        load_img(12)
    with pytest.raises(ValueError, match="missing.png"):
        load_img(tmp_path / "missing.png")


def test_img_to_array_and_back():
    img = Image.fromarray(RGB)
    x = img_to_array(img)
    assert x.dtype == np.float32 and x.shape == (6, 8, 3)
    assert img_to_array(img, data_format="channels_first").shape == (3, 6, 8)
    assert img_to_array(img.convert("L")).shape == (6, 8, 1)
    assert img_to_array(img.convert("L"), data_format="channels_first").shape == (1, 6, 8)
    np.testing.assert_array_equal(np.asarray(array_to_img(x, scale=False)), RGB)
    scaled = np.asarray(array_to_img(x / 1000.0))
    assert scaled.min() == 0 and scaled.max() == 255
    assert array_to_img(np.zeros((2, 2, 4))).mode == "RGBA"
    assert array_to_img(np.zeros((2, 2, 1))).mode == "L"
    assert array_to_img(np.full((2, 2, 1), 300.0), scale=False).mode == "I"
    assert array_to_img(np.zeros((3, 2, 2)), data_format="channels_first").size == (2, 2)
    with pytest.raises(ValueError, match="rank 3"):
        array_to_img(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="channel"):
        array_to_img(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        array_to_img(np.full((2, 2, 3), np.nan))
    with pytest.raises(ValueError, match="data_format"):
        img_to_array(img, data_format="NHWC")


def test_save_img_round_trip_and_atomic(tmp_path):
    path = tmp_path / "out.png"
    save_img(path, RGB.astype(np.float32), scale=False)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), RGB)
    with pytest.warns(UserWarning, match="RGBA"):
        save_img(str(tmp_path / "out.jpg"), np.zeros((4, 4, 4)))
    assert Image.open(tmp_path / "out.jpg").format == "JPEG"
    buffer = io.BytesIO()
    save_img(buffer, RGB, file_format="bmp")
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "BMP"
    with pytest.raises(ValueError, match="file_format"):
        save_img(io.BytesIO(), RGB)
    before = path.read_bytes()
    with pytest.raises((ValueError, KeyError, OSError)):
        save_img(tmp_path / "out.png", RGB, file_format="no-such-format")
    with pytest.raises(ValueError):
        save_img(path, np.zeros((2, 2, 2)))
    assert path.read_bytes() == before  # failed saves leave the old file intact
    assert sorted(os.listdir(tmp_path)) == ["out.jpg", "out.png"]  # and no temporary files


def test_keras_parity(png):
    os.environ.setdefault("KERAS_BACKEND", "numpy")
    keras = pytest.importorskip("keras")
    for kwargs in (dict(), dict(color_mode="grayscale"), dict(color_mode="rgba"),
                   dict(target_size=(4, 5), interpolation="bicubic"),
                   dict(target_size=(5, 3), keep_aspect_ratio=True, interpolation="box")):
        ours, theirs = load_img(png, **kwargs), keras.utils.load_img(png, **kwargs)
        assert ours.mode == theirs.mode and ours.size == theirs.size
        np.testing.assert_array_equal(img_to_array(ours), keras.utils.img_to_array(theirs))
    x = RNG.normal(size=(3, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(array_to_img(x)),
                                  np.asarray(keras.utils.array_to_img(x)))


def test_cnnkit_imports_without_pillow_and_names_the_extra(tmp_path):
    """Pillow is optional: `import cnnkit` works without it, and the image helpers say what
    to install."""
    import subprocess
    import sys
    code = (
        "import sys; sys.modules['PIL'] = None\n"
        "import cnnkit, cnnkit.utils\n"
        "for call in (lambda: cnnkit.utils.load_img('x.png'),\n"
        "             lambda: cnnkit.utils.image_dataset_from_directory('.')):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as error:\n"
        "        assert 'cnnkit[images]' in str(error), error\n"
        "    else:\n"
        "        raise AssertionError('no ImportError')\n"
        "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr
