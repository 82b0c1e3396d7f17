"""Ablations: deterministic PIL → PIL transforms that each take one human-interpretable feature out of a photo.

Scoring a photo before and after an ablation says how much the model relies on that feature (sharp detail, colour,
the periphery, faces, the region that stands out most). Every transform converts its input to RGB, returns RGB of the
same size, and uses no randomness, so the same image always gives the same bytes and a study can be rerun exactly.

Sizes are fractions of the image (or of a face box) rather than pixels, so an ablation means the same thing on a
thumbnail and on a 12-megapixel photo. Use one transform with `apply_ablation(name, image, **params)`, a dataset
with `Dataset.with_transform(ablate_examples(name))` or `Dataset.map(ablate_examples(name), batched=True)`, and
record what was run with `ABLATIONS[name].describe(**params)`.
"""

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from .faces import FACE_DETECTOR, Box, detect_faces

# Re-detect and fill again up to this many times, so a face that survives one fill (or a second face the first
# detection missed) is still removed.
FACE_REMOVAL_PASSES = 3

# Spectral residual saliency (Hou & Zhang 2007) works on a tiny grayscale copy: the paper uses 64 px, where the
# spectrum's smooth part is the "expected" image and the residual is what stands out.
SALIENCY_WIDTH = 64
SALIENCY_SIGMA = 2.5  # Gaussian smoothing of the saliency map, in pixels of the 64-px map.
# Added to the amplitude before the log: flat synthetic areas have exact spectral zeros whose log (−∞) would
# otherwise dominate the residual. 0.01 is negligible next to a natural image's amplitudes (the DC term is ~1000).
SPECTRUM_FLOOR = 0.01
INPAINT_RADIUS = 5  # cv2.inpaint neighbourhood, in pixels: OpenCV's usual 3–5 px.
# Defaults of `salient_mask` (and so of `salient_removed`): the paper's object threshold, 3 × the mean saliency,
# and a 2%-of-the-short-side margin so inpainting starts from clean background.
SALIENT_THRESHOLD = 3.0
SALIENT_DILATE = 0.02
MASK_MAX_SIDE = 256  # the salient region is found on a map at most this many pixels wide or high


class UnknownAblationError(KeyError, ValueError):
    """A name that is not in `ABLATIONS`: a KeyError for lookups, a ValueError for argument checks (CLI, config)."""

    def __str__(self) -> str:  # KeyError would quote the message as if it were the missing key
        return str(self.args[0])


def _rgb_array(image: Image.Image) -> np.ndarray:
    """The image as an H×W×3 uint8 array (a copy, so callers may write into it)."""
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _blur(image: Image.Image, sigma: float = 0.015) -> Image.Image:
    """Gaussian blur with a standard deviation of `sigma` × the short side: removes fine detail and texture.

    1.5% of the short side is about 4 px at the model's 256-px resize: texture and small text go, while shapes,
    layout and colour stay recognisable.
    """
    return image.filter(ImageFilter.GaussianBlur(float(sigma) * min(image.size)))


def _grayscale(image: Image.Image) -> Image.Image:
    """Luminance only (ITU-R 601 luma, as PIL's "L"), returned as RGB so models need no special case."""
    return image.convert("L").convert("RGB")


def _center_crop(image: Image.Image, keep: float = 0.5) -> Image.Image:
    """Keep the middle `keep` of the width and of the height, resized back: removes the periphery.

    0.5 (a quarter of the area) is the crop of a student study of LaMem.
    """
    width, height = image.size
    crop_width, crop_height = max(1, round(width * keep)), max(1, round(height * keep))
    left, top = (width - crop_width) // 2, (height - crop_height) // 2
    box = (left, top, left + crop_width, top + crop_height)
    return image.resize(image.size, Image.Resampling.BICUBIC, box=box)


