"""int8 scoring: the int8 predictor behind the batch engine, how "auto" picks it (only where it is measured faster),
its refusals (absent, stale), heat maps from the same model in a float form, the CLI and the Space scoring with it
on every tab, and the Hub push shipping it with its card section.

The int8 files here are made from tiny random models with `allow_lossy` (their fidelity is not the point: it is
tests/test_quantization.py's); each is made once per module.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memorability.cli import main
from memorability.explain import analyse
from memorability import forms
from memorability.inference import Int8Predictor, MemorabilityPredictor, explainer, load_predictor
from memorability.int8 import INT8_FILE, RECORD_FILE, Int8Error, Int8Session
from memorability.publishing import stage_model
from memorability.quantization import quantize_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_backbones import save_tiny_model  # noqa: E402

TEMPLATE = Path(__file__).resolve().parents[1] / "model_card.md"


def photos(count: int, seed: int = 0) -> list[Image.Image]:
    """Smooth random pictures (8×8 noise enlarged), so that scores differ between them."""
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((48, 40), Image.BILINEAR)
        for _ in range(count)
    ]


def measured_speeds(monkeypatch, int8: float, floats: float = 100.0) -> list[str]:
    """What the forms' measurement finds, set by the test (images per second: int8's, and every float form's); the
    list of what was measured grows as it runs."""
    measured = []

    def measure(run, pixels):
        is_int8 = isinstance(getattr(run, "__self__", None), Int8Session)
        measured.append("int8" if is_int8 else "float")
        return int8 if is_int8 else floats

    monkeypatch.setattr(forms, "images_per_second", measure)
    return measured


@pytest.fixture
def int8_pays(monkeypatch, tmp_path) -> list[str]:
    """A CPU where the int8 file runs twice as fast as any float form (a cache of its own)."""
    monkeypatch.setenv("MEMORABILITY_CACHE", str(tmp_path / "cache"))
    return measured_speeds(monkeypatch, int8=200.0)


@pytest.fixture(scope="module")
def int8_model(tiny_model_dir, tmp_path_factory) -> Path:
    """The tests' tiny model with its int8 file."""
    folder = tmp_path_factory.mktemp("int8_model")
    shutil.copytree(tiny_model_dir, folder, dirs_exist_ok=True)
    quantize_model(folder, allow_lossy=True)
    return folder


def test_the_int8_predictor_scores_through_the_batch_engine(int8_model):
    predictor = load_predictor(int8_model, precision="int8")
    assert isinstance(predictor, Int8Predictor) and isinstance(predictor, MemorabilityPredictor)
    assert predictor.dtype.startswith("int8 ") and predictor.device.type == "cpu"
    pictures = photos(5)
    output = predictor.forward(predictor.preprocess(pictures))
    assert output.scores.shape == (5,) and output.embeddings.shape == (5, 16) and output.uncertainty.shape == (5,)
    assert all(value.dtype == torch.float32 for value in output.values())
    scores = predictor.predict(pictures)  # the batch engine, a batch of 2 at a time
    predictor.batch_size = 2
    assert np.allclose(predictor.predict(pictures), scores, atol=1e-6)
    assert np.allclose(scores, output.scores.numpy(), atol=1e-6)
    reference = load_predictor(int8_model, "cpu", "fp32").predict(pictures)
    assert np.abs(scores - reference).max() < 0.05  # int8, not something else: close to fp32 (tiny, random model)
    assert isinstance(predictor.predict(pictures[0]), float)


def test_int8_asked_for_where_there_is_none_or_off_the_cpu_is_one_sentence(tiny_model_dir, int8_model):
    with pytest.raises(Int8Error, match=r"has no int8 file \(onnx/model_int8.onnx\); make it with `memorability quantize"):
        load_predictor(tiny_model_dir, precision="int8")
    with pytest.raises(Int8Error, match="int8 runs on the CPU"):
        load_predictor(int8_model, "cuda", precision="int8")


