"""Does training learn? Sample data with a known rule → a tiny ResNet from scratch on CPU, against two baselines.

The ceiling is what a perfect model could reach: Spearman ρ between the noise-free and the noisy held-out scores.
Baselines, in the same run: the training mean (a constant: ρ undefined, so its MSE is the figure) and a ridge
regression on 8×8 thumbnails' pixels. Goal: held-out ρ ≥ 0.9 × ceiling and clearly above both baselines.
All figures are on generated sample data, never LaMem.

    python bench/learnability.py [--n 2000] [--epochs 15]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from memorability.data import load_lamem
from memorability.demo import sample_training_arguments
from memorability.evaluation import evaluate_model
from memorability.metrics import regression_metrics
from memorability.runtime import tune_allocator
from memorability.sample_data import make_sample_data, read_clean_scores
from memorability.training import BEST_DIR, train

RESULTS = Path(__file__).resolve().parent / "results"


def thumbnails(dataset) -> np.ndarray:
    """Each image as the 192 pixel values of an 8×8 RGB thumbnail, scaled to [0, 1]."""
    return np.stack(
        [np.asarray(image.convert("RGB").resize((8, 8), Image.BILINEAR), dtype=np.float64).ravel() / 255 for image in dataset["image"]]
    )


def ridge_baseline(splits) -> dict[str, float]:
    """Closed-form ridge on thumbnails, its penalty chosen on the validation split."""
    train_x, val_x, test_x = (thumbnails(splits[name]) for name in ("train", "validation", "test"))
    mean, scale = train_x.mean(0), train_x.std(0) + 1e-8
    standardise = lambda x: np.hstack([(x - mean) / scale, np.ones((len(x), 1))])  # noqa: E731
    train_x, val_x, test_x = map(standardise, (train_x, val_x, test_x))
    train_y = np.asarray(splits["train"]["score"], dtype=np.float64)
    best = None
    for alpha in 10.0 ** np.arange(-2, 5):
        weights = np.linalg.solve(train_x.T @ train_x + alpha * np.eye(train_x.shape[1]), train_x.T @ train_y)
        rho = regression_metrics(val_x @ weights, splits["validation"]["score"])["spearman"]
        if best is None or rho > best[0]:
            best = (rho, weights, alpha)
    metrics = regression_metrics(test_x @ best[1], splits["test"]["score"])
    return {**metrics, "alpha": float(best[2])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="Sample images (default 2000).")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tune_allocator()
    with tempfile.TemporaryDirectory() as work:
        data = make_sample_data(Path(work) / "sample", n=args.n, seed=args.seed)
        splits = load_lamem(data, split=1)
        clean = read_clean_scores(data)
        test_ids, test_scores = splits["test"]["image_id"], splits["test"]["score"]
        ceiling = regression_metrics([clean[i].clean_score for i in test_ids], test_scores)["spearman"]
        mean_prediction = np.full(len(test_scores), np.mean(splits["train"]["score"]))
        mean_baseline = regression_metrics(mean_prediction, test_scores)
        ridge = ridge_baseline(splits)
        start = time.perf_counter()
        summary = train(sample_training_arguments(data, Path(work) / "run", args.epochs, args.seed))
        minutes = (time.perf_counter() - start) / 60
        model = evaluate_model(Path(work) / "run" / BEST_DIR, data, precision="fp32", num_workers=0)["splits"]["1"]
    report = {
        "data": f"generated sample data (n={args.n}, seed={args.seed}), test split 1 ({len(test_scores)} images)",
        "ceiling_spearman": ceiling,
        "model": {**model, "train_minutes": minutes, "best_epoch": summary["best_epoch"]},
        "baseline_training_mean": mean_baseline,
        "baseline_ridge_8x8": ridge,
        "model_over_ceiling": model["spearman"] / ceiling,
        "goal_met": bool(model["spearman"] >= 0.9 * ceiling and model["spearman"] > ridge["spearman"] + 0.1),
    }
    print(f"Learnability on {report['data']}")
    print(f"{'predictor':28} {'Spearman':>9} {'Pearson':>8} {'MSE':>8}")
    rows = [("ceiling (noise-free score)", ceiling, float("nan"), float("nan")),
            ("tiny ResNet (ours)", model["spearman"], model["pearson"], model["mse"]),
            ("ridge on 8x8 thumbnails", ridge["spearman"], ridge["pearson"], ridge["mse"]),
            ("training mean", mean_baseline["spearman"], mean_baseline["pearson"], mean_baseline["mse"])]  # fmt: skip
    for name, rho, r, mse in rows:
        print(f"{name:28} {rho:9.4f} {r:8.4f} {mse:8.5f}")
    print(f"model / ceiling = {report['model_over_ceiling']:.3f}; training took {minutes:.1f} min; goal met: {report['goal_met']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "learnability.json").write_text(json.dumps(report, indent=2))
    return 0 if report["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
