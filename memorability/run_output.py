"""Where a long scoring run writes, made safe: never over an input, one run at a time, no file half-written.

A run writes a CSV (`out`) and keeps its parts in a folder beside it; both are checked against the inputs before
anything is written, the folder is locked for the whole run, and every file appears through a uniquely named
temporary file and a rename, so that two runs, a kill or a rerun never leave a mix or a half-written file.
"""

import fcntl
import glob
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import MemorabilityError

LOCK = ".lock"


class OutputError(MemorabilityError, ValueError):
    """An output that would destroy an input, or that another run is writing; one sentence says which."""


def file_key(path: str | os.PathLike) -> tuple[int, int] | None:
    """What `os.path.samefile` compares (device and inode), or None for a path that is not there."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def refuse_unsafe_output(out: Path, parts: Path, inputs: Iterable[str]) -> None:
    """Refuse, in one sentence, an output (a CSV, or a table's folder) or part folder that would replace or delete one
    of `inputs` (every image file, CSV list and Parquet table of the run): the output is renamed over `out`, and the
    part folder's files are deleted when the run ends. Links count: inputs are compared as files (device and
    inode), not as names; an output folder is compared by every file in it.

    One `stat` per input, and only when `out` or the part folder already exists (a rerun): 0.4 s for 100,000 images
    on our 2-core CPU (up to 1.7 s while other jobs kept it busy), small beside scoring them.
    """
    if parts.exists() and not parts.is_dir():
        raise OutputError(f"{parts} is a file, where the run keeps its parts; move it away or choose another --out.")
    replaced = [out, *sorted(out.rglob("*"))] if out.is_dir() else [out]
    out_keys = {key for path in replaced if (key := file_key(path)) is not None}
    kept = {key: path for path in sorted(parts.rglob("*")) if (key := file_key(path)) is not None}
    if not out_keys and not kept:
        return  # nothing there yet that a run could replace or delete
    for name in dict.fromkeys(inputs):
        key = file_key(name)
        if key is not None and key in out_keys:
            what = "holds the input" if out.is_dir() else "is one of the inputs"
            raise OutputError(f"The output {out} {what} ({name}); choose another --out.")
        if key in kept:
            raise OutputError(
                f"{parts}, where the run keeps its parts and deletes them at the end, holds the input {kept[key]}; "
                "choose another --out."
            )


@contextmanager
def hold_lock(folder: Path) -> Iterator[None]:
    """Hold an advisory lock (flock) on `folder` for a run, or refuse at once if another run holds it.

    The kernel drops the lock when its process ends, so a killed run never leaves a stale lock behind. A finishing
    run deletes the lock file (and the folder) while holding it; a run that locked that deleted file retries.
    """
    path = folder / LOCK
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # a finishing run removed the folder in between
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode(errors="replace").strip() or "unknown"
            os.close(descriptor)
            raise OutputError(
                f"Another run (process {holder}) is writing to {folder}; wait for it to end or choose another --out."
            ) from None
        opened = os.fstat(descriptor)
        if file_key(path) == (opened.st_dev, opened.st_ino):
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(descriptor)


def check_writable(path: str | os.PathLike, replaced: bool = False) -> None:
    """Refuse, in one sentence, an output that cannot be written, before any long work: the folder that will hold
    `path` (the nearest one that exists, since a command creates the rest) must take a new file. `replaced`: the
    output is made beside `path` and renamed over it (a folder replaced whole), so its parent must take one too."""
    target = Path(path)
    folder = target if target.is_dir() and not replaced else target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"Cannot write {path}: {folder} is a file, not a folder; choose another output.")
    probe = temporary_name(folder / "write-check")
    try:
        probe.open("x").close()
    except OSError as error:
        raise OutputError(f"Cannot write {path} ({error.strerror or error} in {folder}); choose another output.") from None
    probe.unlink(missing_ok=True)


# What makes a spreadsheet read a cell as a formula (OWASP's list): a name like "=HYPERLINK(...).jpg" would run.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """A text cell for a CSV that people open in a spreadsheet: one that would start a formula gets a leading `'`,
    which spreadsheets show as text and do not display."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


TOKEN_BYTES = 6  # a temporary's random part: 12 hex digits


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path`, unique to one writer: two writers of the same file never share a temporary."""
    return path.with_name(f".{path.name}.{secrets.token_hex(TOKEN_BYTES)}.tmp")


def leftover_temporaries(folder: Path, name: str = "*") -> list[Path]:
    """Temporary files that a killed writer of `folder / name` left behind (`name` may be a glob pattern). Exactly
    the random part is matched, so that `a.csv`'s never include `a.csv.x.csv`'s, another run's under another lock."""
    pattern = name if name == "*" else glob.escape(name)
    return sorted(folder.glob(f".{pattern}.{'[0-9a-f]' * 2 * TOKEN_BYTES}.tmp"))


@contextmanager
def atomic_file(path: Path, binary: bool = False) -> Iterator[IO]:
    """A file opened for writing that appears at `path` whole when the block ends, or not at all.

    It is written under `temporary_name` in the same folder, then renamed over `path`. Created with exclusive
    `open` rather than `tempfile.mkstemp`, which would make the user's CSV private (mode 0600) instead of following
    the umask.
    """
    temporary = temporary_name(path)
    try:
        handle = open(temporary, "xb") if binary else open(temporary, "x", newline="", encoding="utf-8")
    except OSError as error:  # checked before the work where it matters (`check_writable`); still one sentence
        raise OutputError(f"Cannot write {path} ({error.strerror or error}); choose another output.") from None
    try:
        with handle:
            yield handle
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def replaced_folder(out: Path) -> Iterator[Path]:
    """A staging folder beside `out` to write a whole output folder into; when the block ends without an error it
    replaces `out` (a reader never sees half a folder, and a failure leaves `out` as it was)."""
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    yield staging
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
