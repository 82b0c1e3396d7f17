"""Frozen foundation encoders with light heads, end to end for tiny CLIP, SigLIP and DINOv2 encoders (random weights,
saved to folders: the path by Hub id is the same code), on generated sample data: embed → fit_head (ridge and MLP)
→ evaluate → `memorability predict` with an uncertainty column → push_model.py --local-dir → from_pretrained where
the package cannot be imported → the Space shows score ± uncertainty."""

import csv
import json
import os
import shutil
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
from launching import launcher
import torch
from hub_support import run_isolated
from space_server import PROJECT, free_port, imported_app
from tiny_backbones import save_tiny_encoder

from hub import push_model
from memorability.cli import main as cli
from memorability.embeddings import INFO_FILE, read_embeddings
from memorability.inference import load_predictor
from train.embed import main as embed_main
from train.evaluate import main as evaluate_main
from train.fit_head import main as fit_head_main

ENCODERS = ("clip", "siglip", "dinov2")


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory):
    """200 generated pictures of 40 px in LaMem's format: enough for five splits, small enough to embed thrice fast."""
    from memorability.sample_data import make_sample_data

    return make_sample_data(tmp_path_factory.mktemp("small") / "sample", n=200, seed=1, size=40, progress=False)


@pytest.fixture(scope="module")
def pipelines(small_sample, tmp_path_factory) -> dict[str, dict]:
    """Per encoder: its folder, its embeddings of the sample pictures, and ridge and MLP models fitted on them."""
    built = {}
    for family in ENCODERS:
        work = tmp_path_factory.mktemp(family)
        encoder = save_tiny_encoder(work / "encoder", family)
        embeddings = work / "embeddings"
        assert embed_main(["--encoder", str(encoder), "--data", str(small_sample), "--out", str(embeddings),
                           "--precision", "fp32", "--num-workers", "0", "--chunk-size", "64"]) == 0  # fmt: skip
        models = {}
        for head in ("ridge", "mlp"):
            models[head] = work / head
            assert fit_head_main([str(embeddings), "--data", str(small_sample), "--out", str(models[head]),
                                  "--head", head]) == 0  # fmt: skip
        built[family] = {"family": family, "encoder": encoder, "embeddings": embeddings, "models": models}
    return built


@pytest.fixture(params=ENCODERS)
def pipeline(request, pipelines) -> dict:
    return pipelines[request.param]


def test_the_embeddings_table_records_its_encoder(pipeline):
    table = read_embeddings(pipeline["embeddings"])
    info = json.loads((pipeline["embeddings"] / INFO_FILE).read_text())
    assert len(table.ids) == info["images"] == 200 and table.vectors.shape == (200, 32) and info["skipped"] == 0
    assert info["encoder"] == str(pipeline["encoder"]) and info["processor"]["image_processor_type"]
    assert info["revision"] is None and info["flip"] is False  # a local folder has no Hub commit
    parquet = next((pipeline["embeddings"] / "data").glob("*.parquet"))
    assert pq.read_schema(parquet).names == ["image_id", "embedding"]
    assert json.loads(pq.ParquetFile(parquet).metadata.metadata[b"memorability.provenance"])["encoder"] == info["encoder"]


@pytest.mark.parametrize("head", ["ridge", "mlp"])
def test_five_heads_with_lamem_protocol_results_and_a_measured_spread(pipeline, head, small_sample, tmp_path):
    model = pipeline["models"][head]
    results = json.loads((model / "eval_results.json").read_text())
    assert list(results["splits"]) == ["1", "2", "3", "4", "5"] and results["protocol"].endswith("head i on test_i")
    assert not results["data"]["is_lamem"]
    calibration = results["uncertainty_calibration"]
    assert calibration["measured"] and calibration["images"] == 10  # 5% of 200
    assert 0 <= calibration["within_1_sigma"] <= calibration["within_2_sigma"] <= 1
    config = json.loads((model / "config.json").read_text())
    assert config["num_heads"] == 5 and config["head_splits"] == [1, 2, 3, 4, 5]
    # train/evaluate.py scores test_i with head i alone, from the images: the same figures as from the cache.
    assert evaluate_main([str(model), "--data", str(small_sample), "--out-dir", str(tmp_path), "--num-workers",
                          "0"]) == 0  # fmt: skip
    evaluated = json.loads((tmp_path / "eval_results.json").read_text())
    for index in results["splits"]:
        assert evaluated["splits"][index]["spearman"] == pytest.approx(results["splits"][index]["spearman"], abs=1e-6)


