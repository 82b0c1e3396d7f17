"""What the Space does with people's files, and what loading a model may do.

Uploads stay in the app's private temporary folder, are deleted once older than the cache age and with the folder at
exit; a user's file name is never a path, nor can a request point the app at a server file, a URL or inline data; a
file is refused by its size before it is read, and one swept while its request waited is said to have expired; a
zip's escaping entries are refused, never extracted, and many zips in one request are refused from their directories
before any is read. No code of ours unpickles, and a model folder holding a pickle or a damaged safetensors file is
refused without running anything. These requests are sent over plain HTTP, as any client may send them.
"""

import base64
import re
import shutil
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

import pytest
import torch
from gradio_client import handle_file
from space_server import EXAMPLES, PROJECT, file_data, running_space, stop_space, write_zip

from memorability.inference import ModelLoadError, load_predictor

CACHE_SECONDS = 2
SWEEP_WAIT_S = 20.0
PHOTO = EXAMPLES / "coffee.jpg"
OUR_CODE = ("memorability", "space", "train", "hub", "bench")
ONLY_UPLOADS = "This app scores only files uploaded to it, not links or inline data: upload the file itself."


@pytest.fixture(scope="module")
def sweeping_space(space_model, space_index, tmp_path_factory):
    """An app whose uploads are deleted once CACHE_SECONDS old (a Space: 300 s)."""
    work = tmp_path_factory.mktemp("sweeping_space")
    with running_space(space_model, space_index, work, MEMORABILITY_CACHE_SECONDS=str(CACHE_SECONDS)) as server:
        yield server


def private_folder(server) -> Path:
    """The app's own folder inside the GRADIO_TEMP_DIR it was given."""
    (folder,) = server.upload_dir.glob("memorability-uploads-*")
    return folder


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def arguments(api_name: str, file: dict) -> list:
    """The REST API's arguments of /score or /batch for one file."""
    return [file, "gradcam++", 0.5] if api_name == "score" else [[file]]


def copies_of(name: str, server) -> list[Path]:
    """Every file called `name` in the places an app could write to: its working folder (which holds its upload
    folder), Gradio's default cache, and the top two levels of the system's temporary folder."""
    system = Path(tempfile.gettempdir())
    trees = [place for place in (server.upload_dir.parent, system / "gradio") if place.is_dir()]
    near_the_top = [*system.glob(name), *system.glob(f"*/{name}")]
    return [path for tree in trees for path in tree.rglob(name)] + near_the_top


def test_uploads_stay_in_the_private_folder_and_are_swept(sweeping_space, tmp_path):
    folder = private_folder(sweeping_space)
    before = files_under(folder)
    photo = tmp_path / f"private-{uuid.uuid4().hex}.jpg"
    shutil.copy(PHOTO, photo)
    sweeping_space.upload(photo.name, photo.read_bytes())
    copies = copies_of(photo.name, sweeping_space)  # at once: the sweep may take it CACHE_SECONDS later
    assert copies and all(path.is_relative_to(folder) for path in copies)
    client = sweeping_space.client()
    client.predict(handle_file(photo), "gradcam++", 0.5, api_name="/score")
    client.predict([handle_file(photo)], api_name="/batch")
    assert all(path.is_relative_to(folder) for path in copies_of(photo.name, sweeping_space))
    deadline = time.monotonic() + SWEEP_WAIT_S
    while files_under(folder) - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not files_under(folder) - before, "uploads and results outlived the cache age"


def test_a_user_file_name_is_never_a_path(sweeping_space):
    name = f"escape-{uuid.uuid4().hex}.jpg"
    hostile = "../" * 6 + name
    stored = sweeping_space.upload(hostile, PHOTO.read_bytes())
    assert Path(stored).is_relative_to(private_folder(sweeping_space))
    kind, data = sweeping_space.call("score", [file_data(stored, hostile), "gradcam++", 0.5])
    assert kind == "complete" and 0 <= data[0] <= 100
    assert all(path.is_relative_to(private_folder(sweeping_space)) for path in copies_of(name, sweeping_space))


