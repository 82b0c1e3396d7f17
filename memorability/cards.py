"""The Hub's model card, with a model-index read from eval_results.json (the dataset card: `dataset_cards`).

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

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from . import __version__
from .backbones import backbone_family
from .configuration_memorability import MemorabilityConfig
from .data import describe_data
from .hub_ids import is_hub_id
from .metrics import TOO_FEW_TO_PUBLISH, publishable
from .tables import DataError
from .cache_paths import DEMO_NOTICE
from .presets import BACKBONES, DEFAULT_WEIGHTS

TASK = {"task_type": "image-regression", "task_name": "Image memorability (regression)"}
LAMEM_DATASET_TYPE = "lamem"
MODEL_TAGS = ("image-regression", "memorability", "pytorch", "custom_code")  # and the backbone's model type
DEMO_TRAINING_DATA = {"name": "generated sample pictures (the demo recipe)", "is_lamem": False}
TRAINING_LABELS = {  # train_results.json's "arguments"
    "backbone": "Backbone preset",
    "backbone_weights": "Backbone initial weights",
    "image_size": "Image size",
    "epochs": "Epochs",
    "batch_size": "Batch size per process",
    "learning_rate": "Learning rate (head)",
    "backbone_learning_rate": "Learning rate (backbone)",
    "weight_decay": "Weight decay (AdamW)",
    "warmup_ratio": "Warmup fraction (then cosine decay)",
    "freeze_backbone_epochs": "Epochs with the backbone frozen",
    "augment": "Augmentation (random resized crop, flip)",
    "seed": "Seed",
}
RUN_LABELS = {"mixed_precision": "Mixed precision", "num_processes": "Processes", "steps": "Optimizer steps"}
LAMEM_BIBTEX = """@inproceedings{khosla2015understanding,
  title     = {Understanding and Predicting Image Memorability at a Large Scale},
  author    = {Khosla, Aditya and Raju, Akhil S. and Torralba, Antonio and Oliva, Aude},
  booktitle = {Proceedings of the IEEE International Conference on Computer Vision (ICCV)},
  pages     = {2390--2398},
  year      = {2015}
}"""


@dataclass(frozen=True)
class CardMetric:
    """A metric the card reports: its key in eval_results.json, its Hub id, its label and how many decimals."""

    key: str
    hub_id: str
    label: str
    decimals: int

    def value(self, number: float | None) -> float | None:
        return round(float(number), self.decimals) if number is not None and math.isfinite(number) else None

    def text(self, number: float | None) -> str:
        rounded = self.value(number)
        return "n/a" if rounded is None else f"{rounded:.{self.decimals}f}"


CARD_METRICS = (
    CardMetric("spearman", "spearmanr", "Spearman ρ", 4),
    CardMetric("pearson", "pearsonr", "Pearson r", 4),
    CardMetric("mse", "mse", "MSE", 5),
)


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
    image_mean: tuple[float, ...] = tuple(IMAGENET_DEFAULT_MEAN)
    image_std: tuple[float, ...] = tuple(IMAGENET_DEFAULT_STD)
    int8: dict | None = None  # onnx/quantization.json, where the model ships an int8 file


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def eval_dataset_type(evaluation: dict, dataset_repo: str | None) -> str:
    """The model-index dataset id: the LaMem repo for LaMem figures; otherwise the data's own name, never LaMem's."""
    data = evaluation["data"]
    return (dataset_repo or LAMEM_DATASET_TYPE) if data["is_lamem"] else slug(data["name"])


def eval_results_for_card(evaluation: dict, dataset_repo: str | None = None) -> list[EvalResult]:
    """Spearman ρ, Pearson r and MSE per test split, and their mean over the splits, each naming its data and its
    number of images; a split of fewer than TOO_FEW_TO_PUBLISH images is left out (and then the mean too)."""
    splits, mean = evaluation["splits"], evaluation["mean"]
    dataset = {"dataset_type": eval_dataset_type(evaluation, dataset_repo), "dataset_name": evaluation["data"]["name"]}
    entries = [  # (split, metric, value, name)
        (f"test_{index}", metric, metrics.get(metric.key), f"{metric.label} (test_{index}, {metrics.get('n')} images)")
        for index, metrics in splits.items()
        for metric in CARD_METRICS
        if publishable(metrics)
    ]
    if len(splits) > 1 and all(publishable(metrics) for metrics in splits.values()):
        entries += [
            (f"mean of test_{'/'.join(splits)}", metric, mean[metric.key]["mean"],
             f"{metric.label}, mean of {len(splits)} test splits (sd {metric.text(mean[metric.key]['sd'])})")
            for metric in CARD_METRICS
        ]
    return [
        EvalResult(**TASK, **dataset, dataset_split=split, metric_type=metric.hub_id, metric_value=metric.value(value),
                   metric_name=name)
        for split, metric, value, name in entries
        if metric.value(value) is not None
    ]


def evaluation_table(evaluation: dict) -> dict:
    """The evaluation as the template shows it: the data's name, whether it is LaMem, and formatted rows; the figures
    of a split of fewer than TOO_FEW_TO_PUBLISH images are withheld, and `withheld` says why."""
    splits, mean = evaluation["splits"], evaluation["mean"]
    rows = [
        [f"test_{index}",
         *(metric.text(metrics.get(metric.key)) if publishable(metrics) else "withheld" for metric in CARD_METRICS),
         str(metrics.get("n", ""))]
        for index, metrics in splits.items()
    ]  # fmt: skip
    complete = all(publishable(metrics) for metrics in splits.values())
    if len(splits) > 1 and complete:
        spread = (f"{m.text(mean[m.key]['mean'])} ± {m.text(mean[m.key]['sd'])}" for m in CARD_METRICS)
        rows.append(["mean ± sd", *spread, str(mean.get("n", {}).get("total", ""))])
    withheld = (
        "" if complete else f"Figures measured on fewer than {TOO_FEW_TO_PUBLISH} images are withheld: on so few, "
        "a correlation takes only a handful of values and says nothing about the model."
    )
    return {
        "withheld": withheld,
        "data_name": evaluation["data"]["name"],
        "is_lamem": bool(evaluation["data"]["is_lamem"]),
        "num_splits": len(splits),
        "precision": evaluation.get("precision", ""),
        "header": ["split", *(metric.label for metric in CARD_METRICS), "n"],
        "rows": rows,
    }


def without_local_paths(value: object) -> object:
    """`value` (a JSON record, or a string) with every absolute path replaced by its last part: what a card or a
    pushed results file says about where things were on the machine that made them, and no more."""
    if isinstance(value, dict):
        return {key: without_local_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_local_paths(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        return Path(value).name or value
    return value


def describe_training_data(data: str | None) -> dict:
    """The training data's name, and whether it is LaMem: None unless it is on this machine to look at."""
    unknown = {"name": f"`{without_local_paths(data)}`" if data else "unknown data", "is_lamem": None}
    if not data or not Path(data).exists():
        return unknown
    try:
        return describe_data(data)
    except DataError:
        return unknown


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
    if weights and is_hub_id(weights):
        return weights
    return None


