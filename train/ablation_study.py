"""Ablation study: score every image as it is and under each ablation, test the changes, write a report.

    python train/ablation_study.py runs/split1/best --data lamem/ --split 1 --subset test --out-dir runs/study
    python train/ablation_study.py MODEL --images my_photos/ --out-dir runs/study_photos
    accelerate launch --config_file train/accelerate/multi.yaml --num_processes 2 train/ablation_study.py MODEL \
        --data lamem/ --out-dir runs/study

Writes report.md, results.json, per_image.csv and changes.png / spearman.png / examples.png to --out-dir, and
keeps per-image scores in OUT_DIR/cache: rerun the same command after an interruption and done images are skipped.
"""

import argparse
import sys

from memorability.ablations import ablation_names
from memorability.cli import USER_ERRORS
from memorability.gradcam import DEFAULT_CAM_METHOD
from memorability.gradcam import METHODS as CAM_METHODS
from memorability.runtime import tune_allocator
from memorability.study import StudyConfig, StudyError, run_study
from memorability.study.stats import BOOTSTRAP_RESAMPLES


def parse_params(values: list[str]) -> dict[str, dict[str, float]]:
    """`blur.sigma=0.03` → {"blur": {"sigma": 0.03}}; the ablation checks names and ranges later."""
    params: dict[str, dict[str, float]] = {}
    for value in values:
        target, _, number = value.partition("=")
        ablation, _, name = target.partition(".")
        try:
            parsed = float(number)
        except ValueError:
            parsed = None
        if not (ablation and name) or parsed is None:
            raise StudyError(f"--param {value!r}: expected ABLATION.PARAMETER=NUMBER, e.g. blur.sigma=0.03.")
        params.setdefault(ablation, {})[name] = parsed
    return params


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="Model folder or Hub id.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="LaMem folder, Parquet table folder, Hub id or CSV of scored photos.")
    source.add_argument("--images", help="Any folder of images (searched recursively); no human scores.")
    parser.add_argument("--split", type=int, default=1, help="LaMem split index 1..5 (default: 1).")
    parser.add_argument("--subset", default="test", help="train, validation or test (default: test).")
    parser.add_argument("--out-dir", required=True, help="Folder for the report, results and cache.")
    parser.add_argument(
        "--ablations", default=",".join(ablation_names()), help="Comma-separated ablations (default: all six)."
    )
    parser.add_argument(
        "--param", action="append", default=[], metavar="ABLATION.NAME=VALUE",
        help="Override an ablation parameter, e.g. --param blur.sigma=0.03 (repeatable).",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, help="Study only the first N images.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--num-workers", type=int, default=0, help="Processes decoding and ablating pictures beside the scoring one."
    )
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--seed", type=int, default=0, help="Bootstrap seed (default: 0).")
    parser.add_argument("--bootstrap", type=int, default=BOOTSTRAP_RESAMPLES, help="Bootstrap resamples.")
    parser.add_argument("--examples", type=int, default=3, help="Images in the example grid (0: none).")
    parser.add_argument(
        "--cam-method", default=DEFAULT_CAM_METHOD, choices=tuple(CAM_METHODS),
        help=f"Heat map of the example grid (default: {DEFAULT_CAM_METHOD}).",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="Discard the cache of an earlier study in --out-dir.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_allocator()
    try:
        config = StudyConfig(
            model=args.model, out_dir=args.out_dir, data=args.data, images=args.images, split=args.split,
            subset=args.subset, ablations=[name.strip() for name in args.ablations.split(",") if name.strip()],
            params=parse_params(args.param), limit=args.limit, batch_size=args.batch_size, num_workers=args.num_workers,
            precision=args.precision,
            seed=args.seed, n_resamples=args.bootstrap, examples=args.examples, cam_method=args.cam_method,
            overwrite=args.overwrite, progress=not args.no_progress,
        )  # fmt: skip
        results = run_study(config)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if results is not None:  # the main process
        print(f"Wrote {args.out_dir}/report.md ({results['n_images']} images, {results['num_processes']} process(es))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
