"""Every benchmark, one after the other, each in its own process (what `make bench` runs).

A benchmark that fails (or is not written yet) is reported and the others still run; the summary at the end says
which ones did, how long each took, the load average when it started (other work on the machine sways every
figure: measure on a quiet machine), and where its JSON went. The exit status is 1 if any failed.

    python bench/run_all.py                 # all of them, in the order below
    python bench/run_all.py inference end_to_end
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BENCHMARKS = (
    "inference",
    "end_to_end",
    "data_loading",
    "train_throughput",
    "learnability",
    "gradcam",
    "neighbours",
    "scale_100k",
)
BUSY_LOAD = 0.5  # 1-minute load average per core above which a warning says the numbers are disturbed


def run(name: str) -> dict:
    """One benchmark in a fresh process, its output going straight to ours."""
    script = BENCH / f"{name}.py"
    row = {"name": name, "load_average_1min": os.getloadavg()[0]}
    if not script.is_file():
        return row | {"status": "missing", "seconds": 0.0}
    print(f"\n=== {name} (load average {row['load_average_1min']:.1f}) ===", flush=True)
    if row["load_average_1min"] > BUSY_LOAD * (os.cpu_count() or 1):
        print("warning: the machine is busy; these numbers will be lower than on a quiet one.", flush=True)
    started = time.perf_counter()
    code = subprocess.run([sys.executable, str(script)], cwd=BENCH.parent).returncode
    return row | {"status": "ok" if code == 0 else f"failed ({code})", "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"some of: {', '.join(BENCHMARKS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}.")
    rows = [run(name) for name in args.names or BENCHMARKS]
    print(f"\n{'benchmark':18} {'status':12} {'minutes':>7} {'load':>5}  results")
    for row in rows:
        result = BENCH / "results" / f"{row['name']}.json"
        where = str(result.relative_to(BENCH.parent)) if row["status"] == "ok" and result.is_file() else ""
        minutes, load = row["seconds"] / 60, row["load_average_1min"]
        print(f"{row['name']:18} {row['status']:12} {minutes:7.1f} {load:5.1f}  {where}")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
