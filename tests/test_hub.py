"""The products a push makes, end to end and offline: a pushed model scores as the predictor with no `memorability`
installed (and its remote-code registration stays out of later saves), a pushed dataset reloads to the same rows and
splits (private unless asked), a pushed Space imports its vendored package and builds, and the wheel holds everything
the package needs. What a user downloads has to work without this checkout.

What the cards say is in test_cards.py, the upload mechanics and errors in test_publishing.py.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import load_dataset
from hub_support import (
    GRADIO,
    PROJECT,
    SPACE_README,
    StandInHub,
    error_line,
    files_under,
    push_model_locally,
    run_isolated,
    write_space,
)
from PIL import Image

from hub import push_dataset, push_space
from memorability import MemorabilityModel
from memorability.data import SPLIT_INDICES, describe_data, lamem_to_table, load_lamem
from memorability.inference import load_predictor


# --- Fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Real photographs that ship inside scikit-image (no download), in three sizes and two modes."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name in ("astronaut", "coffee", "chelsea", "camera"):
        paths.append(folder / f"{name}.png")
        Image.fromarray(getattr(data, name)()).save(paths[-1])
    return paths


# --- The model --------------------------------------------------------------------------------------------------------


def test_pushed_model_scores_as_the_predictor_without_the_package(tiny_model_dir, photos, tmp_path):
    out = tmp_path / "upload"
    push_model_locally(tiny_model_dir, out)
    assert {"configuration_memorability.py", "modeling_memorability.py", "model.safetensors"} <= files_under(out)
    auto_map = json.loads((out / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"] == "modeling_memorability.MemorabilityModel"
    stdout = run_isolated(
        f"""
        import importlib.util, json
        from PIL import Image
        import torch
        from transformers import AutoImageProcessor, AutoModel
        try:
            importlib.util.find_spec("memorability")
            raise SystemExit("memorability is importable")
        except ImportError:
            pass
        model = AutoModel.from_pretrained({str(out)!r}, trust_remote_code=True, use_safetensors=True).eval()
        processor = AutoImageProcessor.from_pretrained({str(out)!r})
        images = [Image.open(path).convert("RGB") for path in {[str(path) for path in photos]!r}]
        with torch.no_grad():
            scores = model(**processor(images, return_tensors="pt")).scores
        print(json.dumps({{"scores": scores.tolist(), "processor": type(processor).__name__,
                          "package_loaded": "memorability" in sys.modules}}))
        """,
        cwd=tmp_path,
    )
    remote = json.loads(stdout.strip().splitlines()[-1])
    ours = load_predictor(tiny_model_dir, device="cpu", precision="fp32").predict(photos)
    assert np.ptp(ours) > 0.1, "scores should differ between images for this comparison to mean anything"
    np.testing.assert_allclose(remote["scores"], ours, atol=1e-5)
    assert remote["processor"] == "ConvNextImageProcessor" and not remote["package_loaded"]


def test_registration_for_remote_code_does_not_outlive_the_push(tiny_model_dir, tmp_path):
    push_model_locally(tiny_model_dir, tmp_path / "upload")
    MemorabilityModel.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "plain")
    assert "auto_map" not in json.loads((tmp_path / "plain" / "config.json").read_text())
    assert not (tmp_path / "plain" / "modeling_memorability.py").exists()


# --- The dataset ------------------------------------------------------------------------------------------------------


def image_arrays(dataset) -> list[np.ndarray]:
    """Each row's image as an array, for exact comparison."""
    return [np.asarray(image) for image in dataset["image"]]


def test_pushed_dataset_reloads_to_the_same_rows_and_splits(lamem_folder, tmp_path):
    out = tmp_path / "upload"
    assert push_dataset.main([str(lamem_folder), "--repo-id", "org/lamem", "--local-dir", str(out)]) == 0
    assert files_under(out) == {"README.md", "data/train-00000-of-00001.parquet"}
    reloaded = load_dataset(str(out))["train"]
    table = lamem_to_table(lamem_folder)
    for column in table.column_names:
        if column != "image":
            assert reloaded[column] == table[column], column
    assert all(np.array_equal(a, b) for a, b in zip(image_arrays(reloaded), image_arrays(table), strict=True))
    test_1 = reloaded.filter(lambda split: split == "test", input_columns="split_1").sort("order_1")  # as the card says
    assert test_1["image_id"] == load_lamem(lamem_folder, split=1)["test"]["image_id"]
    for index in SPLIT_INDICES:
        pushed, original = load_lamem(out, split=index), load_lamem(lamem_folder, split=index)
        for name in ("train", "validation", "test"):
            assert pushed[name]["image_id"] == original[name]["image_id"]
            assert pushed[name]["score"] == original[name]["score"]
            pairs = zip(image_arrays(pushed[name]), image_arrays(original[name]), strict=True)
            assert all(np.array_equal(a, b) for a, b in pairs)


