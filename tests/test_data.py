"""memorability.data: every source kind gives the same splits, scores come from the split index asked for, and every
way the data can be wrong gets one sentence naming the file."""

import csv
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from memorability.data import (
    FEATURES,
    SPLIT_FILE_PREFIX,
    SPLIT_INDICES,
    SPLITS,
    DataError,
    lamem_to_table,
    load_lamem,
)
from memorability.tables import save_table

LAMEM_SIZES = {"train": 45_000, "validation": 3_741, "test": 10_000}


def split_path(root: Path, name: str, index: int) -> Path:
    return root / "splits" / f"{SPLIT_FILE_PREFIX[name]}_{index}.txt"


def read_split_scores(path: Path) -> dict[str, float]:
    """image id → score of one split file in file order, read independently of `memorability.data`."""
    return {name.removesuffix(".jpg"): float(score) for name, score in map(str.split, path.read_text().splitlines())}


def assert_matches_split_files(loaded, root: Path, index: int) -> None:
    assert list(loaded) == list(SPLITS)
    for name, dataset in loaded.items():
        expected = read_split_scores(split_path(root, name, index))
        assert dataset["image_id"][:] == list(expected)
        np.testing.assert_array_equal(dataset["score"], np.float32(list(expected.values())))
        assert dataset.features == FEATURES


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def csv_rows(root: Path, index: int = 1, with_split: bool = True) -> list[dict]:
    """Split index `index` of a LaMem folder as CSV rows with paths relative to the folder."""
    return [
        {"image": f"images/{image_id}.jpg", "score": score} | ({"split": SPLIT_FILE_PREFIX[name]} if with_split else {})
        for name in SPLITS
        for image_id, score in read_split_scores(split_path(root, name, index)).items()
    ]


def rewrite_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


# --- The official layout ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", SPLIT_INDICES)
def test_official_layout_gives_each_split_index_in_file_order(lamem_folder, index):
    assert_matches_split_files(load_lamem(lamem_folder, split=index), lamem_folder, index)


def test_scores_and_partitions_differ_between_split_indices(lamem_folder):
    first, second = (load_lamem(lamem_folder, split=index)["train"] for index in (1, 2))
    assert set(first["image_id"]) != set(second["image_id"])
    scores = [dict(zip(split["image_id"], split["score"])) for split in (first, second)]
    shared = set(scores[0]) & set(scores[1])
    assert sum(scores[0][image_id] != scores[1][image_id] for image_id in shared) > len(shared) / 2


def test_images_are_paths_decoded_only_on_access(lamem_folder):
    train = load_lamem(lamem_folder)["train"]
    stored = train.data.column("image")[0].as_py()
    assert stored["bytes"] is None and stored["path"] == str(lamem_folder / "images" / f"{train[0]['image_id']}.jpg")
    image = train[0]["image"]
    assert isinstance(image, Image.Image)
    assert image.size == Image.open(stored["path"]).size


# --- CSV ----------------------------------------------------------------------------------------------------------


def test_csv_with_split_column_matches_the_folder(make_lamem_folder):
    root = make_lamem_folder()
    loaded = load_lamem(write_csv(root / "scores.csv", csv_rows(root, index=2)))
    official = load_lamem(root, split=2)
    for name in SPLITS:
        assert list(loaded[name]["image_id"]) == [f"images/{i}.jpg" for i in official[name]["image_id"]]
        assert list(loaded[name]["score"]) == list(official[name]["score"])
    assert np.array_equal(np.asarray(loaded["validation"][0]["image"]), np.asarray(official["validation"][0]["image"]))


def test_csv_without_split_column_gets_a_seeded_80_10_10_split(make_lamem_folder, caplog):
    root = make_lamem_folder()
    path = write_csv(root / "scores.csv", csv_rows(root, with_split=False))
    with caplog.at_level("WARNING", logger="memorability.data"):
        loaded = load_lamem(path)
    assert f"no split column in {path}: made a seeded 80/10/10 split (seed 0)" in caplog.messages
    assert {name: len(split) for name, split in loaded.items()} == {"train": 32, "validation": 4, "test": 4}
    assert list(load_lamem(path)["test"]["image_id"]) == list(loaded["test"]["image_id"])
    assert list(load_lamem(path, seed=1)["test"]["image_id"]) != list(loaded["test"]["image_id"])


# --- The table (local Parquet) --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_folder(lamem_folder, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("table")
    save_table(lamem_to_table(lamem_folder), folder, rows_per_shard=15)
    return folder