def backbone_text(config: MemorabilityConfig) -> str:
    """The backbone in words: its family and the sizes that tell one model of the family from another."""
    backbone = config.backbone_config
    if backbone.model_type == "resnet":
        preset = backbone_preset(config)
        return (f"ResNet, {backbone.layer_type} blocks, depths {backbone.depths}, widths {backbone.hidden_sizes}"
                + (f" (the `{preset}` preset)" if preset else ""))  # fmt: skip
    if hasattr(backbone, "hidden_sizes"):
        return f"{type(backbone).__name__.removesuffix('Config')}, depths {backbone.depths}, widths {backbone.hidden_sizes}"
    return (f"{type(backbone).__name__.removesuffix('Config')}: {backbone.num_hidden_layers} layers of width "
            f"{backbone.hidden_size}, {backbone.patch_size}-px patches")  # fmt: skip


def head_text(config: MemorabilityConfig) -> str:
    """The head(s) in words, and how an ensemble's score and uncertainty come out of them."""
    widths = " → ".join(str(width) for width in [config.embedding_size, *config.head_hidden_sizes, 1])
    kind = f"MLP {widths} (ReLU, dropout {config.head_dropout})" if config.head_hidden_sizes else f"linear {widths}"
    kind += ", sigmoid" if config.sigmoid_output else ""
    if config.num_heads == 1:
        return kind
    fitted = f", fitted on split indices {config.head_splits}" if config.head_splits else ""
    return f"{config.num_heads} heads{fitted}, each {kind}; the score is their mean, `uncertainty` their spread"


