"""Opening user images safely: one clear error naming the file, or an upright 8-bit RGB picture.

Every entry point (predictor, CLI, data loader, Space) opens images here, so that a truncated JPEG, a
decompression bomb or a 16-bit PNG behave the same everywhere, and a photo gets the same score on every surface.

What a picture costs is known from its header before a pixel is decoded (`decoded_bytes`), and a large one is
reduced while it is decoded or right after, before any full-size copy is made: a JPEG is decoded at 1/2, 1/4 or 1/8
of its size by the decoder itself, anything else is box-averaged a strip at a time. The picture handed on, its
*working copy*, keeps at least WORKING_SHORT_SIDE pixels on its short side, twice what the model's 256-px resize
needs, so a 16-bit 50-megapixel PNG costs its decoded 100 MB and little more.
"""

import io
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from .errors import MemorabilityError

# Decided on purpose: 50 megapixels covers every camera photo in common use (a 48 MP phone sensor included) while
# refusing decompression bombs long before they cost gigabytes. PIL's own limit (about 89 MP) would warn, not stop.
MAX_IMAGE_PIXELS = 50_000_000
# Decided on purpose: an image costs what its resized copy costs, and the processor resizes the short side to 256 and
# keeps the aspect ratio, so a 60×300,000 strip (18 MP, under the pixel limit) took 3.5 GB. At 10:1 the copy is
# 256×2,560. A 6:1 panorama passes; past 10:1 the model's 224-px centre crop would see under a tenth of the picture.
MAX_ASPECT_RATIO = 10
# A picture whose short side is at least twice this is reduced by a power of two (what a JPEG decoder can do while
# decoding) to a working copy whose short side lies between this and twice it: 2× the model's usual 256-px input,
# so the processor's own resize still averages, and any larger copy would only cost memory and time.
WORKING_SHORT_SIDE = 512
STRIP_ROWS = 64  # rows of the working copy made per strip when reducing: a strip of the original costs a few MB
# Pillow's name → the name users know. Only these are opened: Pillow would also open PCX, TGA, SGI, DDS, IM, QOI and
# more (EPS through Ghostscript), formats no camera or browser writes, each one more decoder to trust. MPO (what phones
# and 3-D cameras write: JPEG frames one after another) opens through Pillow's JPEG opener, as its first frame.
READABLE_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF", "TIFF": "TIFF", "BMP": "BMP"}
# Transparent pixels are composited onto white, as a browser shows them.
TRANSPARENCY_BACKGROUND = (255, 255, 255)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".mpo", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# Modes reduced through another: Pillow reduces none of these itself (or, for "P", only by dropping pixels).
REDUCED_AS = {"1": "L", "I;16": "I", "I;16L": "I", "I;16B": "I", "I;16N": "I", "P": "RGB", "PA": "RGBA"}
# How EXIF orientation turns a picture upright (what `ImageOps.exif_transpose` does, applied to the working copy).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

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
    """Open a path, raw bytes or a PIL image as an upright RGB working copy, or raise `ImageLoadError`.

    Animated images give their first frame; EXIF orientation is applied; 16-bit images are scaled (not clipped) to
    8 bits; transparency is composited on white; CMYK, palette and grayscale images are converted to RGB; a large
    picture is reduced first (see the module's docstring). A file is identified from its first bytes, never read
    whole first. Safe in threads: no process-wide state is touched.
    """
    label = describe(source, name)
    if isinstance(source, Image.Image):
        return to_rgb(source, label)
    with opened(source, label) as image:
        image.load()
        return to_rgb(image, label)


