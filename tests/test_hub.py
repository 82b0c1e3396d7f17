"""Publishing to the Hub, offline: what each push writes, that it stands on its own, and that an upload is one commit.

A stand-in for `HfApi` replaces only the network calls (create_repo, create_branch, list_repo_files, create_commit);
everything above them (staging, cards, the commit's operations, error messages) is the real code.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import httpx2
import numpy as np
import pytest
import torch
from datasets import load_dataset
from huggingface_hub import CommitInfo, DatasetCard, HfApi, ModelCard, SpaceCard
from huggingface_hub.errors import HfHubHTTPError
from PIL import Image

from hub import push_dataset, push_model, push_space
from memorability import MemorabilityModel
from memorability.ablations import ABLATIONS, ablate_examples
from memorability.data import SPLIT_INDICES, lamem_to_table, load_lamem
from memorability.demo import DEMO_MARKER
from memorability.evaluation import evaluate_model
from memorability.inference import load_predictor
from memorability.publishing import check_space_card, pinned_version

PROJECT = Path(__file__).resolve().parents[1]
CARD_SECTIONS = (
    "## Intended use",
    "## Out-of-scope use",
    "## Limitations and biases",
    "## Evaluation",
    "## Training details",
    "## How to use it",
    "## Citation",
)

# Run first in every isolated subprocess: `memorability` may only come from ALLOWED (None: from nowhere), so neither
# the checkout nor the editable install in .venv can stand in for what a push wrote.
ISOLATION = """
import importlib.machinery, sys
ALLOWED = {allowed!r}

class OnlyFromAllowed:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] != "memorability":
            return None
        spec = ALLOWED and importlib.machinery.PathFinder.find_spec(name, path or [ALLOWED])
        if not spec or not str(spec.origin).startswith(ALLOWED):
            raise ImportError(f"{{name}} is blocked outside {{ALLOWED}}")
        return spec

sys.meta_path.insert(0, OnlyFromAllowed)
"""


def run_isolated(code: str, cwd: Path, allowed: Path | None = None, **env: str) -> str:
    """Run `code` in `python -I` (no PYTHONPATH, no cwd on sys.path) from `cwd`; its stdout, or fail with stderr."""
    scratch = cwd / ".isolated"  # HOME and transformers' remote-code cache, away from the user's
    environment = os.environ | {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "HOME": str(scratch),
                                "HF_MODULES_CACHE": str(scratch / "modules"), **env}
    script = ISOLATION.format(allowed=str(allowed) if allowed else None) + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class StandInHub(HfApi):
    """HfApi with its network calls replaced: it records what would have been sent, and can fail a commit."""

    def __init__(self, remote_files: list[str] | None = None, commit_error: Exception | None = None,
                 repo_error: Exception | None = None):
        super().__init__(token=False)
        self.remote_files = remote_files or [".gitattributes"]
        self.commit_error, self.repo_error = commit_error, repo_error
        self.calls: list[tuple[str, dict]] = []
        self.commits: list[dict] = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        if self.repo_error:
            raise self.repo_error

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def list_repo_files(self, repo_id, **kwargs):
        self.calls.append(("list_repo_files", {"repo_id": repo_id, **kwargs}))
        return list(self.remote_files)

    def create_commit(self, repo_id, operations, **kwargs):
        self.calls.append(("create_commit", {"repo_id": repo_id, **kwargs}))
        operations = list(operations)
        if self.commit_error:
            Path(operations[-1].path_or_fileobj).read_bytes()  # half-way: one file "uploaded", then the failure
            raise self.commit_error
        self.commits.append({"operations": operations, **kwargs})
        url = f"https://huggingface.co/{repo_id}/commit/0123abc"
        return CommitInfo(commit_url=url, commit_message=kwargs["commit_message"], commit_description="", oid="0123abc")


def error_line(capsys) -> str:
    """The one `error: ...` line a failed push printed (progress bars may have come before it)."""
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    return errors[0]


def files_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def http_error(status: int, message: str) -> HfHubHTTPError:
    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    return HfHubHTTPError(message, response=httpx2.Response(status, request=request))


# --- Fixtures ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spread_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with a wide last layer, so that scores differ between images and a comparison means something."""
    folder = tmp_path_factory.mktemp("spread_model")
    model = MemorabilityModel.from_pretrained(tiny_model_dir)
    torch.manual_seed(1)
    torch.nn.init.normal_(model.head[-1].weight, std=3.0)
    model.save_pretrained(folder)
    shutil.copy(tiny_model_dir / "preprocessor_config.json", folder)
    return folder


