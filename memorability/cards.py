"""The Hub's cards: the model card (with a model-index read from eval_results.json), the dataset card, the Space card.

Model and dataset cards are rendered from the Jinja templates `model_card.md` and `dataset_card.md` (at the project
root) through `ModelCard.from_template` / `DatasetCard.from_template`, so their YAML is written by huggingface_hub.
Every figure names the data it was measured on, and a figure measured on anything but LaMem (generated sample data,
a LaMem-format subset, a CSV of photos) is never labelled LaMem: the card then says the model has no LaMem evaluation.
"""

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData, SpaceCard

from . import __version__
from .ablations import ABLATIONS
from .configuration_memorability import MemorabilityConfig
from .data import DataError, SPLIT_INDICES, TABLE_FEATURES
from .demo import DEMO_NOTICE
from .evaluation import describe_data
from .presets import BACKBONES, DEFAULT_WEIGHTS
from .publishing import PublishError

TASK = {"task_type": "image-regression", "task_name": "Image memorability (regression)"}
# (key in eval_results.json, Hub metric id, label, decimals)
CARD_METRICS = (("spearman", "spearmanr", "Spearman ρ", 4), ("pearson", "pearsonr", "Pearson r", 4), ("mse", "mse", "MSE", 5))
LAMEM_DATASET_TYPE = "lamem"
MODEL_TAGS = ("image-regression", "memorability", "resnet", "pytorch", "custom_code")
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))
LAMEM_LICENSE = {"license": "other", "license_name": "lamem-research-use", "license_link": "http://memorability.csail.mit.edu/"}
DEMO_TRAINING_DATA = {"name": "generated sample pictures (the demo recipe)", "is_lamem": False}
SPACE_REQUIRED_KEYS = ("title", "sdk", "sdk_version", "app_file")
LAMEM_BIBTEX = """@inproceedings{khosla2015understanding,
  title     = {Understanding and Predicting Image Memorability at a Large Scale},
  author    = {Khosla, Aditya and Raju, Akhil S. and Torralba, Antonio and Oliva, Aude},
  booktitle = {International Conference on Computer Vision (ICCV)},
  year      = {2015}
}"""


@dataclass(frozen=True)
class ModelFacts:
    """What the model card is written from: the saved model, and the results files found beside it."""

    repo_id: str
    config: MemorabilityConfig
    image_size: int
    num_parameters: int
    is_demo: bool = False
    evaluation: dict | None = None
    training: dict | None = None
    dataset_repo: str | None = None
    has_scatter: bool = False


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def metric_value(metrics: dict, key: str, decimals: int) -> float | None:
    value = metrics.get(key)
    return round(float(value), decimals) if value is not None and math.isfinite(value) else None


def eval_dataset_type(evaluation: dict, dataset_repo: str | None) -> str:
    """The model-index dataset id: the LaMem repo for LaMem figures; otherwise the data's own name, never LaMem's."""
    data = evaluation["data"]
    return (dataset_repo or LAMEM_DATASET_TYPE) if data["is_lamem"] else slug(data["name"])


def eval_results_for_card(evaluation: dict, dataset_repo: str | None = None) -> list[EvalResult]:
    """Spearman ρ, Pearson r and MSE per test split, and their mean over the splits, each naming its data."""
    data, splits = evaluation["data"], evaluation["splits"]
    dataset = {"dataset_type": eval_dataset_type(evaluation, dataset_repo), "dataset_name": data["name"]}
    results = []
    for index, metrics in splits.items():
        for key, metric, label, decimals in CARD_METRICS:
            value = metric_value(metrics, key, decimals)
            if value is not None:
                results.append(
                    EvalResult(**TASK, **dataset, dataset_split=f"test_{index}", metric_type=metric,
                               metric_value=value, metric_name=f"{label} (test_{index})")
                )
    if len(splits) > 1:
        for key, metric, label, decimals in CARD_METRICS:
            summary = evaluation["mean"][key]
            value = metric_value(summary, "mean", decimals)
            if value is not None:
                name = f"{label}, mean of {len(splits)} test splits (sd {summary['sd']:.{decimals}f})"
                results.append(
                    EvalResult(**TASK, **dataset, dataset_split=f"mean of test_{'/'.join(splits)}",
                               metric_type=metric, metric_value=value, metric_name=name)
                )
    return results


