"""Face detection: MTCNN (memorability.faces) against OpenCV's frontal Haar cascade, the detector it replaced.

In one run, on labelled real photos and crops that ship inside installed packages (tests/face_sets.py):
- how many images of each set got a box, and how many boxes, from each detector; LFW's 25×25 tiles as they are and
  enlarged 4× (a face filling a 100-px photo);
- MTCNN at several probability thresholds (the production one is memorability.faces.FACE_MIN_PROBABILITY);
- milliseconds per photo for each detector (both detect on a copy at most 512 px on its long side);
- two threads detecting at once with MTCNN: one shared detector, the same behind a lock, one detector per thread;
- the Space's Ablations tab without its HTTP layer (score, the six ablations scored, faces counted before and after),
  on a ResNet50 with random weights (speed does not depend on them), once with each detector: the latency it adds.
Timings are the best (detection) or median (threads, ablations) of --repeats interleaved rounds, so that load from
other processes hits both detectors alike.

    python bench/faces.py            # tables on stdout, JSON in bench/results/faces.json
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import cv2
import numpy as np
import torch
from PIL import Image

from machine import save_result, wait_until_quiet

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

import face_sets  # noqa: E402

from memorability import ablations, explain  # noqa: E402
from memorability.faces import FACE_DETECTOR, FACE_MIN_PROBABILITY, Box, FaceDetector  # noqa: E402
from memorability.inference import load_predictor  # noqa: E402
from memorability.presets import save_untrained_model  # noqa: E402
from memorability.runtime import tune_allocator  # noqa: E402

PHOTO_SETS = {
    "scenes without people": face_sets.SCENES_WITHOUT_PEOPLE,
    "one face": face_sets.ONE_FACE,
    "profile face": face_sets.PROFILE_FACE,
    "animal and character faces (unlabelled)": face_sets.ANIMAL_AND_CHARACTER_FACES,
}
THRESHOLDS = (0.7, 0.8, 0.9, 0.95, 0.99)
BICUBIC = Image.Resampling.BICUBIC
LATENCY_PHOTOS = ("astronaut, Eileen Collins (scikit-image)", "Grace Hopper (matplotlib)", "coffee (scikit-image)",
                  "chelsea, a cat (scikit-image)")  # fmt: skip
DETECTORS = ("Haar", "MTCNN")  # before and after, in the latency table
LATENCY_GOAL_MS = 100.0  # the most the new detector may add to the Ablations tab per photo


class HaarCascade:
    """The detector faces_removed used before MTCNN, with its settings: OpenCV's frontal-face cascade on a histogram-
    equalised gray copy at most 512 px, pyramid step 1.1, 5 neighbours, faces ≥ 5% of the short side (≥ 24 px)."""

    def __init__(self) -> None:
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.lock = threading.Lock()  # a cascade keeps per-image buffers: one thread at a time

    def __call__(self, image: Image.Image) -> list[Box]:
        gray = image.convert("L")
        scale = min(1.0, 512 / max(gray.size))
        if scale < 1.0:
            gray = gray.resize((max(1, round(gray.width * scale)), max(1, round(gray.height * scale))))
        pixels = cv2.equalizeHist(np.asarray(gray, dtype=np.uint8))
        side = max(24, round(0.05 * min(pixels.shape)))
        with self.lock:
            found = self.cascade.detectMultiScale(pixels, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
        return sorted((tuple(round(int(v) / scale) for v in box) for box in found), key=lambda box: (box[1], box[0]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per measurement")
    return parser.parse_args()


def labelled_sets() -> dict[str, list[Image.Image]]:
    """Every labelled set, loaded once; LFW's tiles as they are and enlarged 4× (bicubic)."""
    sets = {name: [load() for load in photos.values()] for name, photos in PHOTO_SETS.items()}
    faces, non_faces = face_sets.lfw_tiles()
    for side in (25, 100):
        for kind, tiles in (("face", faces), ("non-face", non_faces)):
            sets[f"LFW {kind} tiles, {side} px"] = [tile.resize((side, side), BICUBIC) for tile in tiles]
    return sets


