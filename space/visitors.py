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
from memorability.runtime import MemoryCeiling

UPLOAD_ROOT = Path(os.environ["GRADIO_TEMP_DIR"]).resolve()
MAX_FILE_BYTES = 20 * 2**20  # one upload, one photo, one image inside a zip
# A request's body, other than an upload's files: an event's JSON names files and settings, a few kB. Refused past
# this before it is read, so that a 150 MB body costs nothing.
MAX_BODY_BYTES = 2 * 2**20
LOG = logging.getLogger("memorability.space")
UNEXPECTED = "Something went wrong on our side; please try again in a moment."
ONLY_UPLOADS = "This app scores only files uploaded to it, not links or inline data: upload the file itself."
EXPIRED = "The upload expired while it waited; upload it again."
MALFORMED = "This request could not be read; send photos through the page or Gradio's API client."


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
        if "\0" in payload.path or is_http_url_like(payload.path) or not inside_uploads(payload.path):
            raise refusal(ONLY_UPLOADS)
        try:
            size = os.stat(payload.path).st_size
        except FileNotFoundError:
            raise refusal(EXPIRED) from None
        except OSError:  # a name too long, a component that is a file ...: not an upload of ours either
            raise refusal(ONLY_UPLOADS) from None
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


def inside_uploads(path: str) -> bool:
    """Whether `path` names a file under our upload folder, links resolved."""
    try:
        return Path(path).resolve().is_relative_to(UPLOAD_ROOT)
    except (OSError, ValueError, RuntimeError):  # a loop of links, a name the system refuses
        return False


class UploadedFiles(UploadedOnly, gr.File):
    """gr.File (several files) that hands over the paths of the uploads in Gradio's cache as they are. Gradio's own
    "filepath" preprocessing leaves an empty temporary file behind per upload, which its cache sweep never removes;
    checking the file types is our loader's job (one error row per file). A list of more than `max_files` is
    refused with `too_many` before any of its files is looked at (`VisitorBlocks.preprocess_data`)."""

    max_files: int | None = None
    too_many = ""

    def limited(self, max_files: int, too_many: str) -> "UploadedFiles":
        """This component, refusing lists of more than `max_files` with the sentence `too_many`. (Not `__init__`
        arguments: Gradio sends a component's `__init__` parameters to the page as its properties.)"""
        self.max_files, self.too_many = max_files, too_many
        return self

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
            LOG.error("%s failed: %s (its message is not logged)", function.__name__, kind_and_place(error))
            raise refusal(UNEXPECTED) from None

    return event


def kind_and_place(error: BaseException) -> str:
    """"ValueError at app.py:12 score_photo < ...": what failed and where, without the message (which may quote what
    the visitor sent)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = " < ".join(f"{Path(frame.filename).name}:{frame.lineno} {frame.name}" for frame in frames[::-1])
    return f"{type(error).__name__} at {where}"


class VisitorBlocks(gr.Blocks):
    """gr.Blocks for the public: whatever fails while Gradio reads a request (a payload without `meta`, a path with
    a null byte or outside our uploads, malformed event data) reaches the visitor as one sentence and the log as one
    line with no word of the request, where Gradio would print a traceback quoting it. A list of files longer than
    its component's `max_files` is refused before Gradio checks a single path. After each request, memory a costly
    one freed is given back (`MemoryCeiling`: call `memory.settle()` once warmed up)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.memory = MemoryCeiling()

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        for block, value in zip(block_fn.inputs, inputs):
            if isinstance(value, list) and len(value) > (getattr(block, "max_files", None) or len(value)):
                raise refusal(block.too_many)
        return await super().preprocess_data(block_fn, inputs, state, explicit_call)

    async def process_api(self, *args, **kwargs):
        try:
            return await super().process_api(*args, **kwargs)
        except gr.Error as error:
            if not error.print_exception:
                raise
            raise refusal(error.message) from None  # Gradio's own refusals (a file it will not serve) print a traceback
        except Exception as error:  # noqa: BLE001 - the request was not one our events can read
            LOG.warning("Refused a request that could not be read: %s", kind_and_place(error))
            raise refusal(MALFORMED) from None
        finally:
            self.memory.check()


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 before the app reads it (by its declared
    length, or as it streams in), except on `exempt` paths (Gradio's upload route, which limits each file itself)."""

    def __init__(self, app, max_bytes: int, exempt: tuple[str, ...] = ("/upload",)):
        self.app, self.max_bytes, self.exempt = app, max_bytes, exempt

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].rstrip("/").endswith(self.exempt):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            return await self.refuse(send)
        messages, size = [], 0
        while True:  # buffer the (small) body, so that a chunked one over the limit is refused too
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self.refuse(send)
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)

    async def refuse(self, send) -> None:
        body = f"Request body over {self.max_bytes // 2**20} MB; upload photos as files.".encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