def normalisation_text(mean: tuple[float, ...], std: tuple[float, ...]) -> str:
    if tuple(mean) == tuple(IMAGENET_DEFAULT_MEAN) and tuple(std) == tuple(IMAGENET_DEFAULT_STD):
        return "ImageNet mean/std"
    return f"mean {tuple(round(value, 3) for value in mean)}, std {tuple(round(value, 3) for value in std)}"


def architecture_rows(facts: ModelFacts) -> list[tuple[str, str]]:
    """The model as config.json and preprocessor_config.json describe it."""
    config = facts.config
    return [
        ("Backbone", backbone_text(config)),
        ("Pooling", backbone_family(config.backbone_config).pooling),
        ("Head", head_text(config)),
        ("Parameters", f"{facts.num_parameters:,}"),
        ("Input", f"{facts.image_size}×{facts.image_size} RGB: resized, centre-cropped, "
                  f"{normalisation_text(facts.image_mean, facts.image_std)}"),  # fmt: skip
    ]


def fitting_rows(fitting: dict, data_name: str) -> list[tuple[str, str]]:
    """Heads fitted on a frozen encoder's embeddings, as train/fit_head.py's train_results.json records them."""
    embeddings = fitting["embeddings"]
    revision = f", revision {embeddings['revision']}" if embeddings.get("revision") else ""
    chosen = "; ".join(
        f"split {head['split']}: " + (f"penalty {head['alpha']:.3g}" if "alpha" in head else f"{head['epochs']} epochs")
        + f", validation ρ {head['val_spearman']:.4f}"
        for head in fitting["heads"]
    )
    holdout = fitting["holdout"]
    return [
        ("Encoder", f"`{without_local_paths(embeddings['encoder'])}`{revision}, frozen ({embeddings['precision']}"
                    + (", each embedding averaged with its mirror image's)" if embeddings.get("flip") else ")")),
        ("Data", f"{data_name}: head i trained on train_i with split index i's scores, chosen on val_i"),
        ("Heads", f"{fitting['head']}; {chosen}"),
        ("Held out", f"{holdout['images']} images ({holdout['fraction']:.0%}, seed {holdout['seed']}) no head saw, "
                     "to check the spread on"),
    ]  # fmt: skip


def uncertainty_text(evaluation: dict | None) -> str:
    """What the ± of an ensemble means, and how it held on images no head saw (or that it was not measured)."""
    meaning = (
        "Each score comes with `uncertainty`: the standard deviation of the heads' scores around their mean. It says "
        "how much heads fitted on different LaMem splits disagree about the photo; it is not the spread of people's "
        "memory, and a small one does not make the score right."
    )
    calibration = (evaluation or {}).get("uncertainty_calibration")
    if not calibration or not calibration.get("measured"):
        why = calibration.get("why") if calibration else "no evaluation results came with this model"
        return f"{meaning} Its calibration has not been measured ({why})."
    return (
        f"{meaning} On {calibration['images']:,} held-out images of {evaluation['data']['name']}, against the mean of "
        f"their split scores: {calibration['within_1_sigma']:.0%} of the errors lay within 1σ and "
        f"{calibration['within_2_sigma']:.0%} within 2σ (a Gaussian σ would give 68% and 95%), and Spearman ρ "
        f"between σ and the absolute error was {calibration['spearman_sigma_error']:.3f} (mean σ "
        f"{calibration['mean_sigma']:.4f}, mean absolute error {calibration['mean_abs_error']:.4f})."
    )


