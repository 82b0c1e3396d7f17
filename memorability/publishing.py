"""Publishing to the Hugging Face Hub: stage everything in a folder, then upload it as one commit or not at all.

Each push (model, dataset, Space) is a `stage_*` function that writes exactly the files the repo should hold into a
folder, and `publish`, which either moves that folder to `--local-dir` (offline, nothing sent) or uploads it. The
upload is a single `HfApi.create_commit`: `upload_folder` with hf_xet installed may split a folder into several
commits ("part N") and keep the first parts when a later one fails, which is the half-pushed state we refuse. The
commit mirrors the folder: remote files it no longer holds (an old Parquet shard, an old eval_results.json) are
deleted in the same commit, so a repo never mixes two pushes.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, SpaceCard, get_token
from huggingface_hub.errors import HfHubHTTPError, HTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

from .cards import ModelFacts, render_dataset_card, render_model_card, without_local_paths
from .configuration_memorability import MemorabilityConfig
from .data import DataError, lamem_to_table, save_table
from .demo import DEMO_MARKER, is_demo_model
from .errors import MemorabilityError
from .evaluation import RESULTS_FILE as EVAL_RESULTS_FILE
from .evaluation import describe_data
from .faces import FaceDetectorMissingError, facenet_sources
from .image_processing import processor_image_size
from .inference import load_model
from .modeling_memorability import MemorabilityModel, first_line
from .training import BEST_DIR
from .training import RESULTS_FILE as TRAIN_RESULTS_FILE

REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")
KEPT_REMOTE_FILES = {".gitattributes"}
# Local leftovers never uploaded; Gradio writes a type stub (app.pyi) beside an app it imports, and we ship none.
STAGING_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi", ".gradio", "flagged", ".DS_Store")
SPACE_REQUIRED_KEYS = ("title", "sdk", "sdk_version", "app_file")
LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN"
TOKEN_WARNING = "warning: --token shows in `ps` and in your shell's history; prefer HF_TOKEN or `hf auth login`."
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
        if not REPO_ID.fullmatch(self.repo_id):
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


def read_json(path: Path, what: str) -> dict:
    """A JSON results file, or a one-sentence `PublishError` naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PublishError(f"{path}: cannot read the {what} ({first_line(error)}).") from None


# --- The three pushes -------------------------------------------------------------------------------------------------


def stage_model(
    model_dir: str | os.PathLike,
    out_dir: Path,
    repo_id: str,
    template: str | os.PathLike,
    eval_results: str | os.PathLike | None = None,
    train_results: str | os.PathLike | None = None,
    dataset_repo: str | None = None,
) -> Path:
    """Weights, config with `auto_map`, the model's code, the image processor, results files and the model card.

    The code ships (as `trust_remote_code`) so that `AutoModel.from_pretrained(repo, trust_remote_code=True)` works
    where this package is not installed; the image processor is a stock transformers class and needs none.
    """
    model_dir = Path(model_dir)
    model, processor = load_model(model_dir)
    with remote_code_registration():
        model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    evaluation = read_json(Path(eval_results), "evaluation results") if eval_results else None
    training = read_json(Path(train_results), "training results") if train_results else None
    for record, name in ((evaluation, EVAL_RESULTS_FILE), (training, TRAIN_RESULTS_FILE)):
        if record is not None:  # this machine's folders are nobody's business: absolute paths become names
            (out_dir / name).write_text(json.dumps(without_local_paths(record), indent=2) + "\n")
    scatter = Path(eval_results).with_name("scatter.png") if eval_results else None
    if scatter is not None and scatter.is_file():
        shutil.copy(scatter, out_dir / "scatter.png")
    is_demo = is_demo_model(model_dir)
    if is_demo:
        shutil.copy(model_dir / DEMO_MARKER, out_dir / DEMO_MARKER)
    facts = ModelFacts(
        repo_id=repo_id,
        config=model.config,
        image_size=processor_image_size(processor),
        num_parameters=model.num_parameters(),
        is_demo=is_demo,
        evaluation=evaluation,
        training=training,
        dataset_repo=dataset_repo,
        has_scatter=(out_dir / "scatter.png").is_file(),
    )
    render_model_card(facts, template).save(out_dir / "README.md")
    return out_dir