def test_table_has_one_row_per_image_with_every_split_index(lamem_folder):
    table = lamem_to_table(lamem_folder)
    assert list(table["image_id"]) == [f"{number:08d}" for number in range(1, 41)]
    row = table[0]
    for index in SPLIT_INDICES:
        name = row[f"split_{index}"]
        listed = list(read_split_scores(split_path(lamem_folder, name, index)).items())
        assert listed[row[f"order_{index}"]] == ("00000001", pytest.approx(row[f"score_{index}"]))


def test_save_table_writes_hub_style_shards_with_embedded_images(table_folder):
    shards = sorted(path.relative_to(table_folder).as_posix() for path in table_folder.rglob("*.parquet"))
    assert shards == [f"data/train-0000{k}-of-00003.parquet" for k in range(3)]
    images = pq.read_table(table_folder / shards[0], columns=["image"]).column("image").to_pylist()
    assert all(image["bytes"] and "/" not in image["path"] for image in images)


@pytest.mark.parametrize("index", SPLIT_INDICES)
def test_table_round_trip_gives_the_same_splits_as_the_folder(lamem_folder, table_folder, index):
    from_table, from_folder = load_lamem(table_folder, split=index), load_lamem(lamem_folder, split=index)
    assert_matches_split_files(from_table, lamem_folder, index)
    for name in SPLITS:
        for table_row, folder_row in zip(from_table[name], from_folder[name], strict=True):
            assert np.array_equal(np.asarray(table_row["image"]), np.asarray(folder_row["image"]))


def test_table_folder_stands_on_its_own(make_lamem_folder, tmp_path):
    root = make_lamem_folder(n_images=20)
    save_table(lamem_to_table(root), tmp_path / "table")
    pixels = np.asarray(load_lamem(root)["test"][0]["image"])
    shutil.rmtree(root)
    assert np.array_equal(np.asarray(load_lamem(tmp_path / "table")["test"][0]["image"]), pixels)


# --- Errors: one sentence, naming the file ------------------------------------------------------------------------


def error_of(source: Path | str, **kwargs) -> str:
    with pytest.raises(DataError) as raised:
        load_lamem(source, **kwargs)
    return str(raised.value)


@pytest.mark.parametrize("split", [0, 6, "1"])
def test_split_index_outside_1_to_5_is_refused(lamem_folder, split):
    with pytest.raises(DataError, match=re.escape(f"split index {split!r} is not one of 1, 2, 3, 4, 5.")):
        load_lamem(lamem_folder, split=split)


def test_missing_folder_and_unknown_folder_are_named(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'absent'}: no such LaMem folder, CSV file")):
        load_lamem(tmp_path / "absent")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: not a LaMem folder (no splits/)")):
        load_lamem(tmp_path)


def test_missing_images_folder_and_split_file_are_named(make_lamem_folder):
    root = make_lamem_folder()
    (root / "splits" / "val_3.txt").unlink()
    assert error_of(root, split=3) == (
        f"{root / 'splits' / 'val_3.txt'}: split file missing (LaMem has train_3, val_3 and test_3.txt)."
    )
    shutil.rmtree(root / "images")
    assert error_of(root).startswith(f"{root / 'images'}: folder missing")


@pytest.mark.parametrize(
    "line, message",
    [
        ("{}.jpg,0.5", "expected '<id>.jpg <score>' with one space"),
        ("{}.jpg  0.5", "expected '<id>.jpg <score>' with one space"),
        ("image score", "expected '<id>.jpg <score>' with one space"),
        ("{}.jpg high", "score 'high' is not a number."),
        ("{}.jpg 1.2", "score 1.2 is outside [0, 1]."),
        ("{}.jpg nan", "score nan is outside [0, 1]."),
    ],
)
def test_malformed_split_lines_are_named_by_file_and_line(make_lamem_folder, line, message):
    root = make_lamem_folder()
    image_id = list(read_split_scores(split_path(root, "test", 1)))[1]
    rewrite_line(split_path(root, "test", 1), 2, line.format(image_id))
    assert error_of(root).startswith(f"{split_path(root, 'test', 1)}, line 2: {message}")


def test_an_id_listed_twice_is_named_with_both_places(make_lamem_folder):
    root = make_lamem_folder()
    first = split_path(root, "train", 1).read_text().splitlines()[0]
    rewrite_line(split_path(root, "test", 1), 4, first)
    image_id = first[:8]
    assert error_of(root) == (
        f"{split_path(root, 'test', 1)}, line 4: {image_id} is listed twice "
        f"(first in {split_path(root, 'train', 1)}, line 1)."
    )


