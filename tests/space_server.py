"""space/app.py as a real server, for the Space's tests and benchmarks, and the fixtures that start one.

The app runs in its own process on 127.0.0.1 at a free port, with its model and neighbour index named by environment
variables, as on a Space; it counts as started once it answers HTTP 200. Its uploads go to a folder the caller
chooses, so that tests can look at what the app leaves on disk.

The fixtures that use it (`space`, `space_client`, `space_model`, `space_index`) live in conftest.py: each test
module gets its own server, shared by its tests.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
from datasets import concatenate_datasets
from gradio_client import Client, handle_file

PROJECT = Path(__file__).resolve().parents[1]
APP = PROJECT / "space" / "app.py"
EXAMPLES = PROJECT / "space" / "examples"
BENCH_PHOTO = EXAMPLES / "astronaut.jpg"
START_TIMEOUT_S = 180.0
APP_CONCURRENCY = 2  # space/app.py's default MEMORABILITY_CONCURRENCY: single-photo jobs computed at once
APP_BATCH_CONCURRENCY = 1  # its default MEMORABILITY_BATCH_CONCURRENCY: batches computed at once, beside them
PHOTO_EVENTS = {"score", "heatmap", "ablations"}


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class SpaceServer:
    """A running app: where it answers, its process, its upload folder and its log."""

    url: str
    process: subprocess.Popen
    upload_dir: Path
    log: Path

    def client(self, download: bool = True):
        """A gradio_client on this server; the files it downloads (with `download`) land beside the upload folder,
        without it results name the files by URL only (what load tests want: no client-side copying)."""
        folder = str(self.upload_dir.parent / "downloads") if download else False
        return Client(self.url, verbose=False, download_files=folder)

    def serving(self) -> bool:
        """Whether the process is alive and its page answers 200."""
        return self.process.poll() is None and page_status(self.url) == 200

    def upload(self, name: str, data: bytes) -> str:
        """Upload a file under any name a client chooses, as a browser does; the path Gradio stored it at."""
        with httpx.Client(base_url=self.url, timeout=60) as http:
            return http.post("gradio_api/upload", files={"files": (name, data)}).json()[0]

    def call(self, api_name: str, data: list) -> tuple[str, list]:
        """One request through Gradio's REST API, as any HTTP client (a browser) sends it: the kind of its last event
        ("complete" or "error") and that event's data."""
        with httpx.Client(base_url=self.url, timeout=60) as http:
            event = http.post(f"gradio_api/call/{api_name}", json={"data": data}).json()["event_id"]
            lines = http.get(f"gradio_api/call/{api_name}/{event}").text.splitlines()
        kind = [line.split(": ", 1)[1] for line in lines if line.startswith("event: ")][-1]
        payload = [line.split(": ", 1)[1] for line in lines if line.startswith("data: ")][-1]
        return kind, json.loads(payload)

    def rss_bytes(self) -> int:
        return psutil.Process(self.process.pid).memory_info().rss

    def log_tail(self, characters: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-characters:]


def file_data(path: str, orig_name: str | None = None) -> dict:
    """A file argument of the REST API: a path in the app's upload folder (as `SpaceServer.upload` returned it)."""
    return {"path": path, "orig_name": orig_name, "meta": {"_type": "gradio.FileData"}}


@dataclass(frozen=True)
class QueueTrace:
    """What one session's event stream showed: the most jobs computing at once (in all, and per endpoint), the jobs
    that failed, and the order of their starts and completions as (api_name, "starts" | "completed")."""

    most_running: int
    completed: int
    errors: list[str]
    order: list[tuple[str, str]]

    def most_running_of(self, apis: set[str]) -> int:
        """The most jobs of these endpoints computing at once."""
        running = most = 0
        for api_name, step in self.order:
            if api_name in apis:
                running += 1 if step == "starts" else -1
                most = max(most, running)
        return most


def mixed_model_requests(server: SpaceServer, photo: Path, rounds: int) -> list[tuple[str, list]]:
    """`rounds` times one request of each event that runs the model (score, heat map, ablations, a batch of 8), on
    `photo` uploaded once, for `trace_queue`."""
    upload = file_data(server.upload(photo.name, photo.read_bytes()))
    each = [("score", [upload, "gradcam++", 0.5]), ("heatmap", [upload, "gradcam", 0.5]), ("ablations", [upload]),
            ("batch", [[upload] * 8])]  # fmt: skip
    return each * rounds


