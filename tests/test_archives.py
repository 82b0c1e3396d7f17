"""Files and zips expanded within a budget counted before anything is read (memorability.archives), and scored
lazily by the batched engine with refused entries as error rows."""

import io
import struct
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from memorability.archives import Budget, BudgetError, EntryError, expand
from memorability.batch_scoring import score_images
from memorability.images import ImageLoadError
from memorability.inference import load_predictor

MIB = 2**20
BUDGET = Budget(images=10, total_bytes=10 * MIB, image_bytes=MIB)


def jpeg(colour: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture
def forbid_reads(monkeypatch):
    """Call it once the test's zips are written: from then on, reading any zip member fails the test (for what must
    be decided from the directory alone)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a zip member was read")

    def forbid() -> None:
        monkeypatch.setattr(zipfile.ZipFile, "open", refuse)
        monkeypatch.setattr(zipfile.ZipFile, "read", refuse)

    return forbid


def test_files_and_zip_members_in_order_read_only_when_indexed(tmp_path, monkeypatch):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg())
    archive = write_zip(tmp_path / "trip.zip", {"trip/a.jpg": jpeg((1, 2, 3)), "notes.txt": b"x", "trip/b.png": b"png"})
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: opened.append(a[0]) or real_open(self, *a, **k))
    with expand([photo, archive], BUDGET, labels=["photo.jpg", "trip.zip"]) as images:
        assert images.names == ["photo.jpg", "trip/a.jpg", "trip/b.png"] and not opened
        assert images[0] == str(photo) and not opened  # a file is read by the image loader, not here
        assert images[1] == jpeg((1, 2, 3)) and len(opened) == 1
        with pytest.raises(ImageLoadError, match="trip/b.png: not an image format"):  # known from its first bytes
            images[2]


def test_the_image_count_is_refused_from_the_directories_before_reading(tmp_path, forbid_reads):
    archive = write_zip(tmp_path / "many.zip", {f"{number}.jpg": b"x" for number in range(8)})
    forbid_reads()
    with pytest.raises(BudgetError, match="More than 10 images"):
        expand([archive, archive], BUDGET)


def test_a_zip_listing_far_more_entries_is_refused_before_its_directory_is_read(tmp_path, monkeypatch):
    archive = write_zip(tmp_path / "crowded.zip", {f"{number}.txt": b"" for number in range(41)})  # 4 × 10 + 1

    def refuse(*args, **kwargs):
        raise AssertionError("the zip's directory was read")

    monkeypatch.setattr(zipfile.ZipFile, "__init__", refuse)
    with pytest.raises(BudgetError, match="More than 10 images"):
        expand([archive], BUDGET)


def test_many_zips_each_under_the_budget_are_refused_together_before_reading(tmp_path, forbid_reads):
    """Three zips of 4 MB each (zeros: a few kB compressed) pass a per-zip cap of 10 MB, not a per-request one."""
    members = {f"{letter}.jpg": bytes(2**20) for letter in "abcd"}
    archives = [write_zip(tmp_path / f"zeros{number}.zip", members) for number in range(3)]
    assert archives[0].stat().st_size < 50_000
    forbid_reads()
    with pytest.raises(BudgetError, match="more than 10 MB"):
        expand(archives, Budget(images=100, total_bytes=BUDGET.total_bytes, image_bytes=BUDGET.image_bytes))


def test_one_file_listed_again_counts_once_against_the_bytes(tmp_path, forbid_reads):
    """The same zip (or file) listed three times is three times the rows but one read: its bytes count once."""
    archive = write_zip(tmp_path / "zeros.zip", {f"{letter}.jpg": bytes(2**20) for letter in "abcd"})
    forbid_reads()
    budget = Budget(images=100, total_bytes=BUDGET.total_bytes, image_bytes=BUDGET.image_bytes)
    with expand([archive] * 3, budget) as images:
        assert len(images) == 12 and len(set(images.keys)) == 4


def test_more_files_than_the_budget_are_refused_before_opening_any(tmp_path):
    with pytest.raises(BudgetError):
        expand([tmp_path / "never-opened.zip"] * 11, BUDGET)


def test_refused_entries_are_rows_that_say_why(tmp_path, forbid_reads):
    big = tmp_path / "big.jpg"
    big.write_bytes(bytes(2**20 + 1))
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    archive = write_zip(
        tmp_path / "mixed.zip",
        {
            "../up.jpg": b"x", "/etc/abs.png": b"x", "a\\..\\..\\win.jpg": b"x", "C:/drive.jpg": b"x",
            "huge.png": bytes(2**20 + 1), "__MACOSX/._photo.jpg": b"x", ".hidden.jpg": b"x", "folder/": b"",
        },
    )  # fmt: skip
    forbid_reads()
    paths = [big, damaged, archive, tmp_path / "gone.jpg"]
    with expand(paths, BUDGET, labels=[path.name for path in paths]) as images:
        errors = {}
        for index, name in enumerate(images.names):
            with pytest.raises(EntryError) as caught:
                images[index]
            errors[name] = str(caught.value)
    assert set(errors) == {"big.jpg", "damaged.zip", "../up.jpg", "/etc/abs.png", "a\\..\\..\\win.jpg", "C:/drive.jpg",
                           "huge.png", "gone.jpg"}  # fmt: skip
    assert errors["big.jpg"] == "big.jpg: 1.0 MB is over the 1 MB limit for one image."
    assert errors["damaged.zip"] == "damaged.zip: the zip is damaged or not a zip."
    assert all("zip-slip" in errors[name] for name in ("../up.jpg", "/etc/abs.png", "a\\..\\..\\win.jpg", "C:/drive.jpg"))
    assert "over the 1 MB limit" in errors["huge.png"] and errors["gone.jpg"] == "gone.jpg: no such file."


def test_bzip2_members_are_refused_by_their_compression(tmp_path, forbid_reads):
    archive = write_zip(tmp_path / "bz.zip", {"photo.jpg": jpeg()}, zipfile.ZIP_BZIP2)
    forbid_reads()
    with expand([archive], BUDGET) as images, pytest.raises(EntryError, match="compressed in a way we do not read"):
        images[0]


def lying_zip(path: Path, declared: int, actual: int) -> Path:
    """A zip whose one member inflates to `actual` bytes of zeros while its headers declare `declared`."""
    write_zip(path, {"photo.jpg": bytes(actual)})
    data = bytearray(path.read_bytes())
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        start = data.find(signature)
        data[start + size_offset : start + size_offset + 4] = struct.pack("<I", declared)
    path.write_bytes(bytes(data))
    return path


def test_a_member_is_read_no_further_than_its_declared_size(tmp_path):
    """zipfile's read() would inflate the whole 64 MB before cutting it to the declared kilobyte."""
    archive = lying_zip(tmp_path / "lying.zip", declared=1024, actual=64 * 2**20)
    with expand([archive], BUDGET) as images:
        tracemalloc.start()
        try:
            with pytest.raises(EntryError, match="damaged"):  # the CRC of the first kilobyte is not the member's
                images[0]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 4 * 2**20, f"reading a 1 kB member took {peak / 2**20:.0f} MB"


def test_scored_lazily_with_refused_entries_as_rows(tiny_model_dir, tmp_path):
    predictor = load_predictor(tiny_model_dir, precision="fp32", batch_size=2)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg())
    archive = write_zip(tmp_path / "trip.zip", {"a.jpg": jpeg((9, 9, 9)), "../slip.jpg": jpeg(), "b.jpg": b"text"})
    with expand([archive, photo], BUDGET, labels=["trip.zip", "photo.jpg"]) as images:
        rows = list(score_images(predictor, images, images.names))
    assert [row.name for row in rows] == ["a.jpg", "../slip.jpg", "b.jpg", "photo.jpg"]
    assert rows[0].score == pytest.approx(predictor.predict(jpeg((9, 9, 9))), abs=1e-6)
    assert rows[3].score == pytest.approx(predictor.predict(str(photo)), abs=1e-6)
    assert rows[1].score is None and "zip-slip" in rows[1].error
    assert rows[2].score is None and "not an image format" in rows[2].error


