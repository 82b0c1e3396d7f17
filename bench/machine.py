"""What every benchmark records beside its numbers: the machine, its load, and where the JSON goes."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    """`lscpu`'s model name (the CPU these numbers belong to), or the platform's guess where lscpu is absent."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    names = [line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith("Model name")]
    return names[0] if names else "unknown"


def describe_machine() -> dict:
    """CPU, cores and the 1-minute load average: other processes' load sways every figure."""
    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def save_result(name: str, result: dict) -> Path:
    """bench/results/<name>.json, with the machine as it is now."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": describe_machine(), **result}, indent=2) + "\n")
    return path


def json_line(output: str) -> dict:
    """The one JSON object a worker process printed on a line of its own."""
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


class WorkerFailed(RuntimeError):
    """A measurement's own process failed; the message ends with its stderr."""


def run_python(arguments: list[str], env: dict | None = None) -> str:
    """Run this Python on `arguments` in a fresh process: its stdout, or `WorkerFailed` with its stderr's tail."""
    result = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise WorkerFailed(f"{' '.join(arguments[:4])} exited with {result.returncode}:\n{result.stderr[-3000:]}")
    return result.stdout
