"""What `memorability predict` accepts: folders, files, a CSV of paths, a Parquet table; all score alike."""

import csv

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, Features, Image as ImageFeature, Value
from PIL import Image

from memorability.batch_scoring import score_images
from memorability.errors import MemorabilityError
from memorability.inference import load_predictor
from memorability.scoring_inputs import collect_inputs
from memorability.tables import save_table


@pytest.fixture
def photo_paths(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for index in range(5):
        pixels = np.random.default_rng(index).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
        paths.append(folder / f"{index}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def scores(inputs, model_dir) -> list:
    predictor = load_predictor(model_dir, precision="fp32", batch_size=2)
    return [row.score for row in score_images(predictor, inputs.sources, inputs.names)]


def test_csv_paths_are_relative_to_the_csv_and_keep_its_order(photo_paths, tmp_path):
    listing = tmp_path / "photos" / "list.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["score", "image"])
        writer.writerows([[0.5, "3.png"], [0.5, "missing.png"], [0.5, "0.png"]])
    inputs = collect_inputs([str(listing)])
    assert inputs.names == [str(photo_paths[3]), str(tmp_path / "photos" / "missing.png"), str(photo_paths[0])]


def test_parquet_table_scores_as_its_image_files(tiny_model_dir, photo_paths, tmp_path):
    table = Dataset.from_dict(
        {"image": [str(path) for path in photo_paths], "image_id": [path.stem for path in photo_paths]},
        features=Features({"image": ImageFeature(), "image_id": Value("string")}),
    )
    save_table(table, tmp_path / "table", rows_per_shard=2)  # three files, read in order
    from_table = collect_inputs([str(tmp_path / "table")])
    assert from_table.names == [path.name for path in photo_paths]
    from_files = collect_inputs([str(path) for path in photo_paths])
    np.testing.assert_allclose(scores(from_table, tiny_model_dir), scores(from_files, tiny_model_dir), atol=1e-6)


def test_unusable_listings_are_one_sentence(photo_paths, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("file\n0.png\n")
    with pytest.raises(MemorabilityError, match=r"list.csv: no 'image' column"):
        collect_inputs([str(listing)])
    Dataset.from_dict({"text": ["a"]}).to_parquet(str(tmp_path / "photos" / "table.parquet"))
    with pytest.raises(MemorabilityError, match="both image files and Parquet files"):
        collect_inputs([str(tmp_path / "photos")])
    with pytest.raises(MemorabilityError, match=r"table.parquet: no 'image' column of images"):
        collect_inputs([str(tmp_path / "photos" / "table.parquet")])


def test_inputs_know_their_files_and_lists(photo_paths, tmp_path):
    listing = tmp_path / "photos" / "list.csv"
    listing.write_text("image\n0.png\n")
    table = tmp_path / "table.parquet"
    features = Features({"image": ImageFeature()})
    Dataset.from_dict({"image": [str(photo_paths[1])]}, features=features).to_parquet(str(table))
    inputs = collect_inputs([str(listing), str(table), str(photo_paths[2])])
    assert inputs.files == [str(photo_paths[0]), str(table), str(photo_paths[2])]
    assert inputs.listings == [str(listing), str(table)]


def test_a_folder_is_searched_without_the_runs_own_part_folder(photo_paths, tmp_path):
    parts = tmp_path / "photos" / "scores.csv.parts"
    parts.mkdir()
    pq.write_table(pa.table({"index": [0]}), parts / "part-000000-rank0.parquet")
    with pytest.raises(MemorabilityError, match="both image files and Parquet files"):
        collect_inputs([str(tmp_path / "photos")])
    assert collect_inputs([str(tmp_path / "photos")], exclude=parts).names == [str(path) for path in photo_paths]
