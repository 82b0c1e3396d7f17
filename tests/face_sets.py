"""Labelled real photos for the face detector, all shipped inside installed packages (nothing is downloaded).

Shared by tests/test_faces.py (the acceptance test) and bench/faces.py (the same sets against OpenCV's Haar cascade).
"""

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib import cbook
from PIL import Image
from skimage import data


def package_file(package: str, *parts: str) -> Path:
    """A file inside an installed package, found without importing it (gradio's and scikit-learn's imports take
    seconds)."""
    return Path(importlib.util.find_spec(package).origin).parent.joinpath(*parts)


def skimage_photo(name: str) -> Callable[[], Image.Image]:
    return lambda: Image.fromarray(getattr(data, name)()).convert("RGB")


def file_photo(path: Path) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        with Image.open(path) as image:
            return image.convert("RGB")

    return load


GRADIO_IMAGES = ("gradio", "media_assets", "images")
SKLEARN_IMAGES = ("sklearn", "datasets", "images")  # what sklearn.datasets.load_sample_image reads

# Photos with no person in them (a cat and a running cheetah seen side-on, but no face turned to the camera). The
# Haar cascade boxes a patch of the moon's surface; scikit-image's coins are left out: some show heads in relief.
SCENES_WITHOUT_PEOPLE: dict[str, Callable[[], Image.Image]] = {
    "coffee (scikit-image)": skimage_photo("coffee"),
    "chelsea, a cat (scikit-image)": skimage_photo("chelsea"),
    "rocket (scikit-image)": skimage_photo("rocket"),
    "motorcycle in a garage (scikit-image)": lambda: Image.fromarray(data.stereo_motorcycle()[0]),
    "Hubble deep field (scikit-image)": skimage_photo("hubble_deep_field"),
    "moon surface (scikit-image)": skimage_photo("moon"),
    "china, a temple (scikit-learn)": file_photo(package_file(*SKLEARN_IMAGES, "china.jpg")),
    "flower (scikit-learn)": file_photo(package_file(*SKLEARN_IMAGES, "flower.jpg")),
    "Eiffel tower (gradio)": file_photo(package_file(*GRADIO_IMAGES, "tower.jpg")),
    "running cheetah (gradio)": file_photo(package_file(*GRADIO_IMAGES, "cheetah.jpg")),
}

# Photos of exactly one person, the face turned to the camera.
ONE_FACE: dict[str, Callable[[], Image.Image]] = {
    "astronaut, Eileen Collins (scikit-image)": skimage_photo("astronaut"),
    "Grace Hopper (matplotlib)": file_photo(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))),
}

# The only profile face in the installed packages: scikit-image's cameraman, seen from the side, his eye at the
# viewfinder (one eye and an ear visible).
PROFILE_FACE: dict[str, Callable[[], Image.Image]] = {"cameraman in profile (scikit-image)": skimage_photo("camera")}

# Not human faces, not labelled: what a detector does with an animal's or a film character's face turned to the
# camera (the bench reports it; nothing is asserted).
ANIMAL_AND_CHARACTER_FACES: dict[str, Callable[[], Image.Image]] = {
    "lion (gradio)": file_photo(package_file(*GRADIO_IMAGES, "lion.jpg")),
    "cheetah cub (gradio)": file_photo(package_file("gradio", "test_data", "cheetah2.jpg")),
    "Groot, a film character (gradio)": file_photo(package_file(*GRADIO_IMAGES, "groot.jpeg")),
}


def lfw_tiles() -> tuple[list[Image.Image], list[Image.Image]]:
    """scikit-image's LFW subset as 25×25 RGB images: 100 face crops, then 100 background crops of the same photos."""
    tiles = [Image.fromarray(np.uint8(np.rint(255 * tile))).convert("RGB") for tile in data.lfw_subset()]
    return tiles[:100], tiles[100:]
