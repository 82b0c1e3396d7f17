"""Light heads on embeddings: both learn a known relation to 0.95 of what any model could reach, and an ensemble's
score is the mean of its heads with their spread as the uncertainty (0 for one head)."""

import numpy as np
import pytest
import torch

from memorability import MemorabilityConfig, MemorabilityModel
from memorability.head_fitting import fit_head
from memorability.metrics import regression_metrics

DIMENSIONS = 64


def known_relation(samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings, their clean score (a linear function of a few directions plus a small interaction, LaMem's range)
    and the noisy score a head is fitted on."""
    rng = np.random.default_rng(seed)
    embeddings = (rng.standard_normal((samples, DIMENSIONS)) * rng.uniform(0.5, 3, DIMENSIONS)).astype(np.float32)
    direction = np.zeros(DIMENSIONS)
    direction[:8] = rng.standard_normal(8)
    linear = (embeddings / embeddings.std(axis=0)) @ direction / np.linalg.norm(direction)
    clean = 0.75 + 0.06 * linear + 0.02 * np.tanh(embeddings[:, 8] * embeddings[:, 9])
    return embeddings, clean, clean + rng.normal(0, 0.04, samples)


@pytest.mark.parametrize("kind", ["ridge", "mlp"])
def test_each_head_reaches_the_ceiling_of_a_known_relation(kind):
    embeddings, clean, noisy = known_relation(12_000)
    train, validation, test = slice(0, 9_000), slice(9_000, 10_000), slice(10_000, None)
    ceiling = regression_metrics(clean[test], noisy[test])["spearman"]  # a perfect model of the clean score
    head = fit_head(kind, embeddings[train], noisy[train], embeddings[validation], noisy[validation])
    config = MemorabilityConfig(backbone_config={"hidden_sizes": [DIMENSIONS], "depths": [1]},
                                head_hidden_sizes=head.hidden_sizes, sigmoid_output=False)  # fmt: skip
    model = MemorabilityModel(config).eval()
    model.head.load_state_dict(head.state_dict)
    with torch.no_grad():
        predicted = model.forward_head(torch.from_numpy(embeddings[test])).numpy()
    rho = regression_metrics(predicted, noisy[test])["spearman"]
    assert rho >= 0.95 * ceiling, (rho, ceiling)


def test_a_constant_dimension_does_not_break_the_fit():
    embeddings, _, noisy = known_relation(2_000)
    embeddings[:, 5] = 3.0
    for kind in ("ridge", "mlp"):
        head = fit_head(kind, embeddings[:1500], noisy[:1500], embeddings[1500:], noisy[1500:])
        assert all(torch.isfinite(value).all() for value in head.state_dict.values())


def ensemble(heads: int) -> MemorabilityModel:
    torch.manual_seed(0)
    config = MemorabilityConfig(backbone_config={"layer_type": "basic", "embedding_size": 8, "hidden_sizes": [8, 16],
                                                 "depths": [1, 1]}, head_hidden_sizes=[], num_heads=heads)  # fmt: skip
    model = MemorabilityModel(config).eval()
    for head in model.heads:
        torch.nn.init.normal_(head[-1].weight, std=1.0)
    return model


def test_the_score_is_the_mean_of_the_heads_and_the_uncertainty_their_spread():
    model = ensemble(5)
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        output = model(pixels)
        per_head = torch.stack([torch.sigmoid(head(output.embeddings)).squeeze(-1) for head in model.heads], dim=1)
    torch.testing.assert_close(output.scores, per_head.mean(dim=1))
    torch.testing.assert_close(output.uncertainty, per_head.std(dim=1, correction=0))
    assert (output.uncertainty > 0).all()


def test_one_head_has_exactly_no_uncertainty():
    with torch.no_grad():
        output = ensemble(1)(torch.randn(3, 3, 32, 32))
    assert (output.uncertainty == 0).all()


def test_the_spread_calibration_counts_errors_within_one_and_two_sigma():
    from memorability.embeddings import Embeddings
    from memorability.fitted_heads import calibration

    backbone = {"layer_type": "basic", "embedding_size": 4, "hidden_sizes": [4, 4], "depths": [1, 1]}
    model = MemorabilityModel(
        MemorabilityConfig(backbone_config=backbone, head_hidden_sizes=[], sigmoid_output=False, num_heads=2)
    )
    with torch.no_grad():  # head 1 reads the first feature, head 2 the same plus 0.2: score x + 0.1, σ exactly 0.1
        for head, bias in zip(model.heads, (0.0, 0.2)):
            head[-1].weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
            head[-1].bias.fill_(bias)
    features = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    vectors = np.zeros((5, 4), dtype=np.float32)
    vectors[:, 0] = features
    ids = [f"{index}" for index in range(5)]
    errors = [0.05, 0.15, 0.25, -0.05, -0.3]  # |error| ≤ σ for 2 of 5, ≤ 2σ for 3 of 5
    human = {image_id: [feature + 0.1 + error] for image_id, feature, error in zip(ids, features, errors)}
    result = calibration(model, Embeddings(ids, vectors, {}), human)
    assert result["measured"] and result["images"] == 5
    assert result["within_1_sigma"] == pytest.approx(2 / 5) and result["within_2_sigma"] == pytest.approx(3 / 5)
    assert result["mean_sigma"] == pytest.approx(0.1) and result["mean_abs_error"] == pytest.approx(0.16)
    assert np.isnan(result["spearman_sigma_error"])  # a constant σ ranks nothing
