"""Push LaMem to the Hugging Face Hub as Parquet: one row per image, the image stored once, every split index's
score and split as columns, and a dataset card with the terms of use. Private unless --public.

    python hub/push_dataset.py lamem/ --repo-id ORG/lamem
    python hub/push_dataset.py lamem/ --repo-id ORG/lamem --local-dir /tmp/lamem-parquet   # offline preview

`memorability.data.load_lamem("ORG/lamem", split=i)` reads it back.
"""

import argparse
import sys
from pathlib import Path

from huggingface_hub import HfApi

from memorability.publishing import stage_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))  # push_options, beside this script
from push_options import add_push_arguments, run_push  # noqa: E402

TEMPLATE = Path(__file__).resolve().parents[1] / "dataset_card.md"


def main(argv: list[str] | None = None, api: HfApi | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lamem_root", help="The LaMem folder: images/ and splits/{train,val,test}_{1..5}.txt.")
    add_push_arguments(parser, private_by_default=True)
    parser.add_argument(
        "--on-missing", default="error", choices=("error", "drop"), help="Listed images absent from images/."
    )
    args = parser.parse_args(argv)

    def stage(folder: Path) -> Path:
        return stage_dataset(args.lamem_root, folder, args.repo_id, TEMPLATE, on_missing=args.on_missing)

    return run_push(stage, args, "dataset", api)


if __name__ == "__main__":
    sys.exit(main())
