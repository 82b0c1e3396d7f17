"""One photo, one score: the same real photos through every surface that shows or returns a score, with one model
folder, quantized and not, give the same score to the last digit each displays; and every surface says which
network gave it.

Surfaces: the Space's /score, /ablations ("original" row) and /batch, `memorability predict`'s CSV and its run
record, and `train/evaluate.py`. The network is chosen once per process by the same measured rule
(memorability.forms); the measurement made here is cached and read by the Space, a process of its own.
"""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import handle_file
from space_server import EXAMPLES, running_space

from memorability import forms
from memorability.cli import main as cli_main
from memorability.inference import Int8Predictor, load_predictor
from memorability.int8 import Int8Session
from memorability.quantization import quantize_model
from train.evaluate import main as evaluate_main

PHOTOS = sorted(EXAMPLES.glob("*.jpg"))  # scikit-image's astronaut, coffee, chelsea and rocket


def displayed(score: float) -> float:
    """A score as the Space shows it: 0–100 to one decimal."""
    return round(100 * score, 1)


@pytest.fixture(scope="module", params=["float", "int8"])
def model(request, trained_sample_model, tmp_path_factory) -> tuple[Path, str]:
    """The trained sample model as it is, or with its int8 file on a CPU where int8 is measured to pay (the choice
    cached for the processes started below): the folder and the form every surface must use."""
    folder = shutil.copytree(trained_sample_model, tmp_path_factory.mktemp("one_score") / "model")
    if request.param == "int8":
        assert quantize_model(folder)["meets_thresholds"]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(forms, "images_per_second", lambda run, pixels: 200.0 if isinstance(
                getattr(run, "__self__", None), Int8Session) else 100.0)  # fmt: skip
            predictor = load_predictor(folder, "cpu")
        assert isinstance(predictor, Int8Predictor)
    else:
        predictor = load_predictor(folder, "cpu")
    return folder, predictor.form.label


def cli_scores(folder: Path, tmp_path: Path) -> tuple[dict[str, float], dict]:
    out = tmp_path / "scores.csv"
    assert cli_main(["predict", *map(str, PHOTOS), "--model", str(folder), "--out", str(out)]) == 0
    with out.open(newline="") as handle:
        scores = {Path(row["path"]).name: float(row["score"]) for row in csv.DictReader(handle)}
    return scores, json.loads((tmp_path / "scores.run.json").read_text())


def evaluated(folder: Path, tmp_path: Path) -> dict:
    """train/evaluate.py on the photos, given made-up human scores as a test split: what it records."""
    table = tmp_path / "photos.csv"
    rows = [f"{photo},{0.5 + index / 10},test" for index, photo in enumerate(PHOTOS)]
    table.write_text("image,score,split\n" + "\n".join(rows) + "\n")
    assert evaluate_main([str(folder), "--data", str(table), "--out-dir", str(tmp_path / "eval"), "--num-workers",
                          "0"]) == 0  # fmt: skip
    return json.loads((tmp_path / "eval" / "eval_results.json").read_text())


def test_every_surface_gives_a_photo_the_same_score(model, tmp_path):
    folder, form = model
    predict, record = cli_scores(folder, tmp_path)
    assert record["precision"] == form and not record["demo_model"]
    with running_space(folder, None, tmp_path / "space") as server:
        client = server.client(download=False)
        for photo in PHOTOS:
            expected = displayed(predict[photo.name])
            score, *_, precision = client.predict(handle_file(photo), "gradcam++", 0.5, api_name="/score")
            _, table, _, _, ablations_precision = client.predict(handle_file(photo), api_name="/ablations")
            assert (score, table["data"][0][:2]) == (expected, ["original", expected]), photo.name
            assert precision == ablations_precision == form
        batch, _, batch_precision = client.predict([handle_file(photo) for photo in PHOTOS], api_name="/batch")
        assert {row[0]: row[1] for row in batch["data"]} == {name: displayed(s) for name, s in predict.items()}
        assert batch_precision == form
    evaluation = evaluated(folder, tmp_path)
    assert evaluation["precision"] == form and evaluation["splits"]["1"]["n"] == len(PHOTOS)


def test_a_fallback_to_the_demo_model_is_said_and_recorded(trained_sample_model, tmp_path, monkeypatch):
    """Without --model, the demo model scored and nothing said so; its CSV looked like a real result."""
    from memorability.cache_paths import DEMO_MARKER, DEMO_NOTICE, demo_model_dir

    monkeypatch.setenv("MEMORABILITY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MEMORABILITY_MODEL", raising=False)
    shutil.copytree(trained_sample_model, demo_model_dir())
    (demo_model_dir() / DEMO_MARKER).write_text(DEMO_NOTICE)
    out = tmp_path / "scores.csv"
    result = subprocess.run([sys.executable, "-m", "memorability.cli", "predict", str(PHOTOS[0]), "--out", str(out)],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: no model given")]
    assert len(warnings) == 1 and "mean nothing about memorability" in warnings[0] and "--model" in warnings[0]
    record = json.loads((tmp_path / "scores.run.json").read_text())
    assert record["demo_model"] is True and record["model"] == "the demo model"
    assert "say nothing about real photographs" in record["demo_notice"]
