"""Space latency: one visitor's /score request (score, heat map, neighbours), end to end, on an otherwise idle app.

space/app.py runs in its own process on 127.0.0.1, on a ResNet50 with random weights (speed does not depend on them)
and an index of --index-images generated pictures, or on the --model and --index folders given. The same photo is timed
three ways (the two requests interleaved, so that other load on the machine hits them alike):
- through gradio_client (upload, queue, answer; the result images are not downloaded). The client polls for its
  answer every 50 ms, which adds up to that much;
- through Gradio's HTTP API as a browser sends it (upload, call, event stream), the latency a visitor sees;
- the analysis alone in this process (forward pass and Grad-CAM++): the model's share of both.
Median and p90 over --requests rounds after --warmup; JSON in bench/results/space_latency.json.

    python bench/space_latency.py
    python bench/space_latency.py --model ~/.cache/memorability/demo-model --index ~/.cache/memorability/demo-index
"""

import sys
import time
from collections.abc import Callable
from pathlib import Path

from machine import describe_machine, save_result

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

import space_server  # noqa: E402
from gradio_client import handle_file  # noqa: E402

from memorability.explain import analyse  # noqa: E402
from memorability.images import load_image  # noqa: E402
from memorability.inference import load_predictor  # noqa: E402
from memorability.runtime import tune_allocator  # noqa: E402

PHOTO = space_server.BENCH_PHOTO
GOAL_MS = 300.0


def parse_args():
    parser = space_server.bench_parser(__doc__, requests=30, requests_help="timed rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    return parser.parse_args()


def requests(server) -> dict[str, Callable[[], object]]:
    """One /score request for the photo, through the client and over plain HTTP."""
    client = server.client(download=False)

    def over_http():
        upload = space_server.file_data(server.upload(PHOTO.name, PHOTO.read_bytes()))
        kind, data = server.call("score", [upload, "gradcam++", 0.5])
        if kind != "complete":
            raise RuntimeError(f"/score failed: {data}")

    return {
        "/score via gradio_client": lambda: client.predict(handle_file(PHOTO), "gradcam++", 0.5, api_name="/score"),
        "/score via HTTP (browser)": over_http,
    }


def analysis(model: Path) -> dict[str, Callable[[], object]]:
    """The photo's analysis in this process, as the app computes it. Timed before any client exists: a
    gradio_client's polling threads take the GIL from the model's Python code between operators (10× slower)."""
    tune_allocator()  # as the app does
    predictor = load_predictor(model)
    picture = load_image(PHOTO)
    return {"analysis in-process": lambda: analyse(predictor, picture)}


def time_rounds(functions: dict[str, Callable[[], object]], warmup: int, requests: int) -> dict[str, dict]:
    """Latency summary per contender over `requests` interleaved rounds, after `warmup` untimed ones."""
    seconds = {name: [] for name in functions}
    for round_number in range(warmup + requests):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            if round_number >= warmup:
                seconds[name].append(time.perf_counter() - started)
    return {name: space_server.latency_summary(times) for name, times in seconds.items()}


def main() -> int:
    args = parse_args()
    with space_server.bench_space(args) as (server, model, load_at_start):
        rows = time_rounds(analysis(model), args.warmup, args.requests)
        rows |= time_rounds(requests(server), args.warmup, args.requests)
    print(f"{'':28} {'median ms':>10} {'p90 ms':>10} {'max ms':>10}")
    for name, row in rows.items():
        print(f"{name:28} {row['median_ms']:10.0f} {row['p90_ms']:10.0f} {row['max_ms']:10.0f}")
    browser = rows["/score via HTTP (browser)"]["median_ms"]
    print(f"a visitor's median {browser:.0f} ms {'meets' if browser <= GOAL_MS else 'misses'} the {GOAL_MS:.0f} ms "
          f"goal; load average {load_at_start:.2f} at the start on {describe_machine()['cpus']} CPUs")  # fmt: skip
    settings = space_server.settings_of(args)
    result = {"settings": settings, "load_average_1min_at_start": load_at_start, "goal_ms": GOAL_MS, "rows": rows}
    print(f"wrote {save_result('space_latency', result).relative_to(PROJECT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
