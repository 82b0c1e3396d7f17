"""What the app shows for one photo: score, embedding and heat map from one pass, and the ablations' effects."""

import numpy as np
import pytest
from PIL import Image

from memorability.ablations import ABLATIONS
from memorability.explain import ablation_effects, analyse, explain_batch
from memorability.gradcam import grad_cam
from memorability.inference import load_predictor
from memorability.sample_data import draw_features, render


@pytest.fixture(scope="module")
def pictures() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [render(draw_features(rng), seed=seed) for seed in range(4)]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_analysis_gives_the_predictors_score_and_embedding(trained_sample_model, pictures, precision):
    predictor = load_predictor(trained_sample_model, precision=precision)
    for picture in pictures:
        result = analyse(predictor, picture)
        output = predictor.forward(predictor.preprocess([picture]))
        assert result.score == pytest.approx(float(output.scores[0]), abs=1e-6) and result.uncertainty == 0
        np.testing.assert_allclose(result.embedding, output.embeddings[0].numpy(), atol=1e-6)
        assert result.heat_map.shape == result.view.size[::-1]
        assert 0 <= result.heat_map.min() and result.heat_map.max() <= 1
        assert result.overlay(0.4).size == result.view.size


def test_maps_of_the_scoring_copy_match_the_fp32_models(trained_sample_model, pictures):
    """The bf16, batch-norm-folded pass shows what the fp32 model's Grad-CAM shows."""
    predictor = load_predictor(trained_sample_model, precision="bf16")
    pixel_values = predictor.preprocess(pictures)
    ours = explain_batch(predictor, pixel_values, "gradcam++").maps
    reference = grad_cam(predictor.model, pixel_values, "gradcam++").maps
    for mine, theirs in zip(ours, reference):
        assert np.corrcoef(mine.ravel(), theirs.ravel())[0, 1] >= 0.95


def test_ablation_effects_are_sorted_changes_against_the_original(trained_sample_model, pictures):
    predictor = load_predictor(trained_sample_model, precision="fp32")
    original = float(predictor.predict(pictures[0]))
    effects = ablation_effects(predictor, pictures[0])
    assert sorted(effect.name for effect in effects) == sorted(ABLATIONS)
    assert [effect.change for effect in effects] == sorted(effect.change for effect in effects)
    for effect in effects:
        assert effect.change == pytest.approx(effect.score - original, abs=1e-6)
        assert effect.score == pytest.approx(float(predictor.predict(effect.image)), abs=1e-6)
