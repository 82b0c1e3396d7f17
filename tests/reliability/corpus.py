"""A generated corpus of bad and unusual image files, each with the outcome every entry point must give.

`refuse`: one clear error naming the file. `score`: a score equal to that of `reference`, the same picture in a
plain form (what the file should be understood as), within `tolerance`.
"""

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from memorability.images import MAX_ASPECT_RATIO, MAX_IMAGE_PIXELS, TRANSPARENCY_BACKGROUND


@dataclass(frozen=True)
class Case:
    """One input file and what must happen to it."""

    name: str
    filename: str
    outcome: str  # "refuse" or "score"
    why: str
    expect: str = ""  # for refusals: a phrase the error must contain
    reference: Callable[[], Image.Image] | None = None  # for scores: the picture it must score as
    tolerance: float = 1e-5


def photo(width: int = 96, height: int = 72) -> Image.Image:
    """A deterministic photo-like RGB picture (smooth gradients and shapes, no symmetry)."""
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    pixels = np.stack([x * 255, y * 200 + 30, (1 - x) * (1 - y) * 255], axis=-1)
    pixels[height // 5 : height // 2, width // 6 : width // 3] = (250, 240, 30)
    return Image.fromarray(pixels.astype(np.uint8), mode="RGB")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type → channels: gray, RGB, gray + alpha, RGBA


def huge_png(width: int, height: int, rows: int | None = None, bit_depth: int = 1, colour_type: int = 0) -> bytes:
    """A PNG of the given size (1-bit gray by default; 16-bit gray is bit_depth=16, RGBA colour_type=6), all zeros,
    compressed row by row as it is made (small on disk and in memory here, huge decoded)."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width * PNG_CHANNELS[colour_type] * bit_depth + 7) // 8)
    body = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def composited(image: Image.Image) -> Image.Image:
    background = Image.new("RGBA", image.size, TRANSPARENCY_BACKGROUND + (255,))
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")


def rgba() -> Image.Image:
    picture = photo().convert("RGBA")
    alpha = np.full(picture.size[::-1], 255, dtype=np.uint8)
    alpha[:, : picture.width // 2] = 60
    picture.putalpha(Image.fromarray(alpha))
    return picture


def palette_with_transparency() -> Image.Image:
    picture = photo().quantize(colors=16)
    picture.info["transparency"] = 0
    return picture


def sixteen_bit() -> np.ndarray:
    return (np.linspace(0, 65535, 96 * 72).reshape(72, 96)).astype(np.uint16)


def exif_rotated() -> bytes:
    """The photo stored turned 90° anticlockwise, with EXIF orientation 6 (display: turn 90° clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(photo().transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [photo(), photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT), Image.new("RGB", (96, 72), "red")]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def first_gif_frame() -> Image.Image:
    return Image.open(io.BytesIO(animated_gif())).convert("RGB")


def stereo_mpo() -> bytes:
    """A two-frame MPO, as phones and 3-D cameras write: the left and right views, JPEGs one after the other."""
    return encoded(photo(), "MPO", save_all=True, append_images=[photo().transpose(Image.Transpose.FLIP_LEFT_RIGHT)])


def first_mpo_frame() -> Image.Image:
    return Image.open(io.BytesIO(stereo_mpo())).convert("RGB")


# Formats Pillow writes and would open, that no camera or browser does; EPS would call Ghostscript to decode.
EXOTIC_FORMATS = {"PCX": "pcx", "TGA": "tga", "SGI": "sgi", "DDS": "dds", "IM": "im", "QOI": "qoi", "EPS": "eps"}


CASES: list[Case] = [
    Case("0-byte file", "empty.jpg", "refuse", "nothing to decode", expect="empty"),
    Case("truncated JPEG", "truncated.jpg", "refuse", "half the bytes of a JPEG", expect="truncated or corrupt"),
    Case("non-image renamed .jpg", "notes.jpg", "refuse", "plain text with an image extension", expect="not an image"),
    Case("HTML page", "page.html", "refuse", "a web page saved by mistake", expect="not an image"),
    Case("decompression bomb", "bomb.png", "refuse", "200000×200000 declared in a tiny file", expect="pixel limit"),
    Case("20000×20000 PNG", "huge.png", "refuse", "400 MP, over the limit", expect=f"{MAX_IMAGE_PIXELS:,}-pixel limit"),
    Case("1×1 pixel", "pixel.png", "score", "the smallest image", reference=lambda: Image.new("RGB", (1, 1), (200, 30, 30))),
    Case("CMYK JPEG", "cmyk.jpg", "score", "print-ready files", reference=lambda: Image.open(io.BytesIO(encoded(photo().convert("CMYK"), "JPEG", quality=95))).convert("RGB")),
    Case("16-bit PNG", "deep.png", "score", "scaled to 8 bits, not clipped", reference=lambda: Image.fromarray((sixteen_bit() / 65535 * 255).round().astype(np.uint8)).convert("RGB")),
    Case("RGBA PNG", "alpha.png", "score", "composited on white", reference=lambda: composited(rgba())),
    Case("palette PNG with transparency", "palette.png", "score", "composited on white", reference=lambda: composited(palette_with_transparency())),
    Case("animated GIF", "animated.gif", "score", "first frame", reference=first_gif_frame),
    Case("EXIF-rotated JPEG", "rotated.jpg", "score", "scored upright", reference=lambda: Image.open(io.BytesIO(encoded(photo(), "JPEG", quality=95))).convert("RGB"), tolerance=0.01),
    Case("grayscale JPEG", "gray.jpg", "score", "one channel", reference=lambda: Image.open(io.BytesIO(encoded(photo().convert("L"), "JPEG", quality=95))).convert("RGB")),
    Case("WebP", "photo.webp", "score", "lossless WebP", reference=photo),
    Case("TIFF", "photo.tiff", "score", "uncompressed TIFF", reference=photo),
    Case("PNG named .jpg", "really_png.jpg", "score", "a wrong extension on a valid image", reference=photo),
    Case("thin image", "thin.png", "refuse", "40×1,000,000: under the pixel limit, 256×6,400,000 once resized", expect=f"{MAX_ASPECT_RATIO}:1 limit"),
    Case("6:1 panorama", "panorama.png", "score", "a wide panorama", reference=lambda: photo(600, 100)),
    Case("MPO (phone 3-D photo)", "stereo.mpo", "score", "first frame", reference=first_mpo_frame),
    Case("50 MP 16-bit PNG (97 KB)", "deep50mp.png", "score", "100 MB decoded, reduced strip by strip", reference=lambda: Image.new("RGB", (884, 884))),
    *(Case(f"{name} file", f"picture.{suffix}", "refuse", "exotic format", expect="not an image format we can read") for name, suffix in EXOTIC_FORMATS.items()),
]  # fmt: skip


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write every case's file into `folder`; returns case name → path."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = encoded(photo(), "JPEG", quality=95)
    contents = {
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "notes.jpg": b"These are my holiday notes, not a picture.\n" * 20,
        "page.html": b"<!DOCTYPE html><html><body><img src='x.jpg'></body></html>\n",
        "bomb.png": huge_png(200_000, 200_000, rows=1),
        "huge.png": huge_png(20_000, 20_000),
        "pixel.png": encoded(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"),
        "cmyk.jpg": encoded(photo().convert("CMYK"), "JPEG", quality=95),
        "deep.png": encoded(Image.fromarray(sixteen_bit()), "PNG"),
        "alpha.png": encoded(rgba(), "PNG"),
        "palette.png": encoded(palette_with_transparency(), "PNG", transparency=0),
        "animated.gif": animated_gif(),
        "rotated.jpg": exif_rotated(),
        "gray.jpg": encoded(photo().convert("L"), "JPEG", quality=95),
        "photo.webp": encoded(photo(), "WEBP", lossless=True),
        "photo.tiff": encoded(photo(), "TIFF"),
        "really_png.jpg": encoded(photo(), "PNG"),
        "thin.png": huge_png(40, 1_000_000),
        "panorama.png": encoded(photo(600, 100), "PNG"),
        "stereo.mpo": stereo_mpo(),
        "deep50mp.png": huge_png(7070, 7070, bit_depth=16),
        **{f"picture.{suffix}": encoded(photo(), name) for name, suffix in EXOTIC_FORMATS.items()},
    }
    paths = {}
    for case in CASES:
        path = folder / case.filename
        path.write_bytes(contents[case.filename])
        paths[case.name] = path
    return paths
