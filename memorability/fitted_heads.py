"""One light head per LaMem split index on a frozen encoder's cached embeddings, saved with the encoder as one model.

`fit_heads(embeddings, data, out)` fits head i on train_i with split i's own scores and chooses what training cannot
(ridge's penalty, the MLP's epochs) on val_i (`memorability.head_fitting`); it reports LaMem's protocol, head i on
test_i, per split and as the mean of five (a CSV of scored photos has one split: one head). The model it saves is
the encoder plus every head (`MemorabilityConfig.num_heads`, `head_splits`): its score is the mean of the heads and
its `uncertainty` their spread, which `from_pretrained`, the predictor, the CLI, the Space and the cards all show.

A held-out share of the images (5% by default) is left out of every head's training and validation, so that the
spread can be checked on images no head has seen: the fraction of |human − score| within 1σ and 2σ, and the
Spearman ρ between σ and |error|. The human score there is the mean of the image's five split scores.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from .data import SPLIT_INDICES, describe_data, load_lamem
from .configuration_memorability import MemorabilityConfig
from .embeddings import Embeddings, encoder_model, read_embeddings
from .errors import MemorabilityError
from .fingerprint import model_fingerprint
from .head_fitting import MLP_DROPOUT, FittedHead, fit_head
from .metrics import regression_metrics, summarize
from .modeling_memorability import MemorabilityModel
from .run_output import check_writable, replaced_folder

HOLDOUT_FRACTION = 0.05
EVAL_RESULTS = "eval_results.json"
FIT_RESULTS = "train_results.json"  # the name the model card's push looks for


class FitError(MemorabilityError, ValueError):
    """Heads that cannot be fitted as asked; one sentence says why."""


def held_out_ids(ids: list[str], fraction: float, seed: int) -> set[str]:
    """A seeded share of the images, left out of every head's training and validation."""
    count = round(fraction * len(ids))
    return set(np.random.default_rng(seed).choice(sorted(ids), size=count, replace=False).tolist()) if count else set()


