"""Training throughput, ResNet50 at 224 px, batch 16 per process, on this machine's CPU (or GPU if present).

fp32 against bf16 + channels_last, in 1 and 2 processes (2 via `accelerate launch --multi_gpu`, real CPU ranks),
measured side by side in one run on synthetic tensors: this is the model's step cost, without data loading
(bench/data_loading.py measures that).

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

from memorability.distributed import make_accelerator
from memorability.presets import build_model
from memorability.runtime import tune_allocator

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 16
SIZE = 224


def measure(precision: str, steps: int, warmup: int) -> dict:
    """img/s over all processes for `steps` optimizer steps after `warmup` steps."""
    tune_allocator()
    accelerator = make_accelerator(mixed_precision="bf16" if precision == "bf16" else "no")
    torch.manual_seed(0)
    model = build_model("resnet50", backbone_weights="none")
    channels_last = precision == "bf16"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model, optimizer = accelerator.prepare(model, optimizer)
    pixels = torch.randn(BATCH, 3, SIZE, SIZE, device=accelerator.device)
    if channels_last:
        pixels = pixels.contiguous(memory_format=torch.channels_last)
    labels = torch.rand(BATCH, device=accelerator.device)
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            accelerator.wait_for_everyone()
            start = time.perf_counter()
        loss = model(pixel_values=pixels, labels=labels).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    accelerator.wait_for_everyone()
    seconds = time.perf_counter() - start
    return {
        "precision": "bf16 + channels_last" if channels_last else "fp32",
        "processes": accelerator.num_processes,
        "images_per_second": steps * BATCH * accelerator.num_processes / seconds,
        "device": str(accelerator.device),
    }


def run_worker(precision: str, processes: int, steps: int, warmup: int) -> dict:
    """Each configuration in a fresh process (or two), so that none inherits another's allocator or threads."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
    command = [*launcher, __file__, "--worker", precision, "--steps", str(steps), "--warmup", str(warmup)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads([line for line in output.splitlines() if line.startswith("{")][0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--worker", choices=("fp32", "bf16"), help=argparse.SUPPRESS)
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
    print(f"Training throughput, ResNet50 {SIZE} px, batch {BATCH} per process, {os.cpu_count()} CPU cores")
    print(f"{'precision':24} {'processes':>9} {'img/s':>8}")
    for row in rows:
        print(f"{row['precision']:24} {row['processes']:9d} {row['images_per_second']:8.1f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
