"""The one batch engine: rows in the order of the batches given, an error row per unreadable image, embeddings and
per-picture extras when asked, and the same scores as the predictor's."""

import numpy as np
from PIL import Image

from memorability.batch_scoring import score_images
from memorability.inference import load_predictor


def photo(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def test_rows_keep_the_input_order_and_name_the_unreadable(tiny_model_dir, tmp_path):
    paths = []
    for index in range(4):
        photo(index).save(tmp_path / f"{index}.jpg")
        paths.append(str(tmp_path / f"{index}.jpg"))
    (tmp_path / "empty.jpg").write_bytes(b"")
    paths.insert(2, str(tmp_path / "empty.jpg"))
    predictor = load_predictor(tiny_model_dir, precision="fp32", batch_size=2)
    rows = list(score_images(predictor, paths, paths))
    assert [row.name for row in rows] == paths
    assert rows[2].score is None and rows[2].uncertainty is None and "empty.jpg: the file is empty" in rows[2].error
    assert all(row.score is not None and row.error is None and row.uncertainty == 0 for row in rows[:2] + rows[3:])


def test_rows_follow_the_given_batches(tiny_model_dir):
    images = [photo(seed) for seed in range(5)]
    predictor = load_predictor(tiny_model_dir, precision="fp32", batch_size=2)
    names = [f"image {index}" for index in range(5)]
    rows = list(score_images(predictor, images, names, batches=[[3, 4], [0], [1, 2]]))
    assert [row.name for row in rows] == ["image 3", "image 4", "image 0", "image 1", "image 2"]
    by_name = {row.name: row.score for row in rows}
    np.testing.assert_allclose([by_name[name] for name in names], predictor.predict(images), atol=1e-6)


def test_embeddings_and_extras_come_with_their_rows(tiny_model_dir):
    images = [photo(seed, (30 + seed, 20)) for seed in range(3)]
    predictor = load_predictor(tiny_model_dir, precision="fp32", batch_size=2)
    rows = list(score_images(predictor, images, ["a", "b", "c"], extract=lambda index, picture: (index, picture.size),
                             embeddings=True))  # fmt: skip
    assert [row.extra for row in rows] == [(0, (30, 20)), (1, (31, 20)), (2, (32, 20))]
    expected = predictor.forward(predictor.preprocess(images)).embeddings.numpy()
    np.testing.assert_allclose(np.stack([row.embedding for row in rows]), expected, atol=1e-6)