def test_an_int8_file_made_from_another_model_is_refused(int8_model, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(int8_model, folder)
    assert load_predictor(folder, precision="int8")  # a copy is the same model
    save_tiny_model(folder, "resnet", seed=1)  # another model saved into the folder; the old int8 file stays
    with pytest.raises(Int8Error, match="made from another model than the one now beside it"):
        load_predictor(folder, precision="int8")
    assert not isinstance(load_predictor(folder, "cpu"), Int8Predictor)  # auto passes over a stale file, saying why
    assert "warning: not scoring in int8: " in capsys.readouterr().err
    with pytest.raises(Int8Error, match="made from another model"):  # and a stale file is never published
        stage_model(folder, tmp_path / "staged", "org/model", TEMPLATE)
    (folder / RECORD_FILE).write_text("{ not json")  # an unreadable record: passed over the same way
    assert not isinstance(load_predictor(folder, "cpu"), Int8Predictor)
    assert capsys.readouterr().err.count("cannot read the int8 record") == 1


def test_a_processor_change_or_a_swapped_file_is_refused(int8_model, tmp_path):
    folder = shutil.copytree(int8_model, tmp_path / "model")
    config = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps(config | {"image_std": [0.5, 0.5, 0.5]}))
    with pytest.raises(Int8Error, match="other weights, config or image processor"):
        load_predictor(folder, precision="int8")
    shutil.copyfile(int8_model / "preprocessor_config.json", folder / "preprocessor_config.json")
    with open(folder / INT8_FILE, "ab") as handle:  # a file that is not the one its record describes
        handle.write(b"\0")
    with pytest.raises(Int8Error, match="is not the file its record describes"):
        load_predictor(folder, precision="int8")


def test_auto_leaves_a_lossy_file_alone_unless_asked(int8_model, tmp_path, int8_pays):
    folder = shutil.copytree(int8_model, tmp_path / "model")
    record = json.loads((folder / RECORD_FILE).read_text())
    (folder / RECORD_FILE).write_text(json.dumps(record | {"meets_thresholds": False}))  # kept with --allow-lossy
    assert not isinstance(load_predictor(folder, "cpu"), Int8Predictor)
    assert isinstance(load_predictor(folder, "cpu", "int8"), Int8Predictor)  # asked for by name: used


def test_auto_picks_int8_only_where_it_is_measured_to_pay(int8_model, tiny_model_dir, monkeypatch, tmp_path):
    """int8 runs 1.19x the bare bf16 network on an AMX CPU, no faster than our own bf16: there it must not be
    chosen. The measurement is made once per CPU and architecture, then read from the cache."""
    monkeypatch.setenv("MEMORABILITY_CACHE", str(tmp_path / "slow"))
    measured = measured_speeds(monkeypatch, int8=105.0)  # 1.05x the best float form: under the 1.1x margin
    assert not isinstance(load_predictor(int8_model, "cpu"), Int8Predictor) and "int8" in measured
    monkeypatch.setenv("MEMORABILITY_CACHE", str(tmp_path / "fast"))
    measured = measured_speeds(monkeypatch, int8=200.0)
    predictor = load_predictor(int8_model, "cpu")
    assert isinstance(predictor, Int8Predictor) and predictor.form.label == "int8 (ONNX Runtime)"
    count = len(measured)
    assert isinstance(load_predictor(int8_model, "cpu"), Int8Predictor) and len(measured) == count  # cached
    assert not isinstance(load_predictor(tiny_model_dir, "cpu"), Int8Predictor)  # no int8 file
    assert load_predictor(int8_model, "cpu", "fp32").dtype == torch.float32  # asked for
    assert not isinstance(load_predictor(int8_model, "cpu", compile=True), Int8Predictor)


def test_heat_maps_of_an_int8_score_come_from_the_same_model_in_a_float_form(int8_model):
    int8 = load_predictor(int8_model, precision="int8")
    with pytest.raises(ValueError, match="int8 \\(ONNX Runtime\\) network has no gradients: pass an explainer"):
        analyse(int8, photos(1)[0])
    torch_twin = explainer(int8)
    assert torch_twin.supports_gradients and torch_twin.model is int8.model and torch_twin.processor is int8.processor
    analysis = analyse(int8, photos(1)[0], explainer=torch_twin)
    assert analysis.score == pytest.approx(int8.predict(photos(1)[0]), abs=1e-6) and analysis.heat_map.size
    plain = load_predictor(int8_model, "cpu", "fp32")
    assert explainer(plain) is plain


