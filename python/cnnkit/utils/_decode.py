"""One image file -> one float32 HWC array, as Keras' image_dataset_from_directory decodes it.

Pillow does the work; it releases the GIL while it decodes and resamples, so several of these
calls run at once in worker threads (see dataset.py). Pillow is imported lazily: `import cnnkit`
works without it, and the first image call names the extra to install.

Where Keras (through tf.image) and Pillow differ:
- "nearest", "bilinear" and "bicubic" are TF's own arithmetic (half-pixel centres, no
  antialiasing, float32, TF's tabulated Keys cubic renormalised at the borders), in NumPy, so
  they give Keras' pixels when shrinking and enlarging alike.
- "area" and "lanczos3" are Pillow's filters (BOX, LANCZOS) on float32 planes (no rounding to
  8 bits). When enlarging, "lanczos3" gives TF's values; "area" differs. When shrinking,
  Pillow's filters widen with the scale (antialiasing, as tf.image.resize(antialias=True))
  while Keras samples without it.
- color_mode="grayscale" of a colour file uses Pillow's ITU-R 601-2 luma; TF's decoders round
  their own weights, so a grey level may differ by 1.
- 16-bit grayscale PNGs become 8-bit by dropping the low byte, as tf.image.decode_image does.
"""
import numpy as np

# The interpolations image_dataset_from_directory accepts (Keras' list, in Keras' order).
DATASET_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5",
                          "gaussian", "mitchellcubic")
# Keras' names -> Pillow filter names; the names Pillow cannot do are left out.
_DATASET_TO_PIL = {"bilinear": "BILINEAR", "nearest": "NEAREST", "bicubic": "BICUBIC",
                   "area": "BOX", "lanczos3": "LANCZOS"}
# load_img's names (keras.utils.load_img passes these straight to Pillow).
LOAD_IMG_TO_PIL = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC",
                   "hamming": "HAMMING", "box": "BOX", "lanczos": "LANCZOS"}

NUM_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


def pil():
    """PIL.Image, or an ImportError that says how to get it."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError('cnnkit\'s image helpers need Pillow: pip install "cnnkit[images]"'
                          ) from error
    return Image


def pil_filter(name, table=_DATASET_TO_PIL):
    """The Pillow resampling filter for an interpolation name of `table`."""
    if name not in table:
        raise NotImplementedError(
            f"interpolation={name!r} has no Pillow filter in cnnkit; use one of {sorted(table)}")
    return getattr(pil().Resampling, table[name])


def check_interpolation(interpolation):
    """Keras' name check (case-insensitive), then whether Pillow can do it."""
    if not isinstance(interpolation, str) or interpolation.lower() not in DATASET_INTERPOLATIONS:
        raise ValueError(f"Argument `interpolation` should be one of {DATASET_INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation!r}")
    interpolation = interpolation.lower()
    pil_filter(interpolation)
    return interpolation


def open_image(path):
    """Opens and fully decodes `path`; any failure is a ValueError naming the file."""
    Image = pil()
    try:
        with open(path, "rb") as file:
            img = Image.open(file)
            img.load()  # decode now, while the file is open, so truncation shows here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"Cannot decode image file {path!r}: {error}") from error
    return img


def _to_8bit_mode(img):
    """16/32-bit integer grayscale -> 8-bit 'L' (high byte, as TF decodes a 16-bit PNG)."""
    if img.mode.startswith("I;16") or img.mode == "I":
        values = np.asarray(img).astype(np.int64)
        return pil().fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), "L")
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float32)
        return pil().fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    return img


def convert_color(img, color_mode):
    """Any Pillow mode (palette with or without transparency, 1-bit, L/LA, CMYK, 16-bit...)
    -> 'L', 'RGB' or 'RGBA' for color_mode 'grayscale', 'rgb' or 'rgba'."""
    target = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}[color_mode]
    img = _to_8bit_mode(img)
    if img.mode == "P" and "transparency" in img.info and target != "RGBA":
        img = img.convert("RGBA")  # Pillow warns when a transparent palette goes straight to RGB
    if img.mode != target:
        img = img.convert(target)
    return img


def _nearest_indices(in_size, out_size):
    """tf.image's nearest source index (half-pixel centres, in float32 as TF computes it, so
    the ties land where TF's do)."""
    scale = np.float32(in_size) / np.float32(out_size)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale
    return np.minimum(np.floor(centres).astype(np.int64), in_size - 1)


def _bilinear_taps(in_size, out_size):
    """tf.image's bilinear taps (half-pixel centres, no antialiasing, float32 as TF)."""
    scale = np.float32(in_size) / np.float32(out_size)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(centres)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(centres).astype(np.int64), in_size - 1)
    return lower, upper, (centres - floor).astype(np.float32)


def _resize_bilinear(array, height, width):
    """TF's bilinear resize of an HWC float32 array: along the width, then the height."""
    top_rows, bottom_rows, y_lerp = _bilinear_taps(array.shape[0], height)
    left, right, x_lerp = _bilinear_taps(array.shape[1], width)
    x_lerp = x_lerp[None, :, None]

    def along_width(rows):
        picked = array[rows]
        return picked[:, left] + (picked[:, right] - picked[:, left]) * x_lerp
    top, bottom = along_width(top_rows), along_width(bottom_rows)
    return top + (bottom - top) * y_lerp[:, None, None]