def test_missing_images_are_counted_and_named_or_dropped_with_a_warning(make_lamem_folder):
    root = make_lamem_folder()
    gone = {f"{number:08d}" for number in range(4, 11)}
    for image_id in gone:
        (root / "images" / f"{image_id}.jpg").unlink()
    message = error_of(root)
    named = re.fullmatch(
        re.escape(f"{root / 'images'}: 7 of 40 images are missing (first: ")
        + r"(.*)\); pass on_missing='drop' to skip them\.",
        message,
    )
    assert named and len(named[1].split(", ")) == 5 and set(named[1].split(", ")) <= gone
    with pytest.warns(UserWarning, match="7 of 40 images are missing .*; dropped them."):
        loaded = load_lamem(root, on_missing="drop")
    assert sum(map(len, loaded.values())) == 33
    assert not gone & {image_id for split in loaded.values() for image_id in split["image_id"]}


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"image": "images/00000001.jpg", "rating": 0.5}], ": missing required column(s) score (found: image, rat"),
        ([{"image": "images/00000001.jpg", "score": 1.5}], ", line 2: score 1.5 is outside [0, 1]."),
        ([{"image": "", "score": 0.5}], ", line 2: the image column is empty."),
        ([{"image": "images/00000001.jpg", "score": 0.5, "split": "dev"}], ", line 2: split 'dev' is not train"),
        ([{"image": "images/00000001.jpg", "score": 0.5, "split": ""}], ", line 2: split '' is not train"),
        (
            [{"image": "images/00000001.jpg", "score": 0.5}, {"image": "images/00000001.jpg", "score": 0.6}],
            ", line 3: images/00000001.jpg is listed twice (first on line 2).",
        ),
        ([{"image": "images/nope.jpg", "score": 0.5}], ": 1 of 1 images are missing (first: images/nope.jpg)"),
    ],
)
def test_csv_errors_are_named_by_file_and_line(make_lamem_folder, rows, message):
    path = write_csv(make_lamem_folder() / "scores.csv", rows)
    assert error_of(path).startswith(f"{path}{message}")


def test_a_table_without_the_split_columns_is_refused(lamem_folder, tmp_path):
    save_table(lamem_to_table(lamem_folder).remove_columns(["order_2", "split_5"]), tmp_path)
    assert error_of(tmp_path) == f"{tmp_path}: not a LaMem table, missing column(s) split_5, order_2."


def test_a_split_index_that_leaves_out_an_image_cannot_become_a_table(make_lamem_folder):
    root = make_lamem_folder()
    path = split_path(root, "test", 2)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(DataError, match=re.escape(f"{root / 'splits'}: split index 2 leaves out 1 image(s) that")):
        lamem_to_table(root)


def test_an_unreachable_hub_id_fails_at_once_with_one_sentence(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    message = error_of("memorability-tests/no-such-dataset")
    assert time.perf_counter() - started < 10
    assert message.startswith("memorability-tests/no-such-dataset: the dataset is a Hub id, but HF_HUB_OFFLINE is set")
    assert message.count(". ") == 0 and message.endswith("and pass DIR instead.")


# --- Full scale: the real split files, stand-in images ---------------------------------------------------------------


@pytest.mark.slow
def test_full_scale_lamem_has_the_published_splits_and_scores(full_lamem_folder):
    by_index = {}
    for index in SPLIT_INDICES:
        loaded = load_lamem(full_lamem_folder, split=index)
        assert {name: len(split) for name, split in loaded.items()} == LAMEM_SIZES
        ids = [image_id for split in loaded.values() for image_id in split["image_id"][:]]
        assert len(set(ids)) == len(ids) == 58_741
        assert set(ids) == {f"{number:08d}" for number in range(1, 58_742)}
        assert_matches_split_files(loaded, full_lamem_folder, index)
        by_index[index] = dict(zip(ids, (score for split in loaded.values() for score in split["score"][:])))
    for index in SPLIT_INDICES[1:]:
        differ = sum(by_index[1][image_id] != score for image_id, score in by_index[index].items())
        assert differ > 0.95 * 58_741  # 98.6% for index 2 against 1: equal scores happen by chance


@pytest.mark.slow
def test_full_scale_table_round_trip_gives_the_same_splits(full_lamem_folder, tmp_path):
    save_table(lamem_to_table(full_lamem_folder), tmp_path)
    assert len(list(tmp_path.rglob("*.parquet"))) == 12
    for index in SPLIT_INDICES:
        from_table, from_folder = load_lamem(tmp_path, split=index), load_lamem(full_lamem_folder, split=index)
        for name in SPLITS:
            assert from_table[name]["image_id"][:] == from_folder[name]["image_id"][:]
            assert from_table[name]["score"][:] == from_folder[name]["score"][:]
