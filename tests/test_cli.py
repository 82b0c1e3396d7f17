"""`memorability` on the command line: predict writes a CSV with an error column and says when files failed."""

import csv
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, Features, Image as ImageFeature
from PIL import Image

from memorability import MemorabilityConfig, MemorabilityModel
from memorability.cli import main
from memorability.inference import load_model, load_predictor


def write_photos(folder, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.random.default_rng(index).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{index}.jpg")


def read_rows(path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_folder_with_an_empty_file(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "photos"
    write_photos(folder, 3)
    (folder / "broken.jpg").write_bytes(b"")
    out = tmp_path / "scores.csv"
    code = main(["predict", str(folder), "--model", str(tiny_model_dir), "--out", str(out), "--num-workers", "0"])
    assert code == 1  # the README's promise: 1 when some files could not be read
    rows = read_rows(out)
    assert len(rows) == 4
    scored = [row for row in rows if row["score"]]
    failed = [row for row in rows if row["error"]]
    assert len(scored) == 3 and all(0 <= float(row["score"]) <= 1 for row in scored)
    assert len(failed) == 1 and failed[0]["path"].endswith("broken.jpg") and not failed[0]["score"]
    assert "3 scored, 1 failed" in capsys.readouterr().out


def test_predict_all_good_exits_zero(tiny_model_dir, tmp_path):
    write_photos(tmp_path / "photos", 2)
    out = tmp_path / "scores.csv"
    assert main(["predict", str(tmp_path / "photos"), "--model", str(tiny_model_dir), "--out", str(out)]) == 0
    assert len(read_rows(out)) == 2


def test_user_mistakes_are_one_line_not_a_traceback(tiny_model_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "memorability.cli", "predict", str(tmp_path / "missing"), "--model", str(tiny_model_dir)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {tmp_path / 'missing'}: no such file or folder."


def test_missing_model_is_one_line(tmp_path):
    write_photos(tmp_path / "photos", 1)
    result = subprocess.run(
        [sys.executable, "-m", "memorability.cli", "predict", str(tmp_path / "photos"), "--model", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Could not load a memorability model" in result.stderr


def test_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "memorability.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("predict", "sample-data", "demo-model"):
        assert command in result.stdout


def test_predict_a_csv_listing_keeps_its_order_and_reports_missing_files(tiny_model_dir, tmp_path):
    write_photos(tmp_path / "photos", 2)
    listing = tmp_path / "photos" / "listing.csv"
    listing.write_text("image,note\nphoto_1.jpg,a\ngone.jpg,b\nphoto_0.jpg,c\n")
    out = tmp_path / "scores.csv"
    assert main(["predict", str(listing), "--model", str(tiny_model_dir), "--out", str(out)]) == 1
    rows = read_rows(out)
    expected = [str(tmp_path / "photos" / name) for name in ("photo_1.jpg", "gone.jpg", "photo_0.jpg")]
    assert [row["path"] for row in rows] == expected
    assert rows[1]["error"] == "gone.jpg: no such file." and rows[0]["score"] and rows[2]["score"]


def test_predict_help_says_how_to_shard_and_resume():
    command = [sys.executable, "-m", "memorability.cli", "predict", "--help"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert "accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no" in result.stdout
    assert "--chunk-size" in result.stdout and "resume" in result.stdout


def test_a_command_line_mistake_exits_two(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["predict", "photos/", "--batch-size", "0"])
    assert stopped.value.code == 2
    assert "argument --batch-size: 0 is below the minimum of 1" in capsys.readouterr().err


def predict_into(inputs: list, out, model) -> int:
    return main(["predict", *map(str, inputs), "--model", str(model), "--out", str(out), "--num-workers", "0"])


def one_sentence(capsys) -> str:
    """The last line on stderr (transformers' loading bar may come before it), checked to be the only error line."""
    error = capsys.readouterr().err
    assert "Traceback" not in error and error.count("error:") == 1
    return error.splitlines()[-1]


@pytest.mark.parametrize("kind", ["csv listing", "image", "parquet table"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(kind, tiny_model_dir, tmp_path, capsys):
    write_photos(tmp_path, 2)
    if kind == "csv listing":
        target = tmp_path / "listing.csv"
        target.write_text("image\nphoto_0.jpg\nphoto_1.jpg\n")
    elif kind == "image":
        target = tmp_path / "photo_1.jpg"
    else:
        target = tmp_path / "table.parquet"
        features = Features({"image": ImageFeature()})
        Dataset.from_dict({"image": [str(tmp_path / "photo_0.jpg")]}, features=features).to_parquet(str(target))
    before = target.read_bytes()
    inputs = [target] if kind != "image" else [tmp_path / "photo_0.jpg", target]
    assert predict_into(inputs, target, tiny_model_dir) == 2
    assert one_sentence(capsys) == f"error: The output {target} is one of the inputs ({target}); choose another --out."
    assert target.read_bytes() == before


def test_a_part_folder_that_holds_the_inputs_is_refused(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "scores.csv.parts"  # the part folder of --out scores.csv, deleted at the end of a run
    write_photos(folder, 2)
    assert predict_into([folder], tmp_path / "scores.csv", tiny_model_dir) == 2
    refusal = f"error: {folder}, where the run keeps its parts and deletes them at the end, holds the input"
    assert one_sentence(capsys).startswith(refusal)
    assert sorted(path.name for path in folder.iterdir()) == ["photo_0.jpg", "photo_1.jpg"]


def test_an_output_that_is_a_folder_is_refused(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "photos"
    write_photos(folder, 1)
    assert predict_into([folder], folder, tiny_model_dir) == 2
    assert one_sentence(capsys) == f"error: The output {folder} is a folder; name a CSV file to write the scores to."


def test_predict_reads_the_images_inside_a_zip(tiny_model_dir, tmp_path):
    write_photos(tmp_path / "photos", 2)
    archive = tmp_path / "trip.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        for path in sorted((tmp_path / "photos").iterdir()):
            writer.write(path, f"trip/{path.name}")
        writer.writestr("../escape.jpg", (tmp_path / "photos" / "photo_0.jpg").read_bytes())
    out = tmp_path / "scores.csv"
    assert main(["predict", str(archive), "--model", str(tiny_model_dir), "--out", str(out), "--precision", "fp32"]) == 1
    rows = read_rows(out)
    assert [row["path"] for row in rows] == [f"{archive}/trip/photo_0.jpg", f"{archive}/trip/photo_1.jpg",
                                             f"{archive}/../escape.jpg"]  # fmt: skip
    photos = sorted((tmp_path / "photos").iterdir())
    expected = load_predictor(tiny_model_dir, precision="fp32").predict(photos)
    np.testing.assert_allclose([float(row["score"]) for row in rows[:2]], expected, atol=1e-6)
    assert "zip-slip" in rows[2]["error"] and not rows[2]["score"]


def test_a_model_of_several_heads_gets_an_uncertainty_column(tiny_model_dir, tmp_path):
    write_photos(tmp_path / "photos", 3)
    model, processor = load_model(tiny_model_dir)
    ensemble = MemorabilityModel(MemorabilityConfig(**{**model.config.to_dict(), "num_heads": 3}))
    ensemble.save_pretrained(tmp_path / "ensemble")
    processor.save_pretrained(tmp_path / "ensemble")
    for folder, columns in ((tiny_model_dir, ["path", "score", "error"]), (tmp_path / "ensemble",
                            ["path", "score", "uncertainty", "error"])):  # fmt: skip
        out = tmp_path / f"{Path(folder).name}.csv"
        assert main(["predict", str(tmp_path / "photos"), "--model", str(folder), "--out", str(out)]) == 0
        rows = read_rows(out)
        assert list(rows[0]) == columns
    assert all(float(row["uncertainty"]) > 0 for row in rows)  # three random heads disagree


# --- Step 15: check before working, paths confined, cells escaped -------------------------------------------------


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tiny_model_dir, tmp_path, capsys):
    """The output's folder is a file: refused in one sentence, with exit status 2, before the model is loaded."""
    write_photos(tmp_path / "photos", 1)
    (tmp_path / "taken").write_text("a file where the output's folder should be")
    code = main(["predict", str(tmp_path / "photos"), "--model", str(tmp_path / "no-model-here"),
                 "--out", str(tmp_path / "taken" / "scores.csv")])  # fmt: skip
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: Cannot write {tmp_path / 'taken' / 'scores.csv'}: " \
        f"{tmp_path / 'taken'} is a file, not a folder; choose another output."  # fmt: skip


def test_quantize_checks_where_it_writes_before_the_work(tiny_model_dir, tmp_path, capsys, monkeypatch):
    """It did all its work first (seconds on a tiny model, minutes on a ResNet50), then ended in a traceback."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "onnx").write_text("a file where the int8 folder goes")
    monkeypatch.setattr("memorability.quantization.calibration_set", lambda *args: pytest.fail("the work began"))
    assert main(["quantize", str(model)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: Cannot write {model / 'onnx' / 'model_int8.onnx'}: ")


PEAK_OF_MAIN = """
import re, sys
from memorability.cli import main
def status(key): return 1024 * int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
open("/proc/self/clear_refs", "w").write("5")  # the high-water mark starts again from here (not the imports')
before = status("VmRSS")
code = main(sys.argv[1:])
print(status("VmHWM") - before)
sys.exit(code)
"""


def test_a_format_is_known_from_the_first_bytes_before_a_file_is_read_whole(tiny_model_dir, tmp_path):
    """A sparse 1 GB 'big.jpg' of zeros took 0.9 GB of memory before "not an image"."""
    folder = tmp_path / "photos"
    write_photos(folder, 1)
    with (folder / "big.jpg").open("wb") as handle:
        handle.truncate(2**30)
    out = tmp_path / "scores.csv"
    arguments = ["predict", str(folder), "--model", str(tiny_model_dir), "--out", str(out), "--num-workers", "0"]
    result = subprocess.run([sys.executable, "-c", PEAK_OF_MAIN, *arguments], capture_output=True, text=True)
    extra_mb = int(result.stdout.split()[-1]) / 2**20
    assert result.returncode == 1 and extra_mb < 300, f"+{extra_mb:.0f} MB"
    assert {row["error"] for row in read_rows(out)} == {"", "big.jpg: not an image format we can read (JPEG, PNG, "
                                                        "WebP, GIF, TIFF, BMP)."}  # fmt: skip


def test_root_confines_the_paths_a_table_names(tiny_model_dir, tmp_path, capsys):
    """A table a service did not write may name /etc/shadow: with --root, such a row is refused, never read."""
    root = tmp_path / "service"
    write_photos(root / "photos", 1)
    outside = tmp_path / "secret.jpg"
    shutil.copy(root / "photos" / "photo_0.jpg", outside)
    (root / "photos" / "link.jpg").symlink_to(outside)
    listing = root / "list.csv"
    listing.write_text(f"image\nphotos/photo_0.jpg\n{outside}\nphotos/link.jpg\n../secret.jpg\n")
    out = tmp_path / "scores.csv"
    code = main(["predict", str(listing), "--model", str(tiny_model_dir), "--out", str(out), "--root", str(root)])
    rows = read_rows(out)
    assert code == 1 and rows[0]["score"] and not rows[0]["error"]
    for row in rows[1:]:
        assert not row["score"] and row["error"].endswith(f"refused: outside the folder --root allows ({root}).")
    capsys.readouterr()
    assert main(["predict", str(outside), "--model", str(tiny_model_dir), "--root", str(root)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {outside}: outside the folder --root allows ({root})."


def test_names_that_would_start_a_spreadsheet_formula_are_escaped(tiny_model_dir, tmp_path, monkeypatch):
    """A zip member named "=HYPERLINK(...).jpg" went into the CSV as it was: a formula in any spreadsheet."""
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr('=HYPERLINK("example.invalid").jpg', b"not an image")
    (tmp_path / "@home.jpg").write_bytes(b"not an image either")
    monkeypatch.chdir(tmp_path)
    main(["predict", "photos.zip", "@home.jpg", "--model", str(tiny_model_dir), "--out", "scores.csv"])
    rows = read_rows(tmp_path / "scores.csv")
    assert [row["path"] for row in rows] == ['photos.zip/=HYPERLINK("example.invalid").jpg', "'@home.jpg"]
    assert rows[0]["error"].startswith('\'=HYPERLINK("example.invalid").jpg: not an image format')
    assert rows[1]["error"].startswith("'@home.jpg: not an image format")