def format_metric(value: float | None, decimals: int) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{decimals}f}"


def evaluation_table(evaluation: dict) -> dict:
    """The evaluation as the template shows it: the data's name, whether it is LaMem, and formatted rows."""
    rows = [
        [f"test_{index}", *(format_metric(metrics.get(key), decimals) for key, _, _, decimals in CARD_METRICS),
         str(metrics.get("n", ""))]
        for index, metrics in evaluation["splits"].items()
    ]
    if len(evaluation["splits"]) > 1:
        mean = evaluation["mean"]
        rows.append(
            ["mean ± sd", *(f"{format_metric(mean[key]['mean'], d)} ± {format_metric(mean[key]['sd'], d)}"
                            for key, _, _, d in CARD_METRICS), ""]
        )
    return {
        "data_name": evaluation["data"]["name"],
        "is_lamem": bool(evaluation["data"]["is_lamem"]),
        "num_splits": len(evaluation["splits"]),
        "precision": evaluation.get("precision", ""),
        "header": ["split", *(label for _, _, label, _ in CARD_METRICS), "n"],
        "rows": rows,
    }


def describe_training_data(data: str | None) -> dict:
    """The training data's name and whether it is LaMem (None when it is not on this machine to look at)."""
    if not data:
        return {"name": "unknown data", "is_lamem": None}
    try:
        return describe_data(data)
    except DataError:
        return {"name": f"`{data}`", "is_lamem": None}


def backbone_preset(config: MemorabilityConfig) -> str | None:
    """The preset (resnet50, resnet18, tiny) whose architecture the backbone has, if any."""
    backbone = config.backbone_config
    for name, (overrides, _) in BACKBONES.items():
        reference = type(backbone)(**overrides)
        keys = ("layer_type", "depths", "hidden_sizes", "embedding_size")
        if all(getattr(backbone, key) == getattr(reference, key) for key in keys):
            return name
    return None


def base_model(training: dict | None) -> str | None:
    """The ImageNet checkpoint the backbone started from, when the training record names one on the Hub."""
    arguments = (training or {}).get("arguments", {})
    weights = arguments.get("backbone_weights")
    if weights == DEFAULT_WEIGHTS:
        return BACKBONES.get(arguments.get("backbone"), ({}, None))[1]
    if weights and re.fullmatch(r"[\w.-]+/[\w.-]+", weights) and not os.path.exists(weights):
        return weights
    return None


def architecture_rows(facts: ModelFacts) -> list[tuple[str, str]]:
    backbone = facts.config.backbone_config
    preset = backbone_preset(facts.config)
    widths = " → ".join(str(width) for width in [facts.config.embedding_size, *facts.config.head_hidden_sizes, 1])
    return [
        ("Backbone", f"ResNet, {backbone.layer_type} blocks, depths {backbone.depths}, widths {backbone.hidden_sizes}"
         + (f" (the `{preset}` preset)" if preset else "")),
        ("Head", f"global average pooling, MLP {widths} (ReLU, dropout {facts.config.head_dropout})"
         + (", sigmoid" if facts.config.sigmoid_output else "")),
        ("Parameters", f"{facts.num_parameters:,}"),
        ("Input", f"{facts.image_size}×{facts.image_size} RGB, short side resized then centre-cropped, ImageNet mean/std "
                  "(preprocessor_config.json)"),
    ]


def training_rows(training: dict, data_name: str) -> list[tuple[str, str]]:
    arguments = training.get("arguments", {})
    split = training.get("split")
    rows = [("Data", f"{data_name}, split index {split}: its train split for training, its validation split for "
                     "choosing the epoch")]
    labels = {
        "backbone": "Backbone preset", "backbone_weights": "Backbone initial weights", "epochs": "Epochs",
        "batch_size": "Batch size per process", "learning_rate": "Learning rate (head)",
        "backbone_learning_rate": "Learning rate (backbone)", "weight_decay": "Weight decay (AdamW)",
        "warmup_ratio": "Warmup fraction (then cosine decay)", "freeze_backbone_epochs": "Epochs with frozen backbone",
        "augment": "Augmentation (random resized crop, flip)", "image_size": "Image size", "seed": "Seed",
    }
    rows += [(label, f"{arguments[key]}") for key, label in labels.items() if key in arguments]
    rows += [
        ("Mixed precision, processes", f"{training.get('mixed_precision')}, {training.get('num_processes')}"),
        ("Optimizer steps", f"{training.get('steps')}"),
    ]
    best = training.get("best_val_spearman")
    if best is not None and math.isfinite(best):
        rows.append(("Best validation Spearman ρ",
                     f"{best:.4f} (epoch {training.get('best_epoch')}), on the validation split of split index {split} "
                     f"of {data_name}"))
    return rows