def split_arrays(embeddings: Embeddings, dataset, exclude: set[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Embeddings and human scores of a split's images (those in `exclude` left out), and how many had no
    embedding (unreadable when embedded)."""
    kept = [(image_id, score) for image_id, score in zip(dataset["image_id"], dataset["score"]) if image_id not in exclude]
    vectors, missing = embeddings.rows([image_id for image_id, _ in kept])
    absent = set(missing)
    scores = [score for image_id, score in kept if image_id not in absent]
    return vectors, np.array(scores, dtype=np.float64), len(missing)


def fit_heads(
    embeddings_folder: str | os.PathLike,
    data: str | os.PathLike,
    out: str | os.PathLike,
    kind: str = "ridge",
    holdout: float = HOLDOUT_FRACTION,
    seed: int = 0,
) -> dict:
    """Fit, evaluate, measure the spread's calibration, and save the model; returns what eval_results.json holds."""
    check_writable(out, replaced=True)
    embeddings = read_embeddings(embeddings_folder)
    described = describe_data(data)
    indices = (1,) if described["kind"] == "csv" else SPLIT_INDICES
    exclude = held_out_ids(embeddings.ids, holdout, seed) if len(indices) > 1 else set()
    if len(indices) > 1 and not exclude:
        raise FitError(
            f"A hold-out share of {holdout:g} of {len(embeddings.ids):,} images is no image, so the spread of the heads "
            f"could not be checked; pass a --holdout of at least {1 / max(1, len(embeddings.ids)):.2g}."
        )
    if exclude:
        print(f"Held out {len(exclude):,} of {len(embeddings.ids):,} images ({len(exclude) / len(embeddings.ids):.1%}) "
              "that no head sees, to check the spread of the heads on.")  # fmt: skip
    # The encoder (fp32, no scoring copy) at the Hub commit the embeddings were made with (None for a folder).
    encoder, processor = encoder_model(embeddings.info["encoder"], embeddings.info.get("revision"))
    if model_fingerprint(encoder, processor) != embeddings.info["fingerprint"]:
        raise FitError(
            f"The encoder at {embeddings.info['encoder']} is not the one that made {embeddings_folder} (another "
            "revision or another model): embed again, or fit on the embeddings of this encoder."
        )
    heads, tests, human = [], {}, {}
    for index in indices:
        splits = load_lamem(data, split=index)
        train = split_arrays(embeddings, splits["train"], exclude)
        validation = split_arrays(embeddings, splits["validation"], exclude)
        if len(train[1]) < 2 or len(validation[1]) < 2:
            raise FitError(f"{data}: split {index} leaves fewer than 2 training or validation images with embeddings.")
        heads.append(fit_head(kind, train[0], train[1], validation[0], validation[1], seed=seed + index))
        tests[index] = split_arrays(embeddings, splits["test"], set())
        for name in splits:
            for image_id, score in zip(splits[name]["image_id"], splits[name]["score"]):
                if image_id in exclude:
                    human.setdefault(image_id, []).append(score)
    model = assemble(encoder, heads, list(indices), flip=bool(embeddings.info.get("flip")))
    per_split = {}
    for position, (index, (vectors, scores, missing)) in enumerate(tests.items()):
        predicted = head_scores(model, vectors)[:, position]
        per_split[str(index)] = regression_metrics(predicted, scores) | {"missing_embeddings": missing}
    results = {
        "model": Path(out).name,
        "data": described,
        "protocol": "LaMem five test splits, head i on test_i" if len(indices) == 5 else "test split",
        "precision": embeddings.info["precision"],
        "encoder": {key: embeddings.info[key] for key in ("encoder", "revision", "model_type", "flip")},
        "splits": per_split,
        "mean": summarize(list(per_split.values())),
        "uncertainty_calibration": calibration(model, embeddings, human),
    }
    fitting = {
        "data": str(data),
        "head": kind,
        "heads": [{"split": index, **head.chosen, **{f"val_{k}": v for k, v in head.validation.items()}}
                  for index, head in zip(indices, heads)],  # fmt: skip
        "holdout": {"fraction": holdout if exclude else 0.0, "images": len(exclude), "seed": seed},
        "embeddings": {key: value for key, value in embeddings.info.items() if key != "processor"},
    }
    save(model, processor, Path(out), results, fitting)
    return results


def assemble(
    encoder: MemorabilityModel, heads: list[FittedHead], splits: list[int], flip: bool = False
) -> MemorabilityModel:
    """The encoder's backbone and every fitted head as one model: the score is the heads' mean, not squashed (the
    heads regress LaMem's scores directly). Heads fitted on flipped embeddings make a model whose predictor scores
    each photo with its mirror image too (`test_time_flip`), as the heads were fitted and evaluated."""
    config = MemorabilityConfig(
        backbone_config=encoder.config.backbone_config,
        head_hidden_sizes=heads[0].hidden_sizes,
        head_dropout=MLP_DROPOUT,
        sigmoid_output=False,
        num_heads=len(heads),
        head_splits=splits,
        test_time_flip=flip,
    )
    model = MemorabilityModel(config)
    model.backbone.load_state_dict(encoder.backbone.state_dict())
    for module, head in zip(model.heads, heads):
        module.load_state_dict(head.state_dict)
    return model.eval()


def head_scores(model: MemorabilityModel, vectors: np.ndarray) -> np.ndarray:
    """Every head's score of each embedding, (N, heads), as the model computes them."""
    with torch.no_grad():
        return model.forward_heads(torch.as_tensor(vectors, dtype=torch.float32)).numpy().astype(np.float64)


def calibration(model: MemorabilityModel, embeddings: Embeddings, human: dict[str, list[float]]) -> dict:
    """How the heads' spread σ relates to the error on the held-out images: the fraction within 1σ and 2σ of the
    human score (a Gaussian σ would give 68% and 95%), and Spearman ρ between σ and |error|."""
    if model.config.num_heads == 1:
        return {"measured": False, "why": "one head has no spread"}
    if not human:
        return {"measured": False, "why": "no held-out images (--holdout 0)"}
    vectors, missing = embeddings.rows(sorted(human))
    absent = set(missing)
    truth = np.array([np.mean(human[image_id]) for image_id in sorted(human) if image_id not in absent])
    per_head = head_scores(model, vectors)
    score, spread = per_head.mean(axis=1), per_head.std(axis=1)
    error = np.abs(truth - score)
    rho = stats.spearmanr(spread, error).statistic if np.ptp(spread) > 1e-6 else math.nan  # else rounding noise
    return {
        "measured": True,
        "images": int(len(truth)),
        "within_1_sigma": float(np.mean(error <= spread)),
        "within_2_sigma": float(np.mean(error <= 2 * spread)),
        "spearman_sigma_error": float(rho),
        "mean_sigma": float(spread.mean()),
        "mean_abs_error": float(error.mean()),
        "human_score": "mean of the image's five split scores",
    }


def save(model: MemorabilityModel, processor, out: Path, results: dict, fitting: dict) -> None:
    """The model folder (weights, config, processor, eval_results.json, train_results.json), staged beside `out`
    and moved in place whole; an existing folder is replaced only if it is empty or fit_head.py wrote it (never
    another model, an encoder or a folder of data)."""
    if out.exists() and not (out.is_dir() and (written_by_fit_head(out) or not any(out.iterdir()))):
        raise FitError(f"{out} exists and was not written by fit_head.py; choose another --out (nothing was replaced).")
    with replaced_folder(out) as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (staging / EVAL_RESULTS).write_text(json.dumps(results, indent=2) + "\n")
        (staging / FIT_RESULTS).write_text(json.dumps(fitting, indent=2) + "\n")


def written_by_fit_head(folder: Path) -> bool:
    """Whether `folder` holds heads that fit_head.py saved (its train_results.json lists them)."""
    try:
        return "heads" in json.loads((folder / FIT_RESULTS).read_text())
    except (OSError, ValueError, TypeError):
        return False


__all__ = ["FitError", "fit_heads", "HOLDOUT_FRACTION"]