def trace_queue(server: SpaceServer, requests: list[tuple[str, list]], timeout_s: float = 120.0) -> QueueTrace:
    """Send `requests` ((api_name, data) pairs) at once in one session, as a browser page sends its events, and
    count the jobs computing at once from the session's event stream: one more at each `process_starts`, one fewer
    at each `process_completed`. A session's messages arrive in the order the server sent them, and the server sends
    a job's completion before its slot goes to the next job, so the count is exact, not a matter of timing."""
    ids = dependency_ids(server)
    session = uuid.uuid4().hex
    running, most, completed, errors, order, apis = 0, 0, 0, [], [], {}
    with httpx.Client(base_url=server.url, timeout=timeout_s) as http:
        for api_name, data in requests:
            body = {"data": data, "fn_index": ids[api_name], "session_hash": session, "event_data": None}
            joined = http.post("gradio_api/queue/join", json=body)
            joined.raise_for_status()
            apis[joined.json()["event_id"]] = api_name
        for message in session_messages(http, session):
            api_name = apis.get(message.get("event_id"), "")
            if message.get("msg") == "process_starts":
                running += 1
                most = max(most, running)
                order.append((api_name, "starts"))
            elif message.get("msg") == "process_completed":
                running -= 1
                completed += 1
                order.append((api_name, "completed"))
                if not message["success"]:
                    errors.append(str(message["output"].get("error")))
    return QueueTrace(most, completed, errors, order)


def dependency_ids(server: SpaceServer) -> dict[str, int]:
    """Each event's fn_index by its api_name; events without one by "<trigger> of <component label or id>"."""
    config = httpx.get(f"{server.url}config", timeout=30).json()
    labels = {component["id"]: component.get("props", {}).get("label") or str(component["id"])
              for component in config["components"]}  # fmt: skip
    ids = {}
    for dependency in config["dependencies"]:
        if dependency.get("api_name"):
            ids[dependency["api_name"]] = dependency["id"]
        for target, trigger in dependency.get("targets", []):
            ids.setdefault(f"{trigger} of {labels.get(target, target)}", dependency["id"])
    return ids


def session_messages(http: httpx.Client, session: str) -> Iterator[dict]:
    """The messages of a session's event stream until it closes."""
    with http.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            message = json.loads(line.removeprefix("data: ")) if line.startswith("data: ") else {}
            if message.get("msg") == "close_stream":
                return
            yield message


def send_event(server: SpaceServer, event: str, body: bytes, timeout_s: float = 60.0) -> dict:
    """One event sent through the queue exactly as `body` (raw JSON text with FN_INDEX and SESSION in place, so that
    a test can send what no JSON library writes: NaN, malformed event data); its completion message, or for a
    request refused at the door {"status": <HTTP status>}."""
    session = uuid.uuid4().hex
    raw = body.replace(b"FN_INDEX", str(dependency_ids(server)[event]).encode()).replace(b"SESSION", session.encode())
    with httpx.Client(base_url=server.url, timeout=timeout_s) as http:
        joined = http.post("gradio_api/queue/join", content=raw, headers={"content-type": "application/json"})
        if joined.status_code != 200:
            return {"status": joined.status_code}
        return next(message for message in session_messages(http, session) if message.get("msg") == "process_completed")


def page_status(url: str) -> int | None:
    """The HTTP status of a GET, or None where nothing answers."""
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None