def training_rows(training: dict, data_name: str) -> list[tuple[str, str]]:
    """The run as train_results.json records it; the best validation ρ names the data it was measured on."""
    arguments = dict(without_local_paths(training.get("arguments", {})))
    arguments["backbone_weights"] = base_model(training) or arguments.get("backbone_weights")  # the Hub id if known
    split = training.get("split")
    rows = [("Data", f"{data_name}, split index {split}: its train split to learn, its validation split to pick the "
                     "epoch")]
    rows += [(label, f"{arguments[key]}") for key, label in TRAINING_LABELS.items() if arguments.get(key) is not None]
    rows += [(label, f"{training[key]}") for key, label in RUN_LABELS.items() if training.get(key) is not None]
    best, images = training.get("best_val_spearman"), training.get("best_val_n")
    if best is not None and math.isfinite(best):
        where = f"the validation split of split index {split} of {data_name}"
        if images is not None and not publishable({"n": images}):
            value = f"withheld: measured on {images} images of {where}, too few to mean anything"
        else:
            on = f"{images} images of " if images is not None else ""
            value = f"{best:.4f} (epoch {training.get('best_epoch')}), on {on}{where}"
        rows.append(("Best validation Spearman ρ", value))
    return rows


def training_section(training: dict | None, data_name: str) -> list[tuple[str, str]] | None:
    """A training run's rows (train/train.py) or fitted heads' (train/fit_head.py), from train_results.json."""
    if training is None:
        return None
    return fitting_rows(training, data_name) if "heads" in training else training_rows(training, data_name)


def int8_section(record: dict | None) -> dict | None:
    """The card's int8 section, from the record `memorability quantize` wrote: how the file was made and what it
    costs in fidelity against fp32."""
    if record is None:
        return None
    fidelity, settings, calibration = record["fidelity"], record["settings"], record["calibration"]
    return {
        "file": record["file"],
        "how": f"static quantization by ONNX Runtime {record['onnxruntime']} ({settings['quant_format']}, "
        f"{settings['weight_type']} weights per channel, {settings['activation_type']} activations, "
        f"{settings['calibrate_method']} calibration; the head"
        + (" and the stem" if settings.get("stem_in_fp32") else "") + " in fp32)",
        "calibration": f"{calibration['images']} pictures: {calibration['source']}",
        "rows": [
            ("Held-out pictures (never calibrated on)", str(fidelity["images"])),
            ("Spearman ρ, int8 against fp32 scores", f"{fidelity['spearman']:.4f}"),
            ("99th percentile of abs(Δscore)", f"{fidelity['p99_abs_difference']:.4f}"),
            ("Largest abs(Δscore)", f"{fidelity['max_abs_difference']:.4f}"),
            ("Embeddings' cosine to fp32, mean (min)",
             f"{fidelity['embedding_cosine_mean']:.4f} ({fidelity['embedding_cosine_min']:.4f})"),
            ("Neighbour top-10 overlap with the fp32 query", f"{fidelity['neighbour_top10_overlap']:.2f}"),
        ],  # fmt: skip
        "thresholds": record["thresholds"],
        "meets_thresholds": record["meets_thresholds"],
    }


def render_model_card(facts: ModelFacts, template: str | os.PathLike) -> ModelCard:
    """The model card: metadata (license, tags, base model, model-index) and the sections of model_card.md."""
    training_data = describe_training_data((facts.training or {}).get("data"))
    if facts.is_demo and facts.training is None:
        training_data = DEMO_TRAINING_DATA
    evaluation = facts.evaluation
    evaluated_on_lamem = bool(evaluation and evaluation["data"]["is_lamem"])
    lamem_related = bool(facts.dataset_repo or training_data["is_lamem"] or evaluated_on_lamem)
    tags = [*MODEL_TAGS, facts.config.backbone_config.model_type, *(["lamem"] if lamem_related else []),
            *(["demo"] if facts.is_demo else [])]  # fmt: skip
    model_name = facts.repo_id.split("/")[-1]
    card_data = ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        tags=tags,
        datasets=[facts.dataset_repo] if facts.dataset_repo else None,
        base_model=base_model(facts.training),
        metrics=[metric.hub_id for metric in CARD_METRICS] if evaluation else None,
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
        training=training_section(facts.training, training_data["name"]),
        uncertainty=uncertainty_text(evaluation) if facts.config.num_heads > 1 else None,
        int8=int8_section(facts.int8),
        version=__version__,
        lamem_bibtex=LAMEM_BIBTEX,
    )