def detection_counts(detect: Callable[[Image.Image], list[Box]], sets: dict[str, list[Image.Image]]) -> dict:
    """Per set: images, images with at least one box, images with exactly one, and boxes in all."""
    rows = {}
    for name, images in sets.items():
        found = [len(detect(image)) for image in images]
        rows[name] = {"images": len(found), "with_box": sum(n > 0 for n in found),
                      "exactly_one": sum(n == 1 for n in found), "boxes": sum(found)}  # fmt: skip
    return rows


def print_counts(title: str, columns: dict[str, dict]) -> None:
    """One row per set, one 'images with a box / images (boxes)' cell per column."""
    print(f"\n{title}\n{'set':42}" + "".join(f"{name:>22}" for name in columns))
    for set_name in next(iter(columns.values())):
        rows = [column[set_name] for column in columns.values()]
        cells = [f"{row['with_box']}/{row['images']} ({row['boxes']} boxes)" for row in rows]
        print(f"{set_name:42}" + "".join(f"{cell:>22}" for cell in cells))


def best_ms(functions: dict[str, Callable[[Image.Image], object]], photos: list[Image.Image], repeats: int) -> dict:
    """Best milliseconds per photo for each function, averaged over the photos; one warm-up, rounds interleaved."""
    best = {name: [float("inf")] * len(photos) for name in functions}
    for round_number in range(repeats + 1):
        for name, function in functions.items():
            for index, photo in enumerate(photos):
                started = time.perf_counter()
                function(photo)
                if round_number:
                    best[name][index] = min(best[name][index], 1000 * (time.perf_counter() - started))
    return {name: statistics.fmean(times) for name, times in best.items()}


def two_threads(photos: list[Image.Image], repeats: int) -> dict:
    """Wall milliseconds per photo with two threads detecting at once, and how many answers were another photo's."""
    shared, lock, local = FaceDetector(), threading.Lock(), threading.local()
    expected = [shared.detect(photo) for photo in photos]

    def locked(photo: Image.Image) -> list[Box]:
        with lock:
            return shared.detect(photo)

    def per_thread(photo: Image.Image) -> list[Box]:
        if not hasattr(local, "detector"):
            local.detector = FaceDetector()
        return local.detector.detect(photo)

    variants = {"one shared detector": shared.detect, "shared, behind a lock": locked, "one per thread": per_thread}
    times, wrong = {name: [] for name in variants}, dict.fromkeys(variants, 0)
    work = list(range(len(photos))) * 4
    for _ in range(repeats):
        for name, detect in variants.items():
            local = threading.local()  # per-thread detectors are built afresh each round, as a new pool would
            with ThreadPoolExecutor(2) as pool:
                started = time.perf_counter()
                found = list(pool.map(lambda index: detect(photos[index]), work))  # noqa: B023
                times[name].append(1000 * (time.perf_counter() - started) / len(work))
            wrong[name] += sum(boxes != expected[index] for boxes, index in zip(found, work, strict=True))
    return {name: {"ms_per_photo": statistics.median(times[name]), "wrong": wrong[name]} for name in variants}


def face_steps(photo: Image.Image) -> None:
    """The Ablations tab's only steps that detect faces: the faces_removed ablation, then faces counted on the photo
    and on its ablation (explain.count_faces)."""
    explain.count_faces(photo, ablations.apply_ablation("faces_removed", photo))


def ablations_tab(predictor, photo: Image.Image) -> None:
    """What space/app.py's ablate_photo computes, without the UI: score, the ablations scored, faces counted."""
    original = predictor.predict(photo)
    effects = explain.ablation_effects(predictor, photo, original)
    explain.count_faces(photo, next(effect.image for effect in effects if effect.name == "faces_removed"))


