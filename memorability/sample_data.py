"""Generated LaMem-format sample data whose memorability is a known function of what the ablations remove.

The score rule (documented in the folder's README.txt too):

    clean = 0.30 + 0.40 * detail + 0.25 * object + 0.00 * colour
    score_i = clip(clean + N(0, noise²), 0, 1), drawn anew for each split index i = 1..5

- `detail` ∈ [0, 1]: amplitude of a fine 2×2-pixel luminance texture over the whole picture. Blur removes it.
- `object` ∈ [0, 1]: radius of one bright, high-contrast disc placed off-centre, outside the middle 50% box. Central
  crop cuts it away; salient-region removal paints it out.
- `colour` ∈ [0, 1]: saturation of the background's hue gradient. The score IGNORES it: grayscale and desaturation
  remove only this feature, so a model that learnt the rule should not change its score under them.

Like LaMem, every split index has its own random partition (45,000 / 3,741 / 10,000 in proportion) and its own
noisy scores. `clean_scores.csv` holds the noise-free score and every feature, so the ceiling a perfect model can
reach is known: Spearman ρ between the clean and the noisy test scores.
"""

import colorsys
import csv
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from .run_output import check_writable

WEIGHTS = {"detail": 0.40, "object": 0.25, "colour": 0.00}
INTERCEPT = 0.30
DEFAULT_NOISE = 0.06
DEFAULT_SIZE = 80
SPLIT_FRACTIONS = {"train": 45_000 / 58_741, "val": 3_741 / 58_741}
SPLIT_INDICES = range(1, 6)
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, what PIL's grayscale uses


@dataclass(frozen=True)
class SampleFeatures:
    """What one sample image shows; everything the score rule reads, and where the object is."""

    detail: float
    object: float
    colour: float
    hue: float
    object_x: int
    object_y: int
    object_radius: int

    @property
    def clean_score(self) -> float:
        return INTERCEPT + sum(weight * getattr(self, name) for name, weight in WEIGHTS.items())

    def object_box(self) -> tuple[int, int, int, int]:
        """The object's bounding box (left, top, right, bottom), inclusive-exclusive."""
        r = self.object_radius
        return self.object_x - r, self.object_y - r, self.object_x + r + 1, self.object_y + r + 1


def draw_features(rng: np.random.Generator, size: int = DEFAULT_SIZE) -> SampleFeatures:
    """Random features; the object's centre lies outside the middle 50% box (never central, by construction)."""
    detail, strength, colour, hue = rng.uniform(0, 1, size=4)
    radius = round(size * (0.04 + 0.10 * strength))
    centre, inner, outer = size / 2, size * 0.27, size * 0.33
    offset = rng.uniform(inner, outer) * rng.choice([-1, 1])
    other = rng.uniform(-outer, outer)
    dx, dy = (offset, other) if rng.uniform() < 0.5 else (other, offset)
    return SampleFeatures(
        detail=float(detail),
        object=float(strength),
        colour=float(colour),
        hue=float(hue),
        object_x=round(centre + dx),
        object_y=round(centre + dy),
        object_radius=radius,
    )


def render(features: SampleFeatures, size: int = DEFAULT_SIZE, seed: int = 0) -> Image.Image:
    """Draw an RGB picture of the features: coloured gradient, fine texture, one off-centre bright disc."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, size)
    lightness = 0.40 + 0.2 * np.add.outer(ramp, ramp) / 2
    rgb = np.array(colorsys.hls_to_rgb(features.hue, 0.5, features.colour))
    # A luminance-neutral tint: grayscale removes exactly the colour and nothing else (brightness stays put).
    tint = rgb - rgb @ LUMA_WEIGHTS
    picture = lightness[..., None] + tint[None, None, :] * 0.2
    blocks = rng.choice([-1.0, 1.0], size=(size // 2 + 1, size // 2 + 1))
    texture = np.kron(blocks, np.ones((2, 2)))[:size, :size]
    picture = picture + 0.22 * features.detail * texture[..., None]
    image = Image.fromarray(np.clip(picture * 255, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = features.object_box()
    draw.ellipse((left, top, right - 1, bottom - 1), fill=(250, 250, 250), outline=(10, 10, 10), width=2)
    return image


def assign_splits(n: int, rng: np.random.Generator) -> np.ndarray:
    """Partition n images into train / val / test in LaMem's proportions."""
    roles = np.full(n, "test", dtype=object)
    order = rng.permutation(n)
    n_train = round(n * SPLIT_FRACTIONS["train"])
    n_val = max(1, round(n * SPLIT_FRACTIONS["val"]))
    roles[order[:n_train]] = "train"
    roles[order[n_train : n_train + n_val]] = "val"
    return roles


def make_sample_data(
    out_dir: str | os.PathLike,
    n: int = 2000,
    seed: int = 0,
    size: int = DEFAULT_SIZE,
    noise: float = DEFAULT_NOISE,
    progress: bool = True,
) -> Path:
    """Write a LaMem-format folder (images/, splits/{train,val,test}_{1..5}.txt) plus clean_scores.csv."""
    if n < 20:
        raise ValueError(f"n must be at least 20 so that every split has images, not {n}.")
    root = Path(out_dir)
    check_writable(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "splits").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    features = [draw_features(rng, size) for _ in range(n)]
    names = [f"{index + 1:08d}.jpg" for index in range(n)]
    for index, (name, feature) in enumerate(tqdm(list(zip(names, features)), desc="images", disable=not progress)):
        render(feature, size, seed=seed * 1_000_003 + index).save(root / "images" / name, quality=95)
    clean = np.array([feature.clean_score for feature in features])
    for split_index in SPLIT_INDICES:
        roles = assign_splits(n, rng)
        scores = np.clip(clean + rng.normal(0.0, noise, size=n), 0.0, 1.0)
        for role in ("train", "val", "test"):
            lines = [f"{names[i]} {scores[i]:.6f}\n" for i in rng.permutation(n) if roles[i] == role]
            (root / "splits" / f"{role}_{split_index}.txt").write_text("".join(lines))
    write_clean_scores(root / "clean_scores.csv", names, features)
    (root / "README.txt").write_text(__doc__.strip() + f"\n\nn={n}, seed={seed}, size={size}, noise={noise}\n")
    return root


def write_clean_scores(path: Path, names: list[str], features: list[SampleFeatures]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        fields = list(asdict(features[0]))
        writer.writerow(["image", "clean_score", *fields])
        for name, feature in zip(names, features):
            writer.writerow([name, f"{feature.clean_score:.6f}", *asdict(feature).values()])


def read_clean_scores(root: str | os.PathLike) -> dict[str, SampleFeatures]:
    """The features of every sample image, keyed by 8-digit image id."""
    with (Path(root) / "clean_scores.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["image"].removesuffix(".jpg"): SampleFeatures(
            detail=float(row["detail"]),
            object=float(row["object"]),
            colour=float(row["colour"]),
            hue=float(row["hue"]),
            object_x=int(row["object_x"]),
            object_y=int(row["object_y"]),
            object_radius=int(row["object_radius"]),
        )
        for row in rows
    }
