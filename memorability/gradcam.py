"""Grad-CAM and Grad-CAM++ of the memorability score: which regions of a picture the score rests on.

Three ideas, three places, as in pytorch-grad-cam:
- what to explain: the target, here the model's scalar score itself (`MemorabilityModel.forward_from`);
- how to capture: the feature map of one of the model's declared feature blocks (`feature_info`; a transformer's
  patch tokens reshaped to their grid) and the score's gradient with respect to it (`capture`). The forward pass is
  split at that block instead of hooked: the part before it runs without autograd (no graph kept), and ONE
  `torch.autograd.grad` call to the activations skips every weight gradient, which is most of what
  `loss.backward()` costs. Nothing is registered on the model, so nothing is left behind and two threads can
  explain with one model at once;
- how to show: `overlay`, independent of the method, on the picture as the model saw it (`model_view`).

Methods are small functions from (activations, gradients) to channel weights, chosen by name in `METHODS`.
"""

from collections.abc import Callable
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
from PIL import Image
from torch import nn

from .errors import MemorabilityError
from .modeling_memorability import MemorabilityModel, MemorabilityOutput

# Keeps Grad-CAM++'s alpha finite where gradients vanish; pytorch-grad-cam's value, so that maps agree with it.
PLUS_PLUS_EPS = 1e-6

WeightFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class CamError(MemorabilityError, ValueError):
    """An unknown method or layer name, or a model in training mode; the message lists what is allowed."""


@dataclass(frozen=True)
class CamResult:
    """Maps (B, H, W) float32 in [0, 1] at input resolution, and the scores (B,), uncertainties (B,) and embeddings
    (B, D) of the same forward pass."""

    maps: np.ndarray
    scores: np.ndarray
    uncertainty: np.ndarray
    embeddings: np.ndarray
    method: str
    layer: str


def gradcam_weights(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): a channel weighs its spatially averaged gradient. (B, C)."""
    return gradients.mean(dim=(2, 3))


def gradcam_plus_plus_weights(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19) with the exponential-score simplification pytorch-grad-cam
    uses: alpha = g² / (2g² + ΣA·g³); weights = Σ alpha·relu(g). Positive evidence from small regions counts as
    much as from large ones. (B, C)."""
    squared = gradients.pow(2)
    total = activations.sum(dim=(2, 3), keepdim=True)
    alpha = squared / (2 * squared + total * squared * gradients + PLUS_PLUS_EPS)
    alpha = torch.where(gradients != 0, alpha, torch.zeros_like(alpha))
    return (alpha * gradients.clamp_min(0)).sum(dim=(2, 3))


METHODS: dict[str, WeightFunction] = {"gradcam": gradcam_weights, "gradcam++": gradcam_plus_plus_weights}
# The default everywhere (API, Space, study): plain Grad-CAM comes out flat for a regression target whose gradients at
# the last stage are all negative (pytorch-grad-cam issue #573); Grad-CAM++ weighs only the positive ones.
DEFAULT_CAM_METHOD = "gradcam++"


def layer_names(model: MemorabilityModel) -> list[str]:
    """The layers a map can be taken at, input side first: the model's declared feature blocks."""
    return [info.module for info in model.feature_info]


def capture(
    model: MemorabilityModel, pixel_values: torch.Tensor, layer: str
) -> tuple[torch.Tensor, torch.Tensor, MemorabilityOutput]:
    """Feature map (B, C, h, w) of `layer`, d score / d feature map, and the model's output, from one forward pass
    split at that layer: the blocks up to it without autograd, the rest (`forward_from`) with it.

    Safe under `torch.no_grad()` / `torch.inference_mode()`: gradients are switched on here, on a clone of the input
    made outside inference mode. Parameters keep their `requires_grad` and never receive a `.grad`. Nothing is
    registered on the model, so two threads may explain with the same model at once.
    """
    names = layer_names(model)
    if layer not in names:
        raise CamError(f"Unknown layer '{layer}'; choose one of {', '.join(names)}.")
    if model.training:
        raise CamError("The model is in training mode (batch norm would mix the images); call model.eval() first.")
    cut = names.index(layer) + 1
    size = tuple(pixel_values.shape[-2:])
    parameter = next(model.backbone.parameters())
    with torch.inference_mode(False):
        hidden = pixel_values.to(parameter.device, parameter.dtype).clone()
        with torch.no_grad():
            for _, block in model.feature_blocks()[:cut]:
                hidden = block(hidden)
        activations = model.family.explained(hidden).requires_grad_()  # the map, within what the next block takes
        with torch.enable_grad():
            output = model.forward_from(hidden, start=cut)
            (gradients,) = torch.autograd.grad(output.scores.sum(), activations)
    output = MemorabilityOutput(**{key: value.detach() for key, value in output.items()})
    return model.feature_map(activations.detach(), size), model.feature_map(gradients, size), output


