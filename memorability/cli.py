"""The `memorability` command: score photos, generate sample data, build the demo model."""

import argparse
import csv
import sys
from pathlib import Path

from .errors import MemorabilityError
from .images import list_image_files
from .modeling_memorability import BackboneWeightsError

USER_ERRORS = (MemorabilityError, BackboneWeightsError)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Folders become their image files (recursively); files are kept whatever their extension."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths.extend(list_image_files(path))
        elif path.exists():
            paths.append(path)
        else:
            raise MemorabilityError(f"{item}: no such file or folder.")
    if not paths:
        raise MemorabilityError(f"No image files found in {', '.join(inputs)}.")
    return paths


def command_predict(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .inference import load_predictor
    from .runtime import tune_allocator

    tune_allocator()
    paths = expand_inputs(args.inputs)
    predictor = load_predictor(args.model, device=args.device, precision=args.precision, batch_size=args.batch_size)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    failed = 0
    with out.open("w", newline="") as handle, tqdm(total=len(paths), desc="scoring", unit="img") as progress:
        writer = csv.writer(handle)
        writer.writerow(["path", "score", "error"])
        for row in predictor.score_files(paths, num_workers=args.num_workers, progress=progress):
            failed += row.error is not None
            writer.writerow([row.path, "" if row.score is None else f"{row.score:.6f}", row.error or ""])
    print(f"Wrote {out}: {len(paths) - failed} scored, {failed} failed.")
    if failed:
        print(f"{failed} file(s) could not be read; see the error column of {out}.", file=sys.stderr)
    return 1 if failed else 0


def command_sample_data(args: argparse.Namespace) -> int:
    from .sample_data import make_sample_data

    root = make_sample_data(args.out, n=args.n, seed=args.seed, size=args.size, noise=args.noise)
    print(f"Wrote {args.n} sample images with LaMem-format split files to {root} (rule: {root / 'README.txt'}).")
    return 0


def command_demo_model(args: argparse.Namespace) -> int:
    from .demo import build_demo_model

    target = build_demo_model(args.out, force=args.force)
    print(f"Demo model ready in {target} (scores mean nothing about real photos).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memorability", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="Score image files or folders into a CSV.")
    predict.add_argument("inputs", nargs="+", help="Image files and/or folders (searched recursively).")
    predict.add_argument("--model", help="Model folder or Hub id (default: $MEMORABILITY_MODEL, else the demo model).")
    predict.add_argument("--out", default="scores.csv", help="CSV to write: path, score, error (default: scores.csv).")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--num-workers", type=int, default=2, help="Processes decoding images (default: 2).")
    predict.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: a GPU where there is one).")
    predict.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    predict.set_defaults(run=command_predict)

    sample = commands.add_parser("sample-data", help="Write generated LaMem-format sample data with a known score rule.")
    sample.add_argument("out", help="Folder to write (images/, splits/, clean_scores.csv, README.txt).")
    sample.add_argument("--n", type=int, default=2000, help="Number of images (default: 2000).")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--size", type=int, default=80, help="Image side in pixels (default: 80).")
    sample.add_argument("--noise", type=float, default=0.06, help="Score noise standard deviation (default: 0.06).")
    sample.set_defaults(run=command_sample_data)

    demo = commands.add_parser("demo-model", help="Build (or find) the demo model trained on sample data.")
    demo.add_argument("--out", help="Folder for the model (default: ~/.cache/memorability/demo-model).")
    demo.add_argument("--force", action="store_true", help="Rebuild even if it exists.")
    demo.set_defaults(run=command_demo_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
