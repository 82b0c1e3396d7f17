"""memorability.transforms: model inputs of the processor's size, random augmentation only when training, and
corrupt images skipped and named instead of crashing a DataLoader."""

import pytest
import torch
from torch.utils.data import DataLoader

from memorability.data import lamem_to_table, load_lamem
from memorability.tables import save_table
from memorability.image_processing import make_image_processor
from memorability.transforms import collate_batch, prepare_for_model

SIZE = 32


@pytest.fixture(scope="module")
def processor():
    return make_image_processor(SIZE)


@pytest.fixture(scope="module")
def train_split(lamem_folder):
    return load_lamem(lamem_folder)["train"]


def draws(dataset, seeds=range(4)) -> list[torch.Tensor]:
    """The first example's pixels under several torch seeds."""
    pixels = []
    for seed in seeds:
        torch.manual_seed(seed)
        pixels.append(dataset[0]["pixel_values"])
    return pixels


@pytest.mark.parametrize("train", [True, False])
def test_examples_are_model_inputs_of_the_processor_size(train_split, processor, train):
    example = prepare_for_model(train_split, processor, train=train)[0]
    assert example["pixel_values"].shape == (3, SIZE, SIZE) and example["pixel_values"].dtype == torch.float32
    assert example["labels"] == train_split[0]["score"]
    assert example["image_id"] == train_split[0]["image_id"] and example["error"] is None


def test_augmentation_is_random_when_training_and_off_for_evaluation(train_split, processor):
    augmented = draws(prepare_for_model(train_split, processor, train=True))
    assert not all(torch.equal(augmented[0], other) for other in augmented[1:])
    evaluated = draws(prepare_for_model(train_split, processor, train=False))
    assert all(torch.equal(evaluated[0], other) for other in evaluated[1:])
    plain = draws(prepare_for_model(train_split, processor, train=True, augment=False))
    assert all(torch.equal(evaluated[0], other) for other in plain)


def test_table_rows_give_the_same_inputs_as_the_folder(lamem_folder, train_split, processor, tmp_path):
    save_table(lamem_to_table(lamem_folder), tmp_path)
    from_table = prepare_for_model(load_lamem(tmp_path)["train"], processor, train=False)[3]
    from_folder = prepare_for_model(train_split, processor, train=False)[3]
    assert torch.equal(from_table["pixel_values"], from_folder["pixel_values"])


@pytest.mark.parametrize("num_workers", [0, 1])
def test_corrupt_images_are_skipped_and_named_by_collate(make_lamem_folder, processor, num_workers):
    root = make_lamem_folder()
    train = load_lamem(root)["train"]
    broken = {train[5]["image_id"]: b"\xff\xd8\xff\xe0 not the rest of a JPEG", train[12]["image_id"]: b"plain text"}
    for image_id, data in broken.items():
        (root / "images" / f"{image_id}.jpg").write_bytes(data)
    loader = DataLoader(
        prepare_for_model(train, processor, train=True), batch_size=8, collate_fn=collate_batch, num_workers=num_workers
    )
    batches = list(loader)
    assert [batch["pixel_values"].shape for batch in batches][:2] == [(7, 3, SIZE, SIZE)] * 2
    assert [image_id for batch in batches for image_id in batch["skipped"]] == list(broken)
    errors = [error for batch in batches for error in batch["skipped_errors"]]
    assert [error.split(":")[0] for error in errors] == list(broken)
    kept = [image_id for batch in batches for image_id in batch["image_ids"]]
    assert kept == [image_id for image_id in train["image_id"][:] if image_id not in broken]
    assert torch.equal(torch.cat([batch["labels"] for batch in batches]), torch.tensor(score_of(train, kept)))


def score_of(dataset, image_ids: list[str]) -> list[float]:
    scores = dict(zip(dataset["image_id"][:], dataset["score"][:]))
    return [scores[image_id] for image_id in image_ids]


def test_a_batch_with_no_readable_image_is_empty_not_an_error():
    batch = collate_batch([{"pixel_values": None, "labels": 0.5, "image_id": "00000007", "error": "corrupt."}])
    assert batch["pixel_values"].numel() == 0 and batch["labels"].shape == (0,)
    assert batch["skipped"] == ["00000007"] and batch["skipped_errors"] == ["corrupt."]