def test_predict_writes_an_uncertainty_column(pipeline, small_sample, tmp_path):
    photos = sorted((small_sample / "images").iterdir())[:5]
    out = tmp_path / "scores.csv"
    assert cli(["predict", *map(str, photos), "--model", str(pipeline["models"]["ridge"]), "--out", str(out),
                "--precision", "fp32"]) == 0  # fmt: skip
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    predictor = load_predictor(pipeline["models"]["ridge"], precision="fp32")
    scores, spreads = predictor.predict(photos, return_uncertainty=True)
    np.testing.assert_allclose([float(row["score"]) for row in rows], scores, atol=1e-6)
    np.testing.assert_allclose([float(row["uncertainty"]) for row in rows], spreads, atol=1e-6)
    assert (spreads > 0).all()


def test_pushed_and_loaded_where_the_package_cannot_be_imported(pipelines, small_sample, tmp_path):
    """One isolated process for the three encoders: starting Python with torch and transformers is most of the cost."""
    uploads = {family: tmp_path / family for family in ENCODERS}
    for family, upload in uploads.items():
        model = pipelines[family]["models"]["mlp"]
        assert push_model.main([str(model), "--repo-id", "org/heads", "--local-dir", str(upload)]) == 0
        assert "## Uncertainty" in (upload / "README.md").read_text()
    photo = sorted((small_sample / "images").iterdir())[0]
    stdout = run_isolated(
        f"""
        import json, sys
        import torch
        from PIL import Image
        from transformers import AutoImageProcessor, AutoModel
        outputs = {{}}
        for family, folder in {({family: str(upload) for family, upload in uploads.items()})!r}.items():
            model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
            processor = AutoImageProcessor.from_pretrained(folder)
            with torch.no_grad():
                output = model(**processor(Image.open({str(photo)!r}).convert("RGB"), return_tensors="pt"))
            outputs[family] = [output.scores.item(), output.uncertainty.item()]
        print(json.dumps({{"outputs": outputs, "package_loaded": "memorability" in sys.modules}}))
        """,
        cwd=tmp_path,
    )
    remote = json.loads(stdout.strip().splitlines()[-1])
    assert not remote["package_loaded"]
    for family in ENCODERS:
        predictor = load_predictor(pipelines[family]["models"]["mlp"], precision="fp32")
        np.testing.assert_allclose(remote["outputs"][family], predictor.predict(photo, return_uncertainty=True),
                                   atol=1e-5, err_msg=family)  # fmt: skip


def test_the_space_shows_score_plus_minus_uncertainty(pipeline, small_sample, tmp_path):
    photo = str(sorted((small_sample / "images").iterdir())[0])
    with imported_app(pipeline["models"]["ridge"], None, tmp_path / "uploads") as app:
        score, summary, *_ = app.score_photo(photo)
        assert app.ENSEMBLE and " ± " in summary and summary.startswith(f"## Memorability {score:.0f} ± ")
        assert "spread (standard deviation) of the heads" in app.about_text()