def test_the_cli_scores_in_int8_where_it_pays_and_a_precision_change_rescores(int8_model, tmp_path, capsys, int8_pays):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, picture in enumerate(photos(4)):
        picture.save(folder / f"photo_{index}.png")
    out = tmp_path / "scores.csv"
    arguments = ["predict", str(folder), "--model", str(int8_model), "--out", str(out), "--num-workers", "0"]
    assert main([*arguments, "--keep-parts"]) == 0
    manifest = json.loads((tmp_path / "scores.csv.parts" / "manifest.json").read_text())
    assert manifest["precision"] == load_predictor(int8_model, precision="int8").dtype
    assert json.loads((tmp_path / "scores.run.json").read_text())["precision"] == "int8 (ONNX Runtime)"
    int8_scores = [float(line.split(",")[1]) for line in out.read_text().splitlines()[1:]]
    expected = load_predictor(int8_model, precision="int8").predict([str(path) for path in sorted(folder.iterdir())])
    assert np.allclose(int8_scores, expected, atol=2e-6)
    capsys.readouterr()
    assert main([*arguments, "--precision", "fp32"]) == 0
    assert "holds parts of another run" in capsys.readouterr().out  # int8 parts are never reused for fp32
    fp32_scores = [float(line.split(",")[1]) for line in out.read_text().splitlines()[1:]]
    assert int8_scores != fp32_scores


def test_the_cli_refuses_int8_where_there_is_none_in_one_line(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    photos(1)[0].save(tmp_path / "photos" / "a.png")
    code = main(["predict", str(tmp_path / "photos"), "--model", str(tiny_model_dir), "--precision", "int8",
                 "--out", str(tmp_path / "scores.csv")])  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "memorability quantize" in error
    assert not (tmp_path / "scores.csv").exists()


def test_the_push_ships_the_int8_file_and_the_card_says_what_it_costs(int8_model, tiny_model_dir, tmp_path):
    staged = stage_model(int8_model, tmp_path / "staged", "org/model", TEMPLATE)
    assert (staged / INT8_FILE).read_bytes() == (int8_model / INT8_FILE).read_bytes()
    record = json.loads((staged / RECORD_FILE).read_text())
    assert isinstance(load_predictor(staged, precision="int8"), Int8Predictor)  # the pair checks out in the copy
    card = (staged / "README.md").read_text()
    assert "## int8 scoring on the CPU" in card and "calibrated on" in card
    assert f"| Spearman ρ, int8 against fp32 scores | {record['fidelity']['spearman']:.4f} |" in card
    assert ("below the fidelity thresholds" in card) is (not record["meets_thresholds"])
    plain = stage_model(tiny_model_dir, tmp_path / "plain", "org/model", TEMPLATE)
    assert not (plain / "onnx").exists() and "int8" not in (plain / "README.md").read_text()


def test_the_space_scores_in_int8_on_every_tab_and_heat_maps_stay_in_torch(trained_sample_model, tmp_path, int8_pays):
    from space_server import EXAMPLES, imported_app

    from memorability.images import load_image

    folder = shutil.copytree(trained_sample_model, tmp_path / "model")
    assert quantize_model(folder)["meets_thresholds"]  # the demo model's recipe: within the thresholds
    photos = sorted(EXAMPLES.glob("*.jpg"))[:2]
    with imported_app(folder, None, tmp_path / "uploads") as app:
        assert isinstance(app.SCORER, Int8Predictor) and not isinstance(app.EXPLAINER, Int8Predictor)
        table, _, precision = app.score_batch([str(photo) for photo in photos])
        int8 = load_predictor(folder, precision="int8")
        expected = [round(100 * int8.predict(load_image(photo)), 1) for photo in photos]
        assert list(table["score"]) == expected and precision == "int8 (ONNX Runtime)"
        assert app.score_photo(str(photos[0]))[0] == expected[0]  # the Score tab: the same network
        assert app.ablate_photo(str(photos[0]))[1]["score"][0] == expected[0]  # the Ablations tab's "original"
        assert "(the fp32" in app.HEAT_MAP_LABEL or "(the bf16" in app.HEAT_MAP_LABEL
        assert "int8 has no gradients" in app.about_text()
