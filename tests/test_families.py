"""Every backbone family through every path a user takes: `memorability predict` on a folder, the neighbour index,
the ablation study and the Space's event functions, on tiny models with random weights (32-px inputs)."""

import csv

import numpy as np
import pytest
from PIL import Image
from space_server import imported_app
from tiny_backbones import FAMILIES, save_tiny_model

from memorability.cli import main as cli
from memorability.data import load_lamem
from memorability.inference import load_predictor
from memorability.neighbours import NeighbourIndex, build_neighbour_index
from memorability.study import StudyConfig, run_study

PHOTOS = 12  # the study computes statistics from 10 images on


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for index in range(PHOTOS):
        pixels = np.random.default_rng(index).integers(0, 256, size=(40 + 4 * index, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{index}.png")
    return folder


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request, tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp(request.param) / "model", request.param)


def test_predict_on_a_folder(family_model, photos, tmp_path):
    out = tmp_path / "scores.csv"
    assert cli(["predict", str(photos), "--model", str(family_model), "--out", str(out), "--precision", "fp32",
                "--num-workers", "0"]) == 0  # fmt: skip
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    paths = sorted(photos.iterdir())
    assert [row["path"] for row in rows] == [str(path) for path in paths]
    expected = load_predictor(family_model, precision="fp32").predict(paths)
    np.testing.assert_allclose([float(row["score"]) for row in rows], expected, atol=1e-6)


def test_neighbour_index(family_model, lamem_folder, tmp_path):
    predictor = load_predictor(family_model, precision="fp32")
    images = load_lamem(lamem_folder, split=1)["train"].select(range(12))
    build_neighbour_index(predictor, images, progress=False).save(tmp_path / "index")
    index = NeighbourIndex.load(tmp_path / "index", predictor=predictor)
    first = images[3]["image"]
    assert index.similar(first, k=3)[0].image_id == images[3]["image_id"]


def test_ablation_study(family_model, photos, tmp_path):
    config = StudyConfig(model=str(family_model), out_dir=str(tmp_path), images=str(photos),
                         ablations=["blur", "grayscale"], n_resamples=200, examples=1, progress=False)  # fmt: skip
    results = run_study(config)
    assert results["n_images"] == PHOTOS and set(results["groups"]["all"]["ablations"]) == {"blur", "grayscale"}
    assert (tmp_path / "examples.png").is_file() and (tmp_path / "report.md").is_file()


def test_the_space_serves_it(family_model, lamem_folder, photos, tmp_path):
    predictor = load_predictor(family_model)
    images = load_lamem(lamem_folder, split=1)["train"].select(range(12))
    build_neighbour_index(predictor, images, progress=False).save(tmp_path / "index")
    photo = str(sorted(photos.iterdir())[0])
    with imported_app(family_model, tmp_path / "index", tmp_path / "uploads") as app:
        score, summary, overlay, similar, *_ = app.score_photo(photo)
        assert score == pytest.approx(100 * predictor.predict(photo), abs=0.051) and overlay.width > 0 and similar
        pictures, table, *_ = app.ablate_photo(photo)
        assert len(pictures) == 6 and len(table) == 7 and table["score"][0] == score  # the original, then six
        batch, *_ = app.score_batch([photo])
        assert batch["score"][0] == score
