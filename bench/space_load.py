"""Space under load: --clients visitors at once, each sending --requests /score requests one after another; then
--mixed rounds of score, heat map, ablations and batch requests sent together; then --burst /ablations requests at
the same moment, more than the queue admits; then the pixel attack: a 97 KB PNG of 50 MP in 16 bits (100 MB decoded)
scored, listed ten times in one batch, ten copies of it in each of two batches while another visitor scores a photo,
two zips of 64 copies, and a 150 MB request body.

space/app.py runs in its own process on 127.0.0.1 with its default queue (2 single-photo jobs computed at once,
whichever endpoints they come from, and 1 batch beside them; 64 waiting), on a ResNet50 with random weights and a
generated index, or on the --model and --index folders given. The visitors' requests go through gradio_client (result images not downloaded); one not
answered within --timeout counts as failed. Reported: errors, latency median / p90 / max, throughput, and the app's
RSS before (after one warm-up request per client) and after; for the mixed requests, the most computing at once
(from the queue's own event stream: at most 2) and the time they took; for the burst, how many were answered and
refused (every refusal must be Gradio's "Queue is full"), and whether the app answers normally afterwards; for the
pixel attack, each step's seconds and the RSS before and after it. Goals: the ten-times batch refused at once or
done in 10 s, the other visitor's /score answered in 3 s, and RSS back within 20% of where it was.
tests/reliability/test_space_load.py and test_space_costs.py run short versions in `make test`.

    python bench/space_load.py                      # 8 × 100; table on stdout, JSON in bench/results/space_load.json
    python bench/space_load.py --clients 8 --requests 10
"""

import json
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx

from machine import save_result

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))
sys.path.insert(0, str(PROJECT / "tests" / "reliability"))

import space_server  # noqa: E402
from corpus import huge_png  # noqa: E402
from gradio_client import handle_file  # noqa: E402

from memorability.ablations import ABLATIONS  # noqa: E402

RSS_GROWTH_LIMIT = 0.10
ATTACK_MEMORY_SLACK = 0.20  # after the pixel attack, RSS within this of where it was before it
TEN_TIMES_GOAL_S, SCORE_BESIDE_BATCHES_GOAL_S = 10.0, 3.0


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    outcome = call()
    return time.perf_counter() - started, outcome


def pixel_attack(server: space_server.SpaceServer, photo: Path) -> dict:
    """The attacks of Step 15 against the running app, each step timed, with the app's RSS around them."""
    big = huge_png(7070, 7070, bit_depth=16)
    upload = space_server.file_data(server.upload("big.png", big))
    normal = space_server.file_data(server.upload(photo.name, photo.read_bytes()))
    rss_before = server.rss_bytes()
    steps = {}
    seconds, (kind, _) = timed(lambda: server.call("score", [upload, "gradcam++", 0.5]))
    steps["score_big_png"] = {"seconds": seconds, "outcome": kind, "rss_mib_after": server.rss_bytes() / 2**20}
    seconds, (kind, _) = timed(lambda: server.call("batch", [[upload] * 10]))
    steps["batch_listing_it_10_times"] = {"seconds": seconds, "outcome": kind, "rss_mib_after": server.rss_bytes() / 2**20}
    copies = [space_server.file_data(server.upload(f"big-{number}.png", big)) for number in range(10)]
    batches = [threading.Thread(target=server.call, args=("batch", [copies])) for _ in range(2)]
    for thread in batches:
        thread.start()
    time.sleep(1.0)  # both batches queued, one computing
    seconds, (kind, _) = timed(lambda: server.call("score", [normal, "gradcam++", 0.5]))
    steps["score_beside_two_batches"] = {"seconds": seconds, "outcome": kind}
    seconds, _ = timed(lambda: [thread.join() for thread in batches])
    steps["two_batches_of_10_copies"] = {"seconds_after_the_score": seconds, "rss_mib_after": server.rss_bytes() / 2**20}
    zipped = PROJECT / "bench" / "results" / "pixels.zip"
    zipped.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as writer:
        for number in range(64):
            writer.writestr(f"big-{number:02d}.png", big)
    zips = [space_server.file_data(server.upload(f"pixels{part}.zip", zipped.read_bytes())) for part in range(2)]
    zipped.unlink()
    seconds, (kind, data) = timed(lambda: server.call("batch", [zips]))
    steps["two_zips_of_64"] = {"seconds": seconds, "outcome": kind, "message": data.get("error") if kind == "error" else None}
    body = json.dumps({"data": ["x" * (150 * 2**20)], "fn_index": 0, "session_hash": "s"}).encode()
    with httpx.Client(base_url=server.url, timeout=120) as http:
        seconds, response = timed(lambda: http.post("gradio_api/queue/join", content=body))
    steps["body_of_150_mb"] = {"seconds": seconds, "status": response.status_code}
    rss_after = server.rss_bytes()
    return {"steps": steps, "rss_mib_before": rss_before / 2**20, "rss_mib_after": rss_after / 2**20,
            "rss_change": rss_after / rss_before - 1, "serving_afterwards": server.serving()}  # fmt: skip


