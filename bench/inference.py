"""Inference speed on this CPU: our ResNet50 (224 px) in fp32, in bf16 + channels_last (the predictor's default on
a CPU with native bf16: a bf16 copy of the backbone with batch norm folded), the same compiled, two earlier
defaults (bf16 without folding, bf16 under autocast), and in int8 (the file `memorability quantize` makes, run by
ONNX Runtime: what `memorability predict` uses where a model has it), with and without the allocator setting,
against ResMem (`pip install resmem`: ResNet152 + an AlexNet-like branch, 227 px) and a bare torchvision ResNet50
(classifier head: what this CPU does for the network alone) in each form a user could pick: fp32, fp32 +
channels_last, and bf16 + channels_last where the CPU computes bf16 natively, in the same run. "ours, auto" is what
`load_predictor` gives (the form it measured fastest on this CPU, `memorability.forms`): its goal is ≥ 0.95× the
fastest bare form at batch 32, on whatever CPU this runs on. "ours, auto, with its int8 file" says whether auto picks
int8 here (only where it is measured 1.1× the best float form; the random network's int8 file misses the fidelity
thresholds, which keep auto from it, so this row asks the rule with the file a candidate, as for a trained model's). int8's goals are relative to the bare network in bf16
+ channels_last: ≥ 1.5× its img/s at batch 32, ≤ 0.67× its ms at batch 1.

Each configuration runs in a fresh process, because the glibc allocator reads its environment variables
(MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_) at start. Allocator settings:
  default   glibc as it comes (MEMORABILITY_DEFAULT_ALLOCATOR=1 stops our own mallopt call);
  mallopt   what our entry points do: `memorability.runtime.tune_allocator()` at start;
  env       the same thresholds through the environment, the only way to give them to ResMem.
Model forward only, on random pixels (decoding is in bench/end_to_end.py); ResMem under torch.inference_mode, its best
case. Times are medians; batch 1 is reported as ms per image too.

    python bench/inference.py [--batch1-iterations 30] [--batch32-iterations 6] [--no-compile] [--no-resmem]
                              [--precision int8] [--rounds 1] [--ratio-rounds 3] [--quiet-wait 120]

The rows the goals compare (ours in bf16 and int8, the bare network) are measured --ratio-rounds times, alternating,
and keep their best figures: single runs moved by up to 30% on this VM with nothing else running.

The int8 files are made once per run, for the same random-weight ResNet50, whole and with the stem in fp32 (seconds
each: `quantize_model` with its default calibration photos; fidelity does not matter for speed and is measured by
bench/int8_fidelity.py).
"""

import argparse
import copy
import importlib.util
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from machine import (
    OtherProcesses, WorkerFailed, add_quiet_wait, json_line, median_seconds, run_python, save_result, wait_until_quiet,
)

from memorability.runtime import ALLOCATOR_ENV, cpu_has_fast_bf16, tune_allocator

GOALS = {"batch32_images_per_s": 80.0, "ratio_same_allocator": 5.0, "batch1_ms": 25.0, "auto_vs_fastest_bare": 0.95}
INT8_GOALS = {"batch32_vs_bare": 1.5, "batch1_ms_vs_bare": 0.67}  # against the bare torchvision ResNet50 in bf16
# (model, precision, allocator): every configuration measured, ours first.
CONFIGURATIONS = [
    ("ours", "fp32", "default"),
    ("ours", "fp32", "mallopt"),
    ("ours", "bf16-autocast", "mallopt"),
    ("ours", "bf16-unfolded", "mallopt"),
    ("ours", "bf16", "default"),
    ("ours", "bf16", "mallopt"),
    ("ours", "bf16", "env"),
    ("ours", "bf16+compile", "mallopt"),
    ("ours", "int8", "mallopt"),
    ("ours", "int8-stem", "mallopt"),
    ("ours", "auto", "mallopt"),
    ("ours", "auto-int8", "mallopt"),
    ("torchvision", "fp32", "mallopt"),
    ("torchvision", "fp32-cl", "mallopt"),
    ("torchvision", "bf16", "mallopt"),
    ("resmem", "fp32", "default"),
    ("resmem", "fp32", "env"),
]
# What the goals compare, measured --ratio-rounds times: single runs on this VM moved by up to 30% with no other
# process about (the host's share of the CPU), so each keeps its best figures, from runs alternating with the others.
RATIO_CONFIGURATIONS = {
    ("ours", "bf16", "mallopt"), ("ours", "int8", "mallopt"), ("ours", "int8-stem", "mallopt"),
    ("ours", "auto", "mallopt"), ("torchvision", "fp32", "mallopt"), ("torchvision", "fp32-cl", "mallopt"),
    ("torchvision", "bf16", "mallopt"),
}  # fmt: skip
BARE_FORMS = {"fp32": (torch.float32, torch.contiguous_format), "fp32-cl": (torch.float32, torch.channels_last),
              "bf16": (torch.bfloat16, torch.channels_last)}  # fmt: skip
