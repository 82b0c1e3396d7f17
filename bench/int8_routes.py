"""The two int8 routes side by side, to choose one (README, "int8 scoring"): ONNX Runtime's static quantization in QDQ
form (what `memorability quantize` makes) against torchao's PT2E flow (X86InductorQuantizer, then torch.compile with
freezing), on the same random-weight ResNet50 at 224 px (our model, batch norm folded), each in a fresh process with
the allocator setting, an empty compile cache and the same 64 calibration photos. Reported for each: the setup
(quantizing, and for torchao exporting and converting), the first call at batch 1 and at batch 32 (torchao compiles
once per shape, in every new process), then batch-1 ms and batch-32 img/s (medians), and the embeddings' cosine to
fp32 on held-out photos (random weights: the ranking is bench/int8_fidelity.py's).

torchao is not a dependency: installed into the project's environment, transformers imports it and warns on stderr.
`make bench` installs it into .venv/torchao-apart, the default folder here; elsewhere, install it apart and pass
its folder:

    pip install --no-deps --target /tmp/torchao torchao==0.18.0
    python bench/int8_routes.py [--torchao-path /tmp/torchao] [--iterations 10]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import WorkerFailed, describe_machine, json_line, median_seconds, run_python, save_result

CALIBRATION_IMAGES = 64
TORCHAO_APART = Path(__file__).resolve().parents[1] / ".venv" / "torchao-apart"
ROUTES = {"onnxruntime": "ONNX Runtime 1.31 static QDQ, u8 activations, s8 weights per channel",
          "torchao": "torchao 0.18 PT2E X86InductorQuantizer + torch.compile (freezing)"}  # fmt: skip


def pictures() -> tuple[np.ndarray, np.ndarray]:
    """Pixels of 64 calibration photos and of the held-out ones (memorability.calibration's split), 224 px."""
    from memorability.calibration import photo_set
    from memorability.image_processing import make_image_processor

    photos = photo_set()
    calibrate, held_out = photos.split()
    processor = make_image_processor()
    pixels = processor(photos.pictures, return_tensors="np")["pixel_values"].astype(np.float32)
    return pixels[calibrate[:CALIBRATION_IMAGES]], pixels[held_out]


def onnxruntime_route(model, work: Path, calibrate: np.ndarray):
    """Our route, as `quantize_model` takes it: the exact fp32 export, quantized statically on the same pixels."""
    from memorability.int8 import open_session, run_session
    from memorability.quantization import export_fp32, quantize_file

    export_fp32(model, (224, 224), work / "fp32.onnx")
    quantize_file(work / "fp32.onnx", work / "int8.onnx", calibrate)
    session = open_session(work / "int8.onnx")  # as the int8 predictor opens it
    return lambda pixels: run_session(session, pixels).embeddings


def torchao_route(model, calibrate: np.ndarray):
    """torchao's PT2E flow on the fp32 scoring copy (strict export: a bottleneck's reused ReLU needs it)."""
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    from torch._inductor import config as inductor
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from memorability.inference import scoring_copy

    class Embeddings(torch.nn.Module):
        def __init__(self, network):
            super().__init__()
            self.network = network

        def forward(self, pixel_values):
            return self.network(pixel_values=pixel_values).embeddings

    network = Embeddings(scoring_copy(model, torch.float32, torch.contiguous_format)).eval()
    example = (torch.from_numpy(calibrate[:8]),)
    with torch.no_grad():
        batch = {"pixel_values": {0: torch.export.Dim.DYNAMIC}}  # any batch size; compiled once per size below
        exported = torch.export.export(network, example, dynamic_shapes=batch, strict=True).module()
        quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        for start in range(0, len(calibrate), 8):
            prepared(torch.from_numpy(calibrate[start : start + 8]))
        converted = convert_pt2e(prepared)
    move_exported_model_to_eval(converted)
    inductor.freezing = True
    compiled = torch.compile(converted)
    return torch.no_grad()(compiled)


def measure(route: str, iterations: int) -> dict:
    """(In the worker process.) Setup, first calls, medians and cosine to fp32 of one route."""
    from memorability.presets import build_model
    from memorability.runtime import tune_allocator

    tune_allocator()
    torch.manual_seed(0)
    model = build_model("resnet50", backbone_weights="none").eval()
    calibrate, held_out = pictures()
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        if route == "onnxruntime":
            run = onnxruntime_route(model, Path(work), calibrate)
        else:
            run = torchao_route(model, calibrate)
        setup = time.perf_counter() - started
        batch1, first1 = median_seconds(run, torch.randn(1, 3, 224, 224), 3, iterations)
        batch32, first32 = median_seconds(run, torch.randn(32, 3, 224, 224), 3, max(3, iterations // 3))
        with torch.no_grad():
            starts = range(0, len(held_out), 32)
            found = torch.cat([run(torch.from_numpy(held_out[start : start + 32])) for start in starts])
            expected = model(pixel_values=torch.from_numpy(held_out)).embeddings
    cosine = torch.nn.functional.cosine_similarity(found.float(), expected.float(), dim=1)
    return {
        "route": route,
        "setup_s": setup,
        "first_call_s": {"batch1": first1, "batch32": first32},
        "batch1_ms": batch1 * 1000,
        "batch32_images_per_s": 32 / batch32,
        "embedding_cosine_mean": float(cosine.mean()),
        "held_out_images": len(held_out),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--torchao-path",
        default=str(TORCHAO_APART) if TORCHAO_APART.is_dir() else None,
        help="a folder torchao is installed in (pip install --target); default: .venv/torchao-apart where it exists, "
        "else torchao is skipped",
    )
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--worker", choices=sorted(ROUTES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(__import__("json").dumps(measure(args.worker, args.iterations)))
        return 0
    rows = []
    for route in ROUTES:
        env = dict(os.environ)
        if route == "torchao":
            if not args.torchao_path:
                print("torchao: skipped (pass --torchao-path, see --help)")
                continue
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.torchao_path, env.get("PYTHONPATH")]))
        print(f"measuring {route} ...", flush=True)
        command = [__file__, "--worker", route, "--iterations", str(args.iterations)]
        with tempfile.TemporaryDirectory() as cache:  # an empty compile cache: what a user's new process meets
            try:
                rows.append(json_line(run_python(command, env | {"TORCHINDUCTOR_CACHE_DIR": cache})))
            except WorkerFailed as error:  # reported, and the other route still counts
                print(f"{route} failed: {str(error).strip().splitlines()[-1]}")
    print(f"\nint8 routes, random-weight ResNet50 at 224 px, {describe_machine()['cpus']} CPU cores")
    print(f"{'route':12} {'setup s':>8} {'1st b1 s':>9} {'1st b32 s':>10} {'b1 ms':>7} {'b32 img/s':>10} {'cosine':>7}")
    for row in rows:
        first = row["first_call_s"]
        print(f"{row['route']:12} {row['setup_s']:8.1f} {first['batch1']:9.1f} {first['batch32']:10.1f} "
              f"{row['batch1_ms']:7.1f} {row['batch32_images_per_s']:10.1f} {row['embedding_cosine_mean']:7.3f}")  # fmt: skip
    print(f"wrote {save_result('int8_routes', {'routes': ROUTES, 'rows': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
