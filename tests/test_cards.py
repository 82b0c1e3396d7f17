"""The cards a push writes (memorability/cards.py, through the push scripts, offline): what the model card claims
follows from the results and training record it was given (never LaMem figures for other data, a demo said to be one),
and the dataset card states the terms, the splits and the ablations. A card is what a reader of the Hub trusts."""

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard
from hub_support import CARD_SECTIONS, figure_lines, files_under, prose, push_model_locally

from hub import push_dataset
from memorability.ablations import ABLATIONS, ablate_examples
from memorability.data import describe_data, lamem_to_table, load_lamem
from memorability.tables import parquet_files, save_table, table_provenance
from memorability.cache_paths import DEMO_MARKER
from memorability.evaluation import evaluate_model


@pytest.fixture(scope="module")
def sample_eval_results(tiny_model_dir, sample_data_dir, tmp_path_factory) -> Path:
    """A real eval_results.json, measured on generated sample data (not LaMem)."""
    out = tmp_path_factory.mktemp("sample_eval")
    evaluate_model(tiny_model_dir, sample_data_dir, out, batch_size=64, num_workers=0)
    return out / "eval_results.json"


# --- The model card ---------------------------------------------------------------------------------------------------


def test_card_with_sample_data_results_never_says_lamem(tiny_model_dir, sample_eval_results, tmp_path):
    card = push_model_locally(tiny_model_dir, tmp_path / "upload", "--eval-results", str(sample_eval_results))
    evaluation = json.loads(sample_eval_results.read_text())
    results = card.data.eval_results
    assert {result.dataset_name for result in results} == {evaluation["data"]["name"]}
    assert not any("lamem" in (result.dataset_type + result.dataset_name).lower() for result in results)
    for index, metrics in evaluation["splits"].items():
        found = {r.metric_type: r.metric_value for r in results if r.dataset_split == f"test_{index}"}
        assert found["spearmanr"] == pytest.approx(metrics["spearman"], abs=1e-4)
        assert found["pearsonr"] == pytest.approx(metrics["pearson"], abs=1e-4)
        assert found["mse"] == pytest.approx(metrics["mse"], abs=1e-5)
    means = {r.metric_type: r.metric_value for r in results if r.dataset_split.startswith("mean")}
    assert means["spearmanr"] == pytest.approx(evaluation["mean"]["spearman"]["mean"], abs=1e-4)
    assert "This model has no LaMem evaluation." in prose(card)
    lines = figure_lines(card)
    assert len(lines) == 7 and not any("lamem" in line.lower() for line in lines)
    assert all(section in prose(card) for section in CARD_SECTIONS)
    assert (tmp_path / "upload" / "eval_results.json").is_file() and (tmp_path / "upload" / "scatter.png").is_file()


def test_card_with_results_on_generated_data_saved_as_a_table_never_says_lamem(tiny_model_dir, sample_data_dir,
                                                                              tmp_path):
    save_table(lamem_to_table(sample_data_dir), tmp_path / "table")
    evaluate_model(tiny_model_dir, tmp_path / "table", tmp_path / "eval", batch_size=64, num_workers=0)
    card = push_model_locally(tiny_model_dir, tmp_path / "upload", "--eval-results",
                              str(tmp_path / "eval" / "eval_results.json"))  # fmt: skip
    assert "measured on lamem" not in prose(card).lower() and "This model has no LaMem evaluation." in prose(card)
    assert {result.dataset_name for result in card.data.eval_results} == {"Parquet table (table)"}
    assert "lamem" not in card.data.tags


def test_card_with_lamem_results_and_training_record(tiny_model_dir, sample_eval_results, tmp_path):
    lamem_data = {"name": "LaMem", "kind": "official", "is_lamem": True}
    lamem = json.loads(sample_eval_results.read_text()) | {"data": lamem_data}
    (tmp_path / "eval_results.json").write_text(json.dumps(lamem))
    training = {"data": "lamem/", "split": 1, "mixed_precision": "bf16", "num_processes": 1, "steps": 14070,
                "best_epoch": 7, "best_val_spearman": 0.61234,
                "arguments": {"backbone": "resnet50", "backbone_weights": "default", "epochs": 10, "batch_size": 32}}
    (tmp_path / "train_results.json").write_text(json.dumps(training))
    card = push_model_locally(
        tiny_model_dir, tmp_path / "upload", "--eval-results", str(tmp_path / "eval_results.json"),
        "--train-results", str(tmp_path / "train_results.json"), "--dataset-repo", "org/lamem",
    )
    assert {(r.dataset_type, r.dataset_name) for r in card.data.eval_results} == {("org/lamem", "LaMem")}
    assert card.data.base_model == "microsoft/resnet-50" and card.data.datasets == ["org/lamem"]
    assert card.data.license == "apache-2.0" and card.data.library_name == "transformers"
    assert {"image-regression", "memorability", "lamem", "resnet"} <= set(card.data.tags)
    assert card.data.pipeline_tag is None and card.data.get("inference") is False
    assert "no LaMem evaluation" not in prose(card) and "human consistency 0.68" in prose(card)
    assert "0.6123 (epoch 7), on the validation split of split index 1 of `lamem/`" in prose(card)
    assert "This model was trained on `lamem/` (see Training details)." in prose(card)
    assert "research-use terms" in prose(card) and "Khosla" in prose(card)


