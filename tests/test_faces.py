"""The face detector on labelled real photos (tests/face_sets.py): faces where there are faces, nothing elsewhere.

OpenCV's Haar cascade, which this detector replaced, fails the LFW and profile tests here (bench/faces.py runs it on
the same sets).
"""

import sys
from types import SimpleNamespace

import pytest
import torch
from face_sets import ONE_FACE, PROFILE_FACE, SCENES_WITHOUT_PEOPLE, lfw_tiles
from PIL import Image

from memorability import faces
from memorability.faces import (
    FACE_DETECTOR,
    FACE_MIN_PROBABILITY,
    FaceDetectorMissingError,
    detect_faces,
    facenet_sources,
)

# Where each face is (left, top, right, bottom, in the photo's own pixels), marked by hand: a box's centre must lie
# inside.
FACE_REGIONS = {
    "astronaut, Eileen Collins (scikit-image)": (170, 40, 280, 190),
    "Grace Hopper (matplotlib)": (160, 90, 360, 350),
    "cameraman in profile (scikit-image)": (190, 100, 265, 205),
}


def centre_inside(box: tuple[int, int, int, int], region: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    left, top, right, bottom = region
    return left <= x + w / 2 <= right and top <= y + h / 2 <= bottom


def test_no_box_on_photos_without_people():
    boxed = [name for name, load in SCENES_WITHOUT_PEOPLE.items() if detect_faces(load())]
    assert len(SCENES_WITHOUT_PEOPLE) - len(boxed) >= 7, f"boxes on photos without people: {boxed}"


@pytest.mark.parametrize("name", [*ONE_FACE, *PROFILE_FACE])
def test_one_face_found_on_the_face(name):
    photo = {**ONE_FACE, **PROFILE_FACE}[name]()
    boxes = detect_faces(photo)
    assert len(boxes) == 1, boxes
    assert centre_inside(boxes[0], FACE_REGIONS[name]), boxes
    assert all(isinstance(value, int) for value in boxes[0])


def test_lfw_tiles():
    face_tiles, other_tiles = lfw_tiles()
    found = sum(bool(detect_faces(tile)) for tile in face_tiles)
    false_boxes = sum(len(detect_faces(tile)) for tile in other_tiles)
    assert found >= 95, f"{found} of 100 LFW faces found"
    assert false_boxes <= 2, f"{false_boxes} boxes on 100 LFW non-face tiles"


def test_a_large_photo_gives_the_same_face_in_its_own_pixels():
    photo = ONE_FACE["astronaut, Eileen Collins (scikit-image)"]()
    large = photo.resize((2048, 2048), Image.Resampling.BICUBIC)  # detected on a 512-px copy
    (x, y, w, h), (big_x, big_y, big_w, big_h) = detect_faces(photo)[0], detect_faces(large)[0]
    assert [big_x, big_y, big_w, big_h] == pytest.approx([4 * x, 4 * y, 4 * w, 4 * h], abs=8)


@pytest.mark.parametrize("size", [(1, 1), (19, 40), (300, 5)])
def test_images_too_small_for_a_face_have_none(size):
    assert detect_faces(Image.new("RGB", size, (120, 90, 60))) == []


def test_the_detector_is_named_with_its_threshold():
    assert "MTCNN" in FACE_DETECTOR and "facenet-pytorch 2.6.0" in FACE_DETECTOR and "MIT" in FACE_DETECTOR
    assert str(FACE_MIN_PROBABILITY) in FACE_DETECTOR


def test_weights_are_read_without_pickle(monkeypatch):
    """torch.load with weights_only=True reads tensors only; a pickled object in the file would raise, not run."""
    calls = []
    original_load = torch.load

    def load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return original_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    faces.FaceDetector()
    assert calls == [True, True, True]


def test_missing_facenet_pytorch_is_one_clear_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # `import facenet_pytorch` now raises ImportError
    monkeypatch.setattr(faces, "_detector", None)
    with pytest.raises(FaceDetectorMissingError, match=r"pip install --no-deps facenet-pytorch==2\.6\.0"):
        detect_faces(Image.new("RGB", (64, 64)))


def test_facenet_sources_for_the_space_upload(monkeypatch):
    folder, licence = facenet_sources()
    assert (folder / "data" / "onet.pt").is_file() and (folder / "models" / "mtcnn.py").is_file()
    assert "MIT License" in licence.read_text()
    monkeypatch.setattr(faces.metadata, "distribution", lambda name: SimpleNamespace(version="2.5.3"))
    with pytest.raises(FaceDetectorMissingError, match="found facenet-pytorch 2.5.3"):
        facenet_sources()