@pytest.fixture(scope="module")
def sample_eval_results(tiny_model_dir, sample_data_dir, tmp_path_factory) -> Path:
    """A real eval_results.json, measured on generated sample data (not LaMem)."""
    out = tmp_path_factory.mktemp("sample_eval")
    evaluate_model(tiny_model_dir, sample_data_dir, out, batch_size=64, num_workers=0)
    return out / "eval_results.json"


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


def push_model_locally(model_dir: Path, out: Path, *extra: str) -> ModelCard:
    assert push_model.main([str(model_dir), "--repo-id", "org/memorability-test", "--local-dir", str(out), *extra]) == 0
    return ModelCard.load(out / "README.md")


def prose(card) -> str:
    """The card's text with line breaks as spaces, so that checks do not depend on where lines wrap."""
    return " ".join(card.text.split())


def figure_lines(card: ModelCard) -> list[str]:
    """The lines of the Evaluation section that carry figures: the data line and the table's rows."""
    section = card.text.split("## Evaluation", 1)[1].split("## Training details", 1)[0]
    return [line for line in section.splitlines() if line.startswith(("Data:", "| test_", "| mean"))]


# --- The model --------------------------------------------------------------------------------------------------------


def test_pushed_model_scores_as_the_predictor_without_the_package(spread_model_dir, photos, tmp_path):
    out = tmp_path / "upload"
    push_model_locally(spread_model_dir, out)
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
        model = AutoModel.from_pretrained({str(out)!r}, trust_remote_code=True).eval()
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
    ours = load_predictor(spread_model_dir, device="cpu", precision="fp32").predict(photos)
    assert np.ptp(ours) > 1e-3, "scores should differ between images for this comparison to mean anything"
    np.testing.assert_allclose(remote["scores"], ours, atol=1e-5)
    assert remote["processor"] == "ConvNextImageProcessor" and not remote["package_loaded"]


def test_registration_for_remote_code_does_not_outlive_the_push(tiny_model_dir, tmp_path):
    push_model_locally(tiny_model_dir, tmp_path / "upload")
    MemorabilityModel.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "plain")
    assert "auto_map" not in json.loads((tmp_path / "plain" / "config.json").read_text())
    assert not (tmp_path / "plain" / "modeling_memorability.py").exists()


def test_card_with_sample_data_results_never_says_lamem(tiny_model_dir, sample_eval_results, tmp_path):
    card = push_model_locally(tiny_model_dir, tmp_path / "upload", "--eval-results", str(sample_eval_results))
    evaluation = json.loads(sample_eval_results.read_text())
    results = card.data.eval_results
    assert {result.dataset_name for result in results} == {evaluation["data"]["name"]}
    assert not any("lamem" in (result.dataset_type + result.dataset_name).lower() for result in results)
    for index, metrics in evaluation["splits"].items():
        found = {r.metric_type: r.metric_value for r in results if r.dataset_split == f"test_{index}"}
        assert found["spearmanr"] == pytest.approx(metrics["spearman"], abs=1e-4)
        assert found["pearsonr"] == pytest.approx(metrics["pearson"], abs=1e-4)
        assert found["mse"] == pytest.approx(metrics["mse"], abs=1e-5)
    means = {r.metric_type: r.metric_value for r in results if r.dataset_split.startswith("mean")}
    assert means["spearmanr"] == pytest.approx(evaluation["mean"]["spearman"]["mean"], abs=1e-4)
    assert "This model has no LaMem evaluation." in prose(card)
    lines = figure_lines(card)
    assert len(lines) == 7 and not any("lamem" in line.lower() for line in lines)
    assert all(section in prose(card) for section in CARD_SECTIONS)
    assert (tmp_path / "upload" / "eval_results.json").is_file() and (tmp_path / "upload" / "scatter.png").is_file()


