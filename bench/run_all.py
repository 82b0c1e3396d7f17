"""Every benchmark, one after the other, each in its own process (what `make bench` runs).

A benchmark that fails (or is not written yet) is reported and the others still run; the summary at the end says
which ones did, how long each took, the CPU share other processes used just before it started (other work on the
machine sways every figure: measure on a quiet machine), and where its JSON went. The exit status is 1 if any failed.

    python bench/run_all.py                 # all of them, in the order below
    python bench/run_all.py inference end_to_end
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from machine import wait_until_quiet

BENCH = Path(__file__).resolve().parent
BENCHMARKS = (
    "start_time",
    "inference",
    "int8_fidelity",
    "int8_routes",
    "end_to_end",
    "data_loading",
    "train_throughput",
    "learnability",
    "foundation",
    "gradcam",
    "faces",
    "neighbours",
    "space_latency",
    "space_load",
    "scale_100k",
)
BUSY_SHARE = 0.1  # other processes' CPU share above which a warning says the numbers will be disturbed


def run(name: str) -> dict:
    """One benchmark in a fresh process, its output going straight to ours."""
    script = BENCH / f"{name}.py"
    if not script.is_file():
        return {"name": name, "status": "missing", "seconds": 0.0, "others_cpu_share": 0.0}
    row = {"name": name, "others_cpu_share": wait_until_quiet(0)}
    print(f"\n=== {name} (other processes use {row['others_cpu_share']:.0%} of the CPU) ===", flush=True)
    if row["others_cpu_share"] > BUSY_SHARE:
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
    print(f"\n{'benchmark':18} {'status':12} {'minutes':>7} {'others':>6}  results")
    for row in rows:
        result = BENCH / "results" / f"{row['name']}.json"
        where = str(result.relative_to(BENCH.parent)) if row["status"] == "ok" and result.is_file() else ""
        minutes, share = row["seconds"] / 60, row["others_cpu_share"]
        print(f"{row['name']:18} {row['status']:12} {minutes:7.1f} {share:6.0%}  {where}")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