_CUBIC_TABLE_SIZE = 1024  # TF samples Keys' cubic (a = -0.5) at 1/1024 steps


def _cubic_table():
    steps = np.arange(_CUBIC_TABLE_SIZE + 1, dtype=np.float32) / np.float32(_CUBIC_TABLE_SIZE)
    a = np.float32(-0.5)
    near = ((a + 2) * steps - (a + 3)) * steps * steps + 1  # |distance| in [0, 1)
    far_steps = steps + 1
    far = ((a * far_steps - 5 * a) * far_steps + 8 * a) * far_steps - 4 * a  # [1, 2)
    return near.astype(np.float32), far.astype(np.float32)


def _bicubic_taps(in_size, out_size):
    """tf.image's bicubic taps: 4 indices and weights per output pixel; taps outside the
    image get weight 0 and the rest are renormalised, as TF's resize_bicubic does."""
    near, far = _cubic_table()
    scale = np.float32(in_size) / np.float32(out_size)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    base = np.floor(centres).astype(np.int64)
    offset = np.rint((centres - base) * np.float32(_CUBIC_TABLE_SIZE)).astype(np.int64)
    indices = base[:, None] + np.arange(-1, 3)[None, :]
    weights = np.stack([far[offset], near[offset], near[_CUBIC_TABLE_SIZE - offset],
                        far[_CUBIC_TABLE_SIZE - offset]], axis=1)
    inside = (indices >= 0) & (indices < in_size)
    weights = np.where(inside, weights, np.float32(0))
    weights /= weights.sum(axis=1, keepdims=True)
    return np.clip(indices, 0, in_size - 1), weights.astype(np.float32)


def _resize_bicubic(array, height, width):
    """TF's bicubic resize of an HWC float32 array: along the height, then the width."""
    rows, row_weights = _bicubic_taps(array.shape[0], height)
    columns, column_weights = _bicubic_taps(array.shape[1], width)
    tall = np.einsum("hk,hkwc->hwc", row_weights, array[rows])
    return np.einsum("wk,hwkc->hwc", column_weights, tall[:, columns]).astype(np.float32)


def _resize_planes(array, size, resample):
    """HWC float32 -> (height, width, C) float32, one Pillow 'F' plane per channel, so no
    rounding to 8 bits happens between decoding and the model."""
    Image = pil()
    height, width = size
    if array.shape[0] == height and array.shape[1] == width:
        return array
    if resample == Image.Resampling.NEAREST:
        rows = _nearest_indices(array.shape[0], height)
        columns = _nearest_indices(array.shape[1], width)
        return np.ascontiguousarray(array[rows[:, None], columns[None, :]])
    if resample == Image.Resampling.BILINEAR:
        return _resize_bilinear(array, height, width)
    if resample == Image.Resampling.BICUBIC:
        return _resize_bicubic(array, height, width)
    out = np.empty((height, width, array.shape[2]), np.float32)
    for channel in range(array.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(array[:, :, channel]), "F")
        out[:, :, channel] = np.asarray(plane.resize((width, height), resample))
    return out


def crop_box(height, width, target_height, target_width):
    """The largest centred window of the target's aspect ratio (Keras' smart_resize), as
    (top, left, crop_height, crop_width)."""
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    top = int(float(height - crop_height) / 2)
    left = int(float(width - crop_width) / 2)
    return top, left, crop_height, crop_width


def pad_geometry(height, width, target_height, target_width):
    """tf.image.resize_with_pad's arithmetic (float32 as TF): (resized_h, resized_w, top, left)."""
    f = np.float32
    ratio = max(f(width) / f(target_width), f(height) / f(target_height))
    resized_height_float, resized_width_float = f(height) / ratio, f(width) / ratio
    top = max(0, int(np.floor((f(target_height) - resized_height_float) / f(2))))
    left = max(0, int(np.floor((f(target_width) - resized_width_float) / f(2))))
    return (max(int(np.floor(resized_height_float)), 1), max(int(np.floor(resized_width_float)), 1),
            top, left)


def decode_image(path, image_size, color_mode="rgb", interpolation="bilinear",
                 crop_to_aspect_ratio=False, pad_to_aspect_ratio=False):
    """Reads `path` and returns a float32 (height, width, channels) array of values 0..255,
    resized to image_size=(height, width) as image_dataset_from_directory does."""
    img = convert_color(open_image(path), color_mode)
    resample = pil_filter(interpolation)
    array = np.asarray(img, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    target_height, target_width = image_size
    height, width = array.shape[:2]
    if crop_to_aspect_ratio:
        top, left, crop_height, crop_width = crop_box(height, width, target_height, target_width)
        array = array[top:top + crop_height, left:left + crop_width]
        return _resize_planes(array, image_size, resample)
    if pad_to_aspect_ratio:
        resized_height, resized_width, top, left = pad_geometry(height, width, target_height,
                                                                target_width)
        resized = _resize_planes(array, (resized_height, resized_width), resample)
        out = np.zeros((target_height, target_width, array.shape[2]), np.float32)
        out[top:top + resized_height, left:left + resized_width] = resized
        return out
    return _resize_planes(array, image_size, resample)