def test_card_with_lamem_results_and_training_record(tiny_model_dir, sample_eval_results, tmp_path):
    lamem_data = {"name": "LaMem", "kind": "official", "is_lamem": True}
    lamem = json.loads(sample_eval_results.read_text()) | {"data": lamem_data}
    (tmp_path / "eval_results.json").write_text(json.dumps(lamem))
    training = {"data": "lamem/", "split": 1, "mixed_precision": "bf16", "num_processes": 1, "steps": 14070,
                "best_epoch": 7, "best_val_spearman": 0.61234,
                "arguments": {"backbone": "resnet50", "backbone_weights": "default", "epochs": 10, "batch_size": 32}}
    (tmp_path / "train_results.json").write_text(json.dumps(training))
    card = push_model_locally(
        tiny_model_dir, tmp_path / "upload", "--eval-results", str(tmp_path / "eval_results.json"),
        "--train-results", str(tmp_path / "train_results.json"), "--dataset-repo", "org/lamem",
    )
    assert {(r.dataset_type, r.dataset_name) for r in card.data.eval_results} == {("org/lamem", "LaMem")}
    assert card.data.base_model == "microsoft/resnet-50" and card.data.datasets == ["org/lamem"]
    assert card.data.license == "apache-2.0" and card.data.library_name == "transformers"
    assert {"image-regression", "memorability", "lamem", "resnet"} <= set(card.data.tags)
    assert card.data.pipeline_tag is None and card.data.get("inference") is False
    assert "no LaMem evaluation" not in prose(card) and "human consistency 0.68" in prose(card)
    assert "0.6123 (epoch 7), on the validation split of split index 1 of `lamem/`" in prose(card)
    assert "This model was trained on `lamem/` (see Training details)." in prose(card)
    assert "research-use terms" in prose(card) and "Khosla" in prose(card)


def test_card_without_results_says_there_is_no_lamem_evaluation(tiny_model_dir, tmp_path):
    card = push_model_locally(tiny_model_dir, tmp_path / "upload")
    assert card.data.eval_results is None and "model-index" not in card.content
    assert "this model has no LaMem evaluation" in prose(card) and not figure_lines(card)


def test_results_are_found_beside_the_model_and_name_the_training_data(
    tiny_model_dir, sample_data_dir, sample_eval_results, tmp_path
):
    model_dir = tmp_path / "run" / "best"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "eval").mkdir()
    shutil.copy(sample_eval_results, model_dir / "eval" / "eval_results.json")
    (tmp_path / "run" / "train_results.json").write_text(json.dumps({"data": str(sample_data_dir), "split": 2}))
    card = push_model_locally(model_dir, tmp_path / "upload")
    assert card.data.eval_results and {"eval_results.json", "train_results.json"} <= files_under(tmp_path / "upload")
    assert "This model was trained on generated sample data (sample), not on LaMem." in prose(card)
    assert "split index 2" in prose(card) and "not trained on LaMem; they are released under Apache-2.0" in prose(card)


def test_demo_model_says_it_is_a_demo(tiny_model_dir, tmp_path):
    model_dir = tmp_path / "demo"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / DEMO_MARKER).write_text("demo\n")
    card = push_model_locally(model_dir, tmp_path / "upload")
    assert "**Demo model.**" in prose(card) and "demo" in card.data.tags and "lamem" not in card.data.tags
    assert "not trained on LaMem" in prose(card) and (tmp_path / "upload" / DEMO_MARKER).is_file()