LABELS = {
    "auto": "auto (measured form)",
    "auto-int8": "auto, int8 file a candidate",
    "fp32-cl": "fp32 + channels_last",
    "fp32": "fp32",
    "bf16-autocast": "bf16 autocast + CL",
    "bf16-unfolded": "bf16 + CL, BN not folded",
    "bf16": "bf16 + channels_last",
    "bf16+compile": "bf16 + CL + torch.compile",
    "int8": "int8, ONNX Runtime",
    "int8-stem": "int8, stem in fp32",
}


def build_forward(model: str, precision: str, folders: dict[str, str] | None = None):
    """A function running one forward pass of `model` on a ready batch, the input size it takes, and for ours loaded
    by `load_predictor` the form it chose."""
    if model == "torchvision":  # the bare network in one form a user could pick: this CPU's ceiling for it
        import torchvision

        dtype, layout = BARE_FORMS[precision]
        network = torchvision.models.resnet50().eval().to(dtype, memory_format=layout)

        @torch.inference_mode()
        def bare(pixels: torch.Tensor) -> torch.Tensor:
            return network(pixels.to(dtype, memory_format=layout)).float()

        return bare, 224, None
    if model == "resmem":
        from resmem import ResMem

        resmem = ResMem(pretrained=True).eval()
        return torch.inference_mode()(resmem), 227, None
    from memorability.image_processing import make_image_processor
    from memorability.inference import MemorabilityPredictor, load_predictor
    from memorability.presets import build_model

    if precision == "auto-int8":  # auto's rule with the int8 file a candidate, whatever this random network's fidelity
        from memorability.fingerprint import model_fingerprint
        from memorability.inference import Int8Predictor, choose_form, load_model
        from memorability.int8 import Int8Session

        model, processor = load_model(folders["int8"])
        session = Int8Session(folders["int8"], model_fingerprint(model, processor))
        form = choose_form(model, processor, torch.device("cpu"), "auto", session)
        predictor = (Int8Predictor(model, processor, session) if form.precision == "int8" else
                     MemorabilityPredictor(model, processor, "cpu", form.precision, channels_last=form.channels_last))
        return (lambda pixels: predictor.forward(pixels).scores), 224, predictor.form.label
    if precision.startswith(("int8", "auto")):  # what `memorability predict` loads: the int8 file, or auto's choice
        folder = folders["float" if precision == "auto" else precision]
        predictor = load_predictor(folder, "cpu", "int8" if precision.startswith("int8") else "auto")
        return (lambda pixels: predictor.forward(pixels).scores), 224, predictor.form.label

    network = build_model("resnet50", backbone_weights="none")
    if precision == "bf16-autocast":  # what the predictor did before: fp32 weights cast at every call
        network = network.eval().to(memory_format=torch.channels_last)

        @torch.inference_mode()
        def run(pixels: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return network(pixel_values=pixels.contiguous(memory_format=torch.channels_last)).scores.float()

        return run, 224, None
    compiled = precision.endswith("+compile")
    processor = make_image_processor()
    dtype = precision.split("+")[0].split("-")[0]
    predictor = MemorabilityPredictor(network, processor, "cpu", dtype, compile=compiled)
    if precision == "bf16-unfolded":  # what the predictor did before folding batch norm into the convolutions
        unfolded = copy.deepcopy(network).eval().requires_grad_(False)
        unfolded.backbone.to(torch.bfloat16, memory_format=torch.channels_last)
        predictor.run = unfolded
    return (lambda pixels: predictor.forward(pixels).scores), 224, None


def measure(
    model: str, precision: str, batch1_iterations: int, batch32_iterations: int, folders: dict[str, str] | None
) -> dict:
    """(In the worker process.) Batch 1 and batch 32 timings of one configuration."""
    load = os.getloadavg()[0]
    tuned = tune_allocator()
    torch.manual_seed(0)
    started = time.perf_counter()
    run, size, form = build_forward(model, precision, folders)
    load_seconds = time.perf_counter() - started  # for int8: the predictor from the saved folder, session included
    batch1, first1 = median_seconds(run, torch.randn(1, 3, size, size), 3, batch1_iterations)
    batch32, first32 = median_seconds(run, torch.randn(32, 3, size, size), 2, batch32_iterations)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    run(torch.randn(32, 3, size, size))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {
        "form": form,
        "load_average_1min": load,
        "mallopt_applied": tuned,
        "threads": torch.get_num_threads(),
        "load_s": load_seconds,
        "batch1_ms": batch1 * 1000,
        "batch1_images_per_s": 1 / batch1,
        "batch32_images_per_s": 32 / batch32,
        "first_call_s": {"batch1": first1, "batch32": first32},
        # Page faults do not depend on other processes: they show the allocator setting at work, noise or not.
        "page_faults_per_batch32": faults,
    }


def worker_environment(allocator: str, compile_cache: str, forms_cache: str) -> dict:
    """The allocator setting, GPUs hidden, and an empty compile cache: the first call shows a user's first compile.
    The forms measured by "auto" are kept in this run's own cache (`forms_cache`), shared by its workers."""
    env = {key: value for key, value in os.environ.items() if key not in ALLOCATOR_ENV}
    env |= {"CUDA_VISIBLE_DEVICES": "", "TORCHINDUCTOR_CACHE_DIR": compile_cache, "MEMORABILITY_CACHE": forms_cache}
    if allocator != "mallopt":
        env["MEMORABILITY_DEFAULT_ALLOCATOR"] = "1"
    else:
        env.pop("MEMORABILITY_DEFAULT_ALLOCATOR", None)
    if allocator == "env":
        env.update(ALLOCATOR_ENV)
    return env


def run_configuration(model: str, precision: str, allocator: str, args: argparse.Namespace) -> dict:
    """One configuration in its own process; a failure becomes a row with an error, not the end of the run."""
    row = {"model": model, "precision": precision, "allocator": allocator}
    arguments = [__file__, "--worker", model, precision, "--batch1-iterations", str(args.batch1_iterations)]
    arguments += ["--batch32-iterations", str(args.batch32_iterations)]
    if precision.startswith(("int8", "auto")):
        arguments += ["--folders", json.dumps(args.folders)]
    wait_until_quiet(args.quiet_wait)
    try:
        with OtherProcesses() as others, tempfile.TemporaryDirectory() as compile_cache:
            output = run_python(arguments, env=worker_environment(allocator, compile_cache, args.forms_cache))
    except WorkerFailed as error:
        return row | {"error": str(error)}
    return row | json_line(output) | {"others_cpu_share": others.share}


def wanted(model: str, precision: str, args: argparse.Namespace) -> bool:
    """Skip what was asked to be skipped, ResMem where it is not installed and bf16 where the CPU only emulates it;
    `--precision` keeps that precision of ours and the bare torchvision network it is compared with."""
    if precision.startswith("bf16") and not cpu_has_fast_bf16():
        return False
    if args.precision and model != "torchvision" and not (model == "ours" and precision.startswith(args.precision)):
        return False
    if model == "resmem" and (args.no_resmem or importlib.util.find_spec("resmem") is None):
        return False
    return not (precision.endswith("compile") and args.no_compile)


def saved_models(work: Path, int8: bool) -> dict[str, str]:
    """The random-weight ResNet50 of the "ours" rows, saved as it is ("float") and, with `int8`, twice with an int8
    file: the whole network in int8, and with the stem in fp32 (what `memorability quantize` falls back to; fidelity
    is not checked here: speed only)."""
    from memorability.image_processing import make_image_processor
    from memorability.presets import build_model
    from memorability.quantization import quantize_model

    torch.manual_seed(0)
    model, folders = build_model("resnet50", backbone_weights="none"), {}
    for name, stem in (("float", None), ("int8", False), ("int8-stem", True))[: 3 if int8 else 1]:
        model.save_pretrained(work / name)
        make_image_processor().save_pretrained(work / name)
        if stem is not None:
            print(f"making the int8 file of a random-weight ResNet50, stem in fp32: {stem} ...", flush=True)
            quantize_model(work / name, allow_lossy=True, stem_in_fp32=stem)
        folders[name] = str(work / name)
    return folders


def best_of(tries: list[dict]) -> dict:
    """One configuration's runs as one row: the best batch-1 and batch-32 figures (timeit's rule: noise only ever
    slows a run down), and how many runs there were."""
    done = [row for row in tries if "error" not in row]
    if not done:
        return tries[0]
    fastest1 = min(done, key=lambda row: row["batch1_ms"])
    fastest32 = max(done, key=lambda row: row["batch32_images_per_s"])
    picked = {key: fastest1[key] for key in ("batch1_ms", "batch1_images_per_s")}
    return fastest32 | picked | {"runs": len(done), "others_cpu_share": max(row["others_cpu_share"] for row in done)}


def find(rows: list[dict], model: str, precision: str, allocator: str) -> dict | None:
    for row in rows:
        if (row["model"], row["precision"], row["allocator"]) == (model, precision, allocator) and "error" not in row:
            return row
    return None


def summarise(rows: list[dict]) -> dict:
    """Ratios of our default (bf16 + channels_last, mallopt) to ResMem, and the goals, from this one run."""
    ours = find(rows, "ours", "bf16", "mallopt")
    resmem_tuned, resmem_default = find(rows, "resmem", "fp32", "env"), find(rows, "resmem", "fp32", "default")
    summary: dict = {"goals": GOALS, "int8_goals": INT8_GOALS}
    for batch in ("batch1_images_per_s", "batch32_images_per_s"):
        for name, resmem in (("same_allocator", resmem_tuned), ("resmem_defaults", resmem_default)):
            if ours and resmem:
                summary[f"ratio_{batch.split('_')[0]}_{name}"] = ours[batch] / resmem[batch]
    bare = find(rows, "torchvision", "bf16", "mallopt")
    if ours and bare:
        summary["ours_vs_bare_resnet50_batch32"] = ours["batch32_images_per_s"] / bare["batch32_images_per_s"]
    for precision in ("int8", "int8-stem"):
        int8 = find(rows, "ours", precision, "mallopt")
        if int8 and bare:
            speed = summary[f"{precision}_vs_bare_batch32"] = int8["batch32_images_per_s"] / bare["batch32_images_per_s"]
            latency = summary[f"{precision}_vs_bare_batch1_ms"] = int8["batch1_ms"] / bare["batch1_ms"]
            summary[f"goal_{precision}_batch32"] = speed >= INT8_GOALS["batch32_vs_bare"]
            summary[f"goal_{precision}_batch1"] = latency <= INT8_GOALS["batch1_ms_vs_bare"]
    bare_forms = [row for precision in BARE_FORMS if (row := find(rows, "torchvision", precision, "mallopt"))]
    auto = find(rows, "ours", "auto", "mallopt")
    if auto and bare_forms:
        fastest = max(bare_forms, key=lambda row: row["batch32_images_per_s"])
        summary["auto_form"] = auto["form"]
        summary["fastest_bare_form"] = LABELS[fastest["precision"]]
        summary["auto_vs_fastest_bare_batch32"] = auto["batch32_images_per_s"] / fastest["batch32_images_per_s"]
        summary["goal_auto_vs_fastest_bare"] = summary["auto_vs_fastest_bare_batch32"] >= GOALS["auto_vs_fastest_bare"]
    auto_int8 = find(rows, "ours", "auto-int8", "mallopt")
    if auto_int8:
        summary["auto_with_int8_file_form"] = auto_int8["form"]
    if ours:
        summary["goal_batch32"] = ours["batch32_images_per_s"] >= GOALS["batch32_images_per_s"]
        summary["goal_batch1"] = ours["batch1_ms"] <= GOALS["batch1_ms"]
    if "ratio_batch32_same_allocator" in summary:
        summary["goal_ratio"] = summary["ratio_batch32_same_allocator"] >= GOALS["ratio_same_allocator"]
    return summary


def print_table(rows: list[dict], summary: dict) -> None:
    print(f"Inference, model forward only, {os.cpu_count()} CPU cores")
    print(
        f"{'model':11} {'precision':27} {'allocator':9} {'b1 ms':>8} {'b1 img/s':>9} {'b32 img/s':>10} "
        f"{'faults/b32':>10} {'others':>7}"
    )
    for row in rows:
        head = f"{row['model']:11} {LABELS[row['precision']]:27} {row['allocator']:9}"
        if "error" in row:
            print(f"{head} failed: {row['error'].splitlines()[-1]}")
        else:
            print(
                f"{head} {row['batch1_ms']:8.1f} {row['batch1_images_per_s']:9.1f} {row['batch32_images_per_s']:10.1f} "
                f"{row['page_faults_per_batch32']:10.0f} {row['others_cpu_share']:7.0%}"
            )
    print("(faults/b32: minor page faults per batch-32 forward; others: CPU share other processes used meanwhile; "
          "ours in bf16 and int8 and the bare network: the best of --ratio-rounds alternating runs)")
    compiled = find(rows, "ours", "bf16+compile", "mallopt")
    if compiled:
        first = compiled["first_call_s"]
        print(f"torch.compile, first call (compiling, empty cache): {first['batch32']:.0f} s at batch 32, "
              f"{first['batch1']:.0f} s at batch 1")
    ratios = {key[6:]: value for key, value in summary.items() if key.startswith("ratio_")}
    if ratios:
        print("\nOurs (bf16 + channels_last, mallopt) ÷ ResMem:")
    for name, value in ratios.items():
        print(f"  {name:32} {value:6.1f}×")
    if "ours_vs_bare_resnet50_batch32" in summary:
        ratio = summary["ours_vs_bare_resnet50_batch32"]
        print(f"Ours ÷ a bare torchvision ResNet50 (bf16 + CL), batch 32: {ratio:.2f}×")
    if "auto_vs_fastest_bare_batch32" in summary:
        print(f"Ours, auto ({summary['auto_form']}) ÷ the fastest bare torchvision form here "
              f"({summary['fastest_bare_form']}), batch 32: {summary['auto_vs_fastest_bare_batch32']:.2f}× "
              f"(goal ≥ {GOALS['auto_vs_fastest_bare']})")  # fmt: skip
    if "auto_with_int8_file_form" in summary:
        print(f"Auto, where the model has its int8 file, picked: {summary['auto_with_int8_file_form']}")
    for precision in ("int8", "int8-stem"):
        if f"{precision}_vs_bare_batch32" in summary:
            speed, latency = summary[f"{precision}_vs_bare_batch32"], summary[f"{precision}_vs_bare_batch1_ms"]
            load = find(rows, "ours", precision, "mallopt")["load_s"]
            print(f"{LABELS[precision]} ÷ the bare torchvision ResNet50 (bf16 + CL): {speed:.2f}× its img/s at batch "
                  f"32, {latency:.2f}× its ms at batch 1; loading the predictor took {load:.2f} s")
    goals = ["goal_batch32", "goal_batch1", "goal_ratio", "goal_auto_vs_fastest_bare"]
    for key in [*goals, *(f"goal_{p}_{b}" for p in ("int8", "int8-stem") for b in ("batch32", "batch1"))]:
        if key in summary:
            print(f"  {key:32} {'met' if summary[key] else 'NOT met'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch1-iterations", type=int, default=30)
    parser.add_argument("--batch32-iterations", type=int, default=6)
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (it compiles for minutes)")
    parser.add_argument("--no-resmem", action="store_true", help="skip ResMem (pip install resmem to compare)")
    parser.add_argument(
        "--precision", choices=sorted(LABELS), help="measure only this precision of ours, beside the bare network"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs per configuration; the least disturbed is kept")
    parser.add_argument(
        "--ratio-rounds",
        type=int,
        default=3,
        help="runs of the configurations the goals compare (ours in bf16 and int8, the bare network), alternating; "
        "each one's best batch-1 and batch-32 figures are kept (default: 3)",
    )
    add_quiet_wait(parser)
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--folders", type=json.loads, help=argparse.SUPPRESS)  # in a worker: the saved models
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(*args.worker, args.batch1_iterations, args.batch32_iterations, args.folders)))
        return 0
    if importlib.util.find_spec("resmem") is None and not args.no_resmem:
        print("ResMem is not installed (pip install resmem): measuring ours only.")
    configurations = [config for config in CONFIGURATIONS if wanted(*config[:2], args)]
    with tempfile.TemporaryDirectory() as work:
        args.forms_cache = str(Path(work) / "cache")
        int8 = any(config[1].startswith("int8") or config[1] == "auto-int8" for config in configurations)
        args.folders = saved_models(Path(work), int8)
        runs = [[run_configuration(*config, args) for config in configurations] for _ in range(args.rounds)]
        compared = [config for config in configurations if config in RATIO_CONFIGURATIONS]
        extra = [[run_configuration(*config, args) for config in compared] for _ in range(args.ratio_rounds - 1)]
    rows = [min(tries, key=lambda row: row.get("others_cpu_share", 1.0)) for tries in zip(*runs)]
    for config, *more in zip(compared, *extra):
        position = configurations.index(config)
        rows[position] = best_of([rows[position], *more])
    summary = summarise(rows)
    print_table(rows, summary)
    settings = {key: value for key, value in vars(args).items() if key not in ("folders", "forms_cache")}
    print(f"\nwrote {save_result('inference', {'settings': settings, 'rows': rows, 'summary': summary})}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