def test_card_without_results_says_there_is_no_lamem_evaluation(tiny_model_dir, tmp_path):
    card = push_model_locally(tiny_model_dir, tmp_path / "upload")
    assert card.data.eval_results is None and "model-index" not in card.content
    assert "this model has no LaMem evaluation" in prose(card) and not figure_lines(card)
    assert "trust_remote_code=True, use_safetensors=True" in card.text  # the snippet never unpickles a download


def test_results_are_found_beside_the_model_and_name_the_training_data(
    tiny_model_dir, sample_data_dir, sample_eval_results, tmp_path
):
    model_dir = tmp_path / "run" / "best"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "eval").mkdir()
    shutil.copy(sample_eval_results, model_dir / "eval" / "eval_results.json")
    (tmp_path / "run" / "train_results.json").write_text(json.dumps({"data": str(sample_data_dir), "split": 2}))
    card = push_model_locally(model_dir, tmp_path / "upload")
    assert card.data.eval_results and {"eval_results.json", "train_results.json"} <= files_under(tmp_path / "upload")
    assert "This model was trained on generated sample data (sample), not on LaMem." in prose(card)
    assert "split index 2" in prose(card) and "not trained on LaMem; they are released under Apache-2.0" in prose(card)


def test_demo_model_says_it_is_a_demo(tiny_model_dir, tmp_path):
    model_dir = tmp_path / "demo"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / DEMO_MARKER).write_text("demo\n")
    card = push_model_locally(model_dir, tmp_path / "upload")
    assert "**Demo model.**" in prose(card) and "demo" in card.data.tags and "lamem" not in card.data.tags
    assert "not trained on LaMem" in prose(card) and (tmp_path / "upload" / DEMO_MARKER).is_file()


# --- The dataset card -------------------------------------------------------------------------------------------------


def test_dataset_card_states_terms_splits_and_ablations(lamem_folder, tmp_path):
    out = tmp_path / "upload"
    assert push_dataset.main([str(lamem_folder), "--repo-id", "org/lamem", "--local-dir", str(out)]) == 0
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "other" and card.data.license_name and card.data.size_categories == ["n<1K"]
    assert card.data.configs[0]["data_files"][0]["path"] == "data/train-*.parquet"
    assert "score differs between split indices" in prose(card) and "research use" in prose(card)
    assert "This is not LaMem." in prose(card)  # a generated LaMem-format folder, not the real thing
    assert table_provenance(parquet_files(out)) == describe_data(lamem_folder)  # and every file says so too
    assert all(f"`{name}`" in prose(card) for name in ABLATIONS) and "Khosla" in prose(card)
    test = load_lamem(out, split=1)["test"]  # the card's ablation snippet, as written there
    ablated = test.with_transform(ablate_examples(next(iter(ABLATIONS))))
    assert ablated[0]["image"].size == test[0]["image"].size and ablated[0]["image_id"] == test[0]["image_id"]


def test_figures_on_too_few_images_are_left_out_and_the_card_says_why(tiny_model_dir, sample_eval_results, tmp_path):
    """A ρ of −0.5 measured on 3 images went into the model-index as if it meant something."""
    evaluation = json.loads(sample_eval_results.read_text())
    evaluation["splits"]["2"]["n"] = 3
    (tmp_path / "eval_results.json").write_text(json.dumps(evaluation))
    training = {"data": "photos.csv", "split": 1, "best_epoch": 0, "best_val_spearman": -0.5, "best_val_n": 3}
    (tmp_path / "train_results.json").write_text(json.dumps(training))
    card = push_model_locally(tiny_model_dir, tmp_path / "upload", "--eval-results", str(tmp_path / "eval_results.json"),
                              "--train-results", str(tmp_path / "train_results.json"))  # fmt: skip
    splits = {result.dataset_split for result in card.data.eval_results}
    assert "test_2" not in splits and "test_1" in splits and not any(split.startswith("mean") for split in splits)
    assert all("images)" in result.metric_name for result in card.data.eval_results)
    assert "| test_2 | withheld | withheld | withheld | 3 |" in card.text
    assert "Figures measured on fewer than 10 images are withheld" in prose(card)
    assert "-0.5" not in card.text and "withheld: measured on 3 images" in prose(card)