@contextlib.contextmanager
def remote_code_registration() -> Iterator[None]:
    """Register the model classes for the Auto classes only while saving: `save_pretrained` then writes `auto_map`
    and copies the code, and later saves in this process (training, the demo model) stay as they were."""
    classes = (MemorabilityConfig, MemorabilityModel)
    saved = [cls.__dict__.get("_auto_class") for cls in classes]
    MemorabilityConfig.register_for_auto_class()
    MemorabilityModel.register_for_auto_class("AutoModel")
    try:
        yield
    finally:
        for cls, value in zip(classes, saved):
            if value is None:
                del cls._auto_class
            else:
                cls._auto_class = value


def find_results(model_dir: str | os.PathLike, file_name: str, candidates: tuple[str, ...]) -> Path | None:
    """The first of `candidates` (paths relative to the model folder) that holds `file_name`, if any."""
    for folder in candidates:
        path = Path(model_dir) / folder / file_name
        if path.is_file():
            return path
    return None


def find_eval_results(model_dir: str | os.PathLike) -> Path | None:
    """MODEL_DIR/eval/eval_results.json (train/evaluate.py's default) or MODEL_DIR/eval_results.json."""
    return find_results(model_dir, EVAL_RESULTS_FILE, ("eval", "."))


def find_train_results(model_dir: str | os.PathLike) -> Path | None:
    """train_results.json beside the weights, or in the run folder when the model is the run's best/ folder."""
    return find_results(model_dir, TRAIN_RESULTS_FILE, (".", "..") if Path(model_dir).name == BEST_DIR else (".",))


def stage_dataset(
    lamem_root: str | os.PathLike, out_dir: Path, repo_id: str, template: str | os.PathLike, on_missing: str = "error"
) -> Path:
    """LaMem as one row per image in Parquet shards (images embedded once, `describe_data`'s verdict on the folder in
    every file's footer), with its dataset card."""
    try:
        table = lamem_to_table(lamem_root, on_missing=on_missing)
        described = describe_data(lamem_root)
    except DataError as error:
        raise PublishError(str(error)) from None
    shards = save_table(table, out_dir, provenance=described)  # so that the table, wherever it goes, says what it is
    card = render_dataset_card(repo_id, described, len(table), len(shards), template)
    card.save(out_dir / "README.md")
    return out_dir


def stage_space(
    space_dir: str | os.PathLike, out_dir: Path, pinned_requirements: str | os.PathLike | None = None
) -> Path:
    """The Space folder plus vendored copies of this package and of the face detector's, so that `import
    memorability` works without PyPI.

    The Space card is checked first (sdk, sdk_version equal to the pinned gradio, app_file present).
    """
    space_dir = Path(space_dir)
    if (space_dir / "memorability").exists():
        raise PublishError(f"{space_dir / 'memorability'}: remove it; the push vendors the package itself.")
    check_space_card(space_dir, pinned_requirements)
    shutil.copytree(space_dir, out_dir, ignore=STAGING_IGNORED, dirs_exist_ok=True)
    vendor_package(out_dir)
    vendor_face_detector(out_dir)
    return out_dir


def vendor_face_detector(space_dir: Path) -> Path:
    """Copy facenet-pytorch (MTCNN, the face detector) and its MIT licence into `space_dir`: a Space installs its
    requirements with pip, which cannot install it without its torch<2.3 pin (see `memorability.faces`)."""
    try:
        folder, licence = facenet_sources()
    except FaceDetectorMissingError as error:
        raise PublishError(str(error)) from None
    target = Path(shutil.copytree(folder, space_dir / folder.name, ignore=STAGING_IGNORED))
    shutil.copy2(licence, target / "LICENSE.md")
    return target


