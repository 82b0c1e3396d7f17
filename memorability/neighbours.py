"""Nearest neighbours of a photo among scored images, for a web app that shows them without the image set.

An index holds, per image: `image_id`, the human score where known (null otherwise), the model's predicted score,
the embedding (float32) and a 128-px JPEG thumbnail. It is saved as a `datasets` table in Parquet shards
(`data/train-*.parquet`, as `push_to_hub` lays them out) plus `index_info.json`: which model and data, and the
101 quantiles of the predicted scores, so that `percentile(score)` places a new prediction among them.

Search is exact cosine similarity: an fp16 matrix-vector product over all L2-normalised embeddings (half the
memory traffic of fp32, and faster than faiss' flat index on a CPU, see bench/neighbours.py) picks candidates, and
fp32 re-ranks them; the candidates are every item within the fp16 error bound of the k-th best, so the result is
the one an fp32 search gives.
"""

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Features, Image, List, Value, concatenate_datasets, load_dataset
from PIL import Image as PILImage
from tqdm.auto import tqdm

from .batch_scoring import score_images
from .hub_ids import is_hub_id
from .errors import MemorabilityError
from .fingerprint import model_fingerprint
from .images import ImageSource
from .scoring_inputs import DatasetImages
from .tables import DataError, download_hub_dataset, parquet_files, save_table

THUMBNAIL_SIZE = 128
THUMBNAIL_QUALITY = 85
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 101)
MEMORABLE_ABOVE = 0.75  # more_memorable: above this quantile of the index's own scores
FORGETTABLE_BELOW = 0.25  # more_forgettable: below this quantile
INFO_FILE = "index_info.json"
# Bound on |fp16 cosine - fp32 cosine| for unit vectors, with fp32 accumulation (what torch's x86 CPU kernels do; the
# tests check the outcome on near-duplicates): rounding both inputs costs at most 2u + u² with u = 2⁻¹¹
# (Cauchy-Schwarz), the fp32 sum of 2048 products < 2⁻¹³, the fp16 result's rounding 2⁻¹²; 2⁻⁹ covers the sum
# (≈ 1.35e-3) with room to spare.
FP16_ERROR_BOUND = 2.0**-9
# Candidates fetched by the first top-k beyond k; more are taken only when that many lie within the error bound.
CANDIDATE_SLACK = 32
SCORE_RULE = "human score where known, else predicted"


class NeighbourError(MemorabilityError, ValueError):
    """An index (folder or Hub id) that cannot be read, or a query that does not fit it; one sentence says which."""


@dataclass(frozen=True)
class Neighbour:
    """One search result; `human_score` is None where the index has no human score for the image."""

    image_id: str
    similarity: float
    human_score: float | None
    predicted_score: float
    thumbnail: PILImage.Image


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); an all-zero row stays zero instead of becoming NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, np.float32(1e-12))


def half_floor(value: float) -> np.float16:
    """The largest fp16 number not above `value`, so that an fp16 comparison never drops a candidate."""
    rounded = np.float16(value)
    return np.nextafter(rounded, np.float16(-np.inf)) if rounded > value else rounded


