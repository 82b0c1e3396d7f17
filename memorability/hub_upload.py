"""Uploading to the Hugging Face Hub as one commit or not at all, and writing the same files offline instead.

`publish(stage, destination)` lets `stage(folder)` write exactly the files the repo should hold into a temporary
folder, then either moves that folder to `--local-dir` (nothing sent) or uploads it. The upload is a single
`HfApi.create_commit` on the head it listed the repo at (`parent_commit`): `upload_folder` with hf_xet installed may
split a folder into several commits ("part N") and keep the first parts when a later one fails, which is the
half-pushed state we refuse. The commit mirrors the folder: remote files it no longer holds (an old Parquet shard,
an old eval_results.json) are deleted in the same commit, so a repo never mixes two pushes. A repo or branch the
push created is deleted again when the commit fails.
"""

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

from .errors import MemorabilityError
from .modeling_memorability import first_line
from .hub_ids import HUB_ID
from .run_output import check_writable

KEPT_REMOTE_FILES = {".gitattributes"}
LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN"
HUB_ERRORS = (HTTPError, ConnectionError, TimeoutError)  # HfHubHTTPError and OfflineModeIsEnabled among them


class PublishError(MemorabilityError):
    """A push that cannot happen (no token, no network, refused by the Hub, bad input); nothing was committed."""


@dataclass(frozen=True)
class Destination:
    """Where a push goes and how: a Hub repo, its visibility on creation, the branch and the commit message."""

    repo_id: str
    repo_type: str = "model"
    private: bool = False
    revision: str | None = None
    commit_message: str | None = None
    token: str | None = field(default=None, repr=False)  # never in a log or a traceback

    def __post_init__(self) -> None:
        if not HUB_ID.fullmatch(self.repo_id):
            raise PublishError(f"Repo id '{self.repo_id}' is not of the form ORG/NAME.")

    @property
    def branch(self) -> str | None:
        """The branch to create if absent: a revision other than main and the Hub's own refs/ (pull requests)."""
        revision = self.revision
        return revision if revision and revision != "main" and not revision.startswith("refs/") else None

    @property
    def where(self) -> str:
        return f"{self.repo_type} repo {self.repo_id}"


def resolve_token(token: str | None) -> str:
    """The token to push with: the one given, else HF_TOKEN or the `hf auth login` token; checked before staging."""
    token = token or get_token()
    if not token:
        raise PublishError(f"No Hugging Face token found: {LOGIN_HINT}; nothing was uploaded.")
    return token


def publish(
    stage: Callable[[Path], object],
    destination: Destination,
    local_dir: str | os.PathLike | None = None,
    api: HfApi | None = None,
) -> str:
    """Stage the files with `stage(folder)`, then write them to `local_dir` (offline) or upload them as one commit.

    Returns the local folder or the commit URL.
    """
    if local_dir is not None:
        return str(stage_locally(stage, Path(local_dir)))
    token = resolve_token(destination.token)
    with tempfile.TemporaryDirectory(prefix="memorability-push-") as folder:
        stage(Path(folder))
        return upload_as_one_commit(api or HfApi(), Path(folder), destination, token)