def test_a_request_cannot_point_the_app_at_a_server_file(sweeping_space):
    """A real photo beside the upload folder, which the app would score if it read it; the refusal names no path."""
    secret = sweeping_space.upload_dir.parent / f"secret-{uuid.uuid4().hex}.jpg"
    shutil.copy(PHOTO, secret)
    kind, data = sweeping_space.call("score", [file_data(str(secret), "photo.jpg"), "gradcam++", 0.5])
    assert kind == "error" and secret.name not in str(data)
    uploaded = file_data(sweeping_space.upload("photo.jpg", secret.read_bytes()))
    assert sweeping_space.call("score", [uploaded, "gradcam++", 0.5])[0] == "complete"  # the same bytes, uploaded


@pytest.mark.parametrize("api_name", ["score", "heatmap", "ablations"])
def test_a_payload_without_gradios_marker_cannot_point_at_a_server_file(sweeping_space, api_name):
    """Gradio checks a path against its upload folder only in payloads marked `gradio.FileData`; an image payload
    without the marker reaches the app with any path, which it would score and show back."""
    secret = sweeping_space.upload_dir.parent / f"secret-{uuid.uuid4().hex}.jpg"
    shutil.copy(PHOTO, secret)
    for path in (str(secret), "https://example.invalid/photo.jpg"):
        unmarked = {"path": path, "orig_name": "photo.jpg"}
        kind, data = sweeping_space.call(api_name, [unmarked] if api_name == "ablations" else [unmarked, "gradcam++", 0.5])
        assert (kind, data["error"]) == ("error", ONLY_UPLOADS), path


def test_inline_data_is_refused_and_nothing_is_written(sweeping_space):
    """Gradio decodes a gr.Image payload's data: URL into a file of its cache that its sweep never removes."""
    folder = private_folder(sweeping_space)
    before = set(folder.rglob("*"))
    inline = "data:image/jpeg;base64," + base64.b64encode(PHOTO.read_bytes()).decode()
    kind, data = sweeping_space.call("score", arguments("score", {"url": inline, "meta": {"_type": "gradio.FileData"}}))
    assert kind == "error" and data["error"] == ONLY_UPLOADS, data  # Gradio scores the inline picture
    assert not set(folder.rglob("*")) - before


@pytest.mark.parametrize("api_name", ["score", "batch"])
def test_a_url_is_refused_without_being_fetched(sweeping_space, api_name):
    """Gradio downloads a payload's https:// path from any public server, into a folder it makes first."""
    folder = private_folder(sweeping_space)
    before = set(folder.rglob("*"))
    url = f"https://example.invalid/{api_name}.jpg"
    kind, data = sweeping_space.call(api_name, arguments(api_name, file_data(url)))
    assert (kind, data["error"]) == ("error", ONLY_UPLOADS)
    assert not set(folder.rglob("*")) - before


def test_a_file_over_the_size_limit_is_refused_by_its_size(sweeping_space):
    """A path may name any file in the upload folder, not only uploads (which Gradio caps at 20 MB): a sparse 21 MB
    file there is refused by its size, not read and found not to be an image."""
    big = private_folder(sweeping_space) / f"big-{uuid.uuid4().hex}.jpg"
    with big.open("wb") as handle:
        handle.truncate(21 * 2**20)
    try:
        kind, data = sweeping_space.call("score", arguments("score", file_data(str(big))))
    finally:
        big.unlink()
    assert (kind, data["error"]) == ("error", f"{big.name}: 21.0 MB is over the 20 MB limit for one file.")


@pytest.mark.parametrize("api_name", ["score", "batch"])
def test_an_upload_swept_while_its_request_waited_has_expired(sweeping_space, api_name):
    stored = Path(sweeping_space.upload(f"late-{uuid.uuid4().hex}.jpg", PHOTO.read_bytes()))
    deadline = time.monotonic() + SWEEP_WAIT_S
    while stored.exists() and time.monotonic() < deadline:
        time.sleep(0.25)
    kind, data = sweeping_space.call(api_name, arguments(api_name, file_data(str(stored))))
    assert (kind, data["error"]) == ("error", "The upload expired while it waited; upload it again.")
    assert stored.name not in sweeping_space.log_tail(100_000)


