"""What one visitor can cost the Space, and what a hostile request leaves in its log.

A request's cost is bounded by pixels, not bytes: a 97 KB PNG that decodes to 100 MB scores at a bounded cost, its
memory comes back afterwards, a batch that lists it ten times decodes it once, and zips full of such files are
refused from their headers. Batches run beside single photos, never in front of them. A body over the limit is
refused before it is read, a list over the count before any entry is looked at, and malformed or hostile payloads
(a null byte, no `meta`, a foreign path, bad event data, NaN) each get one sentence while the app's log gets no word
of them and no traceback.
"""

import json
import uuid
import zipfile

import httpx
import pytest
from corpus import huge_png
from space_server import EXAMPLES, dependency_ids, file_data, running_space, send_event, trace_queue

PHOTO = EXAMPLES / "coffee.jpg"
BIG_PNG = huge_png(7070, 7070, bit_depth=16)  # 97 KB on disk, 50 MP of 16 bits: 100 MB decoded
MEMORY_SLACK = 0.20  # after a costly request, resident memory returns to within this of where it was
ONLY_UPLOADS = "This app scores only files uploaded to it, not links or inline data: upload the file itself."
MALFORMED = "This request could not be read; send photos through the page or Gradio's API client."


@pytest.fixture(scope="module")
def server(space_model, space_index, tmp_path_factory):
    """An app of its own: the tests here read its whole log."""
    with running_space(space_model, space_index, tmp_path_factory.mktemp("costly_space")) as running:
        yield running


def assert_clean_log(server, *marks: str) -> None:
    log = server.log_tail(10**7)
    assert "Traceback" not in log, log[-3000:]
    for mark in marks:
        assert mark not in log, f"{mark!r} reached the log"


def one_sentence(message: str) -> bool:
    return "\n" not in message and "Traceback" not in message and message.endswith(".")


# --- Hostile payloads -----------------------------------------------------------------------------------------------


def event_body(data: str, event_data: str = "null") -> bytes:
    """A queue/join body around raw JSON `data` (`send_event` fills in the event and session)."""
    return f'{{"data": {data}, "event_data": {event_data}, "fn_index": FN_INDEX, "session_hash": "SESSION"}}'.encode()


@pytest.mark.parametrize(
    "event, data, event_data, expected",
    [
        ("score", '[{"path": "/tmp/MARK\\u0000.jpg", "meta": {"_type": "gradio.FileData"}}, "gradcam++", 0.5]', "null",
         None),
        ("batch", '[[{"path": "/tmp/MARK-no-meta.jpg"}]]', "null", None),
        ("score", '[{"path": "/etc/passwd", "orig_name": "MARK.jpg", "meta": {"_type": "gradio.FileData"}}, '
                  '"gradcam++", 0.5]', "null", None),
        ("ablations", '[{"path": "/etc/passwd", "orig_name": "MARK.jpg"}]', "null", ONLY_UPLOADS),
        ("score", '[UPLOAD, "gradcam++", NaN]', "null", None),
        ("heatmap", '[UPLOAD, "gradcam", "MARK"]', "null", None),
        ("heatmap", '[UPLOAD, "gradcam", 1e308]', "null", None),
        ("score", '"MARK"', "null", None),
    ],
    ids=["null byte", "no meta", "foreign path", "foreign path unmarked", "NaN opacity", "text opacity", "huge opacity",
         "not a list"],
)
def test_a_hostile_payload_gets_one_sentence_and_the_log_no_word_of_it(server, event, data, event_data, expected):
    """Each is refused, by our event or already while Gradio reads it (then as MALFORMED), in one sentence."""
    mark = f"mark{uuid.uuid4().hex[:12]}"
    upload = json.dumps(file_data(server.upload("photo.jpg", PHOTO.read_bytes())))
    body = event_body(data.replace("MARK", mark).replace("UPLOAD", upload), event_data)
    answer = send_event(server, event, body)
    if "status" in answer:  # refused at the door by Gradio's own validation
        assert answer["status"] == 422
    else:
        message = answer["output"]["error"]
        assert not answer["success"] and one_sentence(message) and mark not in message
        assert expected is None or message == expected
    assert_clean_log(server, mark, "/etc/passwd")