@contextmanager
def opened(source: str | os.PathLike | bytes | BinaryIO, label: str) -> Iterator[Image.Image]:
    """The image in `source` with only its header read: format and size checked, a JPEG set to decode at its
    working size (so that `decoded_bytes` is what decoding it will cost). Any error, while opening or in the
    block (decoding), becomes one `ImageLoadError` naming `label`. A stream passed in is read from where it is and
    left open."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(f"{label}: no such file.")
        handle = path.open("rb")
    elif isinstance(source, (bytes, bytearray, memoryview)):
        handle = io.BytesIO(source)
    else:
        handle = nullcontext(source)  # the caller's stream: left open
    with handle as handle:
        if not handle.read(1):
            raise ImageLoadError(f"{label}: the file is empty (0 bytes).")
        handle.seek(0)
        try:
            image = Image.open(handle, formats=list(READABLE_FORMATS))
            check_size(image, label)
            if image.format in ("JPEG", "MPO"):
                factor = reduction_factor(image.size)
                image.draft(image.mode, (image.width // factor, image.height // factor))
            yield image
        except ImageLoadError:
            raise
        except Image.DecompressionBombError as error:  # Pillow refuses past twice its own limit while opening
            declared = re.search(r"\((\d+) pixels\)", str(error))
            size = f" ({int(declared.group(1)):,} declared)" if declared else ""
            raise ImageLoadError(f"{label}: too many pixels{size}, over the {MAX_IMAGE_PIXELS:,}-pixel limit.") from None
        except UnidentifiedImageError:
            readable = ", ".join(READABLE_FORMATS.values())
            raise ImageLoadError(f"{label}: not an image format we can read ({readable}).") from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise ImageLoadError(f"{label}: the image is truncated or corrupt ({error}).") from None


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


def reduction_factor(size: tuple[int, int]) -> int:
    """The power of two by which a picture of `size` is reduced: the largest that keeps its short side at least
    WORKING_SHORT_SIDE (1 below twice that). A reduction rounds up (`math.ceil`), so it never raises the aspect
    ratio past the limit the original met."""
    return 2 ** int(math.log2(max(1, min(size) // WORKING_SHORT_SIDE)))


def decoded_bytes(image: Image.Image) -> int:
    """What decoding an opened image (see `opened`) holds in memory at once: its decoded pixels (a JPEG at the size
    it decodes to), plus the converted strips and working copy when it is reduced. Pillow keeps RGB and every
    mode of several bands or of 32 bits in 4 bytes a pixel."""
    width, height = image.size
    per_pixel = 1 if image.mode in ("1", "L", "P") else 2 if image.mode.startswith("I;16") else 4
    factor = reduction_factor(image.size)
    working = 4 * math.ceil(width / factor) * math.ceil(height / factor) if factor > 1 else 0
    strips = 4 * width * STRIP_ROWS * factor if factor > 1 else 0
    return per_pixel * width * height + working + strips


def working_copy(image: Image.Image) -> Image.Image:
    """The image reduced by `reduction_factor` (box averages, rounding the size up), a strip at a time so that no
    full-size copy is ever made: a conversion Pillow needs first (16-bit, palette, premultiplied alpha) is made
    strip by strip too. The image itself where it needs no reduction."""
    factor = reduction_factor(image.size)
    if factor == 1:
        return image
    mode = REDUCED_AS.get(image.mode, image.mode)
    if image.mode == "P" and "transparency" in image.info:
        mode = "RGBA"
    width, height = image.size
    reduced = Image.new(mode, (math.ceil(width / factor), math.ceil(height / factor)))
    step = STRIP_ROWS * factor
    for top in range(0, height, step):
        strip = image.crop((0, top, width, min(top + step, height)))
        reduced.paste(strip.convert(mode).reduce(factor), (0, top // factor))
    return reduced


def upright(image: Image.Image, working: Image.Image) -> Image.Image:
    """`working` (a copy of `image`, maybe reduced) turned as `image`'s EXIF (or XMP) orientation says."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (OSError, ValueError, SyntaxError, TypeError):  # a broken EXIF block is no reason to refuse the pixels
        return working
    return working.transpose(UPRIGHT[orientation]) if orientation in UPRIGHT else working


def to_rgb(image: Image.Image, label: str = "the image") -> Image.Image:
    """An upright 8-bit RGB working copy of any PIL image."""
    check_size(image, label)
    picture = upright(image, working_copy(image))
    if picture.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        picture = scale_to_8_bit(picture)
    if picture.mode == "P" and "transparency" in picture.info:
        picture = picture.convert("RGBA")
    if picture.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = picture.convert("RGBA")
        background = Image.new("RGBA", rgba.size, TRANSPARENCY_BACKGROUND + (255,))
        picture = Image.alpha_composite(background, rgba)
    rgb = picture.convert("RGB")  # always a new image, never the caller's
    rgb.info = {}  # upright now: an orientation left in its metadata would turn it again when it is loaded again
    return rgb


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
