"""`memorability` on the command line: predict writes a CSV with an error column and says when files failed."""

import csv
import subprocess
import sys

import numpy as np
from PIL import Image

from memorability.cli import main


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
    assert code != 0
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
    assert "accelerate launch --multi_gpu --num_processes 2 -m memorability.cli predict" in result.stdout
    assert "--chunk-size" in result.stdout and "resume" in result.stdout