# --- The dataset ------------------------------------------------------------------------------------------------------


def image_arrays(dataset) -> list[np.ndarray]:
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


def test_dataset_card_states_terms_splits_and_ablations(lamem_folder, tmp_path):
    out = tmp_path / "upload"
    assert push_dataset.main([str(lamem_folder), "--repo-id", "org/lamem", "--local-dir", str(out)]) == 0
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "other" and card.data.license_name and card.data.size_categories == ["n<1K"]
    assert card.data.configs[0]["data_files"][0]["path"] == "data/train-*.parquet"
    assert "score differs between split indices" in prose(card) and "research use" in prose(card)
    assert "This is not LaMem." in prose(card)  # a generated LaMem-format folder, not the real thing
    assert all(f"`{name}`" in prose(card) for name in ABLATIONS) and "Khosla" in prose(card)
    test = load_lamem(out, split=1)["test"]  # the card's ablation snippet, as written there
    ablated = test.with_transform(ablate_examples(next(iter(ABLATIONS))))
    assert ablated[0]["image"].size == test[0]["image"].size and ablated[0]["image_id"] == test[0]["image_id"]


def test_dataset_is_private_unless_public(lamem_folder):
    for extra, private in (([], True), (["--public"], False)):
        hub = StandInHub()
        assert push_dataset.main([str(lamem_folder), "--repo-id", "org/lamem", "--token", "hf_x", *extra], api=hub) == 0
        assert hub.calls[0][1]["private"] is private and hub.calls[0][1]["repo_type"] == "dataset"


# --- The Space --------------------------------------------------------------------------------------------------------

SPACE_README = """---
title: Memorability
emoji: 🧠
colorFrom: indigo
colorTo: pink
sdk: gradio
sdk_version: {version}
app_file: app.py
short_description: How memorable is a photo?
models: [org/memorability-test]
---
"""
TEST_APP = """
import sys
from pathlib import Path
import gradio as gr
sys.path.insert(0, str(Path(__file__).resolve().parent))
import memorability

def build_app() -> gr.Blocks:
    with gr.Blocks() as app:
        gr.Markdown(memorability.__version__)
    return app
"""
GRADIO = pinned_version(PROJECT / "requirements.txt", "gradio")


def write_space(folder: Path) -> Path:
    folder.mkdir()
    (folder / "app.py").write_text(TEST_APP)
    (folder / "requirements.txt").write_text("torch\ntransformers\n")
    (folder / "README.md").write_text(SPACE_README.format(version=GRADIO))
    return folder


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
    stdout = run_isolated(
        """
        import os, sys
        import gradio as gr
        sys.path.insert(0, os.getcwd())  # as `python app.py` does on the Space
        import app, memorability
        assert isinstance(app.build_app(), gr.Blocks)
        print(memorability.__file__)
        """,
        cwd=out, allowed=out, MEMORABILITY_MODEL=str(tiny_model_dir),
    )
    assert Path(stdout.strip().splitlines()[-1]).is_relative_to(out)


@pytest.mark.skipif(not (PROJECT / "space" / "README.md").is_file(), reason="space/README.md is not written yet")
def test_the_projects_space_card_matches_the_pins():
    card = check_space_card(PROJECT / "space", PROJECT / "requirements.txt")
    assert card.data.sdk == "gradio" and str(card.data.sdk_version) == GRADIO
    assert SpaceCard.load(PROJECT / "space" / "README.md").data.to_dict() == card.data.to_dict()
    assert (PROJECT / "space" / card.data.app_file).is_file()


def test_space_card_with_another_gradio_is_refused(tmp_path, capsys):
    space = write_space(tmp_path / "space")
    (space / "README.md").write_text(SPACE_README.format(version="5.0.0"))
    argv = ["--repo-id", "org/space", "--local-dir", str(tmp_path / "out"), "--space-dir", str(space)]
    assert push_space.main(argv) == 2
    assert f"differs from the gradio=={GRADIO} pin" in error_line(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


# --- Uploading --------------------------------------------------------------------------------------------------------


def test_upload_is_one_commit_that_mirrors_the_local_dir(tiny_model_dir, tmp_path):
    push_model_locally(tiny_model_dir, tmp_path / "local")
    hub = StandInHub(remote_files=[".gitattributes", "README.md", "old_scatter.png"])
    argv = [str(tiny_model_dir), "--repo-id", "org/m", "--token", "hf_x", "--revision", "v1", "--commit-message", "v1"]
    assert push_model.main(argv, api=hub) == 0
    assert [name for name, _ in hub.calls] == ["create_repo", "create_branch", "list_repo_files", "create_commit"]
    assert hub.calls[0][1]["exist_ok"] is True and hub.calls[1][1]["branch"] == "v1"
    [commit] = hub.commits
    added = {op.path_in_repo for op in commit["operations"] if hasattr(op, "path_or_fileobj")}
    deleted = {op.path_in_repo for op in commit["operations"] if not hasattr(op, "path_or_fileobj")}
    assert added == files_under(tmp_path / "local") and deleted == {"old_scatter.png"}
    assert commit["revision"] == "v1" and commit["commit_message"] == "v1" and commit["token"] == "hf_x"


def test_missing_token_is_one_sentence_and_nothing_is_sent(tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setattr("memorability.publishing.get_token", lambda: None)
    hub = StandInHub()
    assert push_model.main([str(tiny_model_dir), "--repo-id", "org/m"], api=hub) == 2
    error = error_line(capsys)
    assert "`hf auth login`" in error and "HF_TOKEN" in error and not hub.calls


def test_failure_half_way_leaves_no_commit_and_no_staging(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    hub = StandInHub(commit_error=http_error(500, "Internal Server Error"))
    assert push_model.main([str(tiny_model_dir), "--repo-id", "org/m", "--token", "hf_x"], api=hub) == 2
    assert not hub.commits and not list(tmp_path.iterdir())
    error = error_line(capsys)
    assert error.startswith("error: The Hub refused the upload") and "no commit was made" in error


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (http_error(401, "Invalid credentials"), "`hf auth login`"),
        (http_error(403, "Forbidden"), "write access"),
        (httpx2.ConnectError("Name or service not known"), "Could not reach"),
    ],
)
def test_hub_failures_are_one_sentence(tiny_model_dir, failure, expected, capsys):
    hub = StandInHub(repo_error=failure)
    assert push_model.main([str(tiny_model_dir), "--repo-id", "org/m", "--token", "hf_x"], api=hub) == 2
    assert expected in error_line(capsys) and not hub.commits


def test_offline_is_one_sentence_with_the_real_client(lamem_folder, capsys):
    assert push_dataset.main([str(lamem_folder), "--repo-id", "org/lamem", "--token", "hf_x"]) == 2  # HF_HUB_OFFLINE=1
    assert "HF_HUB_OFFLINE" in error_line(capsys)


def test_bad_input_is_one_sentence(tmp_path, tiny_model_dir, capsys):
    assert push_model.main([str(tmp_path / "absent"), "--repo-id", "org/m", "--local-dir", str(tmp_path / "o")]) == 2
    assert push_model.main([str(tiny_model_dir), "--repo-id", "no-namespace", "--local-dir", str(tmp_path / "o")]) == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert push_model.main([str(tiny_model_dir), "--repo-id", "org/m", "--local-dir", str(tmp_path / "full")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3
    assert "ORG/NAME" in errors[1] and "not an empty folder" in errors[2]


@pytest.mark.parametrize("cli", [push_model, push_dataset, push_space])
def test_every_push_has_help(cli, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0 and "--local-dir" in capsys.readouterr().out


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
