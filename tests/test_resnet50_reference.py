"""ResNet50 behaves exactly as before backbone families existed: a saved model gives the scores and embeddings the
earlier code gave (tests/data/resnet50_reference.json, computed at commit 6b0b70c), within fp32 atol 1e-6."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from memorability import MemorabilityConfig, MemorabilityModel, make_image_processor
from memorability.inference import load_model, load_predictor

REFERENCE = json.loads((Path(__file__).parent / "data" / "resnet50_reference.json").read_text())


def reference_weights(model: MemorabilityModel) -> MemorabilityModel:
    """Weights from a fixed formula (not from any init code, which may change): He-scaled normals, batch norms near
    identity so that activations neither vanish nor explode through 50 layers, a wide last layer so scores spread."""
    generator = torch.Generator().manual_seed(2026)
    state = model.state_dict()
    for key in sorted(state):
        value = state[key]
        if not value.is_floating_point():
            continue
        if key.endswith("running_var"):
            new = torch.rand(value.shape, generator=generator) * 0.2 + 0.9
        elif key.endswith("running_mean"):
            new = torch.randn(value.shape, generator=generator) * 0.05
        elif "normalization.weight" in key:
            new = 0.4 + torch.randn(value.shape, generator=generator) * 0.05
        elif value.dim() > 1:
            new = torch.randn(value.shape, generator=generator) * math.sqrt(2.0 / math.prod(value.shape[1:]))
        else:
            new = torch.randn(value.shape, generator=generator) * 0.1
        if key == "head.6.weight":
            new = new * 30
        state[key] = new
    model.load_state_dict(state)
    return model


@pytest.mark.slow
def test_a_saved_resnet50_gives_the_earlier_scores(tmp_path):
    reference_weights(MemorabilityModel(MemorabilityConfig())).save_pretrained(tmp_path)
    make_image_processor().save_pretrained(tmp_path)
    pixels = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(7))
    model, _ = load_model(tmp_path)
    with torch.no_grad():
        output = model.eval()(pixel_values=pixels)
    assert np.ptp(REFERENCE["model_scores"]) > 100 * 1e-6, "the reference scores must spread for atol 1e-6 to mean much"
    np.testing.assert_allclose(output.scores.numpy(), REFERENCE["model_scores"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(output.embeddings.norm(dim=1).numpy(), REFERENCE["embedding_norms"], rtol=1e-6)
    np.testing.assert_allclose(output.embeddings[:, :8].numpy(), REFERENCE["embeddings_first8"], rtol=0, atol=1e-6)
    predictor = load_predictor(tmp_path, device="cpu", precision="fp32")
    np.testing.assert_allclose(predictor.forward(pixels).scores.numpy(), REFERENCE["predictor_fp32_scores"], atol=1e-6)
