"""Real-looking pictures to calibrate and check an int8 model with: the images of a folder (or CSV, Parquet table,
zip) or of a neighbour index that the user gives, or else the photographs that ship inside installed packages
(scikit-image's, matplotlib's Grace Hopper, scikit-learn's two where it is installed), each cut into crops.

Every picture belongs to a group (the photo it was cut from, or itself), and pictures are held out for measuring
fidelity by whole groups: the int8 file is judged on photos it was never calibrated on.
"""

import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .errors import MemorabilityError
from .images import ImageLoadError, load_image, to_rgb
from .neighbours import INFO_FILE, NeighbourIndex
from .scoring_inputs import collect_inputs

# Photographs inside scikit-image's wheel (no download): people, animals, objects, scenes, textures, microscopy.
SKIMAGE_PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "camera",
    "coins", "moon", "brick", "grass", "gravel", "clock", "page", "text",
)  # fmt: skip
CROPS_PER_PHOTO = 15
HELD_OUT_EVERY = 3  # every third group is held out for the fidelity check
DEFAULT_MAX_IMAGES = 300


class CalibrationError(MemorabilityError):
    """Calibration pictures that cannot be had, or too few of them; the message says what to pass instead."""


@dataclass
class CalibrationSet:
    """Pictures with a name and a group each, and a description of where they came from (for the record)."""

    description: str
    names: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    pictures: list[Image.Image] = field(default_factory=list)
    unreadable: int = 0

    def add(self, name: str, group: str, picture: Image.Image) -> None:
        self.names.append(name)
        self.groups.append(group)
        self.pictures.append(picture)

    def split(self) -> tuple[list[int], list[int]]:
        """(calibration indices, held-out indices): every `HELD_OUT_EVERY`-th group in sorted order is held out."""
        order = {group: rank for rank, group in enumerate(sorted(set(self.groups)))}
        held = [index for index, group in enumerate(self.groups) if order[group] % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
        held_set = set(held)
        return [index for index in range(len(self.names)) if index not in held_set], held


def package_photos() -> dict[str, Image.Image]:
    """The photographs of installed packages, as RGB: scikit-image's (a dependency), matplotlib's Grace Hopper (a
    dependency), and scikit-learn's china and flower where scikit-learn is installed."""
    from matplotlib import cbook
    from skimage import data

    photos = {f"skimage/{name}": to_rgb(Image.fromarray(getattr(data, name)())) for name in SKIMAGE_PHOTOS}
    hopper = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    photos["matplotlib/grace_hopper"] = load_image(hopper)
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return photos
    sample = load_sample_images()
    for path, array in zip(sample.filenames, sample.images):
        photos[f"sklearn/{Path(path).stem}"] = Image.fromarray(array)
    return photos


def random_crop(photo: Image.Image, rng: random.Random) -> Image.Image:
    """A crop of 30-100% of the photo's area, of aspect 3:4 to 4:3, mirrored half the time."""
    width, height = photo.size
    area = width * height * rng.uniform(0.3, 1.0)
    aspect = rng.uniform(3 / 4, 4 / 3)
    crop_width = min(width, round((area * aspect) ** 0.5))
    crop_height = min(height, round((area / aspect) ** 0.5))
    left, top = rng.randint(0, width - crop_width), rng.randint(0, height - crop_height)
    crop = photo.crop((left, top, left + crop_width, top + crop_height))
    return crop.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def photo_set(crops: int = CROPS_PER_PHOTO, seed: int = 0) -> CalibrationSet:
    """Each package photo whole and in `crops` seeded random crops, grouped by photo."""
    rng = random.Random(seed)
    photos = package_photos()
    found = CalibrationSet(f"{len(photos)} photographs shipped with scikit-image, matplotlib and scikit-learn, each "
                           f"whole and in {crops} random crops (seed {seed})")  # fmt: skip
    for name, photo in photos.items():
        found.add(name, name, photo)
        for number in range(crops):
            found.add(f"{name}#crop{number}", name, random_crop(photo, rng))
    return found


def index_set(folder: Path, max_images: int, seed: int) -> CalibrationSet:
    """The thumbnails of a neighbour index (train/build_index.py), up to `max_images` of them, seeded."""
    index = NeighbourIndex.load(folder)
    chosen = sample_positions(len(index), max_images, seed)
    found = CalibrationSet(f"{len(chosen)} of the {len(index)} thumbnails of the neighbour index {folder.name}")
    rows = index.table.select(chosen)
    for position, (image_id, thumbnail) in enumerate(zip(rows["image_id"], rows["thumbnail"])):
        name = str(image_id) if image_id is not None else f"row {chosen[position]}"
        found.add(name, name, to_rgb(thumbnail))
    return found


def folder_set(path: Path, max_images: int, seed: int) -> CalibrationSet:
    """The images of a folder, CSV, Parquet table or zip, up to `max_images` of them, seeded; unreadable ones are
    counted and left out."""
    inputs = collect_inputs([str(path)])
    chosen = sample_positions(len(inputs), max_images, seed)
    found = CalibrationSet(f"{len(chosen)} of the {len(inputs)} images in {path.name}")
    sources = inputs.sources
    for position in chosen:
        name = relative_name(inputs.names[position], path)  # recorded with the int8 file: no local folders
        try:
            picture = load_image(sources[position], name=Path(name).name)
        except ImageLoadError:
            found.unreadable += 1
            continue
        found.add(name, name, picture)
    return found


def relative_name(name: str, root: Path) -> str:
    """An input's name relative to the folder (or beside the file) it was found in, where it lies under it."""
    base = root if root.is_dir() else root.parent
    try:
        return str(Path(name).resolve().relative_to(base.resolve()))
    except ValueError:
        return Path(name).name


def sample_positions(total: int, most: int, seed: int) -> list[int]:
    """All positions, or a seeded sample of `most` of them, in order."""
    positions = list(range(total))
    return positions if total <= most else sorted(random.Random(seed).sample(positions, most))


def calibration_set(
    source: str | os.PathLike | None, max_images: int = DEFAULT_MAX_IMAGES, seed: int = 0
) -> CalibrationSet:
    """The pictures of `source`: a neighbour index folder (its thumbnails), a folder, CSV, Parquet table or zip of
    images, or None for the package photographs."""
    if source is None:
        return photo_set(seed=seed)
    path = Path(source)
    if not path.exists():
        raise CalibrationError(f"{source}: no such file or folder to calibrate with.")
    return index_set(path, max_images, seed) if (path / INFO_FILE).is_file() else folder_set(path, max_images, seed)


__all__ = ["CalibrationError", "CalibrationSet", "calibration_set", "package_photos", "photo_set"]
