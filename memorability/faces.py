"""Face detection for the `faces_removed` ablation and the study's face groups: MTCNN as facenet-pytorch ships it.

MTCNN (Zhang et al. 2016) from facenet-pytorch 2.6.0: MIT licence for code and weights, and its 2 MB of weights are
in the wheel, so nothing is downloaded. Against OpenCV's frontal Haar cascade, which it replaces, on labelled photos
from installed packages (bench/faces.py; tests/test_faces.py asserts the same): no box on 10 photos without people
(the cascade boxed the moon's surface, and on 30 scene photos not shipped here cockpit gauges, a lighthouse lamp and
windows), the one face on the astronaut and on Grace Hopper (both found it), the cameraman's profile (the cascade
misses it), 100 of 100 LFW face tiles at 25 px and 97 enlarged to 100 px (the cascade: 0 and 82), no box on the 100
non-face tiles (nor the cascade); 45–53 ms per photo against the cascade's 69–80 (13 photos, 2 cores, three runs).
Not perfect: on a 256-px photo of a lion it boxed a patch of mane (probability 0.986), where the cascade boxed none.

facenet-pytorch's metadata pins torch<2.3, numpy<2 and Pillow<10.3, but MTCNN needs only torch, torchvision's
`batched_nms`, numpy and PIL, and runs unchanged on our versions: it is installed with `pip install --no-deps`
(Makefile), never as a dependency pip would resolve.
"""

import os
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import MemorabilityError

Box = tuple[int, int, int, int]

FACENET_DISTRIBUTION, FACENET_VERSION, FACENET_MODULE = "facenet-pytorch", "2.6.0", "facenet_pytorch"
FACENET_REQUIREMENT = f"{FACENET_DISTRIBUTION}=={FACENET_VERSION}"
MISSING = (
    f"Face detection needs {FACENET_REQUIREMENT}; install it without its dependencies (its metadata pins torch<2.3): "
    f"pip install --no-deps {FACENET_REQUIREMENT}"
)
# The probability MTCNN's last stage must give a box. From 0.7 (facenet-pytorch's default) to 0.95 the labelled sets
# come out the same (bench/faces.py), but 0.7 also puts a box on each of 3 photos of an animal's or a film
# character's face, and 0.99 loses 4 of the 100 LFW faces: 0.9 keeps a margin on both sides.
FACE_MIN_PROBABILITY = 0.9
FACE_DETECTOR = f"MTCNN (facenet-pytorch {FACENET_VERSION}, MIT licence), face probability above {FACE_MIN_PROBABILITY}"
# MTCNN's first two stages keep their published thresholds: they only pass candidates on to the last stage.
CANDIDATE_THRESHOLDS = (0.6, 0.7)
PYRAMID_FACTOR = 0.709  # MTCNN's image pyramid step (each scale 0.709× the last: half the area)
# Faces smaller than 5% of the short side, and never under MTCNN's usual 20 px, are too small to matter to a viewer;
# the floor also bounds the pyramid (its first scale is 12 px / the smallest face).
MIN_FACE_PIXELS = 20
FACE_MIN_SIZE_FRACTION = 0.05
# Detection runs on a copy whose long side is at most this, so a camera-size photo costs what a small one does
# (45–53 ms on 2 cores); faces under 20 px there (5% of a 4:3 photo's short side) are not sought.
FACE_DETECTION_MAX_SIDE = 512


class FaceDetectorMissingError(MemorabilityError):
    """facenet-pytorch, which holds MTCNN and its weights, is not installed."""