def render_model_card(facts: ModelFacts, template: str | os.PathLike) -> ModelCard:
    """The model card: metadata (license, tags, base model, model-index) and the sections of model_card.md."""
    training_data = describe_training_data((facts.training or {}).get("data"))
    if facts.is_demo and facts.training is None:
        training_data = DEMO_TRAINING_DATA
    evaluation = facts.evaluation
    lamem_related = bool(facts.dataset_repo or training_data["is_lamem"] or (evaluation and evaluation["data"]["is_lamem"]))
    tags = [*MODEL_TAGS, *(["lamem"] if lamem_related else []), *(["demo"] if facts.is_demo else [])]
    model_name = facts.repo_id.split("/")[-1]
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        tags=tags,
        datasets=[facts.dataset_repo] if facts.dataset_repo else None,
        base_model=base_model(facts.training),
        metrics=[metric for _, metric, _, _ in CARD_METRICS] if evaluation else None,
        model_name=model_name,
        eval_results=eval_results_for_card(evaluation, facts.dataset_repo) if evaluation else None,
        inference=False,  # no widget: no Hub pipeline serves a memorability score
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template),
        repo_id=facts.repo_id,
        model_name=model_name,
        is_demo=facts.is_demo,
        demo_notice=DEMO_NOTICE.strip(),
        training_data=training_data,
        evaluation=evaluation_table(evaluation) if evaluation else None,
        has_scatter=facts.has_scatter,
        architecture=architecture_rows(facts),
        training=training_rows(facts.training, training_data["name"]) if facts.training else None,
        version=__version__,
        lamem_bibtex=LAMEM_BIBTEX,
    )


def size_category(n: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if n < limit), "n>1M")


def render_dataset_card(
    repo_id: str, described: dict, num_rows: int, shard_names: list[str], template: str | os.PathLike
) -> DatasetCard:
    """The dataset card: research-use licence terms, sizes, the Parquet config, fields, split indices, ablations."""
    card_data = DatasetCardData(
        **LAMEM_LICENSE,
        pretty_name=described["name"],
        task_categories=["other"],
        tags=["image-regression", "memorability", *(["lamem"] if described["is_lamem"] else [])],
        size_categories=[size_category(num_rows)],
        source_datasets=["original"],
        annotations_creators=["crowdsourced"] if described["is_lamem"] else ["machine-generated"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
    )
    ablations = [(name, ablation.description) for name, ablation in ABLATIONS.items()]
    return DatasetCard.from_template(
        card_data,
        template_path=str(template),
        repo_id=repo_id,
        data_name=described["name"],
        is_lamem=described["is_lamem"],
        num_rows=f"{num_rows:,}",
        num_shards=len(shard_names),
        split_indices=list(SPLIT_INDICES),
        columns=list(TABLE_FEATURES),
        ablations=ablations,
        first_ablation=ablations[0][0],
        lamem_bibtex=LAMEM_BIBTEX,
    )


def pinned_version(requirements: str | os.PathLike, package: str) -> str | None:
    """The `package==X` pin in a requirements file, if any."""
    pattern = re.compile(rf"^{re.escape(package)}\s*==\s*([^\s;#]+)", re.IGNORECASE | re.MULTILINE)
    match = pattern.search(Path(requirements).read_text())
    return match.group(1) if match else None


def check_space_card(space_dir: str | os.PathLike, pinned_requirements: str | os.PathLike | None = None) -> SpaceCard:
    """The Space's README.md front matter, checked: required keys, gradio as sdk at the pinned version, app_file there."""
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
    pins = [(path, pinned_version(path, "gradio")) for path in (pinned_requirements, space_dir / "requirements.txt")
            if path is not None and Path(path).is_file()]
    for path, pin in pins:
        if pin is not None and pin != str(card.data.sdk_version):
            raise PublishError(f"{readme}: sdk_version {card.data.sdk_version} differs from the gradio=={pin} pin in {path}.")
    return card