def test_an_encoder_that_changed_since_the_embeddings_is_refused(pipeline, small_sample, tmp_path, capsys):
    other = save_tiny_encoder(tmp_path / "other", pipeline["family"], seed=7)
    moved = tmp_path / "embeddings"
    shutil.copytree(pipeline["embeddings"], moved)
    info = json.loads((moved / INFO_FILE).read_text()) | {"encoder": str(other)}
    (moved / INFO_FILE).write_text(json.dumps(info))
    assert fit_head_main([str(moved), "--data", str(small_sample), "--out", str(tmp_path / "model")]) == 2
    assert f"error: The encoder at {other} is not the one that made {moved}" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_a_csv_of_scored_photos_gives_one_head(pipelines, small_sample, tmp_path):
    rows = ["image,score"] + [f"{small_sample / 'images' / line.split()[0]},{line.split()[1]}"
                              for line in (small_sample / "splits" / "train_1.txt").read_text().splitlines()[:80]]
    (tmp_path / "photos.csv").write_text("\n".join(rows) + "\n")
    encoder = pipelines["clip"]["encoder"]
    assert embed_main(["--encoder", str(encoder), "--data", str(tmp_path / "photos.csv"), "--out", str(tmp_path / "emb"),
                       "--precision", "fp32", "--num-workers", "0"]) == 0  # fmt: skip
    assert fit_head_main([str(tmp_path / "emb"), "--data", str(tmp_path / "photos.csv"), "--out",
                          str(tmp_path / "model")]) == 0  # fmt: skip
    results = json.loads((tmp_path / "model" / "eval_results.json").read_text())
    assert list(results["splits"]) == ["1"] and results["protocol"] == "test split"
    assert results["uncertainty_calibration"] == {"measured": False, "why": "one head has no spread"}
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["num_heads"] == 1
    _, spread = load_predictor(tmp_path / "model").predict(sorted((small_sample / "images").iterdir())[0],
                                                            return_uncertainty=True)  # fmt: skip
    assert spread == 0


def test_an_unreadable_image_is_skipped_and_counted_and_the_heads_fit_without_it(pipelines, small_sample, tmp_path):
    data = tmp_path / "sample"
    shutil.copytree(small_sample, data)
    broken = sorted((data / "images").iterdir())[3]
    broken.write_bytes(b"not a picture")
    out = tmp_path / "emb"
    assert embed_main(["--encoder", str(pipelines["dinov2"]["encoder"]), "--data", str(data), "--out", str(out),
                       "--precision", "fp32", "--num-workers", "0"]) == 0  # fmt: skip
    info = json.loads((out / INFO_FILE).read_text())
    assert (info["images"], info["skipped"]) == (199, 1) and broken.stem in info["first_skipped"][0]
    assert broken.stem not in read_embeddings(out).ids
    assert fit_head_main([str(out), "--data", str(data), "--out", str(tmp_path / "model")]) == 0


def test_a_rerun_reuses_the_finished_parts(pipelines, small_sample, tmp_path, capsys):
    arguments = ["--encoder", str(pipelines["clip"]["encoder"]), "--data", str(small_sample), "--out",
                 str(tmp_path / "emb"), "--precision", "fp32", "--num-workers", "0", "--chunk-size", "64", "--keep-parts"]
    assert embed_main(arguments) == 0
    first = read_embeddings(tmp_path / "emb")
    capsys.readouterr()
    assert embed_main(arguments) == 0
    assert "(0.0 img/s" in capsys.readouterr().out  # nothing computed again: every part was kept
    np.testing.assert_array_equal(read_embeddings(tmp_path / "emb").vectors, first.vectors)


def test_flip_averages_each_embedding_with_its_mirror_images(pipelines):
    from memorability.embeddings import load_encoder

    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    plain = load_encoder(str(pipelines["siglip"]["encoder"]), "cpu", "fp32")
    flipped = load_encoder(str(pipelines["siglip"]["encoder"]), "cpu", "fp32", flip=True)
    expected = (plain.forward(pixels).embeddings + plain.forward(pixels.flip(-1)).embeddings) / 2
    torch.testing.assert_close(flipped.forward(pixels).embeddings, expected)


