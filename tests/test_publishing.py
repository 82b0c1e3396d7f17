"""Uploading to the Hub (memorability/publishing.py, through the push scripts), offline: an upload is one commit that
mirrors the local folder, a failure leaves no commit and no staging, every failure a user can meet (token, Hub,
network, input, a Space card off the pins) is one sentence, and every push answers --help.

A stand-in for `HfApi` replaces only the network calls (create_repo, create_branch, list_repo_files, create_commit);
everything above them (staging, the commit's operations, error messages) is the real code.
"""

import tempfile

import httpx2
import pytest
from huggingface_hub import SpaceCard
from hub_support import (
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
from memorability.publishing import check_space_card


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
