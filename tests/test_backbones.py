"""Every supported backbone family: built through the Auto classes, run block by block exactly as transformers runs
it, saved and reloaded (also as remote code), pretrained weights loaded strictly, and a fast scoring copy."""

import json

import numpy as np
import pytest
import torch
from hub_support import run_isolated
from tiny_backbones import FAMILIES, IMAGE_SIZE, save_tiny_model, tiny_backbone, tiny_model
from transformers import (
    AutoModel,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    ResNetForImageClassification,
    SiglipConfig,
    SiglipModel,
)

from memorability import MemorabilityConfig, MemorabilityModel
from memorability.backbones import UnsupportedBackboneError
from memorability.demo import sample_training_arguments
from memorability.inference import load_model, load_predictor
from memorability.modeling_memorability import BackboneWeightsError
from memorability.presets import backbone_processor, build_model
from memorability.publishing import remote_code_registration
from memorability.training import train

PIXELS = torch.randn(3, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
TEXT_TOWER = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=99)


def own_pooled_output(backbone, pixel_values: torch.Tensor) -> torch.Tensor:
    """What transformers' own forward gives as the pooled image features (ViT: its CLS after the final LayerNorm;
    its tanh pooler is not built)."""
    output = backbone(pixel_values)
    pooled = output.pooler_output if output.pooler_output is not None else output.last_hidden_state[:, 0]
    return pooled.flatten(1)


@pytest.mark.parametrize("family", FAMILIES)
def test_blocks_reproduce_the_backbones_own_forward(family):
    model = tiny_model(family)
    with torch.no_grad():
        ours = model(PIXELS).embeddings
        np.testing.assert_array_equal(ours.numpy(), own_pooled_output(model.backbone, PIXELS).numpy())