def test_many_zips_in_one_request_are_refused_before_any_is_read(sweeping_space, tmp_path):
    """Three zips that each unpack to 494 MB (26 members of 19 MB of zeros; 2.4 MB each), each under the former
    500 MB cap per zip: read, they would hold 1.5 GB. The request's budget (500 MB) refuses them from their
    directories alone, and the app's memory stays where it was."""
    archive = tmp_path / "zeros.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as writer:
        for number in range(26):
            writer.writestr(f"photos/{number:02d}.jpg", bytes(19 * 2**20))
    zips = [file_data(sweeping_space.upload(f"part{part}.zip", archive.read_bytes())) for part in range(3)]
    rss_before = sweeping_space.rss_bytes()
    kind, data = sweeping_space.call("batch", [zips])
    assert kind == "error" and data["error"].startswith("The images in these files come to more than 500 MB")
    assert sweeping_space.rss_bytes() - rss_before < 50 * 2**20


@pytest.mark.parametrize("entry", ["../{}", "../../../{}", "/tmp/{}", "..\\..\\{}", "photos/../../{}"])
def test_zip_slip_entries_are_refused_and_never_written(sweeping_space, tmp_path, entry):
    name = f"slip-{uuid.uuid4().hex}.jpg"
    archive = write_zip(tmp_path / "photos.zip", {entry.format(name): PHOTO.read_bytes(), "ok.jpg": PHOTO.read_bytes()})
    table, *_ = sweeping_space.client().predict([handle_file(archive)], api_name="/batch")
    rows = {row[0]: row for row in table["data"]}
    assert rows["ok.jpg"][1] is not None
    assert rows[entry.format(name)][1] is None and "zip-slip" in rows[entry.format(name)][2]
    assert not copies_of(name, sweeping_space)


def test_the_upload_folder_goes_when_the_app_stops(space_model, space_index, tmp_path):
    """An app of its own, stopped as a Space is stopped (SIGTERM), so that the other tests may run in any order."""
    with running_space(space_model, space_index, tmp_path / "stopping") as server:
        server.upload("photo.jpg", PHOTO.read_bytes())
        folder = private_folder(server)
        stop_space(server)
    assert server.process.returncode == 0, server.log_tail()
    assert not folder.exists() and server.upload_dir.is_dir()  # the folder given (it may be /tmp) stays


# --- Model files --------------------------------------------------------------------------------------------------

UNSAFE_LOADING = re.compile(r"pickle\.loads?\(|joblib\.load\(|dill\.loads?\(|allow_pickle\s*=\s*True")


def test_no_code_of_ours_unpickles():
    offenders = []
    for path in (path for top in OUR_CODE for path in (PROJECT / top).rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            unsafe_torch = "torch.load(" in line and "weights_only=True" not in line
            if unsafe_torch or UNSAFE_LOADING.search(line):
                offenders.append(f"{path.relative_to(PROJECT)}:{number}: {line.strip()}")
    assert not offenders, "loading that can run code:\n" + "\n".join(offenders)


class Payload:
    """Unpickled, it creates the file `marker`: proof that a loader ran code from the model file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture
def pickled_model(tiny_model_dir, tmp_path) -> tuple[Path, Path]:
    """A model folder whose only weights are a pytorch_model.bin carrying a payload; and the payload's marker."""
    folder = tmp_path / "pickled_model"
    folder.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(tiny_model_dir / name, folder / name)
    marker = tmp_path / "payload_ran"
    torch.save({"weights": Payload(marker)}, folder / "pytorch_model.bin")
    return folder, marker


def test_a_pickled_model_is_refused_without_running_its_payload(pickled_model):
    """load_model asks for safetensors only: a .bin is never opened, and transformers' OSError becomes ModelLoadError.
    The payload is live: a trusting loader runs it."""
    folder, marker = pickled_model
    with pytest.raises(ModelLoadError) as caught:
        load_predictor(folder)
    assert str(folder) in str(caught.value) and "\n" not in str(caught.value) and not marker.exists()
    torch.load(folder / "pytorch_model.bin", weights_only=False)
    assert marker.exists()


def test_a_truncated_safetensors_file_is_refused_with_one_sentence(tiny_model_dir, tmp_path):
    """A SafetensorError from a damaged file becomes one ModelLoadError sentence."""
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "truncated"))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError) as caught:
        load_predictor(folder)
    assert str(folder) in str(caught.value) and "\n" not in str(caught.value)
