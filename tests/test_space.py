"""The Space through its API (gradio_client against a launched app) and its event functions called directly.

Every named endpoint returns what its components promise, scores are the predictor's own, bad uploads come back as
our one-sentence error and the app serves on, and a zip's escaping entry is refused without a file written.
"""

import importlib.util
import sys
import tempfile
import uuid
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from space_server import APP, EXAMPLES, write_zip

from memorability.images import load_image
from memorability.inference import load_predictor

ASTRONAUT = EXAMPLES / "astronaut.jpg"
COFFEE = EXAMPLES / "coffee.jpg"


@pytest.fixture(scope="module")
def predictor(space_model):
    """The model as the app loads it (same precision), to check the app's numbers against."""
    return load_predictor(space_model)


def app_score(predictor, image) -> float:
    """What the app must show for an image: the predictor's score on 0–100, to 0.1."""
    return round(100 * predictor.predict(load_image(image)), 1)


def test_score_returns_score_summary_heat_map_and_three_galleries(space_client, predictor):
    score, summary, overlay, *galleries = space_client.predict(
        handle_file(ASTRONAUT), "gradcam++", 0.5, api_name="/score"
    )
    assert score == app_score(predictor, ASTRONAUT)
    assert summary.startswith(f"## Memorability {score:.1f} / 100\n") and "demo model" in summary
    assert Image.open(overlay).size == (384, 384)
    assert [len(gallery) for gallery in galleries] == [6, 6, 6]
    for item in (item for gallery in galleries for item in gallery):
        assert Image.open(item["image"]).width > 0 and item["caption"]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_heatmap_returns_the_overlay(space_client, method):
    overlay = space_client.predict(handle_file(COFFEE), method, 0.3, api_name="/heatmap")
    assert Image.open(overlay).mode == "RGB"


def test_ablations_return_pictures_table_chart_and_faces(space_client, predictor):
    pictures, table, chart, faces = space_client.predict(handle_file(ASTRONAUT), api_name="/ablations")
    assert len(pictures) == 6 and all(Path(item["image"]).is_file() for item in pictures)
    assert table["headers"] == ["ablation", "score", "change"] and len(table["data"]) == 6
    changes = [row[2] for row in table["data"]]
    assert changes == sorted(changes)
    assert [row[0] for row in chart["data"]] == [row[0] for row in table["data"]]
    assert faces.startswith(f"Original score {app_score(predictor, ASTRONAUT):.1f}.") and "Faces found: 1" in faces


def test_batch_scores_photos_and_zips_and_refuses_zip_slip(space, space_client, predictor, tmp_path):
    escaping = f"../evil-{uuid.uuid4().hex}.jpg"
    archive = write_zip(
        tmp_path / "photos.zip", {"trip/coffee.jpg": COFFEE.read_bytes(), escaping: ASTRONAUT.read_bytes()}
    )
    table, csv = space_client.predict([handle_file(archive), handle_file(ASTRONAUT)], api_name="/batch")
    rows = {row[0]: row[1:] for row in table["data"]}
    assert rows["trip/coffee.jpg"] == [app_score(predictor, COFFEE), ""]
    assert rows["astronaut.jpg"] == [app_score(predictor, ASTRONAUT), ""]
    assert rows[escaping][0] is None and "zip-slip" in rows[escaping][1]
    assert pd.read_csv(csv).shape == (3, 3)
    name = Path(escaping).name
    assert not list(space.upload_dir.parent.rglob(name)) and not (Path(tempfile.gettempdir()) / name).exists()


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("notes.jpg", b"These are my holiday notes, not a picture.\n", "notes.jpg: not an image format we can read"),
        ("empty.jpg", b"", "empty.jpg: the file is empty (0 bytes)."),
    ],
)
def test_bad_upload_gets_our_sentence_and_the_app_serves_on(space, space_client, predictor, tmp_path, filename,
                                                            content, message):  # fmt: skip
    bad = tmp_path / filename
    bad.write_bytes(content)
    with pytest.raises(AppError) as caught:
        space_client.predict(handle_file(bad), "gradcam++", 0.5, api_name="/score")
    assert message in str(caught.value) and "Traceback" not in str(caught.value)
    assert space.serving()
    assert space_client.predict(handle_file(COFFEE), "gradcam++", 0.5, api_name="/score")[0] == app_score(
        predictor, COFFEE
    )


def test_unknown_heat_map_method_is_refused(space_client):
    with pytest.raises(AppError, match="not in the list of choices"):
        space_client.predict(handle_file(COFFEE), "saliency", 0.5, api_name="/score")


# --- The event functions, called without a server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def app(space_model, space_index, tmp_path_factory):
    """space/app.py imported in this process, on the test model and index; the environment is restored after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMORABILITY_MODEL", str(space_model))
        patch.setenv("MEMORABILITY_INDEX", str(space_index))
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("app_uploads")))
        spec = importlib.util.spec_from_file_location("space_app", APP)
        module = importlib.util.module_from_spec(spec)
        patch.setitem(sys.modules, "space_app", module)  # Gradio looks its components' classes up by module
        spec.loader.exec_module(module)
        yield module


def test_score_photo_takes_a_picture(app, predictor):
    photo = Image.open(COFFEE)
    score, summary, overlay, similar, memorable, forgettable = app.score_photo(photo, "gradcam", 0.5)
    assert score == app_score(predictor, photo) and f"Memorability {score:.1f} / 100" in summary
    assert isinstance(overlay, Image.Image) and len(similar) == len(memorable) == len(forgettable) == 6


def test_standing_reads_as_words_at_the_extremes(app):
    assert app.standing(100.0, 600) == "Higher than all of the model's predictions on 600 reference images"
    assert app.standing(0.2, 1200).startswith("Lower than all of") and "1,200 reference images" in app.standing(0, 1200)
    assert app.standing(42.4, 600).startswith("Higher than 42% of")


def test_score_photo_without_a_photo_asks_for_one(app):
    with pytest.raises(gr.Error, match="Upload a photo first"):
        app.score_photo(None)


def test_ablate_photo_sorts_by_change(app):
    pictures, table, chart, faces = app.ablate_photo(str(COFFEE))
    assert len(pictures) == 6 and list(table["change"]) == sorted(table["change"]) and "Faces found: 0" in faces


def test_score_batch_writes_its_csv_in_the_upload_folder(app, predictor):
    table, csv = app.score_batch([str(COFFEE), str(ASTRONAUT)])
    assert list(table["score"]) == [app_score(predictor, COFFEE), app_score(predictor, ASTRONAUT)]
    assert Path(csv).parent == Path(app.UPLOAD_DIR) and pd.read_csv(csv, keep_default_na=False).equals(table)


def test_zip_members_reads_images_in_memory_and_refuses_escaping_entries(app, tmp_path):
    archive = write_zip(
        tmp_path / "mixed.zip",
        {"a/photo.jpg": b"jpeg", "../up.jpg": b"x", "/etc/abs.png": b"x", "notes.txt": b"skipped"},
    )
    members = {name: (data, error) for name, data, error in app.zip_members(str(archive))}
    assert members["a/photo.jpg"] == (b"jpeg", None)
    assert all(members[name][0] is None and "zip-slip" in members[name][1] for name in ("../up.jpg", "/etc/abs.png"))
    assert "notes.txt" not in members


def test_a_damaged_zip_is_one_error(app, tmp_path):
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(gr.Error, match="damaged or not a zip"):
        app.zip_members(str(damaged))
