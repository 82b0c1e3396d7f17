"""Build the neighbour index a web app shows: every image of one LaMem subset, scored, embedded and thumbnailed.

    python train/build_index.py runs/split1/best --data lamem/ --split 1 --subset test --out index/

Writes OUT/data/train-*.parquet (image_id, human score, predicted score, embedding, 128-px thumbnail) and
OUT/index_info.json (model, data, quantiles of the predicted scores); `NeighbourIndex.load(OUT)` reads them back.
"""

import argparse
import sys

from memorability.cards import without_local_paths
from memorability.cli import USER_ERRORS
from memorability.data import SPLIT_INDICES, SPLITS, describe_data, load_lamem
from memorability.inference import load_predictor
from memorability.neighbours import build_neighbour_index
from memorability.run_output import check_writable
from memorability.runtime import tune_allocator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="Model folder or Hub id.")
    parser.add_argument("--data", required=True, help="LaMem folder, Parquet table folder, Hub id or CSV.")
    parser.add_argument("--split", type=int, default=1, choices=SPLIT_INDICES, help="LaMem split index (default: 1).")
    parser.add_argument("--subset", default="test", choices=SPLITS, help="Which part to index (default: test).")
    parser.add_argument("--out", required=True, help="Folder to write the index to.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--num-workers", type=int, default=1, help="Processes decoding images (default: 1).")
    args = parser.parse_args(argv)
    tune_allocator()
    try:
        check_writable(args.out, replaced=True)
        dataset = load_lamem(args.data, split=args.split)[args.subset]
        predictor = load_predictor(args.model, precision=args.precision, batch_size=args.batch_size)
        index = build_neighbour_index(
            predictor,
            dataset,
            data_name=f"{describe_data(args.data)['name']} (split {args.split}, {args.subset})",
            model_name=without_local_paths(args.model),  # index_info.json may be pushed: no folder of this machine
            num_workers=args.num_workers,
        )
        index.save(args.out)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Indexed {len(index):,} images into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