class CosineSearch:
    """Exact top-k cosine similarity over fixed embeddings: fp16 picks candidates, fp32 re-ranks them.

    `embeddings` (N, D) is any float array that supports row indexing (an ndarray, or an np.memmap that keeps the
    fp32 copy on disk); only the candidates' rows are read from it per query. The normalised fp16 matrix is built
    once, `chunk_rows` rows at a time, so building never holds a second fp32 copy.
    """

    def __init__(self, embeddings: np.ndarray, chunk_rows: int = 65_536):
        self.embeddings = embeddings
        self.half = torch.empty(tuple(embeddings.shape), dtype=torch.float16)
        for start in range(0, len(embeddings), chunk_rows):
            chunk = unit_rows(embeddings[start : start + chunk_rows])
            self.half[start : start + len(chunk)] = torch.from_numpy(chunk)

    def __len__(self) -> int:
        return len(self.half)

    def search(
        self, query: np.ndarray, k: int, allowed: torch.Tensor | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Indices and fp32 cosine similarities of the k nearest rows, best first; `allowed` (N,) bool restricts
        the rows that may be returned."""
        query = unit_rows(query)
        scores = torch.mv(self.half, torch.from_numpy(query).half())
        if allowed is not None:
            scores.masked_fill_(~allowed, -torch.inf)
        k = min(k, len(self) if allowed is None else int(allowed.sum()))
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        candidates = np.sort(self.candidates(scores, k))  # equal similarities then rank by row, as a stable sort does
        exact = unit_rows(self.embeddings[candidates]) @ query
        order = np.argsort(-exact, kind="stable")[:k]
        return candidates[order], exact[order]

    def candidates(self, scores: torch.Tensor, k: int) -> np.ndarray:
        """Every row whose fp16 score may hide a true top-k one: within twice the error bound of the k-th best.

        Proof sketch: the k fp16 leaders all score ≥ t - bound in fp32, so every true top-k row does too, and so
        scores ≥ t - 2·bound in fp16. Usually the first top-(k + slack) already reaches below that line.
        """
        width = min(len(scores), k + CANDIDATE_SLACK)
        values, indices = scores.topk(width)
        threshold = half_floor(float(values[k - 1]) - 2 * FP16_ERROR_BOUND)
        if width == len(scores) or float(values[-1]) < threshold:
            return indices[values >= float(threshold)].numpy()
        return torch.nonzero(scores >= float(threshold)).squeeze(1).numpy()


def index_features(embedding_size: int) -> Features:
    return Features(
        {
            "image_id": Value("string"),
            "human_score": Value("float32"),
            "predicted_score": Value("float32"),
            "embedding": List(Value("float32"), length=embedding_size),
            "thumbnail": Image(),
        }
    )


class NeighbourIndex:
    """Scored, embedded images with thumbnails, searchable by cosine similarity.

    `predictor` (a `MemorabilityPredictor` of the model that built the index) is needed only to query by image.
    """

    def __init__(self, table: Dataset, info: dict, predictor=None):
        self.table = table
        self.info = info
        self.predictor = predictor
        columns = table.with_format("numpy", columns=["image_id", "human_score", "predicted_score", "embedding"])[:]
        self.image_ids: np.ndarray = columns["image_id"].astype(str)
        self.embeddings: np.ndarray = columns["embedding"].reshape(len(table), -1).astype(np.float32, copy=False)
        self.predicted_scores: np.ndarray = columns["predicted_score"].astype(np.float32)
        self.human_scores: np.ndarray = columns["human_score"].astype(np.float32)  # NaN where unknown
        self.search_engine = CosineSearch(self.embeddings)
        self.quantiles = np.asarray(info["predicted_score_quantiles"], dtype=np.float64)
        reference = self.reference_scores()
        self.memorable_above, self.forgettable_below = np.quantile(reference, [MEMORABLE_ABOVE, FORGETTABLE_BELOW])
        self.memorable = torch.from_numpy(reference > self.memorable_above)
        self.forgettable = torch.from_numpy(reference < self.forgettable_below)

    def __len__(self) -> int:
        return len(self.table)

    def reference_scores(self) -> np.ndarray:
        """The score the memorable / forgettable filters and the embedding map go by: human where known, else
        predicted."""
        return np.where(np.isnan(self.human_scores), self.predicted_scores, self.human_scores)

    def reference_score_name(self) -> str:
        """What `reference_scores` are, in words, for titles."""
        known = ~np.isnan(self.human_scores)
        if known.all():
            return "human score"
        return "predicted score" if not known.any() else SCORE_RULE

    def percentile(self, score: float) -> float:
        """Where a predicted score falls among the index's predictions, 0..100 (interpolated between quantiles)."""
        return float(np.interp(score, self.quantiles, QUANTILE_LEVELS * 100))

    def embed(self, image: ImageSource) -> np.ndarray:
        """The embedding of one image, through the predictor the index was loaded with."""
        if self.predictor is None:
            raise NeighbourError("Querying by image needs the model: load the index with predictor=...")
        return self.predictor.forward(self.predictor.preprocess([image])).embeddings[0].numpy()

    def query_vector(self, query: np.ndarray | torch.Tensor | ImageSource) -> np.ndarray:
        """An embedding (D,) from an embedding (array or tensor) or an image, checked against the index's size."""
        if isinstance(query, (np.ndarray, torch.Tensor)):
            vector = np.asarray(query.detach().cpu() if isinstance(query, torch.Tensor) else query, np.float32)
        else:
            vector = self.embed(query)
        vector = vector.reshape(-1)
        if vector.shape[0] != self.embeddings.shape[1]:
            raise NeighbourError(
                f"The query has {vector.shape[0]} dimensions but the index holds {self.embeddings.shape[1]}: "
                "was it built with another model?"
            )
        return vector

    def neighbours(self, query, k: int, allowed: torch.Tensor | None) -> list[Neighbour]:
        indices, similarities = self.search_engine.search(self.query_vector(query), k, allowed)
        thumbnails = self.table.select_columns(["thumbnail"])[indices.tolist()]["thumbnail"] if len(indices) else []
        return [
            Neighbour(
                image_id=str(self.image_ids[index]),
                similarity=float(similarity),
                human_score=None if np.isnan(self.human_scores[index]) else float(self.human_scores[index]),
                predicted_score=float(self.predicted_scores[index]),
                thumbnail=thumbnail,
            )
            for index, similarity, thumbnail in zip(indices, similarities, thumbnails)
        ]

    def similar(self, query, k: int = 10) -> list[Neighbour]:
        """The k most similar images (an indexed image finds itself first)."""
        return self.neighbours(query, k, None)

    def more_memorable(self, query, k: int = 10) -> list[Neighbour]:
        """The k most similar among images scored above the index's 75th percentile (`reference_scores`)."""
        return self.neighbours(query, k, self.memorable)

    def more_forgettable(self, query, k: int = 10) -> list[Neighbour]:
        """The k most similar among images scored below the index's 25th percentile (`reference_scores`)."""
        return self.neighbours(query, k, self.forgettable)

    def save(self, folder: str | os.PathLike) -> Path:
        """Parquet shards under folder/data/ and folder/index_info.json; the folder can be pushed as a Hub dataset."""
        folder = Path(folder)
        save_table(self.table, folder)
        (folder / INFO_FILE).write_text(json.dumps(self.info, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, source: str | os.PathLike, predictor=None) -> "NeighbourIndex":
        """An index saved by `save`, from its folder or from the Hub dataset the folder was pushed to (downloaded
        once, then cached); memory-mapped through the `datasets` cache."""
        folder = Path(source)
        if is_hub_id(source):
            try:
                folder = download_hub_dataset(str(source))
            except DataError as error:
                raise NeighbourError(str(error)) from None
        files = parquet_files(folder / "data") if (folder / "data").is_dir() else []
        if not files or not (folder / INFO_FILE).is_file():
            raise NeighbourError(f"{source}: not a neighbour index (expected data/*.parquet and {INFO_FILE}).")
        info = json.loads((folder / INFO_FILE).read_text())
        built_with = info.get("model_fingerprint")
        if predictor is not None and built_with is not None and built_with != model_fingerprint(predictor):
            raise NeighbourError(
                f"{source}: this index was built with another model (fingerprint {built_with}); its neighbours would "
                "not be this model's: build one with train/build_index.py."
            )
        table = load_dataset("parquet", data_files=[str(path) for path in files], split="train")
        return cls(table, info, predictor)


def thumbnail_bytes(picture: PILImage.Image) -> dict:
    """A JPEG of at most 128 px a side, as the `datasets.Image` feature stores encoded images."""
    small = picture.copy()
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return {"bytes": buffer.getvalue(), "path": None}


def indexed_thumbnail(index: int, picture: PILImage.Image) -> dict:
    """`thumbnail_bytes` as the batch engine's `extract`, made in the worker that decoded the picture."""
    return thumbnail_bytes(picture)


def build_neighbour_index(
    predictor,
    dataset: Dataset,
    progress: bool = True,
    data_name: str = "",
    model_name: str = "",
    num_workers: int = 0,
    rows_per_part: int = 1024,
) -> NeighbourIndex:
    """Score, embed and thumbnail every image of `dataset` (an `image` column; `score` and `image_id` optional) with
    the one batch engine, `predictor.batch_size` at a time; an unreadable image is left out and counted.

    Without `image_id`, rows are named by their position; without `score`, human scores are null. `data_name`
    and `model_name` are recorded in index_info.json for titles and provenance, with the model's fingerprint, so
    that the index is never loaded beside another model.
    """
    if "image" not in dataset.column_names:
        raise NeighbourError(f"The dataset has no 'image' column (it has {', '.join(dataset.column_names)}).")
    if len(dataset) == 0:
        raise NeighbourError("The dataset is empty: there is nothing to index.")
    ids = dataset["image_id"] if "image_id" in dataset.column_names else [str(row) for row in range(len(dataset))]
    human = dataset["score"] if "score" in dataset.column_names else [None] * len(dataset)
    features = index_features(predictor.model.config.embedding_size)
    parts, rows, unreadable = [], [], []
    with tqdm(total=len(dataset), desc="indexing", unit="img", disable=not progress) as bar:
        scored = score_images(
            predictor, DatasetImages(dataset), ids, num_workers=num_workers, progress=bar,
            extract=indexed_thumbnail, embeddings=True,
        )  # fmt: skip
        for row, score in zip(scored, human):
            if row.error is not None:
                unreadable.append(row.error)
                continue
            rows.append({"image_id": row.name, "human_score": score, "predicted_score": row.score,
                         "embedding": row.embedding, "thumbnail": row.extra})  # fmt: skip
            if len(rows) == rows_per_part:
                parts.append(Dataset.from_list(rows, features=features))
                rows = []
    if rows:
        parts.append(Dataset.from_list(rows, features=features))
    if not parts:
        raise NeighbourError(f"No image of the dataset could be read (the first: {unreadable[0]}).")
    table = concatenate_datasets(parts)
    info = {
        "model": model_name,
        "model_fingerprint": model_fingerprint(predictor),
        "data": data_name,
        "count": len(table),
        "unreadable": len(unreadable),
        "embedding_size": features["embedding"].length,
        "predicted_score_quantiles": np.quantile(table["predicted_score"], QUANTILE_LEVELS).tolist(),
        "filters": f"more_memorable / more_forgettable: above {MEMORABLE_ABOVE:.0%} / below {FORGETTABLE_BELOW:.0%} "
        f"quantile of the {SCORE_RULE}",
    }
    return NeighbourIndex(table, info, predictor)


__all__ = ["CosineSearch", "Neighbour", "NeighbourError", "NeighbourIndex", "build_neighbour_index"]
