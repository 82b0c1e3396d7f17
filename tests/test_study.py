"""The ablation study end to end: it recovers the sample data's score rule, writes a report that reads, resumes
from its cache, and gives the same numbers in two CPU processes as in one."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from launching import launcher
from PIL import Image
from scipy.stats import spearmanr
from skimage import data as photos

from memorability.sample_data import WEIGHTS, read_clean_scores
from memorability.faces import FACE_DETECTOR
from memorability.study import StudyConfig, run_study
from memorability.study.stats import ALPHA, EQUIVALENCE_MARGIN

PROJECT = Path(__file__).resolve().parents[1]
STUDY = PROJECT / "train" / "ablation_study.py"
ABLATIONS = ["blur", "grayscale", "center_crop", "desaturate", "faces_removed", "salient_removed"]
QUICK = {"n_resamples": 500, "examples": 0, "progress": False}


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a per-image CSV, or of the per_image.csv in a study folder."""
    with (path / "per_image.csv" if path.is_dir() else path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_scores(path: Path, reference: Path) -> None:
    """Same images in the same order with the same scores; 1e-6 allows fp32 rounding where a batch differs."""
    rows, expected = read_rows(path), read_rows(reference)
    assert [row["image_id"] for row in rows] == [row["image_id"] for row in expected]
    for column in ("original", *ABLATIONS):
        scores = np.array([float(row[column]) for row in rows])
        np.testing.assert_allclose(scores, [float(row[column]) for row in expected], atol=1e-6, err_msg=column)


@pytest.fixture(scope="module")
def sample_study(trained_sample_model, sample_data_dir, tmp_path_factory) -> tuple[dict, Path]:
    """The full study (102 test images, all six ablations, Grad-CAM examples) of the model trained on sample data."""
    out = tmp_path_factory.mktemp("sample_study")
    config = StudyConfig(model=str(trained_sample_model), out_dir=str(out), data=str(sample_data_dir), examples=2,
                         progress=False)  # fmt: skip
    return run_study(config), out


# What each ablation takes out of each feature the sample data's rule reads (memorability.sample_data: score =
# 0.30 + 0.40·detail + 0.25·object + 0·colour, its WEIGHTS): blur the fine texture; the centre crop the disc, which lies
# outside the middle 50% box by construction; salient-region removal paints the disc out; grayscale and desaturation
# (strength 0.75) colour only; no picture has a face, so face removal takes out nothing.
REMOVES = {"blur": {"detail": 1.0}, "center_crop": {"object": 1.0}, "salient_removed": {"object": 1.0},
           "grayscale": {"colour": 1.0}, "desaturate": {"colour": 0.75}, "faces_removed": {}}  # fmt: skip


def feature_values(rows: list[dict[str, str]], sample_data_dir: Path) -> dict[str, np.ndarray]:
    """Each feature of the rule, per row of per_image.csv."""
    features = read_clean_scores(sample_data_dir)
    return {name: np.array([getattr(features[row["image_id"]], name) for row in rows]) for name in WEIGHTS}


@pytest.mark.parametrize("name", ABLATIONS)
def test_each_ablation_moves_the_score_as_the_rule_says(sample_study, sample_data_dir, name):
    """An ablation that takes out a feature the rule weighs lowers the score significantly, by a third to all of what
    the rule takes off, image by image in the rule's order (Spearman ρ ≥ 0.5 with the rule's change) and not in the
    order of a weighed feature it leaves in place (ρ < 0.2); one that takes out only what the rule ignores changes
    nothing (95% CI of the mean change inside ±0.02). Measured on this model: blur recovers 61% of the rule's mean
    change (ρ 0.93), the centre crop 53% (ρ 0.64), salient removal 79% (ρ 0.72); grayscale and desaturation move the
    mean by under 0.005, face removal by nothing."""
    results, out = sample_study
    statistics = results["groups"]["all"]["ablations"][name]
    rows = read_rows(out)
    change = np.array([float(row[name]) - float(row["original"]) for row in rows])
    values = feature_values(rows, sample_data_dir)
    expected = np.zeros(len(rows))
    for feature, share in REMOVES[name].items():
        expected -= WEIGHTS[feature] * share * values[feature]
    if not expected.any():
        assert -EQUIVALENCE_MARGIN < statistics["ci_low"] and statistics["ci_high"] < EQUIVALENCE_MARGIN
        return
    assert statistics["ci_high"] < 0 and statistics["p_holm"] < ALPHA
    assert 0.3 <= statistics["mean_change"] / expected.mean() <= 1.3
    assert spearmanr(change, expected).statistic >= 0.5
    for feature, weight in WEIGHTS.items():
        if weight and feature not in REMOVES[name]:
            assert spearmanr(change, -values[feature]).statistic < 0.2, feature


def test_blur_removes_the_heaviest_feature_and_has_the_largest_significant_drop(sample_study):
    results, _ = sample_study
    ablations = results["groups"]["all"]["ablations"]
    assert list(ablations) == ABLATIONS
    most_negative = min(ablations, key=lambda name: ablations[name]["mean_change"])
    assert most_negative == "blur"
    assert ablations["blur"]["mean_change"] < 0 and ablations["blur"]["p_holm"] < ALPHA


def test_report_results_table_and_plots_are_written(sample_study):
    results, out = sample_study
    report = (out / "report.md").read_text()
    assert "| ablation | parameters | mean Δ [95% CI] |" in report
    assert "`blur` lowers the score most: mean −" in report  # written from the numbers
    written = json.loads((out / "results.json").read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN
    assert written["n_images"] == results["groups"]["all"]["n"] == 102
    assert written["statistics"]["correction_method"] == "holm"
    assert written["ablations"]["blur"]["params"] == {"sigma": 0.015}
    assert written["groups"]["with_face"]["n"] == 0 and "too few" in written["groups"]["with_face"]["note"]
    rows = read_rows(out)
    assert len(rows) == 102 and list(rows[0]) == ["image_id", "human_score", "original", *ABLATIONS, "faces", "error"]
    for name in ("changes.png", "spearman.png", "examples.png"):
        with Image.open(out / name) as image:
            assert image.width > 800 and image.height > 400


def test_a_killed_run_resumes_and_a_changed_parameter_rescores_only_its_ablation(
    tiny_model_dir, sample_data_dir, tmp_path
):
    config = StudyConfig(model=str(tiny_model_dir), out_dir=str(tmp_path), data=str(sample_data_dir), limit=12,
                         batch_size=4, **QUICK)  # fmt: skip
    first = run_study(config)
    assert first["cache"] == {"images_complete": 0, "scores_computed": 12 * 7}
    first_rows = shutil.copy(tmp_path / "per_image.csv", tmp_path / "cache" / "first.csv")
    part = tmp_path / "cache" / "part-0.jsonl"
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:-10]) + lines[-10][:25])  # killed while writing the last batch
    resumed = run_study(config)
    assert 0 < resumed["cache"]["images_complete"] < 12 and resumed["cache"]["scores_computed"] == 10
    assert_same_scores(tmp_path, Path(first_rows))
    changed = run_study(StudyConfig(**{**vars(config), "params": {"blur": {"sigma": 0.05}}}))
    assert changed["cache"]["scores_computed"] == 12
    assert changed["ablations"]["blur"]["params"] == {"sigma": 0.05}


