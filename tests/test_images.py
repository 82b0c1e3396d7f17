"""The image loader's own guarantees: what it refuses from the header alone, which formats it opens, and that two
threads loading at once touch nothing they share. The corpus (tests/reliability) runs every case end to end."""

import re
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, ImageFile

from memorability.images import (
    MAX_ASPECT_RATIO, MAX_IMAGE_PIXELS, TRANSPARENCY_BACKGROUND, WORKING_SHORT_SIDE, ImageLoadError, decoded_bytes,
    load_image, opened,
)
from tests.reliability.corpus import EXOTIC_FORMATS, encoded, huge_png, photo


@pytest.fixture
def no_decoding(monkeypatch):
    """Any attempt to decode pixels fails the test: a refusal must come from the header."""

    def decode(self):
        raise AssertionError(f"decoded a {self.size[0]}×{self.size[1]} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)


def test_a_thin_image_is_refused_from_its_header(no_decoding):
    """40×1,000,000 is under the pixel limit, but the processor would make it 256×6,400,000."""
    with pytest.raises(ImageLoadError, match=rf"40×1000000 .* over the {MAX_ASPECT_RATIO}:1 limit on the aspect"):
        load_image(huge_png(40, 1_000_000), name="thin.png")


@pytest.mark.parametrize("size", [(10 * 20, 20), (20, 10 * 20), (600, 100)])
def test_up_to_the_aspect_limit_loads(size):
    assert MAX_ASPECT_RATIO >= 6  # a 6:1 panorama must score
    assert load_image(encoded(photo(*size), "PNG")).size == size


@pytest.mark.parametrize("size", [(10 * 20 + 1, 20), (20, 10 * 20 + 1)])
def test_just_past_the_aspect_limit_is_refused(size):
    with pytest.raises(ImageLoadError, match=f"{MAX_ASPECT_RATIO}:1 limit"):
        load_image(encoded(photo(*size), "PNG"))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_between_pillows_warning_and_its_error_the_pixel_limit_refuses():
    """Pillow only warns from 89.5 MP to 179 MP; our limit is lower and does not depend on warning filters."""
    width, height = 10_000, 9_000
    assert MAX_IMAGE_PIXELS < Image.MAX_IMAGE_PIXELS < width * height < 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageLoadError, match=f"{MAX_IMAGE_PIXELS:,}-pixel limit"):
        load_image(huge_png(width, height, rows=1))


@pytest.mark.parametrize("name", list(EXOTIC_FORMATS))
def test_exotic_formats_are_refused_by_name_before_decoding(name, no_decoding):
    with pytest.raises(ImageLoadError, match="not an image format we can read"):
        load_image(encoded(photo(), name))


def test_every_format_the_message_names_is_read():
    """The refusal lists what we read: each format it names opens, so the message and the list cannot drift."""
    with pytest.raises(ImageLoadError) as caught:
        load_image(b"not a picture")
    named = re.search(r"\(([^)]*)\)", str(caught.value)).group(1).split(", ")
    assert {"JPEG", "PNG", "WebP", "GIF", "TIFF", "BMP"} <= set(named)
    for name in named:
        assert load_image(encoded(photo(), name.upper())).size == (96, 72), name


def test_two_threads_loading_leave_the_warning_filters_alone():
    """`warnings.catch_warnings` swaps one list for the whole process: under two threads it left Pillow's bomb
    warning an error everywhere (and could drop another thread's filters)."""
    data = encoded(photo(400, 300), "PNG")
    before = list(warnings.filters)
    with ThreadPoolExecutor(2) as pool:
        sizes = list(pool.map(lambda _: load_image(data).size, range(100)))
    assert sizes == [(400, 300)] * 100
    assert warnings.filters == before


# --- What a picture costs -------------------------------------------------------------------------------------------

FIFTY_MP = (7070, 7070)  # 49,984,900 pixels: under the limit
PEAK_PROBE = """
import re, sys
from memorability.images import load_image
def status(key): return 1024 * int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
open("/proc/self/clear_refs", "w").write("5")  # the high-water mark starts again from here (not the imports')
before = status("VmRSS")
picture = load_image(sys.argv[1])
print(status("VmHWM") - before, *picture.size)
"""


