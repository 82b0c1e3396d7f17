"""The ablation study: which human-interpretable features does the model rely on?

Every image is scored as it is and under each ablation (blur, grayscale, centre crop, ...); how the score moves,
image by image, says how much the model leans on the feature that ablation removes. `run_study` does it end to end:

1. images come from a LaMem split (`load_lamem`), a CSV of scored photos, or any folder of unscored images;
2. each process scores its shard into its own part of a resumable per-image cache (`scoring`);
3. after `wait_for_everyone`, the main process merges the parts and writes the statistics (`stats`) and the
   report, tables and plots (`report`, `plots`).

train/ablation_study.py is the command line; it runs under `accelerate launch --config_file
train/accelerate/multi.yaml --num_processes N` too.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..ablations import UnknownAblationError, ablation_names, get_ablation
from ..data import SPLIT_NAMES, describe_data, load_lamem
from ..distributed import make_accelerator
from ..explain import explain_batch
from ..faces import FACE_DETECTOR
from ..fingerprint import model_fingerprint
from ..gradcam import DEFAULT_CAM_METHOD, model_view
from ..gradcam import METHODS as CAM_METHODS
from ..images import list_image_files, load_image
from ..inference import MemorabilityPredictor, load_predictor
from ..run_output import check_writable
from ..scoring_inputs import DatasetImages
from .plots import plot_changes, plot_examples, plot_spearman
from .report import (
    CHANGES_PLOT,
    EXAMPLES_PLOT,
    PER_IMAGE_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    RHO_PLOT,
    Example,
    finite_or_none,
    write_per_image_csv,
    write_report,
)
from .scoring import ORIGINAL, ScoreCache, StudyError, StudyImages, StudyTable, Variant, merge, missing_variants, score_shard
from .stats import (
    ALPHA,
    BOOTSTRAP_RESAMPLES,
    CONFIDENCE_LEVEL,
    CORRECTION,
    EQUIVALENCE_MARGIN,
    METHODS,
    MIN_GROUP_SIZE,
    group_statistics,
)


@dataclass
class StudyConfig:
    """What to study and how; `data` (LaMem folder, table or CSV) and `images` (a folder) are alternatives."""

    model: str
    out_dir: str
    data: str | None = None
    images: str | None = None
    split: int = 1
    subset: str = "test"
    ablations: Sequence[str] = field(default_factory=ablation_names)
    params: dict[str, dict[str, float]] = field(default_factory=dict)
    limit: int | None = None
    batch_size: int = 32
    num_workers: int = 0
    precision: str = "fp32"
    seed: int = 0
    n_resamples: int = BOOTSTRAP_RESAMPLES
    examples: int = 3
    cam_method: str = DEFAULT_CAM_METHOD
    overwrite: bool = False
    progress: bool = True


def check_config(config: StudyConfig) -> list[Variant]:
    """Refuse what can be refused before a model loads; returns the original and each asked-for ablation with its
    defaults and overrides resolved, in the order asked."""
    if config.cam_method not in CAM_METHODS:
        raise StudyError(f"Unknown Grad-CAM method {config.cam_method!r}; choose one of {', '.join(CAM_METHODS)}.")
    for name in ("limit", "batch_size", "n_resamples"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise StudyError(f"{name} must be at least 1, not {value}.")
    if config.num_workers < 0:
        raise StudyError(f"num_workers must be at least 0, not {config.num_workers}.")
    unknown = sorted(set(config.params) - set(config.ablations))
    if unknown:
        raise StudyError(f"Parameters given for {unknown[0]!r}, which is not among the ablations studied.")
    if len(set(config.ablations)) != len(config.ablations) or not config.ablations:
        raise StudyError("Name each ablation once, and at least one.")
    variants = [Variant(ORIGINAL, {})]
    for name in config.ablations:
        try:
            variants.append(Variant(name, get_ablation(name).resolve(**config.params.get(name, {}))))
        except (UnknownAblationError, ValueError) as error:
            raise StudyError(str(error)) from None
    return variants


def load_images(config: StudyConfig) -> tuple[StudyImages, dict[str, object]]:
    """The images to study (at most `limit`, read only when scored) and where they came from, for results.json."""
    if (config.data is None) == (config.images is None):
        raise StudyError("Give either a dataset (--data) or a folder of images (--images), not both or neither.")
    if config.images is not None:
        folder = Path(config.images)
        if not folder.is_dir():
            raise StudyError(f"{folder}: no such folder of images.")
        paths = list_image_files(folder)[: config.limit]
        if not paths:
            raise StudyError(f"{folder}: no image files found.")
        images = StudyImages([str(path.relative_to(folder)) for path in paths], [None] * len(paths), [str(path) for path in paths])
        return images, {"name": f"images in {folder.name}", "kind": "folder", "is_lamem": False, "path": str(folder)}
    subset = SPLIT_NAMES.get(config.subset)
    if subset is None:
        raise StudyError(f"Subset {config.subset!r} is not train, validation (val) or test.")
    rows = load_lamem(config.data, split=config.split)[subset]
    if config.limit is not None:
        rows = rows.select(range(min(config.limit, len(rows))))
    if not len(rows):
        raise StudyError(f"{config.data}: the {subset} subset of split {config.split} holds no images.")
    images = StudyImages(list(rows["image_id"]), [float(score) for score in rows["score"]], DatasetImages(rows))
    description = describe_data(config.data)
    return images, {**description, "source": str(config.data), "split": config.split, "subset": subset}


def image_source(data: dict[str, object]) -> str:
    """Where the images are, as an absolute path where it is one, so the cache check does not depend on the cwd."""
    source = str(data.get("source", data.get("path")))
    return str(Path(source).resolve()) if Path(source).exists() else source


def statistics_settings(config: StudyConfig, comparisons: int) -> dict[str, object]:
    """How the numbers were computed, for results.json and the report's methods section."""
    return {
        **METHODS,
        "correction_method": CORRECTION,
        "comparisons_per_group": comparisons,
        "alpha": ALPHA,
        "confidence_level": CONFIDENCE_LEVEL,
        "bootstrap_resamples": config.n_resamples,
        "seed": config.seed,
        "min_group_size": MIN_GROUP_SIZE,
        "equivalence_margin": EQUIVALENCE_MARGIN,
    }


