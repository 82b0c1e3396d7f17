"""Evaluate a model on LaMem's five-split protocol (or the test split of a CSV of scored photos).

    python train/evaluate.py runs/split1/best --data lamem/ --out-dir runs/split1/eval

Writes eval_results.json (per split and mean ± sd of Spearman ρ, Pearson r, MSE, with the data they came from)
and scatter.png, and prints a table. The model card (hub/push_model.py) reads eval_results.json.
"""

import argparse
import sys

from memorability.cli import USER_ERRORS
from memorability.evaluation import evaluate_model, format_table
from memorability.inference import PRECISIONS
from memorability.runtime import tune_allocator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="Model folder or Hub id.")
    parser.add_argument("--data", required=True, help="LaMem folder, Parquet table folder, Hub id or CSV.")
    parser.add_argument("--out-dir", help="Where to write eval_results.json and scatter.png (default: MODEL/eval).")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--precision", default="auto", choices=PRECISIONS,
        help="auto (default): the form `memorability predict` and the Space score with, the fastest on this device.",
    )  # fmt: skip
    parser.add_argument("--num-workers", type=int, default=2)
    args = parser.parse_args(argv)
    tune_allocator()
    out_dir = args.out_dir or f"{args.model.rstrip('/')}/eval"
    try:
        results = evaluate_model(
            args.model, args.data, out_dir, args.batch_size, args.precision, args.num_workers
        )
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(results))
    print(f"Wrote {out_dir}/eval_results.json and scatter.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