def pinned_version(requirements: str | os.PathLike, package: str) -> str | None:
    """The `package==X` pin in a requirements file, if any."""
    pattern = re.compile(rf"^{re.escape(package)}\s*==\s*([^\s;#]+)", re.IGNORECASE | re.MULTILINE)
    match = pattern.search(Path(requirements).read_text())
    return match.group(1) if match else None


def check_space_card(space_dir: str | os.PathLike, pinned_requirements: str | os.PathLike | None = None) -> SpaceCard:
    """The Space's README.md front matter, checked: required keys, sdk gradio at the pinned version, app_file there."""
    space_dir = Path(space_dir)
    readme = space_dir / "README.md"
    if not readme.is_file():
        raise PublishError(f"{readme}: missing; a Space needs a README.md with front matter (sdk: gradio, app_file).")
    card = SpaceCard.load(readme)
    absent = [key for key in SPACE_REQUIRED_KEYS if not card.data.get(key)]
    if absent:
        raise PublishError(f"{readme}: the front matter lacks {', '.join(absent)}.")
    if card.data.sdk != "gradio":
        raise PublishError(f"{readme}: sdk is '{card.data.sdk}', but the app is a Gradio app (sdk: gradio).")
    if not (space_dir / card.data.app_file).is_file():
        raise PublishError(f"{readme}: app_file '{card.data.app_file}' is not in {space_dir}.")
    for requirements in (pinned_requirements, space_dir / "requirements.txt"):
        pin = pinned_version(requirements, "gradio") if requirements and Path(requirements).is_file() else None
        if pin is not None and pin != str(card.data.sdk_version):
            raise PublishError(
                f"{readme}: sdk_version {card.data.sdk_version} differs from the gradio=={pin} pin in {requirements}."
            )
    return card


def vendor_package(space_dir: Path) -> Path:
    """Copy the `memorability` package (its source, not caches) into `space_dir`, next to app.py."""
    package = Path(__file__).resolve().parent
    return Path(shutil.copytree(package, space_dir / package.name, ignore=STAGING_IGNORED))


# --- The command lines (hub/push_*.py) --------------------------------------------------------------------------------


def add_push_arguments(parser: argparse.ArgumentParser, private_by_default: bool = False) -> None:
    """--repo-id, --local-dir, visibility, --revision, --commit-message and --token: the options every push shares."""
    parser.add_argument("--repo-id", required=True, help="The Hub repo to push to, ORG/NAME.")
    parser.add_argument(
        "--local-dir",
        help="Write exactly what would be uploaded to this new folder instead, offline (no token needed).",
    )
    visibility = parser.add_mutually_exclusive_group()
    marks = {True: " (default)", False: ""}
    visibility.add_argument(
        "--private", dest="private", action="store_true", default=private_by_default,
        help=f"Create the repo private{marks[private_by_default]}; an existing public repo is refused.",
    )
    visibility.add_argument(
        "--public", dest="private", action="store_false",
        help=f"Create the repo public{marks[not private_by_default]}; an existing repo keeps its visibility.",
    )
    parser.add_argument("--revision", help="Branch to commit to (created from main if absent; default: main).")
    parser.add_argument("--commit-message", help="The commit's message.")
    parser.add_argument(
        "--token",
        help="Hub token with write access. It shows in `ps` and your shell's history: prefer HF_TOKEN or "
        "`hf auth login` (the default, used when this is not given).",
    )


def destination_from_args(args: argparse.Namespace, repo_type: str) -> Destination:
    if args.token:
        print(TOKEN_WARNING, file=sys.stderr)
    return Destination(args.repo_id, repo_type, args.private, args.revision, args.commit_message, args.token)


def run_push(stage: Callable[[Path], object], args: argparse.Namespace, repo_type: str, api: HfApi | None) -> int:
    """Run one push for a command line: print where it went, or `error: <one sentence>` and exit status 2."""
    try:
        where = publish(stage, destination_from_args(args, repo_type), args.local_dir, api)
    except MemorabilityError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {where}" if args.local_dir else f"Pushed {args.repo_id}: {where}")
    return 0
