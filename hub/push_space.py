"""Push the Gradio Space: space/ (app.py, requirements.txt, README.md with the Space's front matter) plus a vendored
copy of the `memorability` package, so the Space imports it without PyPI.

    python hub/push_space.py --repo-id ORG/memorability
    python hub/push_space.py --repo-id ORG/memorability --local-dir /tmp/space   # offline preview

The front matter is checked first: sdk gradio, sdk_version equal to the gradio pin in requirements.txt, app_file.
"""

import argparse
import sys
from pathlib import Path

from huggingface_hub import HfApi

from memorability.publishing import stage_space

sys.path.insert(0, str(Path(__file__).resolve().parent))  # push_options, beside this script
from push_options import add_push_arguments, run_push  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None, api: HfApi | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_push_arguments(parser)
    parser.add_argument("--space-dir", default=str(ROOT / "space"), help="The Space folder (default: space/).")
    args = parser.parse_args(argv)

    def stage(folder: Path) -> Path:
        return stage_space(args.space_dir, folder, pinned_requirements=ROOT / "requirements.txt")

    return run_push(stage, args, "space", api)


if __name__ == "__main__":
    sys.exit(main())
