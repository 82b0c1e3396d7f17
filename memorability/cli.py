"""The `memorability` command: score photos, generate sample data, build the demo model."""

import argparse
import sys
from pathlib import Path

from .backbones import UnsupportedBackboneError
from .errors import MemorabilityError
from .modeling_memorability import BackboneWeightsError

USER_ERRORS = (MemorabilityError, BackboneWeightsError, UnsupportedBackboneError)
PREDICT_DESCRIPTION = """Score images into a CSV (path, score, error), in input order.

Several processes share the work (one CPU core or GPU each) when launched with Accelerate:
  accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \
      -m memorability.cli predict photos/ --out scores.csv
(or --config_file train/accelerate/multi.yaml --num_processes 2 in a clone of the repository).
Parts are written to OUT.parts/ as they finish; rerun the same command after a kill to resume: a part is
reused only if the model, the precision and its images (name, size, modification time) are unchanged.
An unreadable image becomes a row with an error, and the exit status is then 1 (2 for a mistake in the command)."""


QUANTIZE_DESCRIPTION = """Make MODEL/onnx/model_int8.onnx: the model's network in int8 for ONNX Runtime on the CPU
(about 1.5-2x the bf16 speed on a 2-core Zen 4), which `memorability predict` then uses by default.

A third of the calibration photos are held out, and int8 is compared with fp32 on them: unless Spearman rho >= 0.99
and the 99th percentile of |score difference| <= 0.01, nothing is written (--allow-lossy keeps it anyway). How it was
made and the fidelity measured are recorded in MODEL/onnx/quantization.json; quantize again after saving new
weights into MODEL (a stale int8 file is refused)."""