def peak_extra_bytes(path) -> tuple[int, tuple[int, int]]:
    """The most memory loading `path` added in a fresh process (its high-water mark, reset once the imports are
    done, over what it held then), and the size of the picture it gave."""
    done = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(path)], capture_output=True, text=True, check=True)
    extra, width, height = map(int, done.stdout.split())
    return extra, (width, height)


def float_tiff() -> bytes:
    return encoded(Image.new("F", FIFTY_MP), "TIFF", compression="tiff_deflate")


@pytest.mark.parametrize(
    "make, decoded_mb",
    [
        (lambda: huge_png(*FIFTY_MP, bit_depth=16), 100),  # 97 KB on disk
        (lambda: huge_png(*FIFTY_MP, bit_depth=8, colour_type=6), 200),  # RGBA
        (float_tiff, 200),  # 32-bit float, deflated: 300 KB
    ],
    ids=["16-bit PNG", "RGBA PNG", "float TIFF"],
)
def test_a_50_megapixel_picture_costs_its_decoded_pixels_and_little_more(make, decoded_mb, tmp_path):
    """A 16-bit 50 MP PNG took +1.4 GB at peak (float64 copies of the whole image, compositing at full size): the
    picture is now reduced a strip at a time right after decoding, to a working copy of at most 1,023 px a side."""
    path = tmp_path / "big"
    path.write_bytes(make())
    extra, size = peak_extra_bytes(path)
    assert extra < 300 * 2**20 and size == (884, 884), f"+{extra / 2**20:.0f} MB for {decoded_mb} MB decoded"


def test_a_large_jpeg_is_decoded_small_by_the_decoder(tmp_path):
    """A 12 MP JPEG decodes at a quarter of its size (DCT scaling): 1000×750 is what it costs, not 4000×3000."""
    path = tmp_path / "camera.jpg"
    photo(400, 300).resize((4000, 3000)).save(path, quality=90)
    extra, size = peak_extra_bytes(path)
    assert size == (1000, 750) and extra < 30 * 2**20


@pytest.mark.parametrize("size", [(1023, 5000), (1024, 700), (7070, 7070), (22360, 2236), (2236, 22360)])
def test_the_working_copy_keeps_the_short_side_and_the_aspect_limit(size):
    """Reduced by a power of two, rounding up: the short side stays from 512 to 1,023 px, and a ratio within the
    limit stays within it (a 10:1 photo shrunk to 1,024 px by rounding became 1024×102, refused as a strip)."""
    picture = load_image(Image.new("RGB", size))
    assert WORKING_SHORT_SIDE <= min(picture.size) < 2 * WORKING_SHORT_SIDE or min(size) < WORKING_SHORT_SIDE * 2
    assert max(picture.size) / min(picture.size) <= MAX_ASPECT_RATIO


def test_what_decoding_costs_is_known_from_the_header(no_decoding):
    with opened(huge_png(*FIFTY_MP, bit_depth=16), "big.png") as image:
        assert decoded_bytes(image) >= 2 * FIFTY_MP[0] * FIFTY_MP[1]  # two bytes a pixel, and the strips
    camera = encoded(photo(400, 300).resize((4000, 3000)), "JPEG")
    with opened(camera, "camera.jpg") as image:
        assert image.size == (1000, 750) and decoded_bytes(image) == 4 * 1000 * 750  # RGB: four bytes a pixel


def test_a_reduced_picture_keeps_its_orientation_and_transparency():
    """EXIF orientation is read from the original and applied to the working copy; transparent pixels still
    composite on white, computed strip by strip."""
    exif = Image.Exif()
    exif[0x0112] = 6  # display turned 90° clockwise
    stored = Image.new("RGB", (2400, 1200), (200, 30, 30))
    assert load_image(encoded(stored, "JPEG", exif=exif.tobytes())).size == (600, 1200)
    clear = Image.new("RGBA", (2048, 2048), (0, 0, 0, 0))
    assert load_image(encoded(clear, "PNG")).getpixel((10, 10)) == TRANSPARENCY_BACKGROUND
