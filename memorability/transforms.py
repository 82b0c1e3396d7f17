"""From a LaMem split to model inputs: augmentation, the model's own image processor, and a collate that survives
corrupt images.

Images are decoded here, by `memorability.images.load_image`, not by `datasets`: one truncated JPEG in 45,000 must
cost one skipped example (counted and named), not a crashed epoch.
"""

import torch
from datasets import Dataset, Image
from torchvision.transforms import v2
from transformers import BaseImageProcessor

from .image_processing import processor_image_size
from .images import ImageLoadError, load_image

CROP_SCALE = (0.6, 1.0)  # RandomResizedCrop keeps 60–100% of the picture: memorability depends on what is in it


def training_augmentation(size: int) -> v2.Compose:
    """PIL → PIL: a random crop of 60–100% of the area, resized to size², flipped left-right half of the time."""
    return v2.Compose([v2.RandomResizedCrop(size, scale=CROP_SCALE), v2.RandomHorizontalFlip()])


class PreprocessingTransform:
    """A batch transform for `Dataset.with_transform`: `image` (undecoded), `score`, `image_id` → model inputs.

    Returns `pixel_values` (a (3, S, S) float tensor, or None where the image could not be read), `labels` (the
    score), `image_id` and `error` (None, or the one-sentence reason). With augmentation the random crop already has
    the processor's size, so the processor only rescales and normalises; without it the processor resizes and crops
    as at inference. A class rather than a closure, so that DataLoader workers can pickle it.
    """

    def __init__(self, processor: BaseImageProcessor, train: bool, augment: bool = True):
        self.processor = processor
        self.augmentation = training_augmentation(processor_image_size(processor)) if train and augment else None

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        pixel_values, errors = [], []
        for image_id, image in zip(batch["image_id"], batch["image"]):
            try:
                pixel_values.append(self.pixels(load_image(image["bytes"] or image["path"], name=image_id)))
                errors.append(None)
            except ImageLoadError as error:
                pixel_values.append(None)
                errors.append(str(error))
        return {"pixel_values": pixel_values, "labels": batch["score"], "image_id": batch["image_id"], "error": errors}

    def pixels(self, image) -> torch.Tensor:
        if self.augmentation is None:
            return self.processor(image, return_tensors="pt")["pixel_values"][0]
        return self.processor(self.augmentation(image), do_resize=False, return_tensors="pt")["pixel_values"][0]


def prepare_for_model(dataset: Dataset, processor: BaseImageProcessor, train: bool, augment: bool = True) -> Dataset:
    """A split of `load_lamem` whose rows are model inputs (see `PreprocessingTransform`), augmented when training."""
    undecoded = dataset.cast_column("image", Image(decode=False))
    return undecoded.with_transform(PreprocessingTransform(processor, train, augment))


def collate_batch(examples: list[dict]) -> dict:
    """Stack the readable examples of a batch for the model; name the unreadable ones instead of failing.

    Returns `pixel_values` (B, 3, S, S) — `torch.empty(0)` when no image of the batch could be read —, `labels`
    (B,) float32, `image_ids` (B), and `skipped` / `skipped_errors`: the ids and reasons of the examples left out.
    """
    kept = [example for example in examples if example["pixel_values"] is not None]
    failed = [example for example in examples if example["pixel_values"] is None]
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in kept]) if kept else torch.empty(0),
        "labels": torch.tensor([example["labels"] for example in kept], dtype=torch.float32),
        "image_ids": [example["image_id"] for example in kept],
        "skipped": [example["image_id"] for example in failed],
        "skipped_errors": [example["error"] for example in failed],
    }
