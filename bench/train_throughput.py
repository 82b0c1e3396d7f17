"""Training throughput, ResNet50 at 224 px, batch 16 per process, on this machine's CPU (or GPU if present).

fp32 against bf16 + channels_last, in 1 and 2 processes (2 via `accelerate launch --multi_gpu`, real CPU ranks),
measured side by side in one run on synthetic tensors: this is the model's step cost, without data loading
(bench/data_loading.py measures that). In the same run, a bare torchvision ResNet50 (one output, MSE loss, AdamW,
bf16 autocast + channels_last, no Accelerate) takes the same steps in one process: ours in bf16 is reported as a
ratio of it (goal: >= 0.9x; the fastest of three alternating runs each), as bench/inference.py does for scoring.

    python bench/train_throughput.py [--steps 6] [--warmup 2]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from machine import ACCELERATE_MULTI

from memorability.distributed import make_accelerator
from memorability.presets import build_model
from memorability.runtime import tune_allocator

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 16
SIZE = 224
GOAL_VS_BARE = 0.9
RATIO_RUNS = 3
LABELS = {"fp32": "fp32", "bf16": "bf16 + channels_last", "bare": "bare torchvision, bf16 + CL"}


def bare_step(pixels: torch.Tensor, labels: torch.Tensor):
    """One training step of a bare torchvision ResNet50 in bf16 autocast + channels_last: this CPU's ceiling."""
    import torchvision

    network = torchvision.models.resnet50(num_classes=1).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast(pixels.device.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(network(pixels).squeeze(1).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def measure(precision: str, steps: int, warmup: int) -> dict:
    """img/s over all processes for `steps` optimizer steps after `warmup` steps."""
    tune_allocator()
    accelerator = make_accelerator(mixed_precision="bf16" if precision == "bf16" else "no")
    torch.manual_seed(0)
    channels_last = precision in ("bf16", "bare")
    pixels = torch.randn(BATCH, 3, SIZE, SIZE, device=accelerator.device)
    if channels_last:
        pixels = pixels.contiguous(memory_format=torch.channels_last)
    labels = torch.rand(BATCH, device=accelerator.device)
    step = bare_step(pixels, labels) if precision == "bare" else our_step(accelerator, pixels, labels, channels_last)
    for number in range(warmup + steps):
        if number == warmup:
            accelerator.wait_for_everyone()
            start = time.perf_counter()
        step()
    accelerator.wait_for_everyone()
    seconds = time.perf_counter() - start
    return {
        "precision": LABELS[precision],
        "processes": accelerator.num_processes,
        "images_per_second": steps * BATCH * accelerator.num_processes / seconds,
        "device": str(accelerator.device),
    }


def our_step(accelerator, pixels: torch.Tensor, labels: torch.Tensor, channels_last: bool):
    """One training step of our model as train/train.py takes it: Accelerate, its mixed precision, our loss."""
    model = build_model("resnet50", backbone_weights="none")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()

    def step() -> None:
        accelerator.backward(model(pixel_values=pixels, labels=labels).loss)
        optimizer.step()
        optimizer.zero_grad()

    return step


def run_worker(precision: str, processes: int, steps: int, warmup: int) -> dict:
    """Each configuration in a fresh process (or two), so that none inherits another's allocator or threads."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_MULTI), "--num_processes",
                     str(processes)]  # fmt: skip
    command = [*launcher, __file__, "--worker", precision, "--steps", str(steps), "--warmup", str(warmup)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads([line for line in output.splitlines() if line.startswith("{")][0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--worker", choices=sorted(LABELS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = measure(args.worker, args.steps, args.warmup)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(result))
        return 0
    rows = [
        run_worker(precision, processes, args.steps, args.warmup)
        for processes in (1, 2)
        for precision in ("fp32", "bf16")
    ]
    # The ratio from three runs of each, alternating, the fastest of each kept: single runs of either moved by up to
    # 25% on this VM (a slow one now and then), and alternating spreads a trend in the machine's speed over both.
    runs = {name: [] for name in ("bf16", "bare")}
    for _ in range(RATIO_RUNS):
        for name in runs:
            runs[name].append(run_worker(name, 1, args.steps, args.warmup))
    speed = {name: max(row["images_per_second"] for row in done) for name, done in runs.items()}
    bare = runs["bare"][0] | {"images_per_second": speed["bare"]}
    ratio = speed["bf16"] / speed["bare"]
    print(f"Training throughput, ResNet50 {SIZE} px, batch {BATCH} per process, {os.cpu_count()} CPU cores")
    print(f"{'precision':28} {'processes':>9} {'img/s':>8}")
    for row in [*rows, bare]:
        print(f"{row['precision']:28} {row['processes']:9d} {row['images_per_second']:8.1f}")
    verdict = "met" if ratio >= GOAL_VS_BARE else "NOT met"
    print(f"Ours (bf16 + CL, 1 process) ÷ the bare torchvision step, fastest of {RATIO_RUNS} alternating runs each: "
          f"{ratio:.2f}× "
          f"(ours {speed['bf16']:.1f}, bare {speed['bare']:.1f} img/s; goal ≥ {GOAL_VS_BARE}×: {verdict})")
    RESULTS.mkdir(exist_ok=True)
    result = {"rows": [*rows, bare], "ours_vs_bare": ratio, "goal_vs_bare": GOAL_VS_BARE,
              "ratio_runs": runs}  # fmt: skip
    (RESULTS / "train_throughput.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