def test_two_processes_embed_what_one_does(pipelines, small_sample, tmp_path):
    launch = [*launcher(2), "--main_process_port", str(free_port()), str(PROJECT / "train" / "embed.py")]
    arguments = ["--encoder", str(pipelines["clip"]["encoder"]), "--data", str(small_sample), "--precision", "fp32",
                 "--num-workers", "0", "--chunk-size", "64"]  # fmt: skip
    result = subprocess.run([*launch, *arguments, "--out", str(tmp_path / "two")], capture_output=True, text=True,
                            timeout=600, env=os.environ | {"CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
    assert result.returncode == 0 and "2 process(es)" in result.stdout, result.stderr[-3000:]
    single = read_embeddings(pipelines["clip"]["embeddings"])
    np.testing.assert_allclose(read_embeddings(tmp_path / "two").vectors, single.vectors, atol=1e-5)


def test_heads_fitted_on_flipped_embeddings_score_flipped_photos_as_evaluated(pipelines, small_sample, tmp_path):
    encoder = pipelines["siglip"]["encoder"]
    assert embed_main(["--encoder", str(encoder), "--data", str(small_sample), "--out", str(tmp_path / "emb"),
                       "--precision", "fp32", "--num-workers", "0", "--flip"]) == 0  # fmt: skip
    assert fit_head_main([str(tmp_path / "emb"), "--data", str(small_sample), "--out", str(tmp_path / "model"),
                          "--head", "mlp"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "model" / "config.json").read_text())["test_time_flip"] is True
    predictor = load_predictor(tmp_path / "model", precision="fp32")
    assert predictor.flip  # the predictor scores as the heads were fitted: the heads on the mean of both views
    photos = sorted((small_sample / "images").iterdir())[:3]
    scores, spreads = predictor.predict(photos, return_uncertainty=True)
    table = read_embeddings(tmp_path / "emb")
    vectors, _ = table.rows([photo.stem for photo in photos])
    with torch.no_grad():
        per_head = predictor.model.forward_heads(torch.from_numpy(vectors)).numpy()
    np.testing.assert_allclose(scores, per_head.mean(axis=1), atol=1e-5)  # an MLP: mean of outputs ≠ output of mean
    np.testing.assert_allclose(spreads, per_head.std(axis=1), atol=1e-5)
    from memorability.explain import analyse
    from memorability.images import load_image

    analysis = analyse(predictor, load_image(photos[0]))  # the Space's single-photo analysis scores the same way
    assert analysis.score == pytest.approx(float(scores[0]), abs=1e-5)
    results = json.loads((tmp_path / "model" / "eval_results.json").read_text())
    assert evaluate_main([str(tmp_path / "model"), "--data", str(small_sample), "--out-dir", str(tmp_path / "eval"),
                          "--num-workers", "0"]) == 0  # fmt: skip
    evaluated = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    for index in results["splits"]:
        assert evaluated["splits"][index]["spearman"] == pytest.approx(results["splits"][index]["spearman"], abs=1e-6)


def test_a_fitted_model_serves_neighbours_and_ablations(pipelines, small_sample):
    from memorability.data import load_lamem
    from memorability.explain import ablation_effects
    from memorability.neighbours import build_neighbour_index

    predictor = load_predictor(pipelines["dinov2"]["models"]["mlp"], precision="fp32")
    test = load_lamem(small_sample, split=1)["test"]
    index = build_neighbour_index(predictor, test, progress=False)
    photo = test[0]["image"]
    score = predictor.predict(photo)
    found = index.similar(photo, k=3)
    assert len(found) == 3 and found[0].image_id == test[0]["image_id"]  # the photo itself is its nearest
    assert found[0].predicted_score == pytest.approx(score, abs=1e-5)
    effects = ablation_effects(predictor, photo, score)
    assert effects and all(np.isfinite(effect.score) and effect.change == pytest.approx(effect.score - score)
                           for effect in effects)  # fmt: skip


def test_fit_head_never_replaces_a_folder_it_did_not_write(pipelines, small_sample, tmp_path, capsys):
    encoder = shutil.copytree(pipelines["clip"]["encoder"], tmp_path / "encoder")
    before = sorted(path.name for path in encoder.iterdir())
    assert fit_head_main([str(pipelines["clip"]["embeddings"]), "--data", str(small_sample), "--out",
                          str(encoder)]) == 2  # fmt: skip
    assert "was not written by fit_head.py" in capsys.readouterr().err
    assert sorted(path.name for path in encoder.iterdir()) == before


def test_the_ablation_study_runs_on_a_fitted_model(pipelines, small_sample, tmp_path):
    from memorability.study import StudyConfig, run_study

    config = StudyConfig(model=str(pipelines["clip"]["models"]["ridge"]), out_dir=str(tmp_path),
                         data=str(small_sample), limit=12, ablations=["blur"], n_resamples=200, examples=1,
                         progress=False)  # fmt: skip
    results = run_study(config)  # its examples figure holds Grad-CAM maps on the ViT's token grid
    assert results["n_images"] == 12 and set(results["groups"]["all"]["ablations"]) == {"blur"}
    assert (tmp_path / "examples.png").is_file()


def test_a_hub_encoder_is_recorded_and_reloaded_at_its_commit(pipelines, small_sample, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--tiny-clip"
    shutil.copytree(pipelines["clip"]["encoder"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)  # what a download of org/tiny-clip leaves in the Hub cache
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert embed_main(["--encoder", "org/tiny-clip", "--data", str(small_sample), "--out", str(tmp_path / "emb"),
                       "--precision", "fp32", "--num-workers", "0"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "emb" / INFO_FILE).read_text())["revision"] == commit
    (repo / "refs" / "main").write_text("f" * 40)  # the default branch moved on; the embeddings' commit is still there
    assert fit_head_main([str(tmp_path / "emb"), "--data", str(small_sample), "--out", str(tmp_path / "model")]) == 0
    fitting = json.loads((tmp_path / "model" / "train_results.json").read_text())
    assert fitting["embeddings"]["revision"] == commit


def test_fit_head_says_what_it_held_out_and_refuses_a_hold_out_of_none(pipelines, small_sample, tmp_path, capsys):
    """On a small set, 5% of 200 is 10 images, said; 0.2% rounds to none, which silently measured nothing."""
    embeddings = str(pipelines["clip"]["embeddings"])
    assert fit_head_main([embeddings, "--data", str(small_sample), "--out", str(tmp_path / "tiny"),
                          "--holdout", "0.002"]) == 2  # fmt: skip
    assert "A hold-out share of 0.002 of 200 images is no image" in capsys.readouterr().err
    assert not (tmp_path / "tiny").exists()
    assert fit_head_main([embeddings, "--data", str(small_sample), "--out", str(tmp_path / "fine")]) == 0
    assert "Held out 10 of 200 images (5.0%) that no head sees" in capsys.readouterr().out


def test_the_encoder_pipeline_runs_offline_end_to_end(small_sample, tmp_path):
    """`--encoder tiny` failed and no offline route to the encoder pipeline was documented: tiny-random-clip needs
    nothing downloaded; embed, fit, score and embed again to the same fingerprint (a rerun resumes)."""
    from memorability.cli import main as cli_main

    embeddings = tmp_path / "emb"
    assert embed_main(["--encoder", "tiny-random-clip", "--data", str(small_sample), "--out", str(embeddings),
                       "--num-workers", "0"]) == 0  # fmt: skip
    assert read_embeddings(embeddings).info["encoder"] == "tiny-random-clip"
    assert fit_head_main([str(embeddings), "--data", str(small_sample), "--out", str(tmp_path / "heads")]) == 0
    photo = sorted((small_sample / "images").iterdir())[0]
    assert cli_main(["predict", str(photo), "--model", str(tmp_path / "heads"), "--out", str(tmp_path / "s.csv")]) == 0


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--encoder", "tiny"], "'tiny' is a training preset, not a pretrained encoder: pass a Hub id or folder"),
        (["--encoder", "org/encoder"], "org/encoder: the encoder is a Hub id, but HF_HUB_OFFLINE is set and it is not "
                                       "in the local Hub cache"),
    ],
)
def test_an_encoder_that_cannot_be_had_is_one_sentence(argv, expected, small_sample, tmp_path, capsys):
    assert embed_main([*argv, "--data", str(small_sample), "--out", str(tmp_path / "emb")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {expected}")
