"""Files and zips of images as one indexable sequence, read one image at a time within a budget fixed beforehand.

A request (a Space visitor's batch) names files and zips. Everything it could read is counted first: the number
of entries before any is looked at, then each file's size (`os.stat`) and each zip's directory (`infolist()`), then
each image's header, which tells what decoding it will hold in memory (`images.decoded_bytes`: a 97 KB PNG can
decode to 100 MB). A request over its budget is refused whole, in one sentence, before a pixel is decoded: ten
20 MB zips that each unpack to 499 MB would otherwise hold about 5 GB. The same file (or zip member) listed again is
counted once, and scored once (`ImageEntries.keys`). The images are then read only when indexed, one at a time, so
that a scorer holds one batch.

Zips are never extracted: a member's bytes go straight to the image loader, so no name inside a zip can write
anywhere. Names that would escape their folder (zip-slip) are still refused by name, as error rows, and so are a
damaged zip, an encrypted member and one over the size of a single image: one bad entry never costs the rest. A
member is read up to its declared size, never further, so a header that lies costs no more than it declares.
Hidden entries (`.name`, macOS's `__MACOSX/` copies) are skipped, as in folders (`images.list_image_files`); a zip
inside a zip is not opened, and gets a row that says so.
"""

import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from .errors import MemorabilityError
from .images import IMAGE_EXTENSIONS, ImageLoadError, decoded_bytes, opened

MIB = 2**20
# Stored and Deflate, what every common zip tool writes. zipfile inflates bzip2 and LZMA with no bound on the output
# of one call, so a lying header could cost far more memory than it declares; they are refused.
READABLE_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# Entries a zip may list per image of the budget: folders, and macOS's `__MACOSX/._name` copy of every file, count
# too. Past that, its directory alone would cost more than the images it may hold.
ENTRIES_PER_IMAGE = 4


class BudgetError(MemorabilityError, ValueError):
    """A request that would read more images or bytes than its budget allows; refused before anything is read."""


class EntryError(ImageLoadError):
    """One file or zip entry that will not be read; its row in the results says why."""


@dataclass(frozen=True)
class Budget:
    """What one request may read: rows (errors included), uncompressed bytes in all, and bytes of one image; and,
    when `decoded_bytes` is set, the memory its images take decoded, in all (each header is read to count it)."""

    images: int
    total_bytes: int
    image_bytes: int
    decoded_bytes: int | None = None


@dataclass(frozen=True)
class Entry:
    """One row: a file, a zip member (`member`), or the reason it will not be read (`error`); `size` is what reading
    it costs in bytes (a member's declared size: zipfile reads no more), `decoded` what decoding it holds."""

    name: str
    path: str
    member: zipfile.ZipInfo | None = None
    error: str | None = None
    size: int = 0
    decoded: int = 0

    @property
    def key(self) -> tuple[str, str | None]:
        """What it reads: the same file or zip member listed twice has one key."""
        return self.path, None if self.member is None else self.member.filename


