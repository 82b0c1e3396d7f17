"""Push a trained model to the Hugging Face Hub: weights, config, the model's code, image processor and model card.

    python hub/push_model.py runs/split1/best --repo-id ORG/memorability-resnet50
    python hub/push_model.py runs/split1/best --repo-id ORG/NAME --local-dir /tmp/preview   # offline preview

The card is rendered from model_card.md with the figures of eval_results.json (default: MODEL_DIR/eval/ or
MODEL_DIR/) and the settings of train_results.json (default: beside the model, or its run folder). Everything is
uploaded as one commit, so the repo never holds half a push.
"""

import argparse
import sys
from pathlib import Path

from huggingface_hub import HfApi

from memorability.publishing import find_eval_results, find_train_results, stage_model

sys.path.insert(0, str(Path(__file__).resolve().parent))  # push_options, beside this script
from push_options import add_push_arguments, run_push  # noqa: E402

TEMPLATE = Path(__file__).resolve().parents[1] / "model_card.md"


def main(argv: list[str] | None = None, api: HfApi | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="A saved model folder (config.json, model.safetensors, preprocessor).")
    add_push_arguments(parser)
    parser.add_argument("--eval-results", help="eval_results.json to show (default: found beside the model).")
    parser.add_argument("--train-results", help="train_results.json to show (default: found beside the model).")
    parser.add_argument("--dataset-repo", help="The Hub dataset the model was trained and evaluated on (ORG/NAME).")
    args = parser.parse_args(argv)
    eval_results = args.eval_results or find_eval_results(args.model_dir)
    train_results = args.train_results or find_train_results(args.model_dir)

    def stage(folder: Path) -> Path:
        return stage_model(
            args.model_dir, folder, args.repo_id, TEMPLATE, eval_results, train_results, args.dataset_repo
        )

    return run_push(stage, args, "model", api)


if __name__ == "__main__":
    sys.exit(main())