def attack_ok(attack: dict) -> bool:
    steps = attack["steps"]
    ten = steps["batch_listing_it_10_times"]
    return (
        (ten["outcome"] == "error" or ten["seconds"] < TEN_TIMES_GOAL_S)
        and steps["score_beside_two_batches"]["seconds"] < SCORE_BESIDE_BATCHES_GOAL_S
        and steps["two_zips_of_64"]["outcome"] == "error"
        and steps["body_of_150_mb"]["status"] == 413
        and attack["rss_change"] < ATTACK_MEMORY_SLACK
        and attack["serving_afterwards"]
    )


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
        attack = pixel_attack(server, photo)
    growth = rss_after / rss_before - 1
    latency = space_server.latency_summary(result.latencies_s) if result.latencies_s else {}
    print(f"{args.clients} clients × {args.requests} requests in {seconds:.0f} s "
          f"({len(result.latencies_s) / seconds:.1f} answered per second), {len(result.errors)} errors")  # fmt: skip
    print(" ".join(f"{name} {value:.0f}" for name, value in latency.items()))
    print(f"RSS {rss_before / 2**20:.0f} → {rss_after / 2**20:.0f} MiB ({growth:+.1%}, limit {RSS_GROWTH_LIMIT:.0%})")
    print(f"serving afterwards: {serving}; load average {load_at_start:.2f} at the start")
    for error in result.errors[:5]:
        print("error:", error)
    photo_jobs, batch_jobs = mixed.most_running_of(space_server.PHOTO_EVENTS), mixed.most_running_of({"batch"})
    print(f"mixed: {mixed.completed} of {len(mixed_requests)} score / heat map / ablations / batch requests in "
          f"{mixed_seconds:.0f} s, {len(mixed.errors)} errors; at most {photo_jobs} single-photo jobs computing at "
          f"once (limit {space_server.APP_CONCURRENCY}) and {batch_jobs} batch (limit "
          f"{space_server.APP_BATCH_CONCURRENCY})")  # fmt: skip
    which = "all" if clean else "NOT all"
    print(f"burst of {args.burst}: {args.burst - len(refusals)} answered, {len(refusals)} refused ({which} with "
          f"\"Queue is full\"); serving normally afterwards: {after_burst}")  # fmt: skip
    print(f"pixel attack: RSS {attack['rss_mib_before']:.0f} → {attack['rss_mib_after']:.0f} MiB "
          f"({attack['rss_change']:+.1%}, limit {ATTACK_MEMORY_SLACK:.0%})")
    for name, step in attack["steps"].items():
        print(f"  {name}: " + ", ".join(f"{key} {value:.2f}" if isinstance(value, float) else f"{key} {value}"
                                        for key, value in step.items()))  # fmt: skip
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
            "most_single_photo_jobs_at_once": photo_jobs,
            "most_batches_at_once": batch_jobs,
            "concurrency_limit": space_server.APP_CONCURRENCY,
            "batch_concurrency_limit": space_server.APP_BATCH_CONCURRENCY,
        },
        "burst": {
            "requests": args.burst,
            "refused": len(refusals),
            "all_refusals_queue_full": clean,
            "first_refusals": refusals[:3],
            "serving_afterwards": after_burst,
        },
        "pixel_attack": attack,
    }
    print(f"wrote {save_result('space_load', summary).relative_to(PROJECT)}")
    mixed_ok = (not mixed.errors and photo_jobs <= space_server.APP_CONCURRENCY
                and batch_jobs <= space_server.APP_BATCH_CONCURRENCY)  # fmt: skip
    ok = not result.errors and growth < RSS_GROWTH_LIMIT and serving and mixed_ok and refusals and clean and after_burst
    ok = ok and attack_ok(attack)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