def test_a_folder_of_unscored_photos_with_a_face_and_a_broken_file(tiny_model_dir, sample_data_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in sorted((sample_data_dir / "images").iterdir())[:10]:
        shutil.copy(path, folder / path.name)
    Image.fromarray(photos.astronaut()).resize((128, 128)).save(folder / "astronaut.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    results = run_study(StudyConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "out"), images=str(folder),
                                    **{**QUICK, "examples": 1}))  # fmt: skip
    assert not results["has_human_scores"] and results["n_images"] == 12 and results["n_unreadable"] == 1
    groups = results["groups"]
    assert (groups["all"]["n"], groups["with_face"]["n"], groups["without_face"]["n"]) == (11, 1, 10)
    assert "spearman_human_ablated" not in groups["all"]["ablations"]["blur"]
    assert groups["with_face"]["ablations"] == {} and groups["without_face"]["ablations"]
    rows = {row["image_id"]: row for row in read_rows(tmp_path / "out")}
    assert rows["astronaut.png"]["faces"] == "1" and rows["broken.jpg"]["error"] and rows["broken.jpg"]["blur"] == ""
    report = (tmp_path / "out" / "report.md").read_text()
    assert "too few images (n = 1 < 10)" in report
    assert results["face_detector"] == FACE_DETECTOR and results["n_with_face"] == 1
    assert f"- Faces: found by {FACE_DETECTOR}; 1 of 11 readable images had one, 10 none" in report
    # Face removal changes the astronaut alone; blur changes every picture; the sample pictures' bright disc stands out.
    assert results["n_changed"]["faces_removed"] == 1 and results["n_changed"]["blur"] == 11
    assert 0 < results["n_changed"]["salient_removed"] <= 11
    assert "`faces_removed` 1 of 11" in report and "`salient_removed` " in report


