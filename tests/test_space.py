"""The Space through its API (gradio_client against a launched app) and its event functions called directly.

Every named endpoint returns what its components promise, scores are the predictor's own, bad uploads come back as
our one-sentence error (and nothing in the log names them) and the app serves on, an unexpected failure reaches the
visitor as a generic sentence and the log as a line without their data, a zip's escaping entry is refused without a
file written, and a bad model, index or setting stops the start in one sentence.
"""

import logging
import os
import shutil
import subprocess
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
from space_server import APP, EXAMPLES, imported_app, write_zip

from memorability.images import WORKING_SHORT_SIDE, load_image
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
    score, summary, overlay, *galleries, precision = space_client.predict(
        handle_file(ASTRONAUT), "gradcam++", 0.5, api_name="/score"
    )
    assert score == app_score(predictor, ASTRONAUT) and precision == predictor.form.label
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
    pictures, table, chart, faces, precision = space_client.predict(handle_file(ASTRONAUT), api_name="/ablations")
    assert len(pictures) == 6 and all(Path(item["image"]).is_file() for item in pictures)
    assert table["headers"] == ["ablation", "score", "change"] and len(table["data"]) == 7
    assert table["data"][0] == ["original", app_score(predictor, ASTRONAUT), 0.0] and precision == predictor.form.label
    changes = [row[2] for row in table["data"][1:]]
    assert changes == sorted(changes)
    assert [row[0] for row in chart["data"]] == [row[0] for row in table["data"][1:]]
    assert faces.startswith(f"Original score {app_score(predictor, ASTRONAUT):.1f}.") and "0.9: 1; removed: 1." in faces


def test_batch_scores_photos_and_zips_and_refuses_zip_slip(space, space_client, predictor, tmp_path):
    escaping = f"../evil-{uuid.uuid4().hex}.jpg"
    archive = write_zip(
        tmp_path / "photos.zip", {"trip/coffee.jpg": COFFEE.read_bytes(), escaping: ASTRONAUT.read_bytes()}
    )
    table, csv, precision = space_client.predict([handle_file(archive), handle_file(ASTRONAUT)], api_name="/batch")
    assert precision == predictor.form.label
    rows = {row[0]: row[1:] for row in table["data"]}
    assert rows["trip/coffee.jpg"] == [app_score(predictor, COFFEE), ""]
    assert rows["astronaut.jpg"] == [app_score(predictor, ASTRONAUT), ""]
    assert rows[escaping][0] is None and "zip-slip" in rows[escaping][1]
    assert pd.read_csv(csv).shape == (3, 3)
    name = Path(escaping).name
    assert not list(space.upload_dir.parent.rglob(name)) and not (Path(tempfile.gettempdir()) / name).exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"These are my holiday notes, not a picture.\n", "not an image format we can read"),
        (b"", "the file is empty (0 bytes)."),
    ],
)
def test_bad_upload_gets_our_sentence_and_the_app_serves_on(space, space_client, predictor, tmp_path, content,
                                                            message):  # fmt: skip
    bad = tmp_path / f"holiday-{uuid.uuid4().hex}.jpg"
    bad.write_bytes(content)
    with pytest.raises(AppError) as caught:
        space_client.predict(handle_file(bad), "gradcam++", 0.5, api_name="/score")
    assert f"{bad.name}: {message}" in str(caught.value) and "Traceback" not in str(caught.value)
    assert bad.stem not in space.log_tail(100_000), "the log names the visitor's file"
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
    """space/app.py imported in this process, on the test model and index."""
    with imported_app(space_model, space_index, tmp_path_factory.mktemp("app_uploads")) as module:
        yield module


def test_score_photo_takes_a_picture(app, predictor):
    photo = Image.open(COFFEE)
    score, summary, overlay, similar, memorable, forgettable, _, _ = app.score_photo(photo, "gradcam", 0.5)
    assert score == app_score(predictor, photo) and f"Memorability {score:.1f} / 100" in summary
    assert isinstance(overlay, Image.Image) and len(similar) == len(memorable) == len(forgettable) == 6


def test_the_opacity_slider_reblends_the_last_map_without_the_model(app, monkeypatch):
    _, _, shown, *_, last_map = app.score_photo(str(COFFEE), "gradcam++", 0.5)
    monkeypatch.setattr(app, "SCORER", None)  # any use of the model would fail now
    monkeypatch.setattr(app, "EXPLAINER", None)
    lighter = app.reblend(last_map, 0.2)
    view, cam = last_map
    assert lighter.tobytes() == app.display(app.overlay(view, cam, 0.2)).tobytes() != shown.tobytes()
    assert app.reblend(last_map, 0.5).tobytes() == shown.tobytes()


def test_standing_reads_as_words_at_the_extremes(app):
    assert app.standing(100.0, 600) == "Higher than all of the model's predictions on 600 reference images"
    assert app.standing(0.2, 1200).startswith("Lower than all of") and "1,200 reference images" in app.standing(0, 1200)
    assert app.standing(42.4, 600).startswith("Higher than 42% of")


def test_score_photo_without_a_photo_asks_for_one(app):
    with pytest.raises(gr.Error, match="Upload a photo first"):
        app.score_photo(None)


def test_ablate_photo_sorts_by_change_and_names_the_face_detector(app):
    pictures, table, chart, faces, _ = app.ablate_photo(str(COFFEE))
    assert len(pictures) == 6 and list(table["change"][1:]) == sorted(table["change"][1:])
    assert "Faces found by MTCNN (facenet-pytorch 2.6.0, MIT licence), face probability above 0.9: 0" in faces


