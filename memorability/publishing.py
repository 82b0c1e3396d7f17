"""What each push (model, dataset, Space) puts on the Hugging Face Hub: a `stage_*` function writes exactly the files
the repo should hold into a folder, with its card; `memorability.hub_upload.publish` then uploads that folder as one
commit or writes it to `--local-dir`.
"""

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from huggingface_hub import SpaceCard

from .cache_paths import DEMO_MARKER, is_demo_model
from .cards import ModelFacts, render_model_card, without_local_paths
from .configuration_memorability import MemorabilityConfig
from .data import describe_data, lamem_to_table
from .dataset_cards import render_dataset_card
from .evaluation import RESULTS_FILE as EVAL_RESULTS_FILE
from .faces import FaceDetectorMissingError, facenet_sources
from .fingerprint import model_fingerprint
from .hub_upload import PublishError
from .image_processing import processor_image_size
from .inference import load_model
from .int8 import copy_int8
from .modeling_memorability import MemorabilityModel, first_line
from .tables import DataError, save_table
from .training import BEST_DIR, LAST_DIR
from .training import RESULTS_FILE as TRAIN_RESULTS_FILE

# Local leftovers never uploaded; Gradio writes a type stub (app.pyi) beside an app it imports, and we ship none.
STAGING_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi", ".gradio", "flagged", ".DS_Store")
SPACE_REQUIRED_KEYS = ("title", "sdk", "sdk_version", "app_file")


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
    """Weights, config with `auto_map`, the model's code, the image processor, the int8 file where there is one,
    results files and the model card.

    The code ships (as `trust_remote_code`) so that `AutoModel.from_pretrained(repo, trust_remote_code=True)` works
    where this package is not installed; the image processor is a stock transformers class and needs none.
    """
    model_dir = Path(model_dir)
    model, processor = load_model(model_dir)
    with remote_code_registration():
        model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    # onnx/model_int8.onnx and its record, where `memorability quantize` made them for this very model
    int8 = copy_int8(model_dir, out_dir, model_fingerprint(model, processor))
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
        int8=int8,
        image_mean=tuple(processor.image_mean),
        image_std=tuple(processor.image_std),
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
    """train_results.json beside the weights, or in the run folder when the model is the run's best/ (or last/)
    folder."""
    in_run = Path(model_dir).name in (BEST_DIR, LAST_DIR)
    return find_results(model_dir, TRAIN_RESULTS_FILE, (".", "..") if in_run else (".",))


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