def sixteen_bit_png(width: int, height: int) -> bytes:
    """All zeros, 16 bits a pixel: a few kB on disk, 2 bytes a pixel decoded."""
    from tests.reliability.corpus import huge_png

    return huge_png(width, height, bit_depth=16)


@pytest.fixture
def no_decoding(monkeypatch):
    def decode(self):
        raise AssertionError(f"decoded a {self.size[0]}×{self.size[1]} image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)


def test_what_the_images_take_decoded_is_counted_from_their_headers(tmp_path, no_decoding):
    """Ten 16-bit PNGs of 2,000 × 1,000 (4 MB each decoded, 10 kB each on disk) pass a 10 MB budget of bytes read
    and fail one of 30 MB decoded, before a pixel is decoded; the same zip listed again costs nothing more."""
    archive = write_zip(tmp_path / "deep.zip", {f"{number}.png": sixteen_bit_png(2000, 1000) for number in range(10)})
    budget = Budget(images=100, total_bytes=BUDGET.total_bytes, image_bytes=BUDGET.image_bytes, decoded_bytes=30 * MIB)
    with pytest.raises(BudgetError, match="Decoded, the images in these files would take more than 30 MB"):
        expand([archive], budget)
    half = write_zip(tmp_path / "half.zip", {f"{number}.png": sixteen_bit_png(2000, 1000) for number in range(5)})
    with expand([half, half, half], budget) as images:
        assert len(images) == 15 and {entry.decoded for entry in images.entries} == {4_000_000}


def test_a_header_that_cannot_be_read_is_an_error_row_at_once(tmp_path, no_decoding):
    archive = write_zip(tmp_path / "mixed.zip", {"notes.jpg": b"plain text", "photo.jpg": jpeg()})
    budget = Budget(images=10, total_bytes=BUDGET.total_bytes, image_bytes=BUDGET.image_bytes, decoded_bytes=MIB)
    with expand([archive], budget) as images:
        assert images.entries[0].error == "notes.jpg: not an image format we can read (JPEG, PNG, WebP, GIF, TIFF, BMP)."
        assert images.entries[1].error is None and images.entries[1].decoded == 4 * 24 * 16


def test_a_zip_inside_a_zip_gets_a_row_that_says_so(tmp_path, forbid_reads):
    inner = write_zip(tmp_path / "inner.zip", {"photo.jpg": jpeg()})
    archive = write_zip(tmp_path / "outer.zip", {"inner.zip": inner.read_bytes(), "photo.jpg": jpeg()})
    forbid_reads()
    with expand([archive], BUDGET) as images:
        assert images.names == ["inner.zip", "photo.jpg"]
        assert images.entries[0].error == "inner.zip: a zip inside a zip is not opened; unzip it and send its photos."