class FaceDetector:
    """MTCNN's three networks, their weights read as plain tensors (`torch.load(weights_only=True)`: no pickle runs).

    `detect` only reads the networks (no batch norm, no buffer written), so one detector serves every thread at
    once, without a lock. Two threads on 2 cores, three runs of bench/faces.py: 50–69 ms a photo sharing one
    detector, 48–85 with one each, 87–99 behind a lock (one detection does not keep two cores busy: small operators,
    NMS in numpy); no answer was another photo's (0 of 260 a run). So one copy and no lock: copies per thread gain
    nothing, and Gradio's pool has up to 40 threads.
    """

    def __init__(self) -> None:
        try:
            import facenet_pytorch
            from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
            from facenet_pytorch.models.utils.detect_face import detect_face
        except ModuleNotFoundError as error:
            if error.name != FACENET_MODULE:
                raise  # facenet-pytorch is there but something it imports is not: not this sentence's problem
            raise FaceDetectorMissingError(MISSING) from None
        weights = os.path.join(os.path.dirname(facenet_pytorch.__file__), "data")
        self.networks = []
        for network, name in ((PNet, "pnet"), (RNet, "rnet"), (ONet, "onet")):
            module = network(pretrained=False)
            module.load_state_dict(torch.load(os.path.join(weights, f"{name}.pt"), weights_only=True))
            self.networks.append(module.eval().requires_grad_(False))
        self._detect_face = detect_face

    def detect(self, image: Image.Image, min_probability: float = FACE_MIN_PROBABILITY) -> list[Box]:
        """Faces as (x, y, w, h) boxes in the image's pixels, top to bottom; empty when there is none."""
        rgb = image.convert("RGB")
        scale = min(1.0, FACE_DETECTION_MAX_SIDE / max(rgb.size))
        if scale < 1.0:
            size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
            rgb = rgb.resize(size, Image.Resampling.BILINEAR)
        min_face = max(MIN_FACE_PIXELS, round(FACE_MIN_SIZE_FRACTION * min(rgb.size)))
        if min(rgb.size) < min_face:  # no face this size fits; MTCNN itself would fail on an empty pyramid
            return []
        thresholds = [*CANDIDATE_THRESHOLDS, min_probability]
        with torch.inference_mode():
            found, _ = self._detect_face(
                np.asarray(rgb), min_face, *self.networks, thresholds, PYRAMID_FACTOR, torch.device("cpu")
            )
        boxes = [_to_box(corners, rgb.size, scale) for corners in np.asarray(found[0], dtype=np.float64)[:, :4]]
        return sorted((box for box in boxes if box[2] > 0 and box[3] > 0), key=lambda box: (box[1], box[0]))


def _to_box(corners: Sequence[float], size: tuple[int, int], scale: float) -> Box:
    """MTCNN's corners (which may overhang the image) as an (x, y, w, h) box inside it, in original pixels."""
    x0, y0 = (max(0.0, value) / scale for value in corners[:2])
    x1, y1 = (min(float(limit), value) / scale for value, limit in zip(corners[2:], size, strict=True))
    left, top = round(x0), round(y0)
    return left, top, round(x1) - left, round(y1) - top


_detector: FaceDetector | None = None
_detector_lock = threading.Lock()


def face_detector() -> FaceDetector:
    """The process's one detector, loaded on first use (25 ms): two threads asking at once get the same one."""
    global _detector
    with _detector_lock:
        if _detector is None:
            _detector = FaceDetector()
        return _detector


def detect_faces(image: Image.Image) -> list[Box]:
    """Faces as (x, y, w, h) boxes in the image's pixels, top to bottom, found by `FACE_DETECTOR`."""
    return face_detector().detect(image)


def facenet_sources() -> tuple[Path, Path]:
    """The installed facenet-pytorch package folder and its MIT licence, for an upload that must carry them.

    A Space installs its requirements with pip, which cannot skip facenet-pytorch's torch<2.3 pin, so the Space
    upload vendors the package beside `memorability` instead; only the version measured here is accepted.
    """
    try:
        distribution = metadata.distribution(FACENET_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise FaceDetectorMissingError(MISSING) from None
    if distribution.version != FACENET_VERSION:
        raise FaceDetectorMissingError(f"{MISSING} (found facenet-pytorch {distribution.version}).")
    licence = next(file for file in distribution.files or () if file.name.startswith("LICENSE"))
    return Path(distribution.locate_file(FACENET_MODULE)), Path(distribution.locate_file(licence))


__all__ = [
    "FACE_DETECTOR",
    "FACE_MIN_PROBABILITY",
    "Box",
    "FaceDetector",
    "FaceDetectorMissingError",
    "detect_faces",
    "facenet_sources",
]