@pytest.mark.parametrize("family", FAMILIES)
def test_feature_info_matches_the_feature_maps(family):
    model = tiny_model(family)
    hidden = PIXELS
    infos = model.feature_info
    assert [name for name, _ in model.feature_blocks()] == [info.module for info in infos]
    with torch.no_grad():
        for (name, block), info in zip(model.feature_blocks(), infos):
            hidden = block(hidden)
            feature_map = model.feature_map(hidden, (IMAGE_SIZE, IMAGE_SIZE))
            assert feature_map.shape[1:] == (info.channels, IMAGE_SIZE // info.reduction, IMAGE_SIZE // info.reduction)
            assert model.get_submodule(name) is not None
    assert model.default_cam_layer() in [info.module for info in infos]


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_auto_model_round_trip(family, tmp_path):
    folder = save_tiny_model(tmp_path / family, family)
    loaded = AutoModel.from_pretrained(folder).eval()
    assert isinstance(loaded, MemorabilityModel)
    assert type(loaded.config.backbone_config) is type(tiny_backbone(family))
    with torch.no_grad():
        np.testing.assert_allclose(loaded(PIXELS).scores.numpy(), tiny_model(family)(PIXELS).scores.numpy(), atol=1e-6)


def test_remote_code_loads_every_family_where_the_package_cannot_be_imported(tmp_path):
    """One isolated process for all families: starting Python with torch and transformers is most of the cost."""
    folders = {family: tmp_path / family for family in FAMILIES}
    with remote_code_registration():
        for family, folder in folders.items():
            tiny_model(family).save_pretrained(folder)
    torch.save(PIXELS, tmp_path / "pixels.pt")
    stdout = run_isolated(
        f"""
        import json, sys
        import torch
        from transformers import AutoModel
        pixels = torch.load({str(tmp_path / "pixels.pt")!r})
        scores = {{}}
        for family, folder in {({family: str(folder) for family, folder in folders.items()})!r}.items():
            model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
            with torch.no_grad():
                scores[family] = model(pixels).scores.tolist()
        print(json.dumps({{"scores": scores, "package_loaded": "memorability" in sys.modules}}))
        """,
        cwd=tmp_path,
    )
    remote = json.loads(stdout.strip().splitlines()[-1])
    assert not remote["package_loaded"]
    for family in FAMILIES:
        with torch.no_grad():
            expected = tiny_model(family)(PIXELS).scores.numpy()
        np.testing.assert_allclose(remote["scores"][family], expected, atol=1e-6, err_msg=family)


def pretrained_sources(family: str, folder) -> list:
    """Folders a backbone's weights may come from: the backbone itself, and a model built on it."""
    backbone = tiny_model(family, seed=1).backbone
    backbone.save_pretrained(folder / "backbone")
    sources = [folder / "backbone"]
    if family == "resnet":
        classifier = ResNetForImageClassification(tiny_backbone(family))
        classifier.resnet.load_state_dict(backbone.state_dict())
        classifier.save_pretrained(folder / "classifier")
        sources.append(folder / "classifier")
    if family in ("clip", "siglip"):
        config_class, model_class = (CLIPConfig, CLIPModel) if family == "clip" else (SiglipConfig, SiglipModel)
        dual = model_class(config_class(vision_config=tiny_backbone(family).to_dict(), text_config=TEXT_TOWER))
        dual.vision_model.load_state_dict(backbone.state_dict())
        dual.save_pretrained(folder / "dual")
        sources.append(folder / "dual")
    return sources


@pytest.mark.parametrize("family", FAMILIES)
def test_pretrained_weights_load_strictly(family, tmp_path):
    expected = tiny_model(family, seed=1).backbone.state_dict()
    for source in pretrained_sources(family, tmp_path):
        model = tiny_model(family, seed=2)
        model.load_backbone_weights(str(source))
        for key, value in model.backbone.state_dict().items():
            assert torch.equal(value, expected[key]), f"{source}: {key}"


def test_weights_of_another_architecture_are_refused(tmp_path):
    tiny_model("resnet").backbone.save_pretrained(tmp_path / "resnet")
    wider = MemorabilityModel(
        MemorabilityConfig(backbone_config={"layer_type": "basic", "embedding_size": 8, "hidden_sizes": [8, 32], "depths": [1, 1]})
    )
    with pytest.raises(BackboneWeightsError, match="do not fit"):
        wider.load_backbone_weights(str(tmp_path / "resnet"))
    with pytest.raises(BackboneWeightsError, match="Could not load"):
        wider.load_backbone_weights(str(tmp_path / "nowhere"))


def test_an_unsupported_backbone_is_refused_in_one_sentence():
    with pytest.raises(UnsupportedBackboneError, match="supported: resnet, convnext"):
        MemorabilityConfig(backbone_config={"model_type": "bert"})


def test_a_config_saved_before_other_backbones_loads_as_resnet():
    config = MemorabilityConfig.from_dict({"backbone_config": {"hidden_sizes": [8, 16], "depths": [1, 1]}})
    assert config.backbone_config.model_type == "resnet" and config.embedding_size == 16


@pytest.mark.parametrize("family", FAMILIES)
def test_the_fast_scoring_copy_has_the_same_forward(family, tmp_path):
    folder = save_tiny_model(tmp_path / family, family)
    model = tiny_model(family)
    with torch.no_grad():
        expected = model(PIXELS)
    fp32 = load_predictor(folder, device="cpu", precision="fp32")
    output = fp32.forward(PIXELS)
    assert isinstance(output, type(expected))
    np.testing.assert_allclose(output.scores.numpy(), expected.scores.numpy(), atol=1e-5)
    np.testing.assert_allclose(output.embeddings.numpy(), expected.embeddings.numpy(), atol=1e-4)
    bf16 = load_predictor(folder, device="cpu", precision="bf16")
    assert {parameter.dtype for parameter in bf16.scoring_model.backbone.parameters()} == {torch.bfloat16}
    assert {parameter.dtype for parameter in bf16.scoring_model.head.parameters()} == {torch.float32}
    assert np.corrcoef(bf16.forward(PIXELS).scores.numpy(), expected.scores.numpy())[0, 1] > 0.9


def test_a_pretrained_model_is_a_backbone_with_its_own_normalisation(tmp_path):
    dual = CLIPModel(CLIPConfig(vision_config=tiny_backbone("clip").to_dict(), text_config=TEXT_TOWER))
    dual.save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(image_mean=[0.1, 0.2, 0.3], image_std=[0.5, 0.6, 0.7]).save_pretrained(tmp_path / "clip")
    model = build_model(str(tmp_path / "clip"))
    assert type(model.backbone).__name__ == "CLIPVisionModel"
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, dual.vision_model.state_dict()[key]), key
    processor = backbone_processor(str(tmp_path / "clip"), IMAGE_SIZE)
    assert (list(processor.image_mean), list(processor.image_std)) == ([0.1, 0.2, 0.3], [0.5, 0.6, 0.7])
    assert processor.size == {"shortest_edge": IMAGE_SIZE}
    untrained = build_model(str(tmp_path / "clip"), backbone_weights="none").backbone.embeddings.patch_embedding
    assert not torch.equal(untrained.weight, dual.vision_model.embeddings.patch_embedding.weight)


def test_a_name_that_is_neither_a_preset_nor_a_model_is_one_sentence(tmp_path):
    with pytest.raises(BackboneWeightsError, match="neither a preset .resnet50, resnet18, tiny. nor a pretrained"):
        build_model(str(tmp_path / "no-such-model"))


def test_training_runs_on_a_pretrained_transformer_backbone(sample_data_dir, tmp_path):
    tiny_model("dinov2", seed=3).backbone.save_pretrained(tmp_path / "dinov2")
    arguments = sample_training_arguments(sample_data_dir, tmp_path / "run", epochs=1)
    arguments.backbone, arguments.backbone_weights, arguments.image_size = str(tmp_path / "dinov2"), "default", 32
    arguments.max_steps = 3
    summary = train(arguments)
    assert summary["steps"] == 3
    trained, _ = load_model(tmp_path / "run" / "best")
    assert type(trained.backbone).__name__ == "Dinov2Model"
