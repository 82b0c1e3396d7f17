"""The model, transformers-native: tiny configs for shapes, loss, save/load and Auto classes; one real ResNet50."""

import pytest
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModel, ResNetConfig, ResNetForImageClassification

import memorability
from memorability import BackboneWeightsError, MemorabilityConfig, MemorabilityModel, make_image_processor
from memorability.presets import build_model

TINY_BACKBONE = {"layer_type": "basic", "embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1]}


def tiny_model(seed: int = 0, **backbone) -> MemorabilityModel:
    torch.manual_seed(seed)
    config = MemorabilityConfig(backbone_config={**TINY_BACKBONE, **backbone}, head_hidden_sizes=[32, 16])
    return MemorabilityModel(config).eval()


def pixels(batch: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_output_shapes_and_range():
    output = tiny_model()(pixel_values=pixels(4))
    assert output.scores.shape == (4,)
    assert output.embeddings.shape == (4, 16)
    assert output.loss is None
    assert torch.all((output.scores >= 0) & (output.scores <= 1))


def test_scores_in_unit_interval_even_for_extreme_inputs():
    scores = tiny_model()(pixel_values=pixels(2) * 1e4).scores
    assert torch.all((scores >= 0) & (scores <= 1))


def test_untrained_model_predicts_near_lamem_mean():
    scores = tiny_model()(pixel_values=pixels(8)).scores
    assert torch.allclose(scores, torch.full_like(scores, 0.756), atol=0.05)


def test_loss_is_mse():
    model = tiny_model()
    labels = torch.tensor([0.2, 0.5, 0.9])
    output = model(pixel_values=pixels(3), labels=labels)
    assert torch.isclose(output.loss, torch.mean((output.scores - labels) ** 2))


def test_tuple_output_when_return_dict_false():
    loss, scores, embeddings, uncertainty = tiny_model()(pixel_values=pixels(2), labels=torch.zeros(2), return_dict=False)
    assert scores.shape == uncertainty.shape == (2,) and embeddings.shape == (2, 16) and loss.ndim == 0


def test_two_step_forward_matches_forward():
    model = tiny_model()
    x = pixels(2)
    features = model.forward_features(x)
    assert features.shape[:2] == (2, 16)
    embeddings = model.pool(features)
    assert torch.allclose(embeddings, model.embed(x))
    assert torch.allclose(model.forward_head(embeddings), model(pixel_values=x).scores)


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    reloaded = MemorabilityModel.from_pretrained(tmp_path).eval()
    x = pixels(3)
    torch.testing.assert_close(reloaded(pixel_values=x).scores, model(pixel_values=x).scores, atol=1e-6, rtol=0)


def test_auto_classes_resolve_our_model_and_the_stock_processor(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    make_image_processor(64).save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), MemorabilityConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), MemorabilityModel)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(processor).__name__ == "ConvNextImageProcessor"
    assert type(processor).__module__.startswith("transformers.")
    assert processor.size.shortest_edge == 64


@pytest.mark.parametrize(
    ("backbone", "width"),
    [({"layer_type": "basic", "hidden_sizes": [8, 24]}, 24), ({"layer_type": "bottleneck", "hidden_sizes": [8, 40]}, 40)],
)
def test_backbone_swap_head_width_follows(backbone, width):
    model = tiny_model(**backbone)
    assert model.head[0].in_features == width
    assert model(pixel_values=pixels(2)).embeddings.shape == (2, width)


def test_resnet18_preset_has_512_wide_head():
    model = build_model("resnet18", backbone_weights="none")
    assert model.config.embedding_size == 512 and model.head[0].in_features == 512


def test_config_round_trip_keeps_head_and_backbone(tmp_path):
    config = MemorabilityConfig(backbone_config=TINY_BACKBONE, head_hidden_sizes=[7, 5], head_dropout=0.1)
    config.save_pretrained(tmp_path)
    loaded = MemorabilityConfig.from_pretrained(tmp_path)
    assert loaded.head_hidden_sizes == [7, 5] and loaded.head_dropout == 0.1
    assert isinstance(loaded.backbone_config, ResNetConfig) and loaded.backbone_config.hidden_sizes == [8, 16]


# --- ImageNet initialisation, offline -------------------------------------------------------------------------------


def save_imagenet_stand_in(folder, **backbone) -> ResNetForImageClassification:
    torch.manual_seed(1)
    classifier = ResNetForImageClassification(ResNetConfig(**{**TINY_BACKBONE, **backbone}, num_labels=10))
    classifier.save_pretrained(folder)
    return classifier


def test_backbone_weights_load_from_local_folder(tmp_path):
    source = save_imagenet_stand_in(tmp_path)
    model = tiny_model(seed=5)
    model.load_backbone_weights(str(tmp_path))
    expected = source.resnet.state_dict()
    loaded = model.backbone.state_dict()
    assert expected.keys() == loaded.keys()
    for key, value in expected.items():
        torch.testing.assert_close(loaded[key], value, atol=0, rtol=0)


def test_backbone_weights_that_do_not_fit_fail_loudly(tmp_path):
    save_imagenet_stand_in(tmp_path, hidden_sizes=[8, 32])
    with pytest.raises(BackboneWeightsError, match="do not fit"):
        tiny_model().load_backbone_weights(str(tmp_path))


class LeavesAMark:
    """Unpickling this creates a file: a pickled checkpoint can run any code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_backbone_weights_are_refused_unopened(tmp_path):
    folder = tmp_path / "pickled"
    save_imagenet_stand_in(folder)
    (folder / "model.safetensors").unlink()
    torch.save({"weights": LeavesAMark(str(tmp_path / "ran"))}, folder / "pytorch_model.bin")
    with pytest.raises(BackboneWeightsError, match="Could not load"):
        tiny_model().load_backbone_weights(str(folder))
    assert not (tmp_path / "ran").exists()


def test_unreachable_backbone_source_gives_the_two_ways_out():
    with pytest.raises(BackboneWeightsError) as caught:
        tiny_model().load_backbone_weights("nobody-here/no-such-resnet")
    message = str(caught.value)
    assert "--backbone-weights none" in message and "local folder" in message
    assert "\n" not in message


def test_building_from_config_never_touches_the_network():
    # HF_HUB_OFFLINE=1 (conftest): any download attempt would raise.
    assert isinstance(build_model("resnet50", backbone_weights="none"), MemorabilityModel)


def test_package_registers_model_type():
    assert memorability.MemorabilityConfig.model_type == "memorability"


@pytest.mark.slow
def test_real_size_resnet50_smoke(tmp_path):
    model = build_model("resnet50", backbone_weights="none").eval()
    assert sum(p.numel() for p in model.backbone.parameters()) == pytest.approx(23.5e6, rel=0.01)
    output = model(pixel_values=pixels(1, 224))
    assert output.embeddings.shape == (1, 2048)
    model.save_pretrained(tmp_path)
    reloaded = MemorabilityModel.from_pretrained(tmp_path).eval()
    x = pixels(1, 224, seed=3)
    torch.testing.assert_close(reloaded(pixel_values=x).scores, model(pixel_values=x).scores, atol=1e-6, rtol=0)
