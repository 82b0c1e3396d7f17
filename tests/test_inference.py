"""The predictor: loads once, scores PIL images, paths and folders in batches, bf16 agrees with fp32."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from memorability.images import ImageLoadError

from memorability.inference import (
    MemorabilityPredictor,
    ModelLoadError,
    load_model,
    load_predictor,
    resolve_precision,
    scoring_copy,
)


def photo(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def test_scores_one_image_a_list_and_paths_alike(tiny_model_dir, tmp_path):
    predictor = load_predictor(tiny_model_dir, precision="fp32", batch_size=2)
    images = [photo(seed) for seed in range(5)]
    for index, image in enumerate(images):
        image.save(tmp_path / f"{index}.png")
    from_pil = predictor.predict(images)
    from_paths = predictor.predict([tmp_path / f"{index}.png" for index in range(5)])
    assert from_pil.shape == (5,)
    np.testing.assert_allclose(from_pil, from_paths, atol=1e-6)
    assert predictor.predict(images[2]) == pytest.approx(float(from_pil[2]), abs=1e-6)
    assert np.all((from_pil >= 0) & (from_pil <= 1))


def test_batching_does_not_change_scores(tiny_model_dir):
    images = [photo(seed) for seed in range(7)]
    one = load_predictor(tiny_model_dir, precision="fp32", batch_size=1).predict(images)
    many = load_predictor(tiny_model_dir, precision="fp32", batch_size=4).predict(images)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_scores_equal_a_plain_forward_pass(tiny_model_dir):
    model, processor = load_model(tiny_model_dir)
    images = [photo(seed) for seed in range(3)]
    with torch.no_grad():
        expected = model.eval()(pixel_values=processor(images, return_tensors="pt")["pixel_values"]).scores.numpy()
    np.testing.assert_allclose(load_predictor(tiny_model_dir, precision="fp32").predict(images), expected, atol=1e-6)


def test_the_scoring_copy_computes_the_same_scores_without_batch_norm(trained_sample_model):
    model, processor = load_model(trained_sample_model)
    model.eval()
    fast = scoring_copy(model, torch.float32, torch.contiguous_format)
    pixel_values = processor([photo(seed, (80, 80)) for seed in range(4)], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected, actual = model(pixel_values), fast(pixel_values)
    torch.testing.assert_close(actual.embeddings, expected.embeddings, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(actual.scores, expected.scores, rtol=1e-5, atol=1e-6)
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in fast.modules())
    assert not any(parameter.requires_grad for parameter in fast.parameters())
    assert any(isinstance(module, torch.nn.BatchNorm2d) for module in model.backbone.modules())  # original untouched
    assert all(parameter.requires_grad for parameter in model.parameters())


def test_bf16_agrees_with_fp32_within_a_hundredth(trained_sample_model):
    images = [photo(seed, (80, 80)) for seed in range(16)]
    fp32 = load_predictor(trained_sample_model, precision="fp32").predict(images)
    bf16 = load_predictor(trained_sample_model, precision="bf16").predict(images)
    assert np.max(np.abs(fp32 - bf16)) < 0.01


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int4", torch.device("cpu"))


def test_an_unreadable_image_in_a_list_is_one_sentence_naming_it(tiny_model_dir, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty.jpg: the file is empty"):
        load_predictor(tiny_model_dir, precision="fp32").predict([photo(0), tmp_path / "empty.jpg"])


def test_missing_model_gives_one_sentence(tmp_path):
    with pytest.raises(ModelLoadError, match="Could not load a memorability model from"):
        load_predictor(tmp_path / "nothing-here")


class LeavesAMark:
    """Unpickling this creates a file: a pickled checkpoint can run any code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickled_checkpoint_is_refused_unopened(tiny_model_dir, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"weights": LeavesAMark(str(tmp_path / "ran"))}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="Could not load a memorability model"):
        load_predictor(folder)
    assert not (tmp_path / "ran").exists()


def test_predictor_puts_model_in_eval_mode(tiny_model_dir):
    model, processor = load_model(tiny_model_dir)
    model.train()
    assert not MemorabilityPredictor(model, processor, precision="fp32").model.training


def test_reduced_precision_scores_from_a_copy_and_keeps_the_fp32_model(tiny_model_dir):
    predictor = load_predictor(tiny_model_dir, precision="bf16")
    assert {parameter.dtype for parameter in predictor.model.parameters()} == {torch.float32}  # the user's model
    assert {parameter.dtype for parameter in predictor.scoring_model.backbone.parameters()} == {torch.bfloat16}
    output = predictor.forward(predictor.preprocess([photo(0), photo(1)]))
    assert output.scores.dtype == output.embeddings.dtype == torch.float32 and output.embeddings.shape == (2, 16)
    assert (output.uncertainty == 0).all()  # one head


@pytest.mark.slow
def test_compiled_predictor_scores_as_the_eager_one(tiny_model_dir):
    images = [photo(seed) for seed in range(5)]  # batches of 2, 2 and 1: a second shape compiles again
    eager = load_predictor(tiny_model_dir, precision="fp32", batch_size=2).predict(images)
    compiled = load_predictor(tiny_model_dir, precision="fp32", batch_size=2, compile=True).predict(images)
    np.testing.assert_allclose(compiled, eager, atol=1e-5)


def test_a_hub_id_that_cannot_be_fetched_fails_at_once_in_one_sentence(monkeypatch):
    """Offline, an id took about 70 s of retries, then a traceback naming a URL: now the Hub is asked once, and an
    id that is not cached is refused before transformers tries it."""
    from huggingface_hub import constants

    from memorability import hub_ids

    with pytest.raises(hub_ids.HubUnreachableError) as caught:
        load_predictor("org/no-such-model")
    assert str(caught.value) == (
        "org/no-such-model: the model is a Hub id, but HF_HUB_OFFLINE is set and it is not in the local Hub cache; "
        "download it where the Hub can be reached (`hf download org/no-such-model --local-dir DIR`) and pass DIR "
        "instead."
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    hub_ids.hub_unreachable.cache_clear()
    try:
        with pytest.raises(hub_ids.HubUnreachableError, match="but 127.0.0.1 cannot be reached from this machine"):
            load_predictor("org/no-such-model")
    finally:
        hub_ids.hub_unreachable.cache_clear()
