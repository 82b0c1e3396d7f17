"""Space under load: --clients visitors at once, each sending --requests /score requests one after another; then
--mixed rounds of score, heat map, ablations and batch requests sent together; then --burst /ablations requests at
the same moment, more than the queue admits.

space/app.py runs in its own process on 127.0.0.1 with its default queue (2 model jobs computed at once, whichever
endpoints they come from; 64 waiting), on a ResNet50 with random weights and a generated index, or on the --model
and --index folders given. The visitors' requests go through gradio_client (result images not downloaded); one not
answered within --timeout counts as failed. Reported: errors, latency median / p90 / max, throughput, and the app's
RSS before (after one warm-up request per client) and after; for the mixed requests, the most computing at once
(from the queue's own event stream: at most 2) and the time they took; for the burst, how many were answered and
refused (every refusal must be Gradio's "Queue is full"), and whether the app answers normally afterwards.
tests/reliability/test_space_load.py runs short versions of all three in `make test`.

    python bench/space_load.py                      # 8 × 100; table on stdout, JSON in bench/results/space_load.json
    python bench/space_load.py --clients 8 --requests 10
"""

import sys
import time
from pathlib import Path

from machine import save_result

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

import space_server  # noqa: E402
from gradio_client import handle_file  # noqa: E402

from memorability.ablations import ABLATIONS  # noqa: E402

RSS_GROWTH_LIMIT = 0.10


def parse_args():
    parser = space_server.bench_parser(__doc__, requests=100, requests_help="per client")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a request may take")
    parser.add_argument("--mixed", type=int, default=10, help="rounds of one request of each model endpoint")
    parser.add_argument("--burst", type=int, default=100, help="requests sent at once (the app admits 2 + 64)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    photo = space_server.BENCH_PHOTO
    with space_server.bench_space(args) as (server, _, load_at_start):
        space_server.send_load(server, args.clients, 1, photo, args.timeout)
        rss_before = server.rss_bytes()
        started = time.perf_counter()
        result = space_server.send_load(server, args.clients, args.requests, photo, args.timeout)
        seconds = time.perf_counter() - started
        rss_after = server.rss_bytes()
        serving = server.serving()
        mixed_requests = space_server.mixed_model_requests(server, photo, args.mixed)
        mixed_started = time.perf_counter()
        mixed = space_server.trace_queue(server, mixed_requests)
        mixed_seconds = time.perf_counter() - mixed_started
        outcomes = space_server.burst(server, args.burst, photo)
        refusals = [message for message in outcomes if message is not None]
        clean = all("Queue is full" in message for message in refusals)
        after_burst = server.serving() and len(server.client(download=False).predict(
            handle_file(photo), api_name="/ablations")[0]) == len(ABLATIONS)  # fmt: skip
    growth = rss_after / rss_before - 1
    latency = space_server.latency_summary(result.latencies_s) if result.latencies_s else {}
    print(f"{args.clients} clients × {args.requests} requests in {seconds:.0f} s "
          f"({len(result.latencies_s) / seconds:.1f} answered per second), {len(result.errors)} errors")  # fmt: skip
    print(" ".join(f"{name} {value:.0f}" for name, value in latency.items()))
    print(f"RSS {rss_before / 2**20:.0f} → {rss_after / 2**20:.0f} MiB ({growth:+.1%}, limit {RSS_GROWTH_LIMIT:.0%})")
    print(f"serving afterwards: {serving}; load average {load_at_start:.2f} at the start")
    for error in result.errors[:5]:
        print("error:", error)
    print(f"mixed: {mixed.completed} of {len(mixed_requests)} score / heat map / ablations / batch requests in "
          f"{mixed_seconds:.0f} s, {len(mixed.errors)} errors; at most {mixed.most_running} computing at once "
          f"(limit {space_server.APP_CONCURRENCY})")  # fmt: skip
    which = "all" if clean else "NOT all"
    print(f"burst of {args.burst}: {args.burst - len(refusals)} answered, {len(refusals)} refused ({which} with "
          f"\"Queue is full\"); serving normally afterwards: {after_burst}")  # fmt: skip
    summary = {
        "settings": space_server.settings_of(args),
        "load_average_1min_at_start": load_at_start,
        "seconds": seconds,
        "answered": len(result.latencies_s),
        "errors": len(result.errors),
        "first_errors": result.errors[:5],
        "latency": latency,
        "rss_mib_before": rss_before / 2**20,
        "rss_mib_after": rss_after / 2**20,
        "rss_growth": growth,
        "serving_afterwards": serving,
        "mixed": {
            "requests": len(mixed_requests),
            "completed": mixed.completed,
            "errors": len(mixed.errors),
            "seconds": mixed_seconds,
            "most_running_at_once": mixed.most_running,
            "concurrency_limit": space_server.APP_CONCURRENCY,
        },
        "burst": {
            "requests": args.burst,
            "refused": len(refusals),
            "all_refusals_queue_full": clean,
            "first_refusals": refusals[:3],
            "serving_afterwards": after_burst,
        },
    }
    print(f"wrote {save_result('space_load', summary).relative_to(PROJECT)}")
    mixed_ok = not mixed.errors and mixed.most_running <= space_server.APP_CONCURRENCY
    ok = not result.errors and growth < RSS_GROWTH_LIMIT and serving and mixed_ok and refusals and clean and after_burst
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