def test_ablations_of_a_camera_size_photo_work_on_a_bounded_copy(app, tmp_path):
    """Seven full copies of a 50 MP photo would hold about 1 GB per request: they are made of the loader's working
    copy, the picture the Score tab scores."""
    big = tmp_path / "big.jpg"
    Image.open(COFFEE).resize((7000, 4667)).save(big, quality=60)
    pictures, *_ = app.ablate_photo(str(big))
    assert all(picture.size == (875, 584) for picture, _ in pictures)
    assert all(WORKING_SHORT_SIDE <= min(picture.size) < 2 * WORKING_SHORT_SIDE for picture, _ in pictures)


def test_ablations_take_every_photo_the_score_tab_takes(app, tmp_path):
    """A 10:1 photo scores; shrunk to 1,024 px by rounding (1024×102), it was refused as a strip naming "the image".
    The working copy is reduced rounding up, so the ratio never grows past the limit the original met."""
    wide = tmp_path / "exactly-ten-to-one.png"
    Image.open(COFFEE).resize((22360, 2236)).save(wide)
    score, *_ = app.score_photo(str(wide))
    pictures, table, *_ = app.ablate_photo(str(wide))
    assert 0 <= score <= 100 and len(pictures) == 6


def test_ablations_name_the_file_they_refuse(app, tmp_path):
    thin = tmp_path / "eleven-to-one.png"
    Image.new("RGB", (1100, 100)).save(thin)
    with pytest.raises(gr.Error, match="eleven-to-one.png: 1100×100 is a 11.0:1 strip"):
        app.ablate_photo(str(thin))


@pytest.fixture
def visitors(app):
    """space/visitors.py as the imported app uses it."""
    return sys.modules["visitors"]


def test_an_unexpected_failure_is_a_generic_sentence_and_a_log_line_without_the_file(app, visitors, monkeypatch,
                                                                                    caplog, tmp_path):  # fmt: skip
    photo = tmp_path / "holiday-in-nice.jpg"
    shutil.copy(COFFEE, photo)

    def broken(*args, **kwargs):
        raise RuntimeError(f"cannot analyse {photo}")

    monkeypatch.setattr(app, "analyse", broken)
    with caplog.at_level(logging.ERROR, logger="memorability.space"), pytest.raises(gr.Error) as caught:
        app.score_photo(str(photo))
    assert caught.value.message == visitors.UNEXPECTED and not caught.value.print_exception
    assert "score_photo failed: RuntimeError at" in caplog.text and "holiday" not in caplog.text


def test_score_batch_writes_its_csv_in_the_upload_folder(app, predictor):
    table, csv, _ = app.score_batch([str(COFFEE), str(ASTRONAUT)])
    assert list(table["score"]) == [app_score(predictor, COFFEE), app_score(predictor, ASTRONAUT)]
    assert Path(csv).parent == Path(app.UPLOAD_DIR) and pd.read_csv(csv, keep_default_na=False).equals(table)


def test_score_batch_gives_a_damaged_zip_one_row_and_scores_the_rest(app, predictor, tmp_path):
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    table, _, _ = app.score_batch([str(damaged), str(COFFEE)])
    assert table["file"].tolist() == ["damaged.zip", "coffee.jpg"]
    assert table["error"].tolist() == ["damaged.zip: the zip is damaged or not a zip.", ""]
    assert pd.isna(table["score"][0]) and table["score"][1] == app_score(predictor, COFFEE)


def test_a_bad_setting_stops_the_start_in_one_sentence(app, monkeypatch):
    monkeypatch.setenv("MEMORABILITY_CONCURRENCY", "two")
    with pytest.raises(SystemExit) as caught:  # its message goes to stderr, and the exit status is 1
        app.setting("MEMORABILITY_CONCURRENCY", 2)
    assert caught.value.code == "space/app.py: MEMORABILITY_CONCURRENCY must be a whole number of at least 1, not 'two'."


@pytest.mark.parametrize("variable", ["MEMORABILITY_MODEL", "MEMORABILITY_INDEX"])
def test_a_bad_model_or_index_stops_the_start_in_one_sentence(space_model, tmp_path, variable):
    value = str(tmp_path / "missing")
    env = os.environ | {"MEMORABILITY_MODEL": str(space_model), "MEMORABILITY_INDEX": "", variable: value,
                        "GRADIO_TEMP_DIR": str(tmp_path / "uploads"), "HF_HUB_OFFLINE": "1"}  # fmt: skip
    started = subprocess.run([sys.executable, str(APP)], env=env, capture_output=True, text=True, timeout=300)
    last_line = started.stderr.strip().splitlines()[-1]
    assert started.returncode == 1 and "Traceback" not in started.stderr, started.stderr[-2000:]
    assert last_line.startswith("space/app.py: ") and value in last_line


@pytest.mark.parametrize("opacity", [float("nan"), float("inf"), -0.1, 1.5, "0.5", True])
def test_an_opacity_outside_zero_to_one_is_refused_before_the_model_runs(app, opacity, monkeypatch):
    monkeypatch.setattr(app, "analyse", lambda *args: pytest.fail("the model ran"))
    with pytest.raises(gr.Error, match="The opacity must be a number from 0 to 1."):
        app.score_photo(str(COFFEE), "gradcam++", opacity)


@pytest.mark.parametrize("index", [["a", "b"], [1, 2, 3], [], {"x": 1}, None, float("nan")])
def test_a_malformed_selection_is_refused_in_one_sentence(app, index):
    event = gr.SelectData(None, {"index": index, "value": None})
    with pytest.raises(gr.Error, match="This request could not be read"):
        app.on_select(event)
