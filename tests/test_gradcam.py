"""Grad-CAM and Grad-CAM++: agree with pytorch-grad-cam, find the region that drives the score, leave the model be."""

import copy
import inspect
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from memorability.gradcam import (
    DEFAULT_CAM_METHOD,
    METHODS,
    CamError,
    ScoreOutput,
    layer_names,
    grad_cam,
    model_view,
    overlay,
    weighted_maps,
)
from memorability.inference import load_model
from memorability.presets import build_model
from memorability.sample_data import DEFAULT_SIZE, draw_features, render
from tiny_backbones import FAMILIES, IMAGE_SIZE, tiny_model

# Where the map is taken for localisation: at the trained model's 64-px input the last stage is 2 × 2 cells, too
# coarse to put a peak inside a ~20-px disc; stage 1 is 8 × 8 (see test_default_layer_favours_the_disc).
FINE_LAYER = "backbone.encoder.stages.1"
PEAK_MARGIN = 4  # pixels of the 64-px input: half a cell of FINE_LAYER
# At the default layer, the maps are looked at with the same model on 256-px inputs (8 × 8 cells of 32 px): the
# network is convolutional, and a larger input is how one gets a finer last-stage map from a given model.
LARGE_INPUT = 256
LAST_STAGE_MARGIN = 16  # half a cell of the last stage


def disc_images(processor, count: int = 6, seed: int = 7) -> tuple[list[Image.Image], list[np.ndarray]]:
    """Sample pictures with the largest disc, and where the disc lands in the model's input (a boolean mask).

    The mask is drawn at the picture's size and sent through the processor's own resize and crop (`model_view`), so
    the geometry is the processor's, not a re-derivation of it.
    """
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for index in range(count):
        features = replace(draw_features(rng, DEFAULT_SIZE), object=1.0, object_radius=round(DEFAULT_SIZE * 0.14))
        images.append(render(features, DEFAULT_SIZE, seed=index))
        mask = Image.new("RGB", (DEFAULT_SIZE, DEFAULT_SIZE))
        left, top, right, bottom = features.object_box()
        ImageDraw.Draw(mask).ellipse((left, top, right - 1, bottom - 1), fill=(255, 255, 255))
        masks.append(np.asarray(model_view(mask, processor))[..., 0] > 127)
    return images, masks


def peak_in_box(cam: np.ndarray, mask: np.ndarray, margin: int) -> bool:
    rows, columns = np.nonzero(mask)
    y, x = np.unravel_index(cam.argmax(), cam.shape)
    inside_x = columns.min() - margin <= x <= columns.max() + margin
    return bool(inside_x and rows.min() - margin <= y <= rows.max() + margin)


@pytest.fixture(scope="module")
def trained(trained_sample_model):
    """The trained tiny model, its processor and six disc pictures' pixel values and masks."""
    model, processor = load_model(trained_sample_model)
    images, masks = disc_images(processor)
    return model, processor, images, processor(images, return_tensors="pt")["pixel_values"], masks


@pytest.mark.parametrize("method", list(METHODS))
def test_peak_lies_on_the_disc(trained, method):
    model, _, _, pixel_values, masks = trained
    result = grad_cam(model, pixel_values, method, FINE_LAYER)
    assert [peak_in_box(cam, mask, PEAK_MARGIN) for cam, mask in zip(result.maps, masks)] == [True] * len(masks)


