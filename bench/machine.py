"""What every benchmark records beside its numbers: the machine, its load, and where the JSON goes."""

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
ACCELERATE_MULTI = Path(__file__).resolve().parents[1] / "train" / "accelerate" / "multi.yaml"  # the README's


def cpu_model() -> str:
    """`lscpu`'s model name (the CPU these numbers belong to), or the platform's guess where lscpu is absent."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    names = [line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith("Model name")]
    return names[0] if names else "unknown"


def describe_machine() -> dict:
    """CPU (with the flags that decide which forms run fast: memorability.forms), cores and the 1-minute load
    average: other processes' load sways every figure."""
    from memorability.forms import cpu_key

    return {
        "cpu": cpu_model(),
        "cpu_flags": cpu_key()["flags"],
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores; steal time counts as busy)."""
    with open("/proc/stat", encoding="ascii") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU seconds used by this process and every child process it has waited for."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


class OtherProcesses:
    """Measures the share of all cores that other processes used while a measurement ran (`share`, 0..1).

    The load average cannot tell: it counts our own measurement too. Linux only (/proc/stat)."""

    def __enter__(self) -> "OtherProcesses":
        self.start = (busy_seconds(), own_seconds(), time.perf_counter())
        return self

    def __exit__(self, *exception) -> None:
        now = (busy_seconds(), own_seconds(), time.perf_counter())
        busy, own, wall = (end - start for end, start in zip(now, self.start))
        self.share = max(0.0, busy - own) / (wall * (os.cpu_count() or 1))


def wait_until_quiet(max_seconds: float, threshold: float = 0.1) -> float:
    """Wait (up to `max_seconds`) until other processes use under `threshold` of the cores over 2 s.

    On a shared machine this puts each measurement between other people's jobs. Returns the last share seen."""
    deadline = time.monotonic() + max_seconds
    while True:
        with OtherProcesses() as probe:
            time.sleep(2)
        if probe.share < threshold or time.monotonic() > deadline:
            return probe.share
        print(f"  (waiting: other processes use {probe.share:.0%} of the CPU)", flush=True)
        time.sleep(8)


def add_quiet_wait(parser) -> None:
    """The --quiet-wait option every benchmark that runs measurements in subprocesses takes."""
    parser.add_argument(
        "--quiet-wait", type=float, default=120, help="seconds to wait for other processes to go quiet before each run"
    )


def predict_parser(description: str, images: int, processes: list[int], processes_help: str):
    """The command line of a benchmark that times `memorability predict` runs: --images, --processes, --quiet-wait."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=images, help="images to score")
    parser.add_argument("--processes", type=int, nargs="+", default=processes, help=processes_help)
    add_quiet_wait(parser)
    return parser


def median_seconds(run, pixels: torch.Tensor, warmup: int, iterations: int) -> tuple[float, float]:
    """(median, first warm-up) seconds per call of `run` on `pixels`: the first call pays compilation, if any."""
    started = time.perf_counter()
    run(pixels)
    first = time.perf_counter() - started
    for _ in range(warmup - 1):
        run(pixels)
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        run(pixels)
        times.append(time.perf_counter() - started)
    return statistics.median(times), first


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


def free_port() -> int:
    """A TCP port nobody listens on now, so that concurrent launches do not collide on accelerate's default."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def predict_command(processes: int) -> list[str]:
    """Python arguments that run `memorability predict` in `processes` CPU processes (accelerate launch if > 1)."""
    if processes == 1:
        return ["-m", "memorability.cli", "predict"]
    launcher = ["-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_MULTI), "--num_processes",
                str(processes)]  # fmt: skip
    launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*launcher, "--main_process_port", str(free_port()), "-m", "memorability.cli", "predict"]


def timed_predict(
    inputs: Path, model: Path, out: Path, processes: int, num_workers: int, quiet_wait: float
) -> tuple[float, str, float]:
    """One `memorability predict` run, once the machine is quiet: its wall seconds (launcher and Python start
    included), its stdout, and the share of the CPU other processes used meanwhile."""
    command = [*predict_command(processes), str(inputs), "--model", str(model), "--out", str(out)]
    wait_until_quiet(quiet_wait)
    started = time.perf_counter()
    with OtherProcesses() as others:
        output = run_python([*command, "--num-workers", str(num_workers)], env=cpu_only_environment())
    return time.perf_counter() - started, output, others.share


def cpu_only_environment() -> dict:
    """This environment with GPUs hidden: the CPU figures stay CPU figures on a machine with a GPU."""
    return os.environ | {"CUDA_VISIBLE_DEVICES": ""}