def start_space(model: Path, index: Path | None, work_dir: Path, **settings: str) -> SpaceServer:
    """Launch the app on `model` and `index` with extra environment `settings`; waits until it serves."""
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    upload_dir = work_dir / "uploads"
    env = os.environ | {
        "MEMORABILITY_MODEL": str(model),
        "MEMORABILITY_INDEX": str(index or ""),
        "MEMORABILITY_CACHE": os.environ.get("MEMORABILITY_CACHE") or str(work_dir / "cache"),
        "GRADIO_TEMP_DIR": str(upload_dir),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }
    log = work_dir / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(APP)], cwd=work_dir, env=env | settings, stdout=output, stderr=subprocess.STDOUT
        )
    server = SpaceServer(f"http://127.0.0.1:{port}/", process, upload_dir, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.serving():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_space(server)
            raise RuntimeError(f"space/app.py did not start serving; its log ends:\n{server.log_tail()}")
        time.sleep(0.25)
    return server


def stop_space(server: SpaceServer) -> None:
    """Stop the app as a Space is stopped (SIGTERM: it closes and runs its exit handlers); kill it if it lingers."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextmanager
def running_space(model: Path, index: Path | None, work_dir: Path, **settings: str) -> Iterator[SpaceServer]:
    server = start_space(model, index, work_dir, **settings)
    try:
        yield server
    finally:
        stop_space(server)


@dataclass(frozen=True)
class LoadResult:
    """Seconds per answered request, and one line per failed one (its kind and message)."""

    latencies_s: list[float]
    errors: list[str]


def send_load(server: SpaceServer, clients: int, requests_each: int, photo: Path, timeout_s: float) -> LoadResult:
    """`clients` users at once, each with a gradio_client of its own, each sending `requests_each` /score requests
    (score, heat map, neighbours) one after another, as a person waits for one result before the next; a request not
    answered within `timeout_s` counts as failed."""
    users = [server.client(download=False) for _ in range(clients)]  # connected before any request

    def user(client) -> tuple[list[float], list[str]]:
        latencies, errors = [], []
        for _ in range(requests_each):
            started = time.perf_counter()
            try:
                client.submit(handle_file(photo), "gradcam++", 0.5, api_name="/score").result(timeout=timeout_s)
            except Exception as error:  # noqa: BLE001 - every failure is counted, whatever its kind
                errors.append(f"{type(error).__name__}: {error}")
            else:
                latencies.append(time.perf_counter() - started)
        return latencies, errors

    with ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(user, users))
    return LoadResult([t for times, _ in outcomes for t in times], [e for _, errors in outcomes for e in errors])


def burst(server: SpaceServer, count: int, photo: Path) -> list[str | None]:
    """`count` /ablations requests (seven forward passes each) sent at the same moment, each from its own client:
    None for each answered one, the error message for each failed one."""
    clients = [server.client(download=False) for _ in range(count)]
    start = threading.Barrier(count)

    def send(client) -> str | None:
        start.wait()
        try:
            client.predict(handle_file(photo), api_name="/ablations")
        except Exception as error:  # noqa: BLE001 - the caller looks at every failure's message
            return str(error)
        return None

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(send, clients))


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    """Median, 90th percentile and worst, in milliseconds."""
    times = 1000 * np.asarray(latencies_s)
    return {
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "max_ms": float(times.max()),
    }


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A zip holding `members` under exactly the names given, escaping ones included (zipfile keeps them as written)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def build_index(model: Path, data: Path, out: Path) -> Path:
    """A neighbour index of every image of a LaMem-format folder (all three splits of index 1), saved to `out`."""
    from memorability.data import load_lamem
    from memorability.inference import load_predictor
    from memorability.neighbours import build_neighbour_index

    splits = load_lamem(data, split=1)
    images = concatenate_datasets([splits[name] for name in ("train", "validation", "test")])
    build_neighbour_index(load_predictor(model), images, progress=False, data_name="test data").save(out)
    return out


def bench_parser(description: str, requests: int, requests_help: str) -> argparse.ArgumentParser:
    """A Space benchmark's command line: how many --requests, and the choice of model: --model and --index
    folders, or a ResNet50 with random weights and a generated index."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=requests, help=requests_help)
    parser.add_argument("--model", type=Path, help="a model folder (default: a ResNet50 with random weights)")
    parser.add_argument("--index", type=Path, help="a neighbour index folder for --model")
    parser.add_argument("--index-images", type=int, default=200, help="generated pictures in the default index")
    return parser


def model_and_index(args: argparse.Namespace, folder: Path) -> tuple[Path, Path]:
    """The folders `bench_parser`'s arguments chose; the default ones are built in `folder`: a ResNet50 with random
    weights (speed does not depend on them) and a neighbour index of generated pictures under it."""
    if args.model or args.index:
        if not (args.model and args.index):
            raise SystemExit("Give --model and --index together (or neither).")
        return args.model, args.index
    from memorability.presets import save_untrained_model
    from memorability.sample_data import make_sample_data

    model = save_untrained_model(folder / "model")
    data = make_sample_data(folder / "data", n=args.index_images, seed=0, progress=False)
    return model, build_index(model, data, folder / "index")


@contextmanager
def bench_space(args: argparse.Namespace) -> Iterator[tuple[SpaceServer, Path, float]]:
    """For a Space benchmark: the app serving the model and index `bench_parser`'s arguments chose (built in a
    temporary folder, removed afterwards), the model's folder, and the load average before the app started."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model, index = model_and_index(args, work)
        load_at_start = os.getloadavg()[0]
        with running_space(model, index, work / "space") as server:
            yield server, model, load_at_start


def settings_of(args: argparse.Namespace) -> dict:
    """A benchmark's arguments as JSON values, the model's naming what served."""
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()} | {
        "model": str(args.model or "resnet50, random weights")
    }


@contextmanager
def imported_app(model: Path, index: Path | None, upload_dir: Path) -> Iterator:
    """space/app.py imported in this process on `model` and `index`, its event functions callable directly; the
    environment is restored after."""
    import importlib.util

    import pytest

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMORABILITY_MODEL", str(model))
        if index is None:
            patch.delenv("MEMORABILITY_INDEX", raising=False)
        else:
            patch.setenv("MEMORABILITY_INDEX", str(index))
        patch.setenv("GRADIO_TEMP_DIR", str(upload_dir))
        spec = importlib.util.spec_from_file_location("space_app", APP)
        module = importlib.util.module_from_spec(spec)
        patch.setitem(sys.modules, "space_app", module)  # Gradio looks its components' classes up by module
        spec.loader.exec_module(module)
        yield module

