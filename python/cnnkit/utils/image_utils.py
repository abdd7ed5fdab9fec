"""keras.utils' image helpers on Pillow: load_img, img_to_array, array_to_img, save_img.

As Keras: load_img returns a PIL image (resized with Pillow's own filters), img_to_array gives
float32 HWC (or CHW), array_to_img rescales to 0..255 unless scale=False. Unlike Keras,
save_img writes to a temporary file beside the target and renames it, so a failed or
interrupted save never leaves a half-written image behind.
"""
import io
import os
import pathlib
import tempfile
import warnings

import numpy as np

from . import _decode

__all__ = ["load_img", "img_to_array", "array_to_img", "save_img"]


def _data_format(data_format):
    if data_format is None:
        return "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError('data_format must be "channels_last" or "channels_first", '
                         f"got {data_format!r}")
    return data_format


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """A 3D array (HWC, or CHW with data_format="channels_first") -> PIL image: 'RGBA', 'RGB'
    or 'L' (or 32-bit 'I' for one channel above 255). scale=True maps min..max to 0..255."""
    Image = _decode.pil()
    data_format = _data_format(data_format)
    x = np.array(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError("Expected image array to have rank 3 (single image). "
                         f"Got array with shape: {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("array_to_img: the image holds NaN or infinite values")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        x_max = np.max(x)
        if x_max != 0:
            x /= x_max
        x *= 255
    channels = x.shape[2]
    if channels in (3, 4):
        return Image.fromarray(x.astype("uint8"), "RGBA" if channels == 4 else "RGB")
    if channels == 1:
        if np.max(x) > 255:
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError(f"Unsupported channel number: {channels}")


def img_to_array(img, data_format=None, dtype=None):
    """PIL image -> float32 (or dtype) array (height, width, channels), or (channels, height,
    width) with data_format="channels_first"; one-channel images get a channel axis."""
    data_format = _data_format(data_format)
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 3:
        return x.transpose(2, 0, 1) if data_format == "channels_first" else x
    if x.ndim == 2:
        return x[None] if data_format == "channels_first" else x[:, :, None]
    raise ValueError(f"Unsupported image shape: {x.shape}")


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Saves an image array to `path` (or a file object, with file_format given); the format
    comes from the extension otherwise. An RGBA image saved as JPEG is converted to RGB with a
    warning, as Keras does."""
    is_path = isinstance(path, (str, pathlib.Path))
    if file_format is None and is_path:
        file_format = pathlib.Path(path).suffix[1:].lower()
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    if not file_format and not is_path:
        raise ValueError("save_img: give file_format when saving to a file object")
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format == "jpeg":
        warnings.warn("The JPEG format does not support RGBA images, converting to RGB.")
        img = img.convert("RGB")
    if not is_path:
        img.save(path, format=file_format, **kwargs)
        return
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path),
                                         dir=directory)
    try:
        with os.fdopen(handle, "wb") as file:
            img.save(file, format=file_format or None, **kwargs)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """Loads an image file (a path or a BytesIO) as a PIL image in color_mode 'rgb', 'rgba' or
    'grayscale' (16/32-bit grayscale stays as it is, as Keras), resized to
    target_size=(height, width) with Pillow's `interpolation` filter; keep_aspect_ratio crops
    the largest centred window of the target's aspect ratio first."""
    Image = _decode.pil()
    if color_mode not in ("grayscale", "rgb", "rgba"):
        raise ValueError('color_mode must be "grayscale", "rgb", or "rgba"')
    if isinstance(path, io.BytesIO):
        try:
            img = Image.open(path)
            img.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise ValueError(f"Cannot decode the image in {path!r}: {error}") from error
    elif isinstance(path, (pathlib.Path, bytes, str)):
        img = _decode.open_image(os.fsdecode(path))
    else:
        raise TypeError(f"path should be path-like or io.BytesIO, not {type(path)}")
    if color_mode == "grayscale":
        if img.mode not in ("L", "I;16", "I"):
            img = _decode.convert_color(img, "grayscale")
    elif img.mode != color_mode.upper():
        img = _decode.convert_color(img, color_mode)
    if target_size is None:
        return img
    if (not isinstance(target_size, (tuple, list)) or len(target_size) != 2
            or not all(isinstance(s, (int, np.integer)) and s > 0 for s in target_size)):
        raise ValueError(f"target_size must be (height, width) of positive integers, got "
                         f"{target_size!r}")
    width_height = (int(target_size[1]), int(target_size[0]))
    if img.size == width_height:
        return img
    if interpolation not in _decode.LOAD_IMG_TO_PIL:
        raise ValueError(f"Invalid interpolation method {interpolation} specified. Supported "
                         f"methods are {', '.join(_decode.LOAD_IMG_TO_PIL)}")
    resample = _decode.pil_filter(interpolation)
    if not keep_aspect_ratio:
        return img.resize(width_height, resample)
    width, height = img.size
    target_width, target_height = width_height
    crop_height = min(height, (width * target_height) // target_width)
    crop_width = min(width, (height * target_width) // target_height)
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    return img.resize(width_height, resample, box=(left, top, left + crop_width, top + crop_height))
