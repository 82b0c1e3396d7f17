"""The Space under load, bounded: within its capacity every request is answered in time and memory stays flat;
score, heat map and ablations requests together never compute more than the app's concurrency at once, and batches
no more than theirs;
beyond its queue the excess is refused with Gradio's queue-full message, and the app serves on.

The short variants run in `make test`; bench/space_load.py runs the full ones: 8 × 100, and a burst of 100 at the
app's default queue.
"""

import pytest
from gradio_client import handle_file
from space_server import (
    APP_BATCH_CONCURRENCY, APP_CONCURRENCY, EXAMPLES, PHOTO_EVENTS, burst, latency_summary, mixed_model_requests,
    running_space, send_load, trace_queue,
)

pytestmark = pytest.mark.load

PHOTO = EXAMPLES / "astronaut.jpg"
CLIENTS, REQUESTS_EACH = 8, 5
REQUEST_TIMEOUT_S = 30.0
RSS_GROWTH_LIMIT = 0.10
QUEUE_SIZE, CONCURRENCY = 2, 1
BURST = 12  # requests sent at once to the small queue: more than CONCURRENCY + QUEUE_SIZE can hold


def test_within_capacity_every_request_is_answered_in_time_and_memory_stays_flat(space):
    send_load(space, CLIENTS, 1, PHOTO, REQUEST_TIMEOUT_S)  # warm-up: worker threads, allocator, caches
    rss_before = space.rss_bytes()
    result = send_load(space, CLIENTS, REQUESTS_EACH, PHOTO, REQUEST_TIMEOUT_S)
    growth = space.rss_bytes() / rss_before - 1
    assert not result.errors, result.errors[:3]
    assert len(result.latencies_s) == CLIENTS * REQUESTS_EACH
    assert latency_summary(result.latencies_s)["max_ms"] < 1000 * REQUEST_TIMEOUT_S
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew {growth:.1%} under load"


def test_score_heat_map_ablations_and_batch_together_compute_at_most_the_concurrency(space):
    """Twelve requests, three of each model event, sent at once to the app's default queue: Gradio counts a
    concurrency limit per event unless the events share a concurrency_id, and then up to 3 × 2 single-photo jobs
    would compute together; batches have their own pool beside them."""
    mixed = mixed_model_requests(space, PHOTO, rounds=3)
    trace = trace_queue(space, mixed)
    assert not trace.errors and trace.completed == len(mixed), trace.errors[:3]
    assert trace.most_running_of(PHOTO_EVENTS) == APP_CONCURRENCY
    assert trace.most_running_of({"batch"}) == APP_BATCH_CONCURRENCY
    assert trace.most_running == APP_CONCURRENCY + APP_BATCH_CONCURRENCY


@pytest.fixture(scope="module")
def small_queue_space(space_model, space_index, tmp_path_factory):
    """An app that computes one request at a time and lets QUEUE_SIZE wait."""
    settings = {"MEMORABILITY_QUEUE_SIZE": str(QUEUE_SIZE), "MEMORABILITY_CONCURRENCY": str(CONCURRENCY)}
    with running_space(space_model, space_index, tmp_path_factory.mktemp("small_queue_space"), **settings) as server:
        yield server


def test_beyond_the_queue_the_excess_is_refused_cleanly(small_queue_space):
    outcomes = burst(small_queue_space, BURST, PHOTO)
    refused = [message for message in outcomes if message is not None]
    assert refused and len(refused) <= BURST - (CONCURRENCY + QUEUE_SIZE)  # the queue still takes what it holds
    assert all("Queue is full" in message for message in refused), refused
    assert small_queue_space.serving()
    assert len(small_queue_space.client(download=False).predict(handle_file(PHOTO), api_name="/ablations")[0]) == 6