def run_cli(*args: str, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    command = [*(launcher or (sys.executable,)), str(STUDY), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**env, "PYTHONPATH": str(PROJECT), "HF_HUB_OFFLINE": "1"})  # fmt: skip


def test_two_cpu_processes_give_the_single_process_results(tiny_model_dir, sample_data_dir, tmp_path):
    common = [str(tiny_model_dir), "--data", str(sample_data_dir), "--limit", "9", "--batch-size", "2",
              "--bootstrap", "500", "--examples", "0", "--no-progress"]  # fmt: skip
    launched = run_cli(*common, "--out-dir", str(tmp_path / "two"), launcher=tuple(launcher(2)))
    assert launched.returncode == 0, launched.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["num_processes"] == 2
    assert sorted(path.name for path in (tmp_path / "two" / "cache").glob("part-*.jsonl")) == ["part-0.jsonl",
                                                                                             "part-1.jsonl"]
    one = run_study(StudyConfig(model=str(tiny_model_dir), out_dir=str(tmp_path / "one"), data=str(sample_data_dir),
                                limit=9, **QUICK))  # fmt: skip
    assert one["num_processes"] == 1
    assert_same_scores(tmp_path / "two", tmp_path / "one")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ablations", "blur,blurr"], "Unknown ablation 'blurr'"),
        (["--param", "blur.sigma=2"], "must lie in [0.0, 1.0]"),
        (["--param", "sigma=0.1"], "expected ABLATION.PARAMETER=NUMBER"),
        (["--subset", "dev"], "Subset 'dev' is not"),
    ],
)
def test_user_mistakes_are_one_sentence_errors(tiny_model_dir, sample_data_dir, tmp_path, capsys, args, message):
    from train.ablation_study import main

    assert main([str(tiny_model_dir), "--data", str(sample_data_dir), "--out-dir", str(tmp_path), *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and "Traceback" not in error


def test_a_cache_of_another_model_or_precision_is_refused(tiny_model_dir, sample_data_dir, tmp_path, capsys):
    from train.ablation_study import main

    common = [str(tiny_model_dir), "--data", str(sample_data_dir), "--limit", "2", "--out-dir", str(tmp_path),
              "--examples", "0", "--bootstrap", "100", "--no-progress"]  # fmt: skip
    assert main(common) == 0
    assert main([*common, "--precision", "bf16"]) == 2
    assert "holds scores of another model" in capsys.readouterr().err
    assert main([*common, "--precision", "bf16", "--overwrite"]) == 0