@pytest.mark.parametrize("method", list(METHODS))
def test_peak_lies_on_the_disc_at_the_default_layer(trained, method):
    model, processor, _, _, _ = trained
    large = copy.deepcopy(processor)
    large.size = {"shortest_edge": LARGE_INPUT}
    images, masks = disc_images(large, count=12)
    pixel_values = large(images, return_tensors="pt")["pixel_values"]
    assert pixel_values.shape[-2:] == (LARGE_INPUT, LARGE_INPUT)
    assert not any(mask[LARGE_INPUT // 2, LARGE_INPUT // 2] for mask in masks)  # off-centre, by construction
    result = grad_cam(model, pixel_values, method)
    assert result.layer == model.default_cam_layer()
    hits = [peak_in_box(cam, mask, LAST_STAGE_MARGIN) for cam, mask in zip(result.maps, masks)]
    assert hits == [True] * len(masks)


def test_default_layer_favours_the_disc(trained):
    """At the last stage (2 × 2 here) Grad-CAM++ weighs the disc above the rest in every picture.

    Plain Grad-CAM does not, and not only for resolution: on about a quarter of such pictures its weighted sum is
    negative in every cell (channel-mean gradients times activations; for a regression score the zero-activation
    baseline is arbitrary), so the ReLU leaves a flat map: the regression pitfall of pytorch-grad-cam issue #573.
    Grad-CAM++ weighs only positive gradients and keeps the disc.
    """
    model, _, _, pixel_values, masks = trained
    maps = grad_cam(model, pixel_values, "gradcam++").maps
    assert all(cam[mask].mean() > cam[~mask].mean() for cam, mask in zip(maps, masks))


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("layer", [None, FINE_LAYER])
def test_agrees_with_pytorch_grad_cam(trained, method, layer):
    pytorch_grad_cam = pytest.importorskip(
        "pytorch_grad_cam", reason="pytorch-grad-cam is the reference (pip install grad-cam==1.5.7 --no-deps ttach)"
    )
    model, _, _, pixel_values, _ = trained
    layer = layer or model.default_cam_layer()
    ours = grad_cam(model, pixel_values, method, layer).maps
    reference_class = {"gradcam": pytorch_grad_cam.GradCAM, "gradcam++": pytorch_grad_cam.GradCAMPlusPlus}[method]
    with reference_class(ScoreOutput(model), [model.get_submodule(layer)]) as cam:
        theirs = cam(pixel_values, targets=[torch.nn.Identity()] * len(pixel_values))
    model.zero_grad(set_to_none=True)  # pytorch-grad-cam's backward() fills every .grad
    for mine, reference in zip(ours, theirs):
        if mine.max() == 0:  # no positive evidence: ours is zeros, theirs 0/(1e-7 + 0) = zeros too
            assert reference.max() == 0
        else:
            assert np.corrcoef(mine.ravel(), reference.ravel())[0, 1] >= 0.99


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("family", FAMILIES)
def test_every_backbone_family_agrees_with_pytorch_grad_cam(family, method):
    """Maps at input size, not flat, r ≥ 0.99 against pytorch-grad-cam at the family's default layer; for a vision
    transformer its `reshape_transform` puts the patch tokens on their grid, as `MemorabilityModel.feature_map`
    does for ours."""
    pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam", reason="the reference: grad-cam==1.5.7 (--no-deps)")
    model = tiny_model(family)
    # Seed 2: plain Grad-CAM of the random tiny ResNet is flat on some inputs of other seeds (all of a map's weighted
    # sums negative: pytorch-grad-cam issue #573, see test_default_layer_favours_the_disc); here no map is.
    pixel_values = torch.randn(3, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(2))
    layer = model.default_cam_layer()
    ours = grad_cam(model, pixel_values, method).maps
    reference_class = {"gradcam": pytorch_grad_cam.GradCAM, "gradcam++": pytorch_grad_cam.GradCAMPlusPlus}[method]
    reshape = lambda hidden: hidden if hidden.dim() == 4 else model.feature_map(hidden, (IMAGE_SIZE, IMAGE_SIZE))  # noqa: E731
    with reference_class(ScoreOutput(model), [model.get_submodule(layer)], reshape_transform=reshape) as cam:
        theirs = cam(pixel_values, targets=[torch.nn.Identity()] * len(pixel_values))
    assert ours.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and all(np.ptp(mine) > 0 for mine in ours)
    for mine, reference in zip(ours, theirs):
        assert np.corrcoef(mine.ravel(), reference.ravel())[0, 1] >= 0.99


def all_hooks(model: torch.nn.Module) -> list:
    kinds = ("_forward_hooks", "_backward_hooks", "_forward_pre_hooks", "_backward_pre_hooks")
    return [hook for module in model.modules() for kind in kinds for hook in getattr(module, kind).values()]


def test_leaves_no_hooks_grads_or_flags(tiny_model_dir):
    model, processor = load_model(tiny_model_dir)
    for parameter in model.backbone.embedder.parameters():
        parameter.requires_grad_(False)  # a frozen part must stay frozen, the rest trainable
    flags = [parameter.requires_grad for parameter in model.parameters()]
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for method in METHODS:
        grad_cam(model, pixel_values, method)
    assert all_hooks(model) == []
    assert [parameter.requires_grad for parameter in model.parameters()] == flags
    assert all(parameter.grad is None for parameter in model.parameters())


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_same_map_under_no_grad_and_inference_mode(trained, mode):
    model, _, _, pixel_values, _ = trained
    expected = grad_cam(model, pixel_values[:2], "gradcam++")
    with mode():
        inside = pixel_values[:2].clone()  # an inference tensor under inference_mode
        result = grad_cam(model, inside, "gradcam++")
    np.testing.assert_allclose(result.maps, expected.maps, atol=1e-6)
    np.testing.assert_allclose(result.scores, expected.scores, atol=1e-7)


@pytest.mark.parametrize("backbone", ["tiny", "resnet18", "resnet50"])
def test_every_preset_gives_maps_and_its_own_scores(backbone):
    torch.manual_seed(0)
    model = build_model(backbone, backbone_weights="none").eval()
    pixel_values = torch.randn(2, 3, 64, 48)
    result = grad_cam(model, pixel_values, "gradcam")
    assert model.default_cam_layer() == "backbone.encoder.stages.3" and len(layer_names(model)) == 5
    assert result.maps.shape == (2, 64, 48) and result.maps.dtype == np.float32
    assert result.maps.min() >= 0 and result.maps.max() <= 1 and not np.isnan(result.maps).any()
    with torch.no_grad():
        np.testing.assert_allclose(result.scores, model(pixel_values).scores.numpy(), rtol=1e-5, atol=1e-6)


def test_a_map_without_positive_evidence_is_zeros_not_nan():
    activations = torch.rand(2, 4, 3, 3)
    weights = torch.tensor([[-1.0, -1.0, -1.0, -1.0], [1.0, 0.0, 0.0, 0.0]])
    maps = weighted_maps(activations, weights, (12, 12)).numpy()
    assert (maps[0] == 0).all()
    assert maps[1].min() == 0 and maps[1].max() == pytest.approx(1.0)


def test_one_default_method_everywhere_grad_cam_plus_plus(tiny_model_dir):
    """The README's default, from one constant: the function, the app's analysis, the study and its command line."""
    from memorability.explain import analyse, explain_batch
    from memorability.study import StudyConfig
    from train.ablation_study import build_parser

    assert DEFAULT_CAM_METHOD == "gradcam++"
    model, _ = load_model(tiny_model_dir)
    assert grad_cam(model, torch.zeros(1, 3, 32, 32)).method == DEFAULT_CAM_METHOD
    for function in (analyse, explain_batch):
        assert inspect.signature(function).parameters["method"].default == DEFAULT_CAM_METHOD
    assert StudyConfig(model="m", out_dir="o").cam_method == DEFAULT_CAM_METHOD
    assert build_parser().parse_args(["m", "--images", "i", "--out-dir", "o"]).cam_method == DEFAULT_CAM_METHOD


def test_unknown_method_layer_or_training_mode_is_refused(tiny_model_dir):
    model, _ = load_model(tiny_model_dir)
    pixel_values = torch.zeros(1, 3, 32, 32)
    with pytest.raises(CamError, match="gradcam, gradcam\\+\\+"):
        grad_cam(model, pixel_values, "scorecam")
    with pytest.raises(CamError, match="backbone.encoder.stages.1"):
        grad_cam(model, pixel_values, layer="backbone.encoder.stages.7")
    with pytest.raises(CamError, match="eval"):
        grad_cam(model.train(), pixel_values)


def test_overlay_blends_the_map_onto_the_picture(trained):
    model, processor, images, pixel_values, _ = trained
    view = model_view(images[0], processor)
    cam = grad_cam(model, pixel_values[:1], layer=FINE_LAYER).maps[0]
    assert view.size == cam.shape[::-1]
    shown = overlay(view, cam, opacity=0.5)
    assert shown.size == view.size and shown.mode == "RGB"
    assert overlay(view, cam, opacity=0.0).tobytes() == view.tobytes()
    big = overlay(images[0].resize((200, 160)), cam, opacity=0.4, colormap="magma")
    assert big.size == (200, 160)
    with pytest.raises(ValueError, match="opacity"):
        overlay(view, cam, opacity=1.5)
