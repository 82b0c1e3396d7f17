"""Opening user images safely: one clear error naming the file, or an upright 8-bit RGB picture.

Every entry point (predictor, CLI, data loader, Space) opens images here, so that a truncated JPEG, a
decompression bomb or a 16-bit PNG behave the same everywhere.
"""

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MemorabilityError

# Decided on purpose: 50 megapixels covers every camera photo in common use (a 48 MP phone sensor included) while
# refusing decompression bombs long before they cost gigabytes. PIL's own limit (about 89 MP) would warn, not stop.
MAX_IMAGE_PIXELS = 50_000_000
# Decided on purpose: an image costs what its resized copy costs, and the processor resizes the short side to 256 and
# keeps the aspect ratio, so a 60×300,000 strip (18 MP, under the pixel limit) took 3.5 GB. At 10:1 the copy is
# 256×2,560: 25 MB at peak and no slower than a square photo (a 100:1 strip: 176 MB). A 6:1 panorama passes; past
# 10:1 the model's 224-px centre crop would see under a tenth of the picture anyway.
MAX_ASPECT_RATIO = 10
# Pillow's name → the name users know. Only these are opened: Pillow would also open PCX, TGA, SGI, DDS, IM, QOI and
# more (EPS through Ghostscript), formats no camera or browser writes, each one more decoder to trust. MPO (what phones
# and 3-D cameras write: JPEG frames one after another) opens through Pillow's JPEG opener, as its first frame.
READABLE_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF", "TIFF": "TIFF", "BMP": "BMP"}
# Transparent pixels are composited onto white, as a browser shows them.
TRANSPARENCY_BACKGROUND = (255, 255, 255)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".mpo", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

ImageSource = str | os.PathLike | bytes | Image.Image


class ImageLoadError(MemorabilityError, ValueError):
    """An input that is not a usable image; the message is one sentence naming it."""


def describe(source: ImageSource, name: str | None = None) -> str:
    """How an image is named in messages: the given name, the path, or a generic label."""
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return "the image"


def load_image(source: ImageSource, name: str | None = None) -> Image.Image:
    """Open a path, raw bytes or a PIL image as an upright RGB image, or raise `ImageLoadError`.

    Animated images give their first frame; EXIF orientation is applied; 16-bit images are scaled (not clipped) to
    8 bits; transparency is composited on white; CMYK, palette and grayscale images are converted to RGB. Safe in
    threads: no process-wide state is touched (`warnings.catch_warnings` would be: under two threads it left
    Pillow's bomb warning an error for the whole process).
    """
    label = describe(source, name)
    if isinstance(source, Image.Image):
        return to_rgb(source, label)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(f"{label}: no such file.")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise ImageLoadError(f"{label}: the file is empty (0 bytes).")
    try:
        # Pillow raises over twice its own limit and warns over it; our limit is lower, so check_size refuses both.
        image = Image.open(io.BytesIO(data), formats=list(READABLE_FORMATS))
        check_size(image, label)
        image.load()
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as error:
        declared = re.search(r"\((\d+) pixels\)", str(error))
        size = f" ({int(declared.group(1)):,} declared)" if declared else ""
        raise ImageLoadError(f"{label}: too many pixels{size}, over the {MAX_IMAGE_PIXELS:,}-pixel limit.") from None
    except UnidentifiedImageError:
        readable = ", ".join(READABLE_FORMATS.values())
        raise ImageLoadError(f"{label}: not an image format we can read ({readable}).") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{label}: the image is truncated or corrupt ({error}).") from None
    return to_rgb(image, label)


def check_size(image: Image.Image, label: str) -> None:
    """Refuse images over MAX_IMAGE_PIXELS or MAX_ASPECT_RATIO from the header alone, before decoding a pixel."""
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageLoadError(f"{label}: the image has no pixels ({width}×{height}).")
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageLoadError(
            f"{label}: {width}×{height} is {width * height:,} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel limit."
        )
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise ImageLoadError(
            f"{label}: {width}×{height} is a {ratio:,.1f}:1 strip, over the {MAX_ASPECT_RATIO}:1 limit on the aspect "
            "ratio (long side to short side)."
        )


def to_rgb(image: Image.Image, label: str = "the image") -> Image.Image:
    """An upright 8-bit RGB copy of any PIL image."""
    check_size(image, label)
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError):  # a broken EXIF block is no reason to refuse the pixels
        pass
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = scale_to_8_bit(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, TRANSPARENCY_BACKGROUND + (255,))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def scale_to_8_bit(image: Image.Image) -> Image.Image:
    """Map a 16-bit (or 32-bit integer / float) single-channel image onto 0..255 by scaling, never by clipping."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if values.max(initial=0.0) <= 1.0 else float(values.max())
    elif image.mode == "I" and values.max(initial=0) > 65535:
        top = float(values.max())
    else:
        top = 65535.0
    scaled = np.clip(np.rint(values / top * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files under a folder (recursively, by extension, hidden files skipped), in a stable order."""
    root = Path(folder)
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )
