"""Uploading to the Hub (memorability/hub_upload.py, through the push scripts), offline: an upload is one commit that
mirrors the local folder, a failure leaves no commit and no staging, every failure a user can meet (token, Hub,
network, input, a Space card off the pins) is one sentence, and every push answers --help.

A stand-in for `HfApi` replaces only the network calls (create_repo, create_branch, list_repo_files, create_commit);
everything above them (staging, the commit's operations, error messages) is the real code.
"""

import json
import tempfile

import httpx2
import pytest
from huggingface_hub import SpaceCard
from hub_support import (
    FIRST_HEAD,
    GRADIO,
    PROJECT,
    SPACE_README,
    StandInHub,
    error_line,
    files_under,
    http_error,
    push_model_locally,
    write_space,
)

from hub import push_dataset, push_model, push_space
from hub.push_options import TOKEN_WARNING
from memorability.evaluation import evaluate_model
from memorability.hub_upload import Destination
from memorability.publishing import check_space_card
from memorability.training_args import TrainingArguments


# --- Uploading --------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def token_in_the_environment(monkeypatch):
    """HF_TOKEN set, as the README recommends; pushes that pass --token override it."""
    monkeypatch.setenv("HF_TOKEN", "hf_from_the_environment")


def test_upload_is_one_commit_that_mirrors_the_local_dir(tiny_model_dir, tmp_path):
    push_model_locally(tiny_model_dir, tmp_path / "local")
    hub = StandInHub(remote_files=[".gitattributes", "README.md", "old_scatter.png"], exists=True)
    argv = [str(tiny_model_dir), "--repo-id", "org/m", "--token", "hf_x", "--revision", "v1", "--commit-message", "v1"]
    assert push_model.main(argv, api=hub) == 0
    names = [name for name, _ in hub.calls]
    assert names == ["repo_info", "list_repo_refs", "create_branch", "repo_info", "list_repo_files", "create_commit"]
    assert hub.calls[2][1]["branch"] == "v1" and hub.calls[3][1]["revision"] == "v1"
    [commit] = hub.commits
    added = {op.path_in_repo for op in commit["operations"] if hasattr(op, "path_or_fileobj")}
    deleted = {op.path_in_repo for op in commit["operations"] if not hasattr(op, "path_or_fileobj")}
    assert added == files_under(tmp_path / "local") and deleted == {"old_scatter.png"}
    assert commit["revision"] == "v1" and commit["commit_message"] == "v1" and commit["token"] == "hf_x"
    # The commit sits on the head the listing was taken at, so that a push in between is refused, not mixed in.
    assert hub.calls[4][1]["revision"] == commit["parent_commit"] == FIRST_HEAD


def test_a_push_overtaken_by_another_is_refused_not_mixed(tiny_model_dir, capsys):
    hub = StandInHub(remote_files=[".gitattributes", "README.md"], exists=True, pushed_meanwhile=True)
    assert push_model.main([str(tiny_model_dir), "--repo-id", "org/m"], api=hub) == 2
    assert not hub.commits
    assert "model repo org/m changed while this push was running (412" in error_line(capsys)


def test_missing_token_is_one_sentence_and_nothing_is_sent(tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setattr("memorability.hub_upload.get_token", lambda: None)
    hub = StandInHub()
    assert push_model.main([str(tiny_model_dir), "--repo-id", "org/m"], api=hub) == 2
    error = error_line(capsys)
    assert "`hf auth login`" in error and "HF_TOKEN" in error and not hub.calls


def test_the_token_stays_out_of_reprs_and_the_command_line_prefers_the_environment(tiny_model_dir, capsys):
    destination = Destination("org/m", token="hf_secret_value")
    assert "hf_secret_value" not in repr(destination) and "hf_secret_value" not in str(destination)
    with pytest.raises(SystemExit):
        push_model.main(["--help"])
    assert "shows in `ps`" in " ".join(capsys.readouterr().out.split())
    assert push_model.main([str(tiny_model_dir), "--repo-id", "org/m", "--token", "hf_x"], api=StandInHub()) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert warnings == [TOKEN_WARNING] and "HF_TOKEN" in TOKEN_WARNING


def test_failure_half_way_leaves_an_existing_repo_as_it_was(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    hub = StandInHub(exists=True, commit_error=http_error(500, "Internal Server Error"))
    assert push_model.main([str(tiny_model_dir), "--repo-id", "org/m", "--token", "hf_x"], api=hub) == 2
    assert not hub.commits and not list(tmp_path.iterdir()) and hub.exists
    assert not [name for name, _ in hub.calls if name.startswith(("create_repo", "create_branch", "delete"))]
    error = error_line(capsys)
    assert error.startswith("error: The Hub refused the upload") and error.endswith("; no commit was made.")


@pytest.mark.parametrize(
    ("exists", "extra", "deleted", "expected"),
    [
        (False, [], "delete_repo", "no commit was made, and the repo org/m it created was deleted."),
        (True, ["--revision", "v2"], "delete_branch", "no commit was made, and the branch v2 it created was deleted."),
    ],
)
def test_a_failed_first_push_deletes_the_repo_or_branch_it_created(tiny_model_dir, exists, extra, deleted, expected,
                                                                      capsys):
    hub = StandInHub(exists=exists, commit_error=http_error(500, "Internal Server Error"))
    assert push_model.main([str(tiny_model_dir), "--repo-id", "org/m", *extra], api=hub) == 2
    assert hub.exists is exists and hub.branches == {"main"} and not hub.commits
    assert [name for name, _ in hub.calls].count(deleted) == 1
    assert error_line(capsys).endswith(expected)


@pytest.mark.parametrize(
    ("exists", "extra", "expected"),
    [
        (False, [], "but the repo org/m it created remains (empty but for .gitattributes): delete it on the Hub."),
        (True, ["--revision", "v2"], "but the branch v2 it created remains (a copy of main): delete it on the Hub."),
    ],
)
def test_when_the_clean_up_fails_too_the_error_says_what_remains(tiny_model_dir, exists, extra, expected, capsys):
    hub = StandInHub(exists=exists, commit_error=http_error(500, "Internal Server Error"),
                     delete_error=http_error(403, "Forbidden"))
    assert push_model.main([str(tiny_model_dir), "--repo-id", "org/m", *extra], api=hub) == 2
    error = error_line(capsys)
    assert error.endswith(expected) and error.count(". ") == 0


def test_pushed_files_name_no_folder_of_this_machine(tiny_model_dir, lamem_folder, tmp_path, tmp_path_factory):
    run = tmp_path / "run"
    evaluate_model(tiny_model_dir, lamem_folder, run / "eval", num_workers=0)  # "model": the folder it loaded
    elsewhere = "/home/someone/lamem"  # a run made on another machine
    arguments = TrainingArguments(data=elsewhere, output_dir=str(run), backbone_weights=str(tmp_path / "imagenet"))
    record = {"data": elsewhere, "split": 1, "arguments": arguments.to_dict()}
    (run / "train_results.json").write_text(json.dumps(record))
    out = tmp_path / "upload"
    push_model_locally(tiny_model_dir, out, "--eval-results", str(run / "eval" / "eval_results.json"),
                       "--train-results", str(run / "train_results.json"))  # fmt: skip
    staged = {path.name: path.read_text() for path in out.rglob("*") if path.suffix in (".json", ".md")}
    assert {"eval_results.json", "train_results.json", "config.json", "README.md"} <= set(staged)
    local = (str(tmp_path_factory.getbasetemp()), "/home/someone")
    assert not [name for name, text in staged.items() if any(folder in text for folder in local)]
    assert json.loads(staged["eval_results.json"])["model"] == tiny_model_dir.name
    assert json.loads(staged["train_results.json"])["arguments"]["output_dir"] == "run"


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


# --- The Space card ---------------------------------------------------------------------------------------------------


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
