"""What the app (and any caller) shows for one photo: score, heat map, and what each ablation does to the score."""

from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from .ablations import ABLATIONS, detect_faces
from .gradcam import DEFAULT_CAM_METHOD, CamResult, grad_cam, model_view, overlay
from .inference import MemorabilityPredictor


@dataclass(frozen=True)
class Analysis:
    """A photo as the model sees it: its score (and the spread of the model's heads around it), its embedding (for
    neighbours) and a heat map at input size."""

    score: float
    uncertainty: float
    embedding: np.ndarray
    view: Image.Image
    heat_map: np.ndarray
    method: str

    def overlay(self, opacity: float = 0.5) -> Image.Image:
        return overlay(self.view, self.heat_map, opacity=opacity)


@dataclass(frozen=True)
class AblationEffect:
    name: str
    description: str
    image: Image.Image
    score: float
    change: float


def explain_batch(
    predictor: MemorabilityPredictor,
    pixel_values: torch.Tensor,
    method: str = DEFAULT_CAM_METHOD,
    explainer: MemorabilityPredictor | None = None,
) -> CamResult:
    """Scores, embeddings and heat maps, the scores exactly `predictor.forward`'s: from one pass of the predictor's
    scoring copy where it has gradients (one forward and a short backward). Where it has none (int8), the maps come
    from `explainer` (the same model in a float form: `inference.explainer`) and the scores, spread and embeddings
    from the predictor's own pass. A model whose heads were fitted on flipped embeddings (`predictor.flip`) is
    scored as `predictor.forward` scores it, from both views (two more passes); its map is the photo's own."""
    cam_source = predictor if predictor.supports_gradients else explainer
    if cam_source is None:
        raise ValueError(f"A {predictor.form.label} network has no gradients: pass an explainer for its heat maps.")
    cam = grad_cam(cam_source.scoring_model, cam_source.prepare(pixel_values), method=method)
    if predictor.supports_gradients and not predictor.flip:
        return cam
    scored = predictor.forward(pixel_values)
    return replace(cam, scores=scored.scores.numpy(), uncertainty=scored.uncertainty.numpy(),
                   embeddings=scored.embeddings.numpy())  # fmt: skip


def analyse(
    predictor: MemorabilityPredictor,
    image: Image.Image,
    method: str = DEFAULT_CAM_METHOD,
    explainer: MemorabilityPredictor | None = None,
) -> Analysis:
    """Score, embedding and heat map of one photo (see `explain_batch`)."""
    cam = explain_batch(predictor, predictor.preprocess([image]), method, explainer)
    return Analysis(
        score=float(cam.scores[0]),
        uncertainty=float(cam.uncertainty[0]),
        embedding=cam.embeddings[0],
        view=model_view(image, predictor.processor),
        heat_map=cam.maps[0],
        method=method,
    )


def ablation_effects(
    predictor: MemorabilityPredictor, image: Image.Image, original: float | None = None
) -> list[AblationEffect]:
    """Each ablation of the photo with its score and its change against the original, most negative first."""
    ablated = {name: ablation(image) for name, ablation in ABLATIONS.items()}
    scores = predictor.predict(list(ablated.values()))
    base = predictor.predict(image) if original is None else original
    effects = [
        AblationEffect(name, ABLATIONS[name].description, picture, float(score), float(score) - base)
        for (name, picture), score in zip(ablated.items(), scores)
    ]
    return sorted(effects, key=lambda effect: effect.change)


def count_faces(image: Image.Image, ablated: Image.Image) -> tuple[int, int]:
    """Faces found in the photo, and how many of them the face ablation removed."""
    before = len(detect_faces(image))
    return before, before - len(detect_faces(ablated))
