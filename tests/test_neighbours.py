"""Neighbour index: exact fp32 order from an fp16 search, filters, save/load round trip, percentiles, the CLI."""

import numpy as np
import pytest
import torch
from PIL import Image

from memorability.data import load_lamem
from memorability.inference import load_predictor
from memorability.neighbours import (
    CANDIDATE_SLACK,
    CosineSearch,
    NeighbourError,
    NeighbourIndex,
    build_neighbour_index,
    unit_rows,
)
from train.build_index import main as build_index_main


def near_duplicates(seed: int = 0, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """20,000 random rows and 3,000 near-copies of one direction close to the query: their cosines differ by about
    1e-5, below fp16's resolution (about 5e-4 near 1), so fp16 alone misorders them."""
    rng = np.random.default_rng(seed)
    query = unit_rows(rng.standard_normal(dim))
    centre = unit_rows(query + 0.3 * unit_rows(rng.standard_normal(dim)))
    near = centre + 2e-3 * rng.standard_normal((3000, dim))
    rows = np.concatenate([rng.standard_normal((20_000, dim)), near]).astype(np.float32)
    return rows[rng.permutation(len(rows))], query


def brute_force(rows: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    similarities = unit_rows(rows) @ unit_rows(query)
    if allowed is not None:
        similarities = np.where(allowed, similarities, -np.inf)
    return np.argsort(-similarities, kind="stable")[:k]


def test_top_k_is_the_fp32_order_where_fp16_alone_misorders():
    rows, query = near_duplicates()
    search = CosineSearch(rows, chunk_rows=7_000)
    expected = brute_force(rows, query, 10)
    exact = unit_rows(rows[expected]) @ query
    assert np.abs(np.diff(exact)).min() > 1e-7  # no near-ties: the order is well defined in fp32
    fp16_only = torch.mv(search.half, torch.from_numpy(query).half()).topk(10).indices.numpy()
    assert not np.array_equal(fp16_only, expected)  # the data does defeat fp16 alone
    indices, similarities = search.search(query, 10)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(similarities, exact, atol=1e-6)


def test_few_candidates_suffice_on_spread_out_data():
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((5_000, 32)).astype(np.float32)
    search = CosineSearch(rows)
    for query in rng.standard_normal((5, 32)).astype(np.float32):
        scores = torch.mv(search.half, torch.from_numpy(unit_rows(query)).half())
        assert len(search.candidates(scores, 5)) < 5 + CANDIDATE_SLACK
        np.testing.assert_array_equal(search.search(query, 5)[0], brute_force(rows, query, 5))


def test_allowed_rows_and_k_beyond_them():
    rows, query = near_duplicates(seed=2)
    allowed = np.random.default_rng(3).uniform(size=len(rows)) < 0.3
    search = CosineSearch(rows)
    indices, _ = search.search(query, 20, torch.from_numpy(allowed))
    np.testing.assert_array_equal(indices, brute_force(rows, query, 20, allowed))
    few = np.zeros(len(rows), dtype=bool)
    few[[5, 50, 500]] = True
    assert sorted(search.search(query, 10, torch.from_numpy(few))[0]) == [5, 50, 500]
    assert len(search.search(query, 10, torch.zeros(len(rows), dtype=torch.bool))[0]) == 0


def test_a_zero_embedding_is_similarity_zero_not_nan():
    rows = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    indices, similarities = CosineSearch(rows).search(np.array([1, 0.1, 0], dtype=np.float32), 3)
    assert list(indices) == [1, 2, 0] and similarities[-1] == 0 and not np.isnan(similarities).any()


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return load_predictor(tiny_model_dir, device="cpu", precision="fp32", batch_size=8)


@pytest.fixture(scope="module")
def lamem_train(lamem_folder):
    return load_lamem(lamem_folder)["train"]


@pytest.fixture(scope="module")
def index(predictor, lamem_train) -> NeighbourIndex:
    return build_neighbour_index(predictor, lamem_train, progress=False, data_name="small LaMem")


def test_index_rows_match_the_data_and_the_model(index, predictor, lamem_train):
    assert len(index) == len(lamem_train)
    assert list(index.image_ids) == lamem_train["image_id"][:]
    np.testing.assert_allclose(index.human_scores, lamem_train["score"][:], rtol=1e-6)
    first = lamem_train[0]["image"]
    output = predictor.forward(predictor.preprocess([first]))
    np.testing.assert_allclose(index.embeddings[0], output.embeddings[0].numpy(), rtol=1e-5, atol=1e-6)
    assert index.predicted_scores[0] == pytest.approx(float(output.scores[0]), abs=1e-6)
    assert index.reference_score_name() == "human score"
    thumbnail = index.similar(index.embeddings[0], 1)[0].thumbnail
    assert isinstance(thumbnail, Image.Image) and max(thumbnail.size) <= 128 and thumbnail.format == "JPEG"


def test_results_are_ranked_and_an_image_finds_itself(index, lamem_train):
    by_image = index.similar(lamem_train[3]["image"], k=5)
    by_embedding = index.similar(torch.from_numpy(index.embeddings[3]), k=5)
    assert [n.image_id for n in by_image] == [n.image_id for n in by_embedding]
    assert by_image[0].image_id == index.image_ids[3] and by_image[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert [n.similarity for n in by_image] == sorted((n.similarity for n in by_image), reverse=True)
    expected = brute_force(index.embeddings, index.embeddings[3], 5)
    assert [n.image_id for n in by_embedding] == list(index.image_ids[expected])


def test_memorable_and_forgettable_filters(index):
    reference = dict(zip(index.image_ids, index.reference_scores()))
    memorable = index.more_memorable(index.embeddings[0], k=50)
    forgettable = index.more_forgettable(index.embeddings[0], k=50)
    assert memorable and forgettable
    assert all(reference[n.image_id] > index.memorable_above for n in memorable)
    assert all(reference[n.image_id] < index.forgettable_below for n in forgettable)
    assert len(memorable) == int((index.reference_scores() > index.memorable_above).sum())
    assert index.memorable_above == pytest.approx(np.quantile(index.human_scores, 0.75))


def test_percentile_of_a_prediction(index):
    predicted = index.predicted_scores
    assert index.percentile(float(predicted.min()) - 1) == 0 and index.percentile(float(predicted.max()) + 1) == 100
    assert index.percentile(float(np.median(predicted))) == pytest.approx(50, abs=0.01)
    some = np.sort(predicted)
    assert np.all(np.diff([index.percentile(float(score)) for score in some]) >= 0)


def test_save_and_load_give_the_same_answers(index, predictor, tmp_path):
    loaded = NeighbourIndex.load(index.save(tmp_path / "index"), predictor=predictor)
    assert sorted(path.name for path in (tmp_path / "index").rglob("*.*")) == [
        "index_info.json",
        "train-00000-of-00001.parquet",
    ]
    np.testing.assert_array_equal(loaded.embeddings, index.embeddings)
    for query in index.embeddings[:3]:
        for name in ("similar", "more_memorable", "more_forgettable"):
            before, after = getattr(index, name)(query, 4), getattr(loaded, name)(query, 4)
            assert [(n.image_id, n.similarity, n.human_score, n.predicted_score) for n in before] == [
                (n.image_id, n.similarity, n.human_score, n.predicted_score) for n in after
            ]
            assert [n.thumbnail.tobytes() for n in before] == [n.thumbnail.tobytes() for n in after]
    assert loaded.percentile(0.7) == index.percentile(0.7) and loaded.info["data"] == "small LaMem"


def test_an_index_loads_by_hub_id_or_fails_in_one_sentence(index, tmp_path, monkeypatch):
    with pytest.raises(NeighbourError) as offline:  # HF_HUB_OFFLINE=1 and nothing cached
        NeighbourIndex.load("memorability-tests/no-such-index")
    message = str(offline.value)
    assert message.startswith("memorability-tests/no-such-index: the dataset is a Hub id, but HF_HUB_OFFLINE is set")
    assert message.count(". ") == 0 and message.endswith("and pass DIR instead.")
    index.save(tmp_path / "snapshot")  # what snapshot_download gives back for a pushed index folder
    monkeypatch.setattr("memorability.tables.require_hub", lambda *args: None)  # as if the Hub answered
    monkeypatch.setattr("memorability.tables.snapshot_download", lambda repo_id, **kwargs: str(tmp_path / "snapshot"))
    loaded = NeighbourIndex.load("org/index")
    assert list(loaded.image_ids) == list(index.image_ids) and loaded.info == index.info


def test_images_without_scores_or_ids(predictor, lamem_train):
    unscored = lamem_train.select_columns(["image"]).select(range(6))
    index = build_neighbour_index(predictor, unscored, progress=False)
    assert list(index.image_ids) == [str(i) for i in range(6)]
    assert np.isnan(index.human_scores).all() and index.reference_score_name() == "predicted score"
    assert all(n.human_score is None for n in index.similar(index.embeddings[0], 3))
    np.testing.assert_array_equal(index.reference_scores(), index.predicted_scores)


def test_queries_that_do_not_fit_are_one_sentence(index, predictor, lamem_train, tmp_path):
    with pytest.raises(NeighbourError, match="3 dimensions but the index holds 16"):
        index.similar(np.zeros(3, dtype=np.float32), 2)
    bare = NeighbourIndex(index.table, index.info)
    with pytest.raises(NeighbourError, match="predictor"):
        bare.similar(lamem_train[0]["image"], 2)
    with pytest.raises(NeighbourError, match="not a neighbour index"):
        NeighbourIndex.load(tmp_path)
    with pytest.raises(NeighbourError, match="'image' column"):
        build_neighbour_index(predictor, lamem_train.select_columns(["score"]), progress=False)


def test_build_index_cli(tiny_model_dir, lamem_folder, tmp_path, capsys):
    out = tmp_path / "index"
    arguments = [str(tiny_model_dir), "--data", str(lamem_folder), "--subset", "validation", "--out", str(out)]
    assert build_index_main(arguments) == 0
    loaded = NeighbourIndex.load(out)
    assert len(loaded) == len(load_lamem(lamem_folder)["validation"])
    assert loaded.info["data"] == "LaMem-format folder (lamem) (split 1, validation)"
    assert loaded.info["model"] == tiny_model_dir.name  # no folder of this machine in a file that may be pushed
    capsys.readouterr()
    assert build_index_main([str(tiny_model_dir), "--data", str(tmp_path / "missing"), "--out", str(out)]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: ") and "missing" in message and "\n" not in message
    with pytest.raises(SystemExit) as help_exit:
        build_index_main(["--help"])
    assert help_exit.value.code == 0 and "--subset" in capsys.readouterr().out
