"""Making the int8 file (`memorability quantize`): the exact fp32 export, the fidelity arithmetic, the refusal of a
lossy file (nothing written), the record, and the CLI's one-line answers.

Quantizing is slow per model (about 5 s for a tiny one), so each model is quantized once per module.
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memorability import quantization
from memorability.cli import main
from memorability.inference import load_model
from memorability.fingerprint import model_fingerprint
from memorability.int8 import INT8_FILE, RECORD_FILE, file_digest
from memorability.modeling_memorability import MemorabilityOutput
from memorability.quantization import QuantizationError, export_fp32, measure_fidelity, quantize_model, run_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_backbones import save_tiny_model  # noqa: E402


def outputs(scores, embeddings) -> MemorabilityOutput:
    scores = torch.as_tensor(scores, dtype=torch.float32)
    return MemorabilityOutput(
        scores=scores, embeddings=torch.as_tensor(embeddings, dtype=torch.float32), uncertainty=torch.zeros_like(scores)
    )


def test_fidelity_of_identical_outputs_is_perfect():
    generator = torch.Generator().manual_seed(0)
    reference = outputs(torch.rand(40, generator=generator), torch.randn(40, 8, generator=generator))
    fidelity = measure_fidelity(reference, reference)
    assert fidelity.images == 40 and fidelity.spearman == pytest.approx(1.0)
    assert fidelity.p99_abs_difference == 0 and fidelity.max_abs_difference == 0
    assert fidelity.embedding_cosine_mean == pytest.approx(1.0) and fidelity.neighbour_top10_overlap == 1.0
    assert fidelity.meets_thresholds


def test_fidelity_measures_known_differences():
    scores = np.linspace(0.3, 0.9, 100)
    shifted = scores + np.where(np.arange(100) < 5, 0.05, 0.0)  # 5 of 100 off by 0.05: p99 sees them
    embeddings = np.eye(100, 100)[:, :100]
    reversed_rank = outputs(scores[::-1].copy(), embeddings)
    fidelity = measure_fidelity(outputs(scores, embeddings), outputs(shifted, embeddings))
    assert fidelity.max_abs_difference == pytest.approx(0.05, abs=1e-6)
    assert fidelity.p99_abs_difference == pytest.approx(0.05, abs=1e-6) and not fidelity.meets_thresholds
    assert measure_fidelity(outputs(scores, embeddings), reversed_rank).spearman == pytest.approx(-1.0)
    # Embeddings: the cosine of each row to its reference, and whether its 10 neighbours survive.
    rotated = embeddings @ np.roll(np.eye(100), 1, axis=0)  # every row moved to another axis: cosine 0
    fidelity = measure_fidelity(outputs(scores, embeddings), outputs(scores, rotated))
    assert fidelity.embedding_cosine_mean == pytest.approx(0.0) and fidelity.meets_thresholds  # scores are the test


def test_the_fp32_export_is_exact(tiny_model_dir, tmp_path):
    model, processor = load_model(tiny_model_dir)
    path = tmp_path / "model.onnx"
    export_fp32(model.eval(), (32, 32), path)
    pixels = np.random.default_rng(0).standard_normal((5, 3, 32, 32)).astype(np.float32)
    exported = run_file(path, pixels)
    with torch.inference_mode():
        expected = model(pixel_values=torch.from_numpy(pixels))
    assert torch.allclose(exported.scores, expected.scores, atol=1e-5)
    assert torch.allclose(exported.embeddings, expected.embeddings, atol=1e-4)


@pytest.fixture(scope="module")
def quantized(trained_sample_model, tmp_path_factory) -> tuple[Path, dict]:
    """The tests' trained tiny model (the demo model's recipe) with its int8 file, made with the defaults."""
    folder = tmp_path_factory.mktemp("quantized")
    shutil.copytree(trained_sample_model, folder, dirs_exist_ok=True)
    return folder, quantize_model(folder)


def test_a_trained_model_quantizes_within_the_thresholds(quantized):
    folder, record = quantized
    fidelity = record["fidelity"]
    assert record["meets_thresholds"] and fidelity["spearman"] >= 0.99 and fidelity["p99_abs_difference"] <= 0.01
    assert fidelity["embedding_cosine_mean"] > 0.9 and 0 <= fidelity["neighbour_top10_overlap"] <= 1


def test_the_record_says_how_and_from_what_the_file_was_made(quantized):
    folder, record = quantized
    assert (folder / INT8_FILE).stat().st_size > 0
    assert json.loads((folder / RECORD_FILE).read_text()) == record
    assert record["int8_sha256"] == file_digest(folder / INT8_FILE) and record["backbone"] == "resnet"
    assert record["model_fingerprint"] == model_fingerprint(*load_model(folder))
    settings, calibration = record["settings"], record["calibration"]
    assert settings["activation_type"] == "QUInt8" and settings["weight_type"] == "QInt8" and settings["per_channel"]
    # Held-out pictures are whole photos with their crops, never calibrated on.
    held_groups = {name.split("#")[0] for name in calibration["held_out"]}
    assert held_groups and not held_groups & {name.split("#")[0] for name in calibration["calibrated_on"]}
    assert calibration["images"] == len(calibration["calibrated_on"]) and record["fidelity"]["images"] == len(
        calibration["held_out"]
    )
    assert "scikit-image" in calibration["source"] and not any(name.startswith("/") for name in calibration["held_out"])


def test_a_lossy_file_is_refused_in_one_sentence_and_nothing_is_written(tiny_model_dir, tmp_path, monkeypatch):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    before = sorted(path.name for path in folder.iterdir())
    monkeypatch.setattr(quantization, "MIN_SPEARMAN", 1.01)  # no file can meet it
    with pytest.raises(QuantizationError, match=r"int8 strays too far from fp32 for this resnet model: .*--allow-lossy"):
        quantize_model(folder)
    assert sorted(path.name for path in folder.iterdir()) == before
    record = quantize_model(folder, allow_lossy=True)
    assert not record["meets_thresholds"] and (folder / INT8_FILE).is_file()
    assert record["settings"]["stem_in_fp32"] is True  # both tried, whole network first: the last one is kept


def test_the_cli_quantizes_and_refuses_in_one_line(tiny_model_dir, tmp_path, capsys, monkeypatch):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    calibration = tmp_path / "photos"
    calibration.mkdir()
    rng = np.random.default_rng(0)
    for index in range(12):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(calibration / f"{index}.png")
    assert main(["quantize", str(folder), "--calibration", str(calibration)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Only 12 readable calibration images" in error
    assert main(["quantize", str(tmp_path / "nowhere")]) == 2
    assert "not a saved model folder" in capsys.readouterr().err
    monkeypatch.setattr(quantization, "MIN_SPEARMAN", 1.01)
    assert main(["quantize", str(folder)]) == 2
    error = capsys.readouterr().err  # after transformers' loading bar: one line of ours
    assert error.count("error:") == 1 and "strays too far" in error.splitlines()[-1] and not (folder / "onnx").exists()
    assert main(["quantize", str(folder), "--allow-lossy"]) == 0
    assert "OUTSIDE (kept: --allow-lossy)" in capsys.readouterr().out


@pytest.mark.parametrize("family", ["clip", "siglip", "dinov2"])
def test_transformer_backbones_export_and_quantize(family, tmp_path):
    folder = save_tiny_model(tmp_path / family, family)
    record = quantize_model(folder, allow_lossy=True)  # made and measured; fidelity is the record's
    assert record["backbone"] == {"clip": "clip_vision_model", "siglip": "siglip_vision_model"}.get(family, family)
    assert (folder / INT8_FILE).is_file() and np.isfinite(record["fidelity"]["spearman"])


def test_the_neighbour_overlap_counts_the_neighbours_a_query_keeps():
    from memorability.quantization import neighbour_overlap

    angles = torch.deg2rad(torch.arange(12, dtype=torch.float64) * 10)  # 12 unit vectors 10° apart
    gallery = torch.stack([angles.cos(), angles.sin()], dim=1)
    queries = gallery.clone()
    queries[0] = torch.tensor([np.cos(np.deg2rad(120)), np.sin(np.deg2rad(120))])  # row 0's query moved to 120°
    # Row 0's 10 nearest others are those at 10°-100°; from 120° they are those at 20°-110°: 9 of its 10 neighbours
    # kept, and every other row keeps all of them.
    assert neighbour_overlap(gallery, queries, 10) == pytest.approx((11 + 0.9) / 12)
    assert neighbour_overlap(gallery, gallery, 10) == 1.0


def test_a_neighbour_index_calibrates_with_its_thumbnails(tiny_model_dir, space_index, tmp_path):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "model")
    record = quantize_model(folder, space_index, allow_lossy=True, max_images=60)
    calibration = record["calibration"]
    assert calibration["source"].startswith("60 of the ") and "thumbnails of the neighbour index" in calibration["source"]
    assert calibration["images"] + calibration["held_out_images"] == 60 and calibration["held_out_images"] > 0


def test_a_model_with_constant_scores_is_blamed_not_int8(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """It reported "ρ nan", blamed int8 and printed a machine path: the float model's scores do not vary, so there is
    no ranking to keep. The message names the folder as the user wrote it."""
    from memorability.inference import load_model

    model, processor = load_model(tiny_model_dir)
    torch.nn.init.zeros_(model.head[-1].weight)  # every photo: sigmoid(bias)
    model.save_pretrained(tmp_path / "flat")
    processor.save_pretrained(tmp_path / "flat")
    before = sorted(path.name for path in (tmp_path / "flat").iterdir())
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["quantize", "flat"]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("error: flat gives every calibration photo the same score (") and str(tmp_path) not in message
    assert "the float model is broken or untrained, not int8; nothing was written." in message
    assert sorted(path.name for path in (tmp_path / "flat").iterdir()) == before