def _desaturate(image: Image.Image, strength: float = 0.75) -> Image.Image:
    """Mix the image with its luminance: 0 keeps it, 1 is `grayscale`; in between weakens colour but keeps hue.

    0.75 leaves a quarter of the saturation: colour is still visible, so the result differs from `grayscale`.
    """
    return Image.blend(image, _grayscale(image), float(strength))


def _fill_face(pixels: np.ndarray, box: Box, margin: float, sigma: float) -> None:
    """Replace the box (grown by `margin` of its side) with its mean colour, blurred into its surroundings.

    The mean colour erases every facial feature; the blur (sigma a fraction of the grown box's side) and a
    feathered edge blend the patch into the neighbouring pixels, so the fill does not read as a pasted square.
    Pillow's Gaussian blur is used because its cost does not grow with sigma (a face can be 1000 px wide).
    """
    height, width = pixels.shape[:2]
    x, y, w, h = box
    grow = margin * max(w, h)
    x0, y0 = max(0, math.floor(x - grow)), max(0, math.floor(y - grow))
    x1, y1 = min(width, math.ceil(x + w + grow)), min(height, math.ceil(y + h + grow))
    blur_sigma = max(1.0, sigma * max(x1 - x0, y1 - y0))
    pad = math.ceil(3 * blur_sigma)
    cx0, cy0, cx1, cy1 = max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)
    region = pixels[cy0:cy1, cx0:cx1]
    inner = (slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))
    filled = region.copy()
    filled[inner] = np.rint(region[inner].reshape(-1, 3).mean(axis=0)).astype(np.uint8)
    filled = np.asarray(Image.fromarray(filled).filter(ImageFilter.GaussianBlur(blur_sigma)), dtype=np.float32)
    inside = np.zeros(region.shape[:2], dtype=np.uint8)
    inside[inner] = 255
    # Twice a blurred box is 1 everywhere inside it (the face goes entirely) and fades to 0 outside it.
    feather = np.asarray(Image.fromarray(inside).filter(ImageFilter.GaussianBlur(blur_sigma / 2)), dtype=np.float32)
    alpha = np.minimum(1.0, feather / 127.5)[..., None]
    blended = region + alpha * (filled - region)
    pixels[cy0:cy1, cx0:cx1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _faces_removed(image: Image.Image, margin: float = 0.15, sigma: float = 0.25) -> Image.Image:
    """Fill every detected face, re-detecting after each pass, so no face is left for the detector (or a viewer).

    The box grows by `margin` (15%) of its side because MTCNN's boxes run from the brows to the chin and leave out
    the forehead and ears; `sigma` (25% of the grown box) is wide enough to blend the fill into hair and background.
    """
    pixels = _rgb_array(image)
    for _ in range(FACE_REMOVAL_PASSES):
        boxes = detect_faces(Image.fromarray(pixels))
        if not boxes:
            break
        for box in boxes:
            _fill_face(pixels, box, margin, sigma)
    return Image.fromarray(pixels)


def _saliency(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """The spectral-residual saliency of `image`, resized to `size` (width, height) and scaled to [0, 1]."""
    gray = image.convert("L")
    height = max(1, round(gray.height * SALIENCY_WIDTH / gray.width))
    small = gray.resize((SALIENCY_WIDTH, height), Image.Resampling.BILINEAR)
    small = np.asarray(small, dtype=np.float64) / 255.0
    pad = max(1, min(small.shape) // 4)
    spectrum = np.fft.fft2(np.pad(small, pad, mode="symmetric"))
    log_amplitude = np.log(np.abs(spectrum) + SPECTRUM_FLOOR)
    residual = log_amplitude - ndimage.uniform_filter(log_amplitude, size=3, mode="nearest")
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = ndimage.gaussian_filter(saliency, SALIENCY_SIGMA, mode="nearest")[pad:-pad, pad:-pad]
    saliency = cv2.resize(saliency.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    low, high = float(saliency.min()), float(saliency.max())
    return (saliency - low) / (high - low) if high > low else np.zeros_like(saliency)


def saliency_map(image: Image.Image) -> np.ndarray:
    """Spectral-residual saliency (Hou & Zhang 2007) as floats in [0, 1], one per pixel of `image`.

    Written with numpy/scipy because `cv2.saliency` is not in the headless OpenCV wheel. What the log amplitude
    spectrum has beyond its local average is what the image has that natural images do not: the salient part.
    The FFT treats the image as periodic, so the jump between opposite borders would be the most "salient" thing;
    a mirrored margin (a quarter of the short side) hides that jump and is cut off again afterwards.
    """
    return _saliency(image, image.size)


def salient_mask(
    image: Image.Image, threshold: float = SALIENT_THRESHOLD, dilate: float = SALIENT_DILATE
) -> np.ndarray:
    """The most salient region as a boolean H×W mask: the connected part around the saliency maximum.

    A pixel is salient above `threshold` × the mean saliency (the paper's object threshold is 3); only the region
    holding the maximum is kept, so one region goes, not every busy patch. That region is what stands out from its
    surroundings, not necessarily the photo's subject: on 12 sample photos (tests/face_sets.py) it was the running
    cheetah and the camera, but also a cat's eye, a spoon, a cap badge, a helmet's highlight. Holes are filled
    because an object's outline is more salient than its plain inside. The region grows by `dilate` × the short side
    so that the inpainting starts from clean background rather than from the object's own edge. The region is found
    at most MASK_MAX_SIDE px wide (the map comes from 64 px anyway) and scaled up, so a large photo costs no more.
    """
    scale = min(1.0, MASK_MAX_SIDE / max(image.size))
    work_size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    saliency = _saliency(image, work_size)
    labels, _ = ndimage.label(saliency > threshold * float(saliency.mean()))
    peak = labels[np.unravel_index(int(np.argmax(saliency)), saliency.shape)]
    if peak == 0:  # nothing clears the threshold (a flat image, or a very high threshold)
        return np.zeros((image.height, image.width), dtype=bool)
    region = ndimage.binary_fill_holes(labels == peak).astype(np.uint8)
    radius = round(dilate * min(saliency.shape))
    if radius > 0:
        region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    return cv2.resize(region, image.size, interpolation=cv2.INTER_NEAREST).astype(bool)


def _salient_removed(
    image: Image.Image, threshold: float = SALIENT_THRESHOLD, dilate: float = SALIENT_DILATE
) -> Image.Image:
    """Inpaint the most salient region (`salient_mask`) from its surroundings with Telea's method."""
    mask = salient_mask(image, threshold, dilate).astype(np.uint8)
    pixels = _rgb_array(image)
    if not mask.any():
        return Image.fromarray(pixels)
    return Image.fromarray(cv2.inpaint(pixels, mask, INPAINT_RADIUS, cv2.INPAINT_TELEA))


@dataclass(frozen=True)
class Ablation:
    """One named ablation with its default parameters and their allowed ranges, callable on a PIL image."""

    name: str
    description: str
    params: Mapping[str, float]
    function: Callable[..., Image.Image]
    limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))

    def resolve(self, **overrides: Any) -> dict[str, float]:
        """The defaults with `overrides` applied, or a ValueError naming the parameter that is unknown or off."""
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            valid = ", ".join(self.params) or "none"
            raise ValueError(f"Ablation {self.name!r} has no parameter {unknown[0]!r}; its parameters: {valid}.")
        values = {**self.params, **overrides}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"Ablation {self.name!r}: parameter {key!r} must be a number, not {value!r}.")
            low, high = self.limits.get(key, (-math.inf, math.inf))
            if not low <= float(value) <= high:
                raise ValueError(
                    f"Ablation {self.name!r}: parameter {key!r} must lie in [{low}, {high}], got {value!r}."
                )
            values[key] = float(value)
        return values

    def __call__(self, image: Image.Image, **overrides: Any) -> Image.Image:
        """Ablate one image (any mode) into an RGB image of the same size."""
        values = self.resolve(**overrides)
        return self.function(image.convert("RGB"), **values)

    def describe(self, **overrides: Any) -> dict[str, Any]:
        """Name, description and the parameters that would be used, for a report or a results file."""
        return {"name": self.name, "description": self.description, "params": self.resolve(**overrides)}


def _registered(
    name: str, description: str, function: Callable[..., Image.Image], **limits: tuple[float, float]
) -> Ablation:
    """An `Ablation` whose defaults are the keyword defaults of `function`, so each default is written once."""
    parameters = list(inspect.signature(function).parameters.values())[1:]
    return Ablation(name, description, {p.name: p.default for p in parameters}, function, limits)


ABLATIONS: dict[str, Ablation] = {
    ablation.name: ablation
    for ablation in (
        _registered(
            "blur",
            "Gaussian blur, sigma a fraction of the short side: fine detail and texture removed.",
            _blur,
            sigma=(0.0, 1.0),
        ),
        _registered("grayscale", "Luminance only, as RGB: colour removed.", _grayscale),
        _registered(
            "center_crop",
            "Middle `keep` of width and height resized back to full size: the periphery removed.",
            _center_crop,
            keep=(0.05, 1.0),
        ),
        _registered(
            "desaturate",
            "Colour weakened toward luminance by `strength` (1 = grayscale): saturation reduced.",
            _desaturate,
            strength=(0.0, 1.0),
        ),
        _registered(
            "faces_removed",
            f"Faces found by {FACE_DETECTOR}, boxes grown by `margin`, filled with their blurred mean colour: "
            "faces removed.",
            _faces_removed,
            margin=(0.0, 1.0),
            sigma=(0.0, 1.0),
        ),
        _registered(
            "salient_removed",
            "The region that stands out most from its surroundings (spectral-residual saliency; not necessarily "
            "the main object), inpainted from around it.",
            _salient_removed,
            threshold=(0.0, math.inf),
            dilate=(0.0, 0.5),
        ),
    )
}


def ablation_names() -> list[str]:
    """The registered ablation names, in registry order."""
    return list(ABLATIONS)


def get_ablation(name: str) -> Ablation:
    """The ablation called `name`, or an `UnknownAblationError` whose message lists the valid names."""
    try:
        return ABLATIONS[name]
    except (KeyError, TypeError):
        raise UnknownAblationError(f"Unknown ablation {name!r}; choose one of: {', '.join(ABLATIONS)}.") from None


def apply_ablation(name: str, image: Image.Image, **params: Any) -> Image.Image:
    """Ablate one image with the named ablation, overriding any of its default parameters."""
    return get_ablation(name)(image, **params)


def ablate_examples(name: str, column: str = "image", **params: Any) -> Callable[[dict], dict]:
    """A function for `Dataset.with_transform` or `Dataset.map` that ablates the images in `column`.

    The name and parameters are checked now, so a typo fails before a long map starts. Other columns pass through
    unchanged; a batch (a list of images) and a single example (one image) both work.
    """
    ablation = get_ablation(name)
    values = ablation.resolve(**params)

    def transform(examples: dict) -> dict:
        if column not in examples:
            raise KeyError(f"Ablation {name!r} needs a column {column!r}; the examples have: {', '.join(examples)}.")
        images = examples[column]
        if isinstance(images, Image.Image):
            return {**examples, column: ablation(images, **values)}
        return {**examples, column: [ablation(image, **values) for image in images]}

    return transform


__all__ = [
    "ABLATIONS",
    "Ablation",
    "UnknownAblationError",
    "ablate_examples",
    "ablation_names",
    "apply_ablation",
    "detect_faces",
    "get_ablation",
    "salient_mask",
    "saliency_map",
]