def stage_locally(stage: Callable[[Path], object], target: Path) -> Path:
    """Stage into `target` through a `.partial` sibling, so a failure never leaves a half-written folder there."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise PublishError(f"{target}: already exists and is not an empty folder; pick a new --local-dir.")
    check_writable(target, replaced=True)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        stage(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        target.rmdir()
    partial.rename(target)
    return target


def staged_files(folder: Path) -> dict[str, Path]:
    """Every file under `folder` by its path in the repo, in a stable order."""
    return {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}


def upload_as_one_commit(api: HfApi, folder: Path, destination: Destination, token: str) -> str:
    """Create the repo (and branch) if needed, then one commit that makes the repo hold exactly `folder`'s files.

    The commit's parent is the head the remote listing was taken at: if anyone pushes in between, the Hub refuses the
    commit instead of mixing the two. If the commit fails, a repo or branch this push created is deleted again.
    """
    kind, repo_id, revision = destination.repo_type, destination.repo_id, destination.revision
    files = staged_files(folder)
    created: list[str] = []
    try:
        prepare_remote(api, destination, token, created)
        head = api.repo_info(repo_id, repo_type=kind, revision=revision, token=token).sha
        remote = api.list_repo_files(repo_id, repo_type=kind, revision=head, token=token)
        stale = [path for path in remote if path not in files.keys() | KEPT_REMOTE_FILES]
        operations = [CommitOperationDelete(path_in_repo=path) for path in stale]
        operations += [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(file)) for path, file in files.items()]
        commit = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=destination.commit_message or f"Upload with memorability ({len(files)} files)",
            token=token,
            repo_type=kind,
            revision=revision,
            parent_commit=head,
        )
    except HUB_ERRORS as error:
        remains = undo_creation(api, destination, token, created)
        raise PublishError(f"{describe_failure(error, destination)}; no commit was made{remains}.") from None
    return commit.commit_url


def prepare_remote(api: HfApi, destination: Destination, token: str, created: list[str]) -> None:
    """Create the repo and the branch where absent, noting each in `created`; refuse to put a private push (the
    dataset default, or --private) into an existing public repo, where `create_repo(private=True)` would not apply."""
    kind, repo_id = destination.repo_type, destination.repo_id
    try:
        existing = api.repo_info(repo_id, repo_type=kind, token=token)
    except RepositoryNotFoundError:
        space_sdk = "gradio" if kind == "space" else None
        api.create_repo(repo_id, token=token, repo_type=kind, private=destination.private, space_sdk=space_sdk)
        created.append("repo")
    else:
        if destination.private and not existing.private:
            raise PublishError(
                f"The {destination.where} is public, but this push is private (--private, the default for datasets): "
                "pass --public to publish into it, or pick another --repo-id; nothing was uploaded."
            )
    branch = destination.branch
    if branch and branch not in {ref.name for ref in api.list_repo_refs(repo_id, repo_type=kind, token=token).branches}:
        api.create_branch(repo_id, branch=branch, repo_type=kind, token=token)
        created.append("branch")


def undo_creation(api: HfApi, destination: Destination, token: str, created: list[str]) -> str:
    """Delete the repo or branch a failed push created, so that the Hub is left as it was; the end of the error's
    sentence says so, or says exactly what remains when the deletion fails too."""
    if not created:
        return ""
    kind, repo_id, branch = destination.repo_type, destination.repo_id, destination.branch
    what = f"the repo {repo_id}" if "repo" in created else f"the branch {branch}"
    try:
        if "repo" in created:
            api.delete_repo(repo_id, repo_type=kind, token=token)
        else:
            api.delete_branch(repo_id, branch=branch, repo_type=kind, token=token)
    except HUB_ERRORS:
        left = "empty but for .gitattributes" if "repo" in created else "a copy of main"
        return f", but {what} it created remains ({left}): delete it on the Hub"
    return f", and {what} it created was deleted"


def describe_failure(error: Exception, destination: Destination) -> str:
    """What went wrong talking to the Hub and what to do about it: the start of one sentence."""
    if isinstance(error, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set, so the Hub cannot be reached: unset it to upload"
    if not isinstance(error, HfHubHTTPError):
        return f"Could not reach the Hugging Face Hub ({first_line(error)}): check the network and retry"
    where = destination.where
    status = error.response.status_code
    if status == 401:
        return f"The Hub rejected the token (401 Unauthorized): {LOGIN_HINT} with a valid token"
    if status == 403:
        return f"The token may not write to the {where} (403 Forbidden): use a token with write access"
    if status == 412:
        return f"The {where} changed while this push was running (412 Precondition Failed): push again"
    return f"The Hub refused the upload to the {where} ({first_line(error).rstrip('.')})"


__all__ = ["Destination", "PublishError", "publish", "resolve_token"]
