"""Train a memorability model.

    accelerate launch --config_file train/accelerate/single.yaml train/train.py --data lamem/ --split 1 \
        --output-dir runs/split1
    python train/train.py --data my_photos.csv --output-dir runs/mine --backbone-weights none

Defaults come from train/config.yaml (or --config FILE); every key is also a flag. See --help.
"""

import sys
from pathlib import Path

from accelerate import PartialState

from memorability.cli import USER_ERRORS
from memorability.runtime import tune_allocator
from memorability.training import train
from memorability.training_args import parse_training_arguments

DEFAULT_CONFIG = Path(__file__).with_name("config.yaml")


def main(argv: list[str] | None = None) -> int:
    arguments = parse_training_arguments(argv, DEFAULT_CONFIG)
    tune_allocator()
    try:
        summary = train(arguments)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if PartialState().is_main_process and summary["best_epoch"] is not None:
        print(f"Best validation Spearman {summary['best_val_spearman']:.4f} on {summary['best_val_n']} images "
              f"(epoch {summary['best_epoch']}); model in {Path(arguments.output_dir) / summary['kept']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