def ablations_latency(photos: dict[str, Image.Image], haar: HaarCascade, repeats: int) -> dict:
    """Median milliseconds per photo of the Ablations tab and of its face steps alone, with the Haar cascade patched
    in and with MTCNN (the rest of the tab is the same code either way)."""
    tune_allocator()  # as the app does
    with tempfile.TemporaryDirectory() as folder:
        predictor = load_predictor(save_untrained_model(Path(folder) / "model"))
    steps = {"tab": lambda photo: ablations_tab(predictor, photo), "face steps": face_steps}

    def run(detector: str, step: str, photo: Image.Image) -> None:
        if detector == DETECTORS[1]:
            return steps[step](photo)
        with mock.patch.object(ablations, "detect_faces", haar), mock.patch.object(explain, "detect_faces", haar):
            return steps[step](photo)

    times = {(detector, step, name): [] for detector in DETECTORS for step in steps for name in photos}
    wait_until_quiet(60)
    for round_number in range(repeats + 1):
        for detector, step, name in times:
            started = time.perf_counter()
            run(detector, step, photos[name])
            if round_number:
                times[detector, step, name].append(1000 * (time.perf_counter() - started))
    median = {key: statistics.median(values) for key, values in times.items()}
    return {
        name: {f"{detector} {step} ms": median[detector, step, name] for detector in DETECTORS for step in steps}
        | {f"added {step} ms": median[DETECTORS[1], step, name] - median[DETECTORS[0], step, name] for step in steps}
        for name in photos
    }


def main() -> None:
    args = parse_args()
    haar, mtcnn = HaarCascade(), FaceDetector()
    sets = labelled_sets()
    counts = {"Haar cascade": detection_counts(haar, sets), "MTCNN": detection_counts(mtcnn.detect, sets)}
    print(f"Images with a box / images (boxes in all); production detector: {FACE_DETECTOR}")
    print_counts("Detectors side by side", counts)
    sweep = {f"MTCNN p>{t}": detection_counts(lambda image, t=t: mtcnn.detect(image, t), sets) for t in THRESHOLDS}
    print_counts("MTCNN by probability threshold", sweep)

    photos = [image for name in ("scenes without people", "one face", "profile face") for image in sets[name]]
    wait_until_quiet(60)
    speed = best_ms({"Haar cascade": haar, "MTCNN": mtcnn.detect}, photos, args.repeats)
    print(f"\nms per photo ({len(photos)} photos, ≤ 512 px for detection, {torch.get_num_threads()} torch threads, "
          f"best of {args.repeats}): " + ", ".join(f"{name} {ms:.1f}" for name, ms in speed.items()))  # fmt: skip

    threads = two_threads(photos, args.repeats)
    print("\nMTCNN, two threads at once (wall ms per photo, median; answers that were another photo's):")
    for name, row in threads.items():
        print(f"  {name:24} {row['ms_per_photo']:7.1f} ms   wrong {row['wrong']}")

    named = {**face_sets.SCENES_WITHOUT_PEOPLE, **face_sets.ONE_FACE}
    latency = ablations_latency({name: named[name]() for name in LATENCY_PHOTOS}, haar, args.repeats)
    print(f"\nAblations tab (ResNet50, random weights) and its face steps alone, ms per photo (median of "
          f"{args.repeats}):")  # fmt: skip
    columns = list(next(iter(latency.values())))
    print(f"{'photo':42}" + "".join(f"{column.removesuffix(' ms'):>18}" for column in columns))
    for name, row in latency.items():
        print(f"{name:42}" + "".join(f"{row[column]:18.1f}" for column in columns))
    worst = max(row["added face steps ms"] for row in latency.values())
    verdict = "met" if worst <= LATENCY_GOAL_MS else "NOT met"
    print(f"most added by the face steps: {worst:+.1f} ms per photo (goal ≤ {LATENCY_GOAL_MS:.0f} ms): {verdict}")

    result = {"settings": vars(args), "detector": FACE_DETECTOR, "min_probability": FACE_MIN_PROBABILITY,
              "counts": counts, "threshold_sweep": sweep, "ms_per_photo": speed, "two_threads": threads,
              "ablations_latency_ms": latency, "latency_goal_ms": LATENCY_GOAL_MS}  # fmt: skip
    print(f"\nwrote {save_result('faces', result)}")


if __name__ == "__main__":
    main()
