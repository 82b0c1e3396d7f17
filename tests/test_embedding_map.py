"""Embedding map: the PCA projection of an index (checked against an SVD) and a readable PNG of it."""

import io
from concurrent.futures import ThreadPoolExecutor

import matplotlib
import numpy as np
import pytest
from datasets import Dataset
from matplotlib import pyplot as plt
from PIL import Image

from memorability.embedding_map import plot_embedding_map, principal_axes, project
from memorability.neighbours import NeighbourIndex, index_features, unit_rows


@pytest.fixture(scope="module")
def index() -> NeighbourIndex:
    """300 embeddings in two clusters, whose human score follows the cluster; one grey thumbnail shared by all."""
    rng = np.random.default_rng(0)
    cluster = rng.integers(0, 2, size=300)
    embeddings = rng.normal(size=(300, 24)) + 4.0 * cluster[:, None] * rng.normal(size=24)
    scores = 0.4 + 0.3 * cluster + rng.normal(0, 0.05, size=300)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buffer, format="JPEG")
    table = Dataset.from_dict(
        {
            "image_id": [f"{i:08d}" for i in range(300)],
            "human_score": scores.tolist(),
            "predicted_score": (scores + rng.normal(0, 0.05, size=300)).tolist(),
            "embedding": embeddings.astype(np.float32).tolist(),
            "thumbnail": [{"bytes": buffer.getvalue(), "path": None}] * 300,
        },
        features=index_features(24),
    )
    return NeighbourIndex(table, {"data": "two generated clusters", "predicted_score_quantiles": [0.0, 1.0]})


def test_projection_columns(index):
    columns = project(index)
    assert {name: columns[name].shape for name in ("x", "y", "score", "image_id")} == {
        "x": (300,),
        "y": (300,),
        "score": (300,),
        "image_id": (300,),
    }
    assert np.isfinite(columns["x"]).all() and np.isfinite(columns["y"]).all()
    assert columns["image_id"][7] == "00000007"
    np.testing.assert_array_equal(columns["score"], index.human_scores)
    assert 0 < columns["explained"][1] <= columns["explained"][0] < 1
    np.testing.assert_array_equal(project(index)["x"], columns["x"])  # the same map every time


def test_axes_are_those_of_an_svd(index):
    vectors = unit_rows(index.embeddings)
    axes, _ = principal_axes(vectors)
    _, _, rows = np.linalg.svd(vectors - vectors.mean(axis=0), full_matrices=False)
    for ours, reference in zip(axes.T, rows[:2]):
        assert abs(float(ours @ reference)) == pytest.approx(1.0, abs=1e-5)


def test_the_first_axis_separates_the_clusters(index):
    columns = project(index)
    assert abs(np.corrcoef(columns["x"], columns["score"])[0, 1]) > 0.8


def test_png_is_written_and_not_blank(index, tmp_path):
    path = plot_embedding_map(index, tmp_path / "maps" / "embedding_map.png")
    assert path.is_file() and path.stat().st_size > 20_000
    with Image.open(path) as picture:
        assert picture.size[0] >= 800 and picture.size[1] >= 700
        assert len(picture.convert("RGB").getcolors(maxcolors=1 << 20)) > 200


def test_plot_leaves_pyplot_alone(index, tmp_path):
    """A notebook's backend and open figures survive a plot (`matplotlib.use("Agg")` closed them all)."""
    backend = matplotlib.get_backend()
    plt.switch_backend("svg")
    try:
        figure = plt.figure()
        plot_embedding_map(index, tmp_path / "map.png")
        assert matplotlib.get_backend() == "svg" and plt.get_fignums() == [figure.number]
    finally:
        plt.close("all")
        plt.switch_backend(backend)


def test_two_threads_plot_the_same_map(index, tmp_path):
    """Two visitors at once: each plot is the map drawn alone, byte for byte."""
    alone = plot_embedding_map(index, tmp_path / "alone.png").read_bytes()
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda number: plot_embedding_map(index, tmp_path / f"{number}.png"), range(4)))
    assert all(path.read_bytes() == alone for path in paths)
