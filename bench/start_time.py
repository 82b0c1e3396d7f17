"""How long a command takes to start, beside what it cannot do without: importing torch, transformers' Auto classes,
and transformers' `PreTrainedModel` (which registering our model with the Auto classes needs).

Each command runs in a fresh process, best of --rounds (the first round warms the file cache). Reported in seconds,
and each of ours as the difference from the floor (torch + Auto classes + PreTrainedModel).

    python bench/start_time.py            # table on stdout, JSON in bench/results/start_time.json
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from machine import save_result

PROJECT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
COMMANDS = {
    "import torch": [PYTHON, "-c", "import torch"],
    "torch + transformers' Auto classes": [PYTHON, "-c", "import torch; from transformers import AutoConfig, "
                                                         "AutoModel; AutoModel.register"],
    "… + PreTrainedModel (the floor)": [PYTHON, "-c", "import torch; from transformers import AutoConfig, AutoModel, "
                                                      "PreTrainedModel"],
    "import memorability": [PYTHON, "-c", "import memorability"],
    "memorability --help": [PYTHON, "-m", "memorability.cli", "--help"],
    "memorability predict --help": [PYTHON, "-m", "memorability.cli", "predict", "--help"],
}  # fmt: skip
FLOOR = "… + PreTrainedModel (the floor)"


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=PROJECT)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    times = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):  # alternating, so that a slow moment of the machine hits every command alike
        for name, command in COMMANDS.items():
            times[name].append(seconds(command))
    best = {name: min(values[1:] or values) for name, values in times.items()}
    for name, value in best.items():
        extra = f"  ({value - best[FLOOR]:+.2f} s against the floor)" if name.startswith(("import mem", "memor")) else ""
        print(f"{name:40s} {value:5.2f} s{extra}")
    result = {"best_seconds": best, "all_seconds": times}
    print(f"wrote {save_result('start_time', result).relative_to(PROJECT)}")
    ours = [best[name] for name in COMMANDS if name.startswith(("import mem", "memor"))]
    return 0 if max(ours) <= best[FLOOR] + 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