@pytest.mark.slow
def test_pushed_lamem_says_it_is_lamem_and_a_copy_written_otherwise_does_not(full_lamem_folder, tmp_path, monkeypatch):
    out = tmp_path / "upload"
    assert push_dataset.main([str(full_lamem_folder), "--repo-id", "org/lamem", "--local-dir", str(out)]) == 0
    assert describe_data(out) == {"name": "LaMem", "kind": "table", "is_lamem": True}
    monkeypatch.setattr("memorability.tables.require_hub", lambda *args: None)  # as if the Hub answered
    monkeypatch.setattr("memorability.tables.snapshot_download", lambda repo_id, **kwargs: str(out))  # the Hub's copy
    assert describe_data("org/lamem") == {"name": "LaMem", "kind": "hub", "is_lamem": True}
    copy = tmp_path / "copy"  # the same rows, written by `datasets` rather than by the push
    (copy / "data").mkdir(parents=True)
    load_dataset(str(out), split="train").to_parquet(str(copy / "data" / "train.parquet"))
    assert describe_data(copy)["is_lamem"] is False


def test_dataset_is_private_unless_public(lamem_folder, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    for extra, private in (([], True), (["--public"], False)):
        hub = StandInHub()
        assert push_dataset.main([str(lamem_folder), "--repo-id", "org/lamem", *extra], api=hub) == 0
        [created] = [call for name, call in hub.calls if name == "create_repo"]
        assert created["private"] is private and created["repo_type"] == "dataset" and hub.commits


def test_a_private_push_into_an_existing_public_repo_is_refused_unless_public(lamem_folder, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    argv = [str(lamem_folder), "--repo-id", "org/lamem"]
    public, private = StandInHub(exists=True), StandInHub(exists=True, private=True)
    assert push_dataset.main(argv, api=public) == 2 and not public.commits
    assert [name for name, _ in public.calls] == ["repo_info"]  # visibility checked before anything is sent
    error = error_line(capsys)
    assert "dataset repo org/lamem is public, but this push is private" in error and "--public" in error
    assert push_dataset.main(argv, api=private) == 0 and private.commits  # a private repo takes a private push
    assert push_dataset.main([*argv, "--public"], api=public) == 0 and public.commits  # said explicitly: it goes


# --- The Space --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_pushed_space_imports_the_vendored_package_and_builds(tiny_model_dir, tmp_path):
    """The project's space/ when its app.py is written (else a minimal app), pushed, then run from the upload alone."""
    space = tmp_path / "space"
    if (PROJECT / "space" / "app.py").is_file():
        shutil.copytree(PROJECT / "space", space, ignore=shutil.ignore_patterns("__pycache__"))
        if not (space / "README.md").is_file():
            (space / "README.md").write_text(SPACE_README.format(version=GRADIO))
    else:
        write_space(space)
    out = tmp_path / "upload"
    assert push_space.main(["--repo-id", "org/space", "--local-dir", str(out), "--space-dir", str(space)]) == 0
    assert "memorability/modeling_memorability.py" in files_under(out) and not list(out.rglob("__pycache__"))
    assert {f"facenet_pytorch/data/{net}.pt" for net in ("pnet", "rnet", "onet")} <= files_under(out)
    assert "MIT License" in (out / "facenet_pytorch" / "LICENSE.md").read_text()
    stdout = run_isolated(
        """
        import os, sys
        import gradio as gr
        sys.path.insert(0, os.getcwd())  # as `python app.py` does on the Space
        import app, facenet_pytorch, memorability
        assert isinstance(app.build_app(), gr.Blocks)
        print(memorability.__file__, facenet_pytorch.__file__)
        """,
        cwd=out, allowed=out, MEMORABILITY_MODEL=str(tiny_model_dir),
    )
    assert all(Path(path).is_relative_to(out) for path in stdout.strip().splitlines()[-1].split())


# --- The wheel --------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_wheel_holds_everything_the_package_needs(tmp_path):
    pytest.importorskip("build", reason="`make dist` installs build==1.6.1")
    source = tmp_path / "source"
    shutil.copytree(PROJECT / "memorability", source / "memorability", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (PROJECT / name).is_file():
            shutil.copy(PROJECT / name, source / name)
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = (tmp_path / "dist").glob("*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    shipped = {path.name for path in (site / "memorability").glob("*.py")}
    assert shipped == {path.name for path in (PROJECT / "memorability").glob("*.py")}
    assert "memorability = memorability.cli:main" in next(site.glob("*.dist-info/entry_points.txt")).read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    stdout = run_isolated(
        f"""
        sys.path.insert(0, {str(site)!r})
        import memorability
        from memorability.cli import main
        print(memorability.__file__)
        try:
            main(["--help"])
        except SystemExit as done:
            assert done.code == 0
        """,
        cwd=elsewhere, allowed=site,
    )
    assert Path(stdout.splitlines()[0]).is_relative_to(site) and "predict" in stdout
