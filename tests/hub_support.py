"""Helpers for the tests of publishing to the Hub (test_cards.py, test_publishing.py, test_hub.py), all offline.

`StandInHub` replaces only HfApi's network calls, so that everything above them (staging, cards, a commit's
operations, error messages) is the real code; `run_isolated` runs code where `memorability` may only come from a
folder a push wrote, so that neither the checkout nor the editable install can stand in for it. The rest pushes to a
local folder and reads back what a push printed or wrote.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx2
from huggingface_hub import CommitInfo, HfApi, ModelCard
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.hf_api import GitRefInfo, GitRefs, ModelInfo

from hub import push_model
from memorability.publishing import pinned_version

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

FIRST_HEAD, SECOND_HEAD = "1" * 40, "2" * 40  # a stand-in repo's head commit, before and after another push

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
    """HfApi with its network calls replaced: it keeps a repo's state (whether it exists, its visibility, branches,
    head commit, files), records what would have been sent, checks a commit's parent as the Hub does, and can fail a
    call. `pushed_meanwhile` makes another push land between the listing and the commit."""

    def __init__(self, remote_files: list[str] | None = None, exists: bool = False, private: bool = False,
                 commit_error: Exception | None = None, repo_error: Exception | None = None,
                 delete_error: Exception | None = None, pushed_meanwhile: bool = False):
        super().__init__(token=False)
        self.remote_files = remote_files or [".gitattributes"]
        self.exists, self.private, self.branches, self.head = exists, private, {"main"}, FIRST_HEAD
        self.commit_error, self.repo_error, self.delete_error = commit_error, repo_error, delete_error
        self.pushed_meanwhile = pushed_meanwhile
        self.calls: list[tuple[str, dict]] = []
        self.commits: list[dict] = []

    def record(self, name: str, repo_id: str, **kwargs) -> None:
        self.calls.append((name, {"repo_id": repo_id, **kwargs}))

    def repo_info(self, repo_id, **kwargs):
        self.record("repo_info", repo_id, **kwargs)
        revision = kwargs.get("revision")
        if not self.exists:
            raise not_found(RepositoryNotFoundError, f"Repository Not Found for url: .../{repo_id}")
        if revision not in (None, self.head) and revision not in self.branches:
            raise not_found(RevisionNotFoundError, f"Invalid rev id: {revision}")
        return ModelInfo(id=repo_id, sha=self.head, private=self.private)

    def create_repo(self, repo_id, **kwargs):
        self.record("create_repo", repo_id, **kwargs)
        if self.repo_error:
            raise self.repo_error
        self.exists, self.private = True, kwargs.get("private", False)

    def delete_repo(self, repo_id, **kwargs):
        self.record("delete_repo", repo_id, **kwargs)
        if self.delete_error:
            raise self.delete_error
        self.exists = False

    def list_repo_refs(self, repo_id, **kwargs):
        self.record("list_repo_refs", repo_id, **kwargs)
        branches = [GitRefInfo(name=name, ref=f"refs/heads/{name}", target_commit=self.head) for name in self.branches]
        return GitRefs(branches=branches, converts=[], tags=[])

    def create_branch(self, repo_id, **kwargs):
        self.record("create_branch", repo_id, **kwargs)
        self.branches.add(kwargs["branch"])

    def delete_branch(self, repo_id, **kwargs):
        self.record("delete_branch", repo_id, **kwargs)
        if self.delete_error:
            raise self.delete_error
        self.branches.discard(kwargs["branch"])

    def list_repo_files(self, repo_id, **kwargs):
        self.record("list_repo_files", repo_id, **kwargs)
        if self.pushed_meanwhile:
            self.head = SECOND_HEAD
        return list(self.remote_files)

    def create_commit(self, repo_id, operations, **kwargs):
        self.record("create_commit", repo_id, **kwargs)
        operations = list(operations)
        parent = kwargs.get("parent_commit")
        if parent is not None and parent != self.head:
            raise http_error(412, "A commit has happened since. Please refresh and try again.")
        if self.commit_error:
            Path(operations[-1].path_or_fileobj).read_bytes()  # half-way: one file "uploaded", then the failure
            raise self.commit_error
        self.commits.append({"operations": operations, **kwargs})
        url = f"https://huggingface.co/{repo_id}/commit/0123abc"
        return CommitInfo(commit_url=url, commit_message=kwargs["commit_message"], commit_description="", oid="0123abc")


def not_found(kind: type[HfHubHTTPError], message: str) -> HfHubHTTPError:
    """The error huggingface_hub raises for a repo or revision the Hub does not have."""
    request = httpx2.Request("GET", "https://huggingface.co/api/models/org/name")
    return kind(message, response=httpx2.Response(404, request=request))


def error_line(capsys) -> str:
    """The one `error: ...` line a failed push printed (progress bars may have come before it)."""
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, errors
    return errors[0]


def files_under(folder: Path) -> set[str]:
    """The files below `folder`, as POSIX paths relative to it."""
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def http_error(status: int, message: str) -> HfHubHTTPError:
    """The error huggingface_hub raises when the Hub answers `status`."""
    request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
    return HfHubHTTPError(message, response=httpx2.Response(status, request=request))


def push_model_locally(model_dir: Path, out: Path, *extra: str) -> ModelCard:
    """Push `model_dir` to the local folder `out` (push_model's other arguments in `extra`); the card it wrote."""
    assert push_model.main([str(model_dir), "--repo-id", "org/memorability-test", "--local-dir", str(out), *extra]) == 0
    return ModelCard.load(out / "README.md")


def prose(card) -> str:
    """The card's text with line breaks as spaces, so that checks do not depend on where lines wrap."""
    return " ".join(card.text.split())


def figure_lines(card: ModelCard) -> list[str]:
    """The lines of the Evaluation section that carry figures: the data line and the table's rows."""
    section = card.text.split("## Evaluation", 1)[1].split("## Training details", 1)[0]
    return [line for line in section.splitlines() if line.startswith(("Data:", "| test_", "| mean"))]


# --- A Space ----------------------------------------------------------------------------------------------------------

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
    """A minimal Space in `folder`: an app that imports the package, and a card pinned to the project's gradio."""
    folder.mkdir()
    (folder / "app.py").write_text(TEST_APP)
    (folder / "requirements.txt").write_text("torch\ntransformers\n")
    (folder / "README.md").write_text(SPACE_README.format(version=GRADIO))
    return folder
