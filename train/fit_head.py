"""Fit one light head per LaMem split index on cached embeddings, and save them with the encoder as one model.

    python train/fit_head.py runs/clip-l14.emb --data lamem/ --out runs/clip-l14-ridge
    python train/fit_head.py runs/clip-l14.emb --data lamem/ --out runs/clip-l14-mlp --head mlp

Head i is trained on train_i with split i's scores and chosen on val_i (ridge: the penalty; MLP: early stopping);
OUT/eval_results.json reports LaMem's protocol, head i on test_i, and the mean of the five (a CSV of scored photos
gives one head). OUT is a model folder that `from_pretrained`, `memorability predict` and the Space load: its
score is the mean of the heads and its `uncertainty` their spread, checked on held-out images (--holdout).
"""

import argparse
import sys

from memorability.cli import USER_ERRORS
from memorability.evaluation import format_table
from memorability.fitted_heads import HOLDOUT_FRACTION, fit_heads
from memorability.head_fitting import HEAD_KINDS
from memorability.runtime import tune_allocator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("embeddings", help="A folder written by train/embed.py.")
    parser.add_argument("--data", required=True, help="The data the embeddings were made from (its splits, scores).")
    parser.add_argument("--out", required=True, help="The model folder to write.")
    parser.add_argument("--head", default="ridge", choices=HEAD_KINDS, help="ridge (default, seconds) or mlp.")
    parser.add_argument(
        "--holdout", type=float, default=HOLDOUT_FRACTION,
        help=f"Share of the images no head sees, to check the spread on (default: {HOLDOUT_FRACTION}).",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.holdout < 0.5:
        parser.error(f"--holdout must lie in (0, 0.5), not {args.holdout}")
    tune_allocator()
    try:
        results = fit_heads(args.embeddings, args.data, args.out, args.head, args.holdout, args.seed)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(results))
    calibration = results["uncertainty_calibration"]
    if calibration["measured"]:
        print(f"Spread on {calibration['images']:,} held-out images: {calibration['within_1_sigma']:.0%} within 1σ, "
              f"{calibration['within_2_sigma']:.0%} within 2σ, ρ(σ, |error|) = "
              f"{calibration['spearman_sigma_error']:.3f}")  # fmt: skip
    print(f"Wrote the model to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