def study_statistics(table: StudyTable, config: StudyConfig) -> dict[str, dict]:
    """`group_statistics` for all readable images and for those with and without a detected face."""
    results = {}
    for group, mask in table.group_masks().items():
        human = table.human[mask] if table.has_human else None
        ablated = {name: values[mask] for name, values in table.ablated.items()}
        results[group] = group_statistics(table.original[mask], ablated, human, config.seed, config.n_resamples)
    return results


def pick_examples(table: StudyTable, count: int) -> list[int]:
    """Indices of `count` readable images spread over the original scores (highest first), a face image among them
    where there is one: faces_removed changes nothing on the others."""
    readable = np.flatnonzero(table.readable)
    if count <= 0 or readable.size == 0:
        return []
    ranked = readable[np.argsort(-table.original[readable], kind="stable")]
    chosen = [int(ranked[round(i)]) for i in np.linspace(0, ranked.size - 1, min(count, ranked.size))]
    faces = [int(index) for index in ranked if table.faces[index] > 0]
    if faces and not set(chosen) & set(faces):
        chosen[-1] = faces[0]
    return list(dict.fromkeys(chosen))


def build_examples(
    predictor: MemorabilityPredictor,
    table: StudyTable,
    images: StudyImages,
    variants: list[Variant],
    config: StudyConfig,
) -> list[Example]:
    """The example images under every variant with their scores and, from `gradcam`, heat maps before and after."""
    examples = []
    for index in pick_examples(table, config.examples):
        picture = load_image(images.sources[index], name=images.ids[index])
        ablated = [variant.apply(picture) for variant in variants]
        result = explain_batch(predictor, predictor.preprocess(ablated), method=config.cam_method)
        scores = [table.original[index]] + [table.ablated[variant.name][index] for variant in variants[1:]]
        examples.append(
            Example(
                image_id=images.ids[index],
                views={v.name: model_view(image, predictor.processor) for v, image in zip(variants, ablated)},
                scores={variant.name: float(score) for variant, score in zip(variants, scores)},
                maps={variant.name: cam for variant, cam in zip(variants, result.maps)},
            )
        )
    return examples


def run_study(config: StudyConfig) -> dict | None:
    """Score, cache, merge and report; returns the results on the main process (None on the others)."""
    variants = check_config(config)
    check_writable(config.out_dir)
    accelerator = make_accelerator()
    images, data = load_images(config)
    predictor = load_predictor(config.model, accelerator.device, config.precision, config.batch_size)
    meta = {"model": model_fingerprint(predictor), "precision": config.precision, "images": image_source(data)}
    cache = ScoreCache(config.out_dir)
    if not config.overwrite:
        cache.check(meta)  # every process checks before any writes, so that all fail together
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        cache.reset(meta, clear=config.overwrite)
    accelerator.wait_for_everyone()
    done = cache.read()
    missing = [len(missing_variants(image_id, variants, done)) for image_id in images.ids]
    score_shard(predictor, images, variants, cache, done, accelerator, config.progress, config.num_workers)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return None
    table = merge(images, variants, cache.read())
    readable = table.readable
    results = {
        "model": {"source": str(config.model), "fingerprint": meta["model"], "precision": config.precision},
        "data": data,
        "config": asdict(config),
        "ablations": {variant.name: get_ablation(variant.name).describe(**variant.params) for variant in variants[1:]},
        "statistics": statistics_settings(config, comparisons=len(variants) - 1),
        "num_processes": accelerator.num_processes,
        "n_images": len(images),
        "n_unreadable": int((~readable).sum()),
        "face_detector": FACE_DETECTOR,
        "n_with_face": int((table.faces[readable] > 0).sum()),
        "n_changed": {name: int(changed[readable].sum()) for name, changed in table.changed.items()},
        "has_human_scores": table.has_human,
        "cache": {"images_complete": missing.count(0), "scores_computed": sum(missing)},
        "groups": study_statistics(table, config),
    }
    examples = build_examples(predictor, table, images, variants, config)
    return write_outputs(Path(config.out_dir), results, table, examples)


def write_outputs(out_dir: Path, results: dict, table: StudyTable, examples: list[Example]) -> dict:
    """Write every file of the study into `out_dir`; returns the results with the file names added."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_per_image_csv(out_dir / PER_IMAGE_FILE, table)
    plots = []
    if results["groups"]["all"]["ablations"]:
        plot_changes(out_dir / CHANGES_PLOT, results, table)
        plot_spearman(out_dir / RHO_PLOT, results)
        plots += [CHANGES_PLOT, RHO_PLOT]
    if examples:
        plot_examples(out_dir / EXAMPLES_PLOT, examples, results["config"]["cam_method"])
        plots.append(EXAMPLES_PLOT)
    results = {**results, "files": {"report": REPORT_FILE, "per_image": PER_IMAGE_FILE, "plots": plots}}
    (out_dir / RESULTS_FILE).write_text(json.dumps(finite_or_none(results), indent=2, allow_nan=False))
    write_report(out_dir / REPORT_FILE, results)
    return results


__all__ = [
    "StudyConfig",
    "StudyError",
    "check_config",
    "load_images",
    "pick_examples",
    "run_study",
    "study_statistics",
]