def weighted_maps(activations: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """ReLU of the weighted channel sum, upsampled bilinearly to `size`, each map min-max scaled to [0, 1]."""
    maps = torch.relu(torch.einsum("bc,bchw->bhw", weights.float(), activations.float()))
    maps = nn.functional.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    # A flat map (no positive evidence anywhere) is all zeros, not 0/0.
    return torch.where(span > 0, (maps - low) / span.clamp_min(torch.finfo(maps.dtype).tiny), torch.zeros_like(maps))


def grad_cam(
    model: MemorabilityModel,
    pixel_values: torch.Tensor,
    method: str = DEFAULT_CAM_METHOD,
    layer: str | None = None,
) -> CamResult:
    """Maps of the regions that raise the score of each image in a batch (B, 3, H, W), with the scores and
    embeddings of the same pass.

    `method` is a key of `METHODS`; `layer` one of `layer_names(model)` (default: `model.default_cam_layer()`, the
    last CNN stage, or the last transformer block whose patch tokens reach the pooled output). `model` may be any
    copy of a memorability model, such as a predictor's fast scoring copy (batch norm folded, bf16): the maps then
    come from the pass that gives its scores. The input keeps its memory format.
    """
    if method not in METHODS:
        raise CamError(f"Unknown Grad-CAM method '{method}'; choose one of {', '.join(METHODS)}.")
    layer = layer or model.default_cam_layer()
    activations, gradients, output = capture(model, pixel_values, layer)
    maps = weighted_maps(activations, METHODS[method](activations, gradients), tuple(pixel_values.shape[-2:]))
    return CamResult(
        maps=maps.cpu().numpy(),
        scores=output.scores.float().cpu().numpy(),
        uncertainty=output.uncertainty.float().cpu().numpy(),
        embeddings=output.embeddings.float().cpu().numpy(),
        method=method,
        layer=layer,
    )


class ScoreOutput(nn.Module):
    """The model as a module whose output is the scores (B,), for libraries that expect a tensor output
    (pytorch-grad-cam's other CAM methods, captum); their target for a score is the identity."""

    def __init__(self, model: MemorabilityModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values, return_dict=True).scores


def model_view(image: Image.Image, processor) -> Image.Image:
    """The picture as the model sees it (resized and centre-cropped by its processor, not normalised), so that a map
    at input resolution lies on it pixel for pixel."""
    pixels = processor(image, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"][0]
    return Image.fromarray(np.clip(pixels.transpose(1, 2, 0), 0, 255).astype(np.uint8))


def overlay(image: Image.Image, cam: np.ndarray, opacity: float = 0.5, colormap: str = "jet") -> Image.Image:
    """The map coloured by `colormap` (a matplotlib name) over the picture; `opacity` is the map's share.

    The map is resized to the picture: pass `model_view(image, processor)` for the model's own framing.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, not {opacity}.")
    colours = matplotlib.colormaps[colormap](np.clip(cam, 0.0, 1.0))[..., :3]
    heat = Image.fromarray((colours * 255).round().astype(np.uint8)).resize(image.size, Image.Resampling.BILINEAR)
    return Image.blend(image.convert("RGB"), heat, opacity)


__all__ = [
    "DEFAULT_CAM_METHOD",
    "METHODS",
    "CamError",
    "CamResult",
    "ScoreOutput",
    "capture",
    "grad_cam",
    "gradcam_plus_plus_weights",
    "gradcam_weights",
    "layer_names",
    "model_view",
    "overlay",
]