@pytest.mark.parametrize("index", ['["a", "b"]', "[1, 2, 3]", '{"x": 1}', "null"])
def test_malformed_event_data_is_refused_in_one_sentence(server, index):
    """The Explore plot's select event reads `index` (an x range): anything else is refused, not raised."""
    mark = f"mark{uuid.uuid4().hex[:12]}"
    event = next(name for name in dependency_ids(server) if name.startswith("select of"))
    event_data = f'{{"index": {index}, "value": "{mark}"}}'
    answer = send_event(server, event, event_body("[]", event_data))
    assert not answer["success"] and answer["output"]["error"] == MALFORMED
    assert_clean_log(server, mark)


def test_a_body_over_the_limit_is_refused_before_it_is_read(server):
    """A 150 MB JSON body was refused only after it was parsed, leaving the app 2.7 GB larger; any body but an
    upload's is refused past 2 MB before it is read, whether its length is declared or it comes in chunks."""
    rss_before = server.rss_bytes()
    padding = json.dumps({"data": ["x" * (12 * 2**20)], "fn_index": 0, "session_hash": "s"}).encode()
    with httpx.Client(base_url=server.url, timeout=60) as http:
        declared = http.post("gradio_api/queue/join", content=padding, headers={"content-type": "application/json"})
        chunked = http.post("gradio_api/queue/join", content=iter([padding[:2**20]] * 3))
    assert declared.status_code == chunked.status_code == 413
    assert server.rss_bytes() - rss_before < 20 * 2**20 and server.serving()


def test_a_list_over_the_count_is_refused_before_any_entry_is_looked_at(server):
    """501 entries that do not exist: the count refuses them, not the first missing file."""
    missing = [file_data(f"/tmp/missing-{number}.jpg") for number in range(501)]
    kind, data = server.call("batch", [missing])
    assert kind == "error" and data["error"].startswith("More than 500 images (or files) in one request")


# --- Pixels ---------------------------------------------------------------------------------------------------------


def big_upload(server, name: str = "big.png") -> dict:
    return file_data(server.upload(name, BIG_PNG))


def test_a_50_megapixel_16_bit_png_scores_and_its_memory_comes_back(server):
    server.call("score", [file_data(server.upload("photo.jpg", PHOTO.read_bytes())), "gradcam++", 0.5])
    rss_before = server.rss_bytes()
    kind, data = server.call("score", [big_upload(server), "gradcam++", 0.5])
    assert kind == "complete" and 0 <= data[0] <= 100
    assert server.rss_bytes() < (1 + MEMORY_SLACK) * rss_before


def test_a_batch_listing_one_big_png_ten_times_decodes_it_once(server):
    """The same upload listed ten times: ten rows, one decode, and the memory comes back."""
    rss_before = server.rss_bytes()
    kind, data = server.call("batch", [[big_upload(server)] * 10])
    table = data[0]
    assert kind == "complete" and len(table["data"]) == 10 and len({row[1] for row in table["data"]}) == 1
    assert server.rss_bytes() < (1 + MEMORY_SLACK) * rss_before


def test_zips_of_big_pngs_are_refused_from_their_headers(server, tmp_path):
    """Two 6 MB zips of 64 such PNGs each held both model slots for 200 s and took the app from 1.7 to 5.9 GB; their
    headers say they would decode to 12.8 GB, and the request is refused before a pixel is decoded."""
    archive = tmp_path / "pixels.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as writer:
        for number in range(64):
            writer.writestr(f"big-{number:02d}.png", BIG_PNG)
    zips = [file_data(server.upload(f"pixels{part}.zip", archive.read_bytes())) for part in range(2)]
    rss_before = server.rss_bytes()
    kind, data = server.call("batch", [zips])
    assert kind == "error" and data["error"].startswith("Decoded, the images in these files would take more than")
    assert server.rss_bytes() - rss_before < 50 * 2**20


def test_batches_never_keep_a_single_photo_waiting(server):
    """Two batches of costly pictures and then a score, sent at once: the score starts before either batch is done
    (batches have a pool of their own), and batches compute one at a time."""
    uploads = [big_upload(server, f"big-{number}.png") for number in range(3)]
    photo = file_data(server.upload("photo.jpg", PHOTO.read_bytes()))
    trace = trace_queue(server, [("batch", [uploads]), ("batch", [uploads]), ("score", [photo, "gradcam++", 0.5])])
    assert not trace.errors and trace.completed == 3, trace.errors
    score_starts = trace.order.index(("score", "starts"))
    assert ("batch", "completed") not in trace.order[:score_starts], trace.order
    assert trace.most_running_of({"batch"}) == 1
    assert_clean_log(server)