def count(minimum: int):
    """An argparse type: an integer of at least `minimum`, refused in one sentence otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum of {minimum}")
        return value

    return parse


def command_predict(args: argparse.Namespace) -> int:
    from .distributed import make_accelerator
    from .inference import load_predictor
    from .run_output import check_writable
    from .scoring_inputs import collect_inputs
    from .sharding import parts_folder, run_record_path, score_to_csv

    check_writable(args.out)
    inputs = collect_inputs(args.inputs, exclude=parts_folder(Path(args.out)), root=args.root)
    accelerator = make_accelerator()
    device = args.device or accelerator.device
    predictor = load_predictor(args.model, device, args.precision, batch_size=args.batch_size, compile=args.compile)
    summary = score_to_csv(
        predictor,
        inputs,
        args.out,
        accelerator,
        num_workers=args.num_workers,
        chunk_size=args.chunk_size,
        keep_parts=args.keep_parts,
        model_argument=args.model,
    )
    if summary is None:  # not the first process: that one reports
        return 0
    if summary.reused_parts:
        print(f"Resumed: {summary.reused_parts} of {summary.total_parts} parts were already done.")
    print(
        f"Wrote {summary.out}: {summary.scored} scored, {summary.failed} failed "
        f"({summary.images_per_second:.1f} img/s, {summary.processes} process(es), {predictor.form.label}); "
        f"how it was scored: {run_record_path(summary.out)}."
    )
    if summary.failed:
        print(f"{summary.failed} file(s) could not be read; see the error column of {summary.out}.", file=sys.stderr)
    return 1 if summary.failed else 0


def command_quantize(args: argparse.Namespace) -> int:
    from .int8 import INT8_FILE
    from .quantization import quantize_model

    record = quantize_model(args.model, args.calibration, allow_lossy=args.allow_lossy, max_images=args.max_images)
    fidelity = record["fidelity"]
    verdict = "within" if record["meets_thresholds"] else "OUTSIDE (kept: --allow-lossy)"
    print(
        f"Wrote {Path(args.model) / INT8_FILE}: calibrated on {record['calibration']['images']} images; against fp32 "
        f"on {fidelity['images']} held-out ones, Spearman ρ {fidelity['spearman']:.4f}, p99 |Δscore| "
        f"{fidelity['p99_abs_difference']:.4f}, embedding cosine {fidelity['embedding_cosine_mean']:.4f}, "
        f"neighbour top-10 overlap {fidelity['neighbour_top10_overlap']:.2f} ({verdict} the thresholds)."
    )
    return 0


def command_import(args: argparse.Namespace) -> int:
    from .resmem_import import import_resmem

    out = import_resmem(args.out)
    print(f"Wrote {out}: ResMem's published weights as a model folder (noncommercial licence: {out / 'LICENSE'}).")
    return 0


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

    predict = commands.add_parser(
        "predict",
        help="Score image files, folders, a CSV or a Parquet table into a CSV.",
        description=PREDICT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument(
        "inputs",
        nargs="+",
        help="Image files, folders (searched recursively), CSV files (column 'image', paths relative to the CSV) "
        "or Parquet tables (a .parquet file or a folder of them, with a datasets Image column 'image').",
    )
    predict.add_argument("--model", help="Model folder or Hub id (default: $MEMORABILITY_MODEL, else the demo model).")
    predict.add_argument(
        "--root",
        help="Read nothing outside this folder: every input must lie in it, and a path that a CSV or Parquet table "
        "names outside it (links resolved) becomes an error row instead of being read. For services that score "
        "tables they did not write.",
    )
    predict.add_argument("--out", default="scores.csv", help="CSV to write: path, score, error (default: scores.csv).")
    predict.add_argument("--batch-size", type=count(1), default=32)
    predict.add_argument(
        "--num-workers", type=count(0), default=1, help="Processes decoding images, per scoring process (default: 1)."
    )
    predict.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: a GPU where there is one).")
    predict.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "fp16", "int8"),
        help="auto: on a CPU, the fastest form of the model there, measured once per CPU and kept: fp32 or bf16 "
        "(bf16 only where the CPU computes it natively), channels_last or not, or the model's int8 file (made by "
        "`memorability quantize`) where it runs at least 1.1x as fast as the best float form; on a GPU, bf16 "
        "(fp16 where it lacks bf16). int8 runs on the CPU in ONNX Runtime (default: auto).",
    )
    predict.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model: about 10%% faster per batch after 20-30 s of compiling (2-core CPU); "
        "for long runs.",
    )
    predict.add_argument(
        "--chunk-size",
        type=count(1),
        default=1024,
        help="Images per part file in OUT.parts/; a killed run, rerun, skips the finished parts (default: 1024).",
    )
    predict.add_argument("--keep-parts", action="store_true", help="Keep OUT.parts/ after writing the CSV.")
    predict.set_defaults(run=command_predict)

    quantize = commands.add_parser(
        "quantize",
        help="Make the model's int8 file for fast CPU scoring, calibrated on real-looking photos.",
        description=QUANTIZE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    quantize.add_argument("model", help="A saved model folder; the int8 file is written into it (onnx/).")
    quantize.add_argument(
        "--calibration",
        help="Images to calibrate on: a folder (or CSV, Parquet table, zip) of photos like the ones you will score, "
        "or a neighbour index folder (train/build_index.py). Default: the photographs that ship with scikit-image, "
        "matplotlib and scikit-learn, whole and in crops.",
    )
    quantize.add_argument(
        "--max-images",
        type=count(30),
        default=300,
        help="At most this many images of --calibration, sampled (default: 300; the default photos are all used).",
    )
    quantize.add_argument(
        "--allow-lossy",
        action="store_true",
        help="Keep the int8 file even when its scores stray from fp32 beyond the thresholds (recorded as such).",
    )
    quantize.set_defaults(run=command_quantize)

    imported = commands.add_parser(
        "import",
        help="Convert a published memorability model installed from PyPI into a model folder: resmem.",
        description="Convert the weights of an installed published model into an ordinary model folder. resmem: "
        "ResMem (Needell & Bainbridge 2022), from `pip install --no-deps resmem==1.1.6` (490 MB), under its "
        "noncommercial licence, whose text goes into the folder beside the weights.",
    )
    imported.add_argument("family", choices=("resmem",), help="The published model to convert.")
    imported.add_argument("out", help="The model folder to write (replaced whole if it exists).")
    imported.set_defaults(run=command_import)

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
    from .runtime import tune_allocator

    args = build_parser().parse_args(argv)
    tune_allocator()  # before the first tensor: every command allocates large blocks (see memorability.runtime)
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
