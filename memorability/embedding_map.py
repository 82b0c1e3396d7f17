"""A 2-D map of a neighbour index: its embeddings projected on their two principal axes, coloured by score.

The embeddings are L2-normalised first, as the neighbour search compares them, so that points near each other on the
map tend to be neighbours there too. PCA is an eigen-decomposition of the D × D covariance (numpy only): at LaMem's
size it costs far less than an SVD of the N × D matrix and gives the same axes.
"""

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .neighbours import NeighbourIndex, unit_rows


def principal_axes(vectors: np.ndarray, count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The `count` leading principal axes (D, count), each with its largest-magnitude entry positive so that the map
    does not flip between runs, and the fraction of variance each explains."""
    centred = vectors - vectors.mean(axis=0)
    variances, axes = np.linalg.eigh((centred.T @ centred).astype(np.float64))
    order = np.argsort(variances)[::-1][:count]
    axes = axes[:, order]
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    explained = variances[order] / max(variances.sum(), np.finfo(np.float64).tiny)
    return axes, explained


def project(index: NeighbourIndex) -> dict[str, np.ndarray]:
    """Columns for an interactive plot: x, y (the two principal components), score (`index.reference_scores()`),
    image_id; and explained (the fraction of variance of each axis)."""
    vectors = unit_rows(index.embeddings)
    axes, explained = principal_axes(vectors)
    coordinates = (vectors - vectors.mean(axis=0)) @ axes
    return {
        "x": coordinates[:, 0].astype(np.float32),
        "y": coordinates[:, 1].astype(np.float32),
        "score": index.reference_scores(),
        "image_id": index.image_ids,
        "explained": explained,
    }


def map_points(index: NeighbourIndex) -> pd.DataFrame:
    """`project`'s columns as a table for an interactive plot (the Space's Explore tab), score on 0–100."""
    columns = project(index)
    return pd.DataFrame(
        {"x": columns["x"], "y": columns["y"], "score": 100 * columns["score"], "image_id": columns["image_id"]}
    )


def points_between(points: pd.DataFrame, x_min: float, x_max: float, limit: int = 12) -> pd.DataFrame:
    """The points in an x range, at most `limit`, those nearest its middle first: what a drag across the plot
    selects."""
    inside = points[(points.x >= x_min) & (points.x <= x_max)]
    return inside.iloc[(inside.x - (x_min + x_max) / 2).abs().argsort()[:limit]]


def plot_embedding_map(index: NeighbourIndex, path: str | os.PathLike) -> Path:
    """A PNG of the map: one dot per image, colour bar labelled with which score, title naming the data.

    Drawn on a `Figure` of its own, never through pyplot: pyplot's current figure is one for the whole process
    (not safe for two threads), and `matplotlib.use("Agg")` would close every figure of a notebook's session.
    """
    from matplotlib.figure import Figure

    columns = project(index)
    figure = Figure(figsize=(7.5, 6.5), dpi=120)
    axis = figure.subplots()
    size = float(np.clip(4000 / max(len(index), 1), 2, 40))
    points = axis.scatter(columns["x"], columns["y"], c=columns["score"], cmap="viridis", s=size, linewidths=0)
    score_name = index.reference_score_name()
    figure.colorbar(points, ax=axis).set_label(f"memorability ({score_name})")
    explained = columns["explained"]
    axis.set_xlabel(f"principal component 1 ({explained[0]:.0%} of variance)")
    axis.set_ylabel(f"principal component 2 ({explained[1]:.0%} of variance)")
    data = index.info.get("data") or "unnamed data"
    axis.set_title(f"Embeddings of {len(index):,} images from {data}\ncoloured by {score_name}", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


__all__ = ["plot_embedding_map", "principal_axes", "project"]
