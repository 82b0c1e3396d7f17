"""The image loader's own guarantees: what it refuses from the header alone, which formats it opens, and that two
threads loading at once touch nothing they share. The corpus (tests/reliability) runs every case end to end."""

import re
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, ImageFile

from memorability.images import MAX_ASPECT_RATIO, MAX_IMAGE_PIXELS, ImageLoadError, load_image
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
