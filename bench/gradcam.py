"""Grad-CAM milliseconds per image: ours (split forward, one autograd.grad to the layer) vs pytorch-grad-cam.

Same ResNet50 model (random initialisation: speed does not depend on the weights), same layer (the last stage), same
224² inputs, batch 1 and 8, in one run; a plain forward pass (inference mode) gives the floor. Each figure is the
best of --repeats timed runs after one warm-up, the runs of the contenders interleaved so that load from other
processes hits them alike. Needs `pip install grad-cam==1.5.7 --no-deps ttach scikit-learn` for the reference.

    python bench/gradcam.py            # table on stdout, JSON in bench/results/gradcam.json
"""

import argparse
import time
from collections.abc import Callable

import torch

from memorability.gradcam import ScoreOutput, grad_cam
from memorability.presets import build_model
from memorability.runtime import tune_allocator
from machine import save_result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50", help="preset of memorability.presets (default: resnet50)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per contender; the best is reported")
    return parser.parse_args()


def contenders(model, layer: str) -> dict[str, Callable[[torch.Tensor], object]]:
    """What is timed: a function of the pixel values for each contender."""
    import pytorch_grad_cam

    reference = pytorch_grad_cam.GradCAM(ScoreOutput(model), [model.get_submodule(layer)])

    def theirs(pixel_values: torch.Tensor):
        maps = reference(pixel_values, targets=[torch.nn.Identity()] * len(pixel_values))
        model.zero_grad(set_to_none=True)  # its backward() fills every parameter's .grad
        return maps

    def forward_only(pixel_values: torch.Tensor):
        with torch.inference_mode():
            return model(pixel_values=pixel_values).scores

    return {
        "ours": lambda pixel_values: grad_cam(model, pixel_values, "gradcam", layer),
        "pytorch-grad-cam": theirs,
        "forward only": forward_only,
    }


def time_interleaved(functions: dict[str, Callable], pixel_values: torch.Tensor, repeats: int) -> dict[str, float]:
    """Best seconds per contender: one warm-up each, then `repeats` rounds of one run of each."""
    for function in functions.values():
        function(pixel_values)
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function(pixel_values)
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    args = parse_args()
    tune_allocator()
    torch.manual_seed(0)
    model = build_model(args.backbone, backbone_weights="none").eval()
    layer = model.default_cam_layer()
    functions = contenders(model, layer)
    rows = []
    for batch_size in args.batch_sizes:
        pixel_values = torch.randn(batch_size, 3, args.image_size, args.image_size)
        seconds = time_interleaved(functions, pixel_values, args.repeats)
        ms = {name: 1000 * value / batch_size for name, value in seconds.items()}
        rows.append({"batch_size": batch_size, "ms_per_image": ms, "speedup": ms["pytorch-grad-cam"] / ms["ours"]})
    print(
        f"Grad-CAM of the score at {layer}, {args.backbone} (random init), {args.image_size}² inputs, "
        f"{torch.get_num_threads()} threads; ms per image, best of {args.repeats}\n"
    )
    names = list(functions)
    print(f"{'batch':>5} " + " ".join(f"{name:>17}" for name in names) + f" {'speed-up':>9}")
    for row in rows:
        cells = " ".join(f"{row['ms_per_image'][name]:>17.1f}" for name in names)
        print(f"{row['batch_size']:>5} {cells} {row['speedup']:>8.2f}×")
    path = save_result("gradcam", {"settings": vars(args), "layer": layer, "rows": rows})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
