"""What every benchmark records beside its figures: its settings and the machine, in one JSON file."""

import argparse
import json
import os
import platform
from pathlib import Path

import torch


def write_result(args: argparse.Namespace, result: dict) -> Path:
    """Write `result` with the run's settings (args) and the machine (CPUs, threads, load) to `args.output`."""
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    machine = {
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),  # other processes on a shared machine slow every figure
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"settings": settings, "machine": machine} | result, indent=2) + "\n")
    print(f"\nwrote {args.output}")
    return args.output
