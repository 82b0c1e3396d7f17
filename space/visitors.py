"""What stands between a visitor's request and the model: only files uploaded to this app are taken, and every
error reaches the visitor as one sentence while the log gets no word of what they sent.

Uploads live under GRADIO_TEMP_DIR, which app.py points at its private folder before Gradio (or this module) is
imported.
"""

import functools
import logging
import os
import traceback
from pathlib import Path

import gradio as gr
from gradio.data_classes import FileData, ImageData
from gradio_client.utils import is_http_url_like

from memorability.errors import MemorabilityError

UPLOAD_ROOT = Path(os.environ["GRADIO_TEMP_DIR"]).resolve()
MAX_FILE_BYTES = 20 * 2**20  # one upload, one photo, one image inside a zip
LOG = logging.getLogger("memorability.space")
UNEXPECTED = "Something went wrong on our side; please try again in a moment."
ONLY_UPLOADS = "This app scores only files uploaded to it, not links or inline data: upload the file itself."
EXPIRED = "The upload expired while it waited; upload it again."


def refusal(message: str) -> gr.Error:
    """The error a visitor sees, as one sentence; the log gets nothing (its text may name the visitor's file)."""
    return gr.Error(message, print_exception=False)


class UploadedOnly:
    """For our file inputs: only files uploaded to this app, checked before Gradio acts on a payload.

    Gradio itself would download a payload's `{"path": "https://..."}` from any public server, and decode a
    `{"url": "data:..."}` into a file that its cache sweep never removes; both are refused here, before either
    happens. A file's size is checked before anything reads it (a path may name any file in the cache), and a file
    the sweep removed while its request waited in the queue is said to have expired.
    """

    async def async_move_resource_to_block_cache(self, url_or_file_path: str | Path | None) -> str | None:
        if url_or_file_path is not None and is_http_url_like(str(url_or_file_path)):
            raise refusal(ONLY_UPLOADS)
        return await super().async_move_resource_to_block_cache(url_or_file_path)

    @staticmethod
    def uploaded_path(payload: FileData | ImageData) -> str:
        """The payload's file, if it is one Gradio keeps in our upload folder (an upload, or an example it copied
        there). Gradio checks a path only in payloads that declare themselves FileData; an ImageData payload without
        that `meta` reaches us with any path, so the check is made here, for every payload."""
        if not payload.path or (payload.url or "").startswith("data:"):  # gr.Image takes inline data without a path
            raise refusal(ONLY_UPLOADS)
        if is_http_url_like(payload.path) or not Path(payload.path).resolve().is_relative_to(UPLOAD_ROOT):
            raise refusal(ONLY_UPLOADS)
        try:
            size = os.stat(payload.path).st_size
        except FileNotFoundError:
            raise refusal(EXPIRED) from None
        if size > MAX_FILE_BYTES:
            name = Path(payload.path).name
            raise refusal(f"{name}: {size / 2**20:.1f} MB is over the {MAX_FILE_BYTES // 2**20} MB limit for one file.")
        return payload.path


class PhotoInput(UploadedOnly, gr.Image):
    """gr.Image that hands the uploaded file's path to our loader untouched (one clear sentence for a bad file).
    Used with type="filepath": Gradio's own opening and conversion would fail in its words, or drop transparency
    instead of compositing it on white."""

    def get_block_name(self) -> str:
        return "image"  # the stock front end: without this the page waits forever for a "photoinput" component

    def preprocess(self, payload: ImageData | None) -> str | None:
        return None if payload is None else self.uploaded_path(payload)


class UploadedFiles(UploadedOnly, gr.File):
    """gr.File (several files) that hands over the paths of the uploads in Gradio's cache as they are. Gradio's own
    "filepath" preprocessing leaves an empty temporary file behind per upload, which its cache sweep never removes;
    checking the file types is our loader's job (one error row per file)."""

    def get_block_name(self) -> str:
        return "file"

    def preprocess(self, payload) -> list[str] | None:
        return None if payload is None else [self.uploaded_path(file) for file in payload.root]


def answers_visitors(function):
    """An event function as visitors meet it: a user mistake (a `MemorabilityError`) comes back as its one sentence,
    anything unexpected as a generic one, logged as its kind and place in our code. Gradio would send the exception's
    own text (server paths) and print its traceback (the visitor's file name) instead."""

    @functools.wraps(function)
    def event(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except gr.Error:
            raise
        except MemorabilityError as error:
            raise refusal(str(error)) from None
        except Exception as error:  # noqa: BLE001 - whatever it is, the visitor gets a sentence and the log a line
            frames = traceback.extract_tb(error.__traceback__)
            where = " < ".join(f"{Path(frame.filename).name}:{frame.lineno} {frame.name}" for frame in frames[::-1])
            LOG.error("%s failed: %s at %s (its message is not logged)", function.__name__, type(error).__name__, where)
            raise refusal(UNEXPECTED) from None

    return event