class MemberReader:
    """Reads entries for one process: a file's path as it is (the loader reads it), a zip member's bytes up to its
    declared size. One zip is open at a time: entries are read in order, so each zip is opened once more after its
    directory was counted. Not for several threads at once; close it when done."""

    def __init__(self) -> None:
        self._open: tuple[str, zipfile.ZipFile] | None = None

    def read(self, entry: Entry) -> str | bytes:
        """The entry's source, or `EntryError` (a refused or unreadable entry: its row says why)."""
        if entry.error is not None:
            raise EntryError(entry.error)
        if entry.member is None:
            return entry.path
        try:
            with self.archive(entry.path).open(entry.member) as stream:
                with opened(stream, entry.name):  # the header first: a member that is no image is never read whole
                    pass
                stream.seek(0)
                # At most the declared size: ZipFile.read() would first inflate up to 1 GB whatever the header says.
                return stream.read(entry.member.file_size)
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise EntryError(f"{entry.name}: the zip entry is damaged ({error}).") from None
        except OSError as error:  # the zip went away or cannot be opened now; the row names no server path
            reason = error.strerror or "input/output error"
            raise EntryError(f"{entry.name}: its zip could not be read ({reason}).") from None

    def archive(self, path: str) -> zipfile.ZipFile:
        """The zip at `path`, open: the one already open, or it in place of that one."""
        if self._open is None or self._open[0] != path:
            self.close()
            self._open = (path, zipfile.ZipFile(path))
        return self._open[1]

    def close(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None

    def __getstate__(self) -> dict:  # a DataLoader worker gets its own reader, with no zip open yet
        return {"_open": None}


class ImageEntries(Sequence):
    """Image sources by index (see `MemberReader`); indexing a refused entry raises `EntryError`, which the batch
    engine turns into an error row like any unreadable image (`memorability.batch_scoring.score_images`)."""

    def __init__(self, entries: list[Entry]):
        self.entries = entries
        self.names = [entry.name for entry in entries]
        self.keys = [entry.key for entry in entries]
        self.reader = MemberReader()

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> str | bytes:
        return self.reader.read(self.entries[index])

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> "ImageEntries":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def expand(paths: Sequence[str | os.PathLike], budget: Budget, labels: Sequence[str] | None = None) -> ImageEntries:
    """Every image in `paths` (a `.zip` contributes its members), named by `labels` (default: the paths) or, inside
    a zip, by the member's name; raises `BudgetError` as soon as the count or the bytes (from the directories alone),
    then the decoded bytes (from the headers) go over `budget`. An entry listed again counts as a row but costs
    nothing more."""
    labels = [str(path) for path in paths] if labels is None else list(labels)
    if len(paths) > budget.images:
        raise BudgetError(too_many(budget))
    entries: list[Entry] = []
    seen: set[tuple[str, str | None]] = set()
    total = 0
    for path, label in zip(paths, labels):
        is_zip = label.lower().endswith(".zip")
        for entry in zip_entries(str(path), label, budget) if is_zip else [file_entry(str(path), label, budget)]:
            entries.append(entry)
            if len(entries) > budget.images:
                raise BudgetError(too_many(budget))
            total += 0 if entry.key in seen else entry.size
            seen.add(entry.key)
            if total > budget.total_bytes:
                raise BudgetError(
                    f"The images in these files come to more than {budget.total_bytes / MIB:,.0f} MB, the most one "
                    "request may read; send fewer at a time."
                )
    if budget.decoded_bytes is not None:
        entries = with_headers(entries, budget.decoded_bytes)
    return ImageEntries(entries)


def with_headers(entries: list[Entry], limit: int) -> list[Entry]:
    """`entries` with what decoding each will hold, read from its header (a file or zip member opened, a few kB
    read); raises `BudgetError` once the distinct ones come to more than `limit`. A header that cannot be read
    makes its entry an error row at once."""
    reader, known, decoded = MemberReader(), {}, 0
    try:
        for entry in entries:
            if entry.error is not None or entry.key in known:
                continue
            known[entry.key] = header_entry(entry, reader)
            decoded += known[entry.key].decoded
            if decoded > limit:
                raise BudgetError(
                    f"Decoded, the images in these files would take more than {limit / MIB:,.0f} MB of memory, the "
                    "most one request may use (a picture costs by its pixels and bit depth, not its file size); send "
                    "fewer or smaller pictures at a time."
                )
    finally:
        reader.close()
    return [known.get(entry.key, entry) if entry.error is None else entry for entry in entries]


def header_entry(entry: Entry, reader: "MemberReader") -> Entry:
    """`entry` with `decoded` set from its header, or as an error row that says why it cannot be read."""
    try:
        source = entry.path if entry.member is None else reader.archive(entry.path).open(entry.member)
        with opened(source, entry.name) as image:
            return replace(entry, decoded=decoded_bytes(image))
    except ImageLoadError as error:
        return replace(entry, error=str(error))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        return replace(entry, error=f"{entry.name}: the zip entry is damaged ({type(error).__name__}).")


def too_many(budget: Budget) -> str:
    return f"More than {budget.images:,} images (or files) in one request, the most it may score; send fewer at a time."


def file_entry(path: str, label: str, budget: Budget) -> Entry:
    """A plain file, refused by its size alone when it is over one image's budget."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return Entry(label, path, error=f"{label}: no such file.")
    error = over_size(label, size, budget)
    return Entry(label, path, error=error, size=0 if error else size)


def over_size(name: str, size: int, budget: Budget) -> str | None:
    if size <= budget.image_bytes:
        return None
    return f"{name}: {size / MIB:,.1f} MB is over the {budget.image_bytes / MIB:,.0f} MB limit for one image."


def zip_entries(path: str, label: str, budget: Budget) -> list[Entry]:
    """The image members of a zip from its directory alone, or one error row for a zip that cannot be opened.

    The directory itself is counted first, from the zip's end record: zipfile builds an object per entry, and a
    20 MB zip can list about 400,000 entries (a few hundred MB of them) before the image count could refuse it.
    """
    try:
        with open(path, "rb") as handle:
            end_record = zipfile._EndRecData(handle)  # CPython's own reader of the end record (and its zip64 form)
        if end_record is not None and end_record[zipfile._ECD_ENTRIES_TOTAL] > ENTRIES_PER_IMAGE * budget.images:
            raise BudgetError(too_many(budget))
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError):
        return [Entry(label, path, error=f"{label}: the zip is damaged or not a zip.")]
    with archive:
        return [member_entry(path, member, budget) for member in archive.infolist() if is_listed(member)]


def is_listed(member: zipfile.ZipInfo) -> bool:
    """An image file (or a zip, which gets an error row) by its extension, not a folder and not hidden."""
    parts = PurePosixPath(member.filename.replace("\\", "/")).parts
    hidden = any((part.startswith(".") and part not in (".", "..")) or part == "__MACOSX" for part in parts)
    suffix = Path(member.filename).suffix.lower()
    return not member.is_dir() and not hidden and (suffix in IMAGE_EXTENSIONS or suffix == ".zip")


def member_entry(path: str, member: zipfile.ZipInfo, budget: Budget) -> Entry:
    """A zip member as a row, refused by name (zip-slip, a zip inside), flag (encrypted) or declared size before any
    reading."""
    name = member.filename
    if escapes(name):
        return Entry(name, path, error=f"{name}: refused: the path leaves the zip's folder (zip-slip).")
    if name.lower().endswith(".zip"):
        return Entry(name, path, error=f"{name}: a zip inside a zip is not opened; unzip it and send its photos.")
    if member.flag_bits & 0x1:
        return Entry(name, path, error=f"{name}: the zip entry is encrypted; zip it without a password.")
    if member.compress_type not in READABLE_COMPRESSION:
        return Entry(name, path, error=f"{name}: compressed in a way we do not read; zip it with the usual Deflate.")
    error = over_size(name, member.file_size, budget)
    return Entry(name, path, error=error) if error else Entry(name, path, member, size=member.file_size)


def escapes(name: str) -> bool:
    """Whether a member's name would leave the folder it is extracted in: absolute, a drive, or `..` anywhere."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return name.startswith(("/", "\\")) or ".." in parts or bool(parts and parts[0].endswith(":"))


__all__ = ["Budget", "BudgetError", "Entry", "EntryError", "ImageEntries", "MemberReader", "expand", "zip_entries"]
