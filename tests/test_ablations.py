"""Ablations: each one is deterministic, keeps size and RGB, removes the feature it names, and works in `datasets`."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from datasets import Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image
from skimage import data

from memorability.ablations import (
    ABLATIONS,
    UnknownAblationError,
    ablate_examples,
    ablation_names,
    apply_ablation,
    detect_faces,
    salient_mask,
    saliency_map,
)
from memorability.faces import FACE_DETECTOR

NAMES = ["blur", "grayscale", "center_crop", "desaturate", "faces_removed", "salient_removed"]
# A bright yellow square, off-centre, on a noisy grey background: the one thing that stands out.
OBJECT_BOX = (20, 44, 80, 104)  # top, bottom, left, right


def photo(name: str, width: int = 128) -> Image.Image:
    """A scikit-image sample photo, downscaled for speed (the astronaut's face is still found at 128 px)."""
    image = Image.fromarray(getattr(data, name)())
    return image.resize((width, round(image.height * width / image.width)), Image.Resampling.BILINEAR)


def generated() -> Image.Image:
    """A 128×96 image with a colour gradient, shapes and seeded noise: detail, colour and structure to remove."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:128]
    pixels = np.stack([x * 2, y * 2, 255 - x - y], axis=-1).astype(np.float64)
    pixels[30:60, 40:70] = [250, 240, 30]
    pixels[(x - 100) ** 2 + (y - 70) ** 2 < 150] = [20, 20, 200]
    pixels += rng.normal(0, 10, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def object_scene() -> Image.Image:
    """A noisy grey 128×96 background with one bright square in OBJECT_BOX."""
    rng = np.random.default_rng(1)
    pixels = np.clip(120 + rng.normal(0, 8, (96, 128, 3)), 0, 255).astype(np.uint8)
    top, bottom, left, right = OBJECT_BOX
    pixels[top:bottom, left:right] = [240, 220, 40]
    return Image.fromarray(pixels)


def pixels_of(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def laplacian_energy(image: Image.Image) -> float:
    """Mean squared discrete Laplacian of the luminance: how much fine detail there is."""
    gray = pixels_of(image.convert("L"))
    laplacian = gray[1:-1, :-2] + gray[1:-1, 2:] + gray[:-2, 1:-1] + gray[2:, 1:-1] - 4 * gray[1:-1, 1:-1]
    return float(np.mean(laplacian**2))


def channel_spread(image: Image.Image) -> float:
    """Mean over pixels of (max − min) over the channels: 0 for a gray image."""
    pixels = pixels_of(image)
    return float(np.mean(pixels.max(axis=-1) - pixels.min(axis=-1)))


IMAGES = {"astronaut": photo("astronaut"), "coffee": photo("coffee"), "chelsea": photo("chelsea")}
IMAGES["generated"] = generated()


def test_registry_names_and_order():
    assert ablation_names() == NAMES
    assert list(ABLATIONS) == NAMES
    for name in NAMES:
        described = ABLATIONS[name].describe()
        assert described["name"] == name and described["description"]
        assert described["params"] == dict(ABLATIONS[name].params)


@pytest.mark.parametrize("image_name", list(IMAGES))
@pytest.mark.parametrize("name", NAMES)
def test_deterministic_same_size_rgb(name, image_name):
    image = IMAGES[image_name]
    first, second = apply_ablation(name, image), apply_ablation(name, image.copy())
    assert first.mode == "RGB" and first.size == image.size
    assert first.tobytes() == second.tobytes()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
@pytest.mark.parametrize("name", NAMES)
def test_any_mode_in_rgb_out(name, mode):
    image = IMAGES["generated"].convert(mode)
    result = apply_ablation(name, image)
    assert result.mode == "RGB" and result.size == image.size


def test_grayscale_has_equal_channels():
    pixels = np.asarray(apply_ablation("grayscale", IMAGES["coffee"]))
    assert np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])


def test_desaturate_is_identity_at_zero_grayscale_at_one_and_monotone():
    image = IMAGES["generated"]
    assert apply_ablation("desaturate", image, strength=0).tobytes() == image.tobytes()
    assert apply_ablation("desaturate", image, strength=1).tobytes() == apply_ablation("grayscale", image).tobytes()
    spreads = [channel_spread(apply_ablation("desaturate", image, strength=s)) for s in (0, 0.25, 0.5, 0.75, 1)]
    assert all(a > b for a, b in zip(spreads, spreads[1:], strict=False))
    assert spreads[-1] == 0
    assert channel_spread(ABLATIONS["desaturate"](image)) > 0  # the default keeps some colour, unlike grayscale


@pytest.mark.parametrize("image_name", ["chelsea", "generated"])
def test_blur_removes_high_frequencies(image_name):
    image = IMAGES[image_name]
    original, default, stronger = [laplacian_energy(image)] + [
        laplacian_energy(apply_ablation("blur", image, sigma=s)) for s in (0.015, 0.05)
    ]
    assert default < 0.5 * original
    assert stronger < default


def test_center_crop_keeps_only_the_centre():
    # Red border; the middle 50% is blue with a green 10×12 square at its centre.
    pixels = np.zeros((96, 128, 3), dtype=np.uint8)
    pixels[...] = [255, 0, 0]
    pixels[24:72, 32:96] = [0, 0, 255]
    pixels[43:53, 58:70] = [0, 255, 0]
    result = pixels_of(apply_ablation("center_crop", Image.fromarray(pixels)))
    red = (result[..., 0] > 128) & (result[..., 2] < 128)
    green = (result[..., 1] > 128) & (result[..., 0] < 128)
    assert red.mean() < 0.01  # the border is gone (a bicubic fringe at most)
    assert 0.7 < green.mean() / (4 * (pixels[..., 1] > 128).mean()) < 1.3  # the centre is magnified twice per axis
    assert green[39:57, 53:75].mean() > 0.95  # and still in the middle (rows 38–58, columns 52–76)
    assert not green[:30].any() and not green[-30:].any()


def test_faces_removed_from_the_astronaut():
    image = photo("astronaut", 256)
    faces = detect_faces(image)
    assert len(faces) >= 1
    assert all(isinstance(v, int) for box in faces for v in box)
    result = apply_ablation("faces_removed", image)
    assert detect_faces(result) == []
    before, after = pixels_of(image), pixels_of(result)
    x, y, w, h = faces[0]
    assert np.abs(before[y : y + h, x : x + w] - after[y : y + h, x : x + w]).mean() > 10
    assert np.array_equal(before[200:], after[200:])  # far below the face nothing changes


@pytest.mark.parametrize("image_name", ["coffee", "generated"])
def test_faces_removed_is_identity_without_faces(image_name):
    image = IMAGES[image_name]
    assert detect_faces(image) == []
    assert apply_ablation("faces_removed", image).tobytes() == image.tobytes()


def test_faces_removed_leaves_a_photo_without_people_alone():
    """The Haar cascade the ablation used before MTCNN boxed a patch of this photo of the moon's surface, and the
    ablation blurred it away."""
    moon = Image.fromarray(data.moon()).convert("RGB")
    assert apply_ablation("faces_removed", moon).tobytes() == moon.tobytes()


def test_descriptions_name_the_face_detector_and_what_saliency_finds():
    assert FACE_DETECTOR in ABLATIONS["faces_removed"].description and "MTCNN" in FACE_DETECTOR
    salient = ABLATIONS["salient_removed"].description
    assert "stands out" in salient and "not necessarily the main object" in salient


def test_saliency_map_finds_the_object():
    image = object_scene()
    saliency = saliency_map(image)
    assert saliency.shape == (96, 128) and saliency.dtype.kind == "f"
    assert saliency.min() == 0 and saliency.max() == 1
    row, column = np.unravel_index(np.argmax(saliency), saliency.shape)
    top, bottom, left, right = OBJECT_BOX
    assert top - 2 <= row < bottom + 2 and left - 2 <= column < right + 2
    assert salient_mask(image).shape == (96, 128)
    assert salient_mask(image)[top:bottom, left:right].mean() > 0.95


def test_salient_mask_of_a_large_image_is_found_small_and_scaled_up():
    image = object_scene().resize((640, 480), Image.Resampling.NEAREST)  # beyond MASK_MAX_SIDE
    mask = salient_mask(image)
    top, bottom, left, right = (5 * edge for edge in OBJECT_BOX)
    assert mask.shape == (480, 640)
    assert mask[top:bottom, left:right].mean() > 0.95 and mask.mean() < 0.25


def test_salient_removed_changes_the_object_not_the_rest():
    image = object_scene()
    change = np.abs(pixels_of(apply_ablation("salient_removed", image)) - pixels_of(image)).mean(axis=-1)
    top, bottom, left, right = OBJECT_BOX
    inside = np.zeros(change.shape, dtype=bool)
    inside[top:bottom, left:right] = True
    assert change[inside].mean() > 60
    assert change[inside].mean() > 20 * change[~inside].mean()


def test_salient_removed_leaves_a_flat_image_alone():
    image = Image.new("RGB", (64, 48), (90, 120, 150))
    assert not salient_mask(image).any()
    assert apply_ablation("salient_removed", image).tobytes() == image.tobytes()


def tiny_dataset() -> Dataset:
    images = [IMAGES["generated"], object_scene(), IMAGES["generated"].transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    features = Features({"image": ImageFeature(), "label": Value("float32")})
    return Dataset.from_dict({"image": images, "label": [0.25, 0.5, 0.75]}, features=features)


def test_with_transform_ablates_on_access():
    dataset = tiny_dataset()
    originals = [example["image"] for example in dataset]
    ablated = dataset.with_transform(ablate_examples("blur", sigma=0.03))
    batch = ablated[:3]
    assert batch["label"] == [0.25, 0.5, 0.75]
    for original, result in zip(originals, batch["image"], strict=True):
        assert result.tobytes() == apply_ablation("blur", original, sigma=0.03).tobytes()
    assert ablated[1]["image"].size == (128, 96)


@pytest.mark.parametrize("batched", [True, False])
def test_map_ablates_and_keeps_other_columns(batched):
    mapped = tiny_dataset().map(ablate_examples("grayscale"), batched=batched, batch_size=2)
    assert mapped.features["image"] == ImageFeature()
    assert mapped["label"] == [0.25, 0.5, 0.75]
    for example in mapped:
        pixels = np.asarray(example["image"].convert("RGB"))
        assert example["image"].size == (128, 96)
        assert np.array_equal(pixels[..., 0], pixels[..., 2]) and np.array_equal(pixels[..., 1], pixels[..., 2])


def test_ablate_examples_names_a_missing_column():
    with pytest.raises(KeyError, match="image"):
        ablate_examples("blur")({"picture": [IMAGES["generated"]]})


@pytest.mark.parametrize("call", [lambda: apply_ablation("sharpen", IMAGES["generated"]), lambda: ablate_examples("")])
def test_unknown_name_lists_the_valid_ones(call):
    with pytest.raises(UnknownAblationError) as error:
        call()
    assert isinstance(error.value, KeyError) and isinstance(error.value, ValueError)
    assert all(name in str(error.value) for name in NAMES)


@pytest.mark.parametrize(
    ("name", "params", "named"),
    [
        ("desaturate", {"strength": 1.5}, "strength"),
        ("desaturate", {"strength": -0.1}, "strength"),
        ("center_crop", {"keep": 0}, "keep"),
        ("blur", {"sigma": "large"}, "sigma"),
        ("blur", {"sigma": True}, "sigma"),
        ("blur", {"radius": 2}, "sigma"),  # an unknown parameter: the message lists the real ones
        ("grayscale", {"strength": 0.5}, "none"),
    ],
)
def test_bad_parameters_name_the_parameter(name, params, named):
    with pytest.raises(ValueError, match=named):
        apply_ablation(name, IMAGES["generated"], **params)
    with pytest.raises(ValueError, match=named):
        ablate_examples(name, **params)


def test_describe_records_overrides_and_accepts_numpy_scalars():
    described = ABLATIONS["blur"].describe(sigma=np.float32(0.02))
    assert described["params"] == {"sigma": pytest.approx(0.02)}
    assert type(described["params"]["sigma"]) is float
    assert apply_ablation("blur", IMAGES["generated"], sigma=np.float64(0.02)).size == (128, 96)


def test_face_detection_is_thread_safe():
    """Two visitors at once (Gradio runs handlers two at a time): each call sees its own photo's faces and none
    raises. An unguarded shared Haar cascade returned the other photo's box or raised an OpenCV error in 62 of 120;
    MTCNN's networks are only read, so one detector is shared without a lock (bench/faces.py: 0 wrong of 260)."""
    pictures = {name: photo(name, 256) for name in ("astronaut", "coffee")}
    expected = {name: detect_faces(picture) for name, picture in pictures.items()}
    assert expected["astronaut"] and not expected["coffee"]
    names = ["astronaut", "coffee"] * 50
    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(lambda name: detect_faces(pictures[name]), names))
    wrong = [name for name, faces in zip(names, found) if faces != expected[name]]
    assert not wrong, f"{len(wrong)} of {len(names)} calls returned another photo's faces"
