"""One image file -> one float32 HWC array, as Keras' image_dataset_from_directory decodes it.

Pillow decodes (releasing the GIL meanwhile) and NumPy resizes (whole-row arithmetic, which
releases it too), so several of these calls run at once in worker threads (see dataset.py).
Pillow is imported lazily: `import cnnkit` works without it, and the first image call names
the extra to install.

Resizing is tf.image's own arithmetic (see _resize.py), so the pixels are Keras'. Where the
decoding differs:
- color_mode="grayscale" of a colour file uses Pillow's ITU-R 601-2 luma; TF's decoders round
  their own weights, so a grey level may differ by 1.
- 16-bit grayscale PNGs become 8-bit by dropping the low byte, as tf.image.decode_image does.
"""
import numpy as np

from ._resize import INTERPOLATIONS, resize

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


def pil_filter(name):
    """The Pillow resampling filter of one of load_img's interpolation names."""
    return getattr(pil().Resampling, LOAD_IMG_TO_PIL[name])


def check_interpolation(interpolation):
    """Keras' name check (case-insensitive); the lower-case name."""
    if not isinstance(interpolation, str) or interpolation.lower() not in INTERPOLATIONS:
        raise ValueError(f"Argument `interpolation` should be one of {INTERPOLATIONS}. "
                         f"Received: interpolation={interpolation!r}")
    return interpolation.lower()


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
    array = np.asarray(img)  # uint8: _resize converts only what it gathers
    if array.ndim == 2:
        array = array[:, :, None]
    target_height, target_width = image_size
    height, width = array.shape[:2]
    if crop_to_aspect_ratio:
        top, left, crop_height, crop_width = crop_box(height, width, target_height, target_width)
        array = array[top:top + crop_height, left:left + crop_width]
        return resize(array, image_size, interpolation)
    if pad_to_aspect_ratio:
        resized_height, resized_width, top, left = pad_geometry(height, width, target_height,
                                                                target_width)
        resized = resize(array, (resized_height, resized_width), interpolation)
        out = np.zeros((target_height, target_width, array.shape[2]), np.float32)
        out[top:top + resized_height, left:left + resized_width] = resized
        return out
    return resize(array, image_size, interpolation)
