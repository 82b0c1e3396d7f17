"""LaMem's protocol: five test splits with their own scores; other data its test split; every figure names its data."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub import push_dataset
from memorability.data import describe_data, lamem_to_table
from memorability.evaluation import evaluate_model, format_table
from memorability.tables import save_table

PROJECT = Path(__file__).resolve().parents[1]


def test_five_split_protocol_on_lamem_format_data(tiny_model_dir, lamem_folder, tmp_path):
    results = evaluate_model(tiny_model_dir, lamem_folder, out_dir=tmp_path, num_workers=0)
    assert results["protocol"] == "LaMem five test splits"
    assert sorted(results["splits"]) == ["1", "2", "3", "4", "5"]
    for index, metrics in results["splits"].items():
        expected = len((lamem_folder / "splits" / f"test_{index}.txt").read_text().splitlines())
        assert metrics["n"] == expected
    assert results["data"]["is_lamem"] is False  # a small LaMem-format folder is not LaMem
    saved = json.loads((tmp_path / "eval_results.json").read_text())
    assert saved["mean"]["spearman"]["mean"] == pytest.approx(results["mean"]["spearman"]["mean"])
    assert (tmp_path / "scatter.png").stat().st_size > 10_000
    assert "mean" in format_table(results)


def test_sample_data_is_named_as_generated(sample_data_dir):
    described = describe_data(sample_data_dir)
    assert described == {"name": "generated sample data (sample)", "kind": "sample", "is_lamem": False}


def test_real_split_sizes_are_recognised_as_lamem(lamem_splits_dir, tmp_path):
    shutil.copytree(lamem_splits_dir, tmp_path / "splits")
    (tmp_path / "images").mkdir()
    assert describe_data(tmp_path)["is_lamem"] is True


def test_generated_data_saved_as_a_table_is_not_lamem(sample_data_dir, tmp_path):
    save_table(lamem_to_table(sample_data_dir), tmp_path / "sample_table")
    described = describe_data(tmp_path / "sample_table")
    assert described == {"name": "Parquet table (sample_table)", "kind": "table", "is_lamem": False}


def test_a_table_that_says_lamem_without_lamems_split_sizes_is_not_lamem(lamem_folder, tmp_path):
    save_table(lamem_to_table(lamem_folder), tmp_path / "t", provenance={"name": "LaMem", "is_lamem": True})
    assert describe_data(tmp_path / "t")["is_lamem"] is False


def test_a_hub_table_is_described_from_its_own_files(lamem_folder, tmp_path, monkeypatch):
    assert push_dataset.main([str(lamem_folder), "--repo-id", "org/small", "--local-dir", str(tmp_path / "up")]) == 0
    monkeypatch.setattr("memorability.tables.require_hub", lambda *args: None)  # as if the Hub answered
    monkeypatch.setattr("memorability.tables.snapshot_download", lambda repo_id, **kwargs: str(tmp_path / "up"))
    assert describe_data("org/small") == {"name": "Parquet table (org/small)", "kind": "hub", "is_lamem": False}


def test_csv_uses_its_test_split(tiny_model_dir, lamem_folder, tmp_path):
    rows = ["image,score,split"]
    for index, line in enumerate((lamem_folder / "splits" / "train_1.txt").read_text().splitlines()[:12]):
        name, score = line.split()
        rows.append(f"{lamem_folder / 'images' / name},{score},{'test' if index < 6 else 'train'}")
    (tmp_path / "photos.csv").write_text("\n".join(rows) + "\n")
    results = evaluate_model(tiny_model_dir, tmp_path / "photos.csv", num_workers=0)
    assert results["protocol"] == "test split" and results["splits"]["1"]["n"] == 6
    assert results["data"]["name"] == "scored photos (photos.csv)"


def test_evaluate_cli_prints_a_table(tiny_model_dir, lamem_folder, tmp_path):
    result = subprocess.run(
        [sys.executable, str(PROJECT / "train" / "evaluate.py"), str(tiny_model_dir), "--data", str(lamem_folder),
         "--out-dir", str(tmp_path), "--num-workers", "0"],
        capture_output=True, text=True, env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "split  Spearman" in result.stdout and (tmp_path / "eval_results.json").is_file()


def test_evaluate_cli_missing_data_is_one_sentence(tiny_model_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(PROJECT / "train" / "evaluate.py"), str(tiny_model_dir), "--data", str(tmp_path / "x")],
        capture_output=True, text=True, env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr and "no such LaMem folder" in result.stderr


def test_the_printed_table_warns_about_figures_on_few_images():
    from memorability.evaluation import format_table

    metrics = {"spearman": 0.4, "pearson": 0.3, "mse": 0.01, "mae": 0.1}
    results = {"data": {"name": "photos.csv"}, "protocol": "test split", "splits": {"1": metrics | {"n": 12}},
               "mean": {"spearman": {"mean": 0.4, "sd": 0.0}, "pearson": {"mean": 0.3, "sd": 0.0},
                        "mse": {"mean": 0.01, "sd": 0.0}}}  # fmt: skip
    table = format_table(results)
    assert table.splitlines()[-1] == "warning: split 1: only 12 images: a figure on so few means little."
    assert "mean" not in table.splitlines()[2]  # one split: no mean ± sd row
