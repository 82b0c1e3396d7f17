"""The memorability Space: score a photo, see where the model looked, its neighbours, and what ablations do.

The model and the neighbour index are loaded once, at start. MEMORABILITY_MODEL and MEMORABILITY_INDEX name local
folders or Hub ids; by default the demo model and an index of the sample data serve, with a banner. The event
functions are pure (inputs in, values out) and importable without launching the UI; every event has an api_name.

Privacy: uploads reach these functions as paths in a private temporary folder (GRADIO_TEMP_DIR, set here), where
Gradio keeps them and our results; files older than CACHE_SECONDS are deleted every minute, and the folder at exit
(SIGTERM included). Only files uploaded to the app are taken (`UploadedOnly`). A user's file name is a label, never
a path; zips are read one image at a time, never extracted. Nothing a visitor sends is logged: a user mistake goes
back to the visitor alone, and an unexpected failure is logged as its kind and place in our code, never its message.

Capacity: every event that runs the model shares one queue slot pool (`MODEL_JOBS`), so CONCURRENCY bounds the model
jobs computing at once on the machine, whichever tabs they come from.
"""

import atexit
import functools
import logging
import os
import shutil
import signal
import sys
import tempfile
import traceback
from pathlib import Path

# Gradio keeps uploads (and our CSVs) under GRADIO_TEMP_DIR: a private folder of ours, inside the one given if any,
# swept by Gradio and removed at exit. The given folder itself is never removed (it may be /tmp).
os.makedirs(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir(), exist_ok=True)
UPLOAD_DIR = tempfile.mkdtemp(prefix="memorability-uploads-", dir=os.environ.get("GRADIO_TEMP_DIR"))
os.environ["GRADIO_TEMP_DIR"] = UPLOAD_DIR
UPLOAD_ROOT = Path(UPLOAD_DIR).resolve()
atexit.register(shutil.rmtree, UPLOAD_DIR, ignore_errors=True)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
from gradio.data_classes import FileData, ImageData  # noqa: E402
from gradio_client.utils import is_http_url_like  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the vendored package when deployed as a Space

from memorability.ablations import ABLATIONS  # noqa: E402
from memorability.archives import Budget, expand  # noqa: E402
from memorability.demo import build_demo_index, build_demo_model, is_demo_model  # noqa: E402
from memorability.embedding_map import project  # noqa: E402
from memorability.errors import MemorabilityError  # noqa: E402
from memorability.explain import DEFAULT_CAM_METHOD, ablation_effects, analyse, count_faces  # noqa: E402
from memorability.faces import FACE_DETECTOR  # noqa: E402
from memorability.gradcam import METHODS  # noqa: E402
from memorability.images import load_image  # noqa: E402
from memorability.inference import MODEL_ENV, load_predictor  # noqa: E402
from memorability.neighbours import NeighbourIndex  # noqa: E402
from memorability.runtime import tune_allocator  # noqa: E402

INDEX_ENV = "MEMORABILITY_INDEX"
MAX_FILE_BYTES = 20 * 2**20  # one upload, one photo, one image inside a zip
# One batch request: every image counted (errors included) and its bytes summed before any is read; a zip bomb, or
# many zips each under the limit, stops here.
BATCH_BUDGET = Budget(images=500, total_bytes=500 * 2**20, image_bytes=MAX_FILE_BYTES)
MODEL_JOBS = "model"  # the concurrency_id of every event that runs the model
LOG = logging.getLogger("memorability.space")
UNEXPECTED = "Something went wrong on our side; please try again in a moment."
ONLY_UPLOADS = "This app scores only files uploaded to it, not links or inline data: upload the file itself."
EXPIRED = "The upload expired while it waited; upload it again."


def setting(name: str, default: int) -> int:
    """A deployment knob from the environment (tests shrink them); a bad value stops the start in one sentence."""
    value = os.environ.get(name) or str(default)
    if not value.isdigit() or int(value) < 1:
        sys.exit(f"space/app.py: {name} must be a whole number of at least 1, not '{value}'.")
    return int(value)


CONCURRENCY = setting("MEMORABILITY_CONCURRENCY", 2)  # model jobs computed at once, all events together
QUEUE_SIZE = setting("MEMORABILITY_QUEUE_SIZE", 64)  # waiting requests beyond which Gradio refuses
CACHE_SECONDS = setting("MEMORABILITY_CACHE_SECONDS", 300)  # uploads older than this are deleted
NEIGHBOURS = 6
ABLATION_MAX_SIDE = 1024  # the Ablations tab's working copy (see `ablate_photo`)
DISPLAY_SIZE = 384
# CSS heights that fit two rows of three thumbnails at a desktop's width and at a phone's (where Gradio's "auto" is a
# fixed 320 px): neighbour galleries sit three abreast on a desktop, the ablations' beside the photo.
NEIGHBOUR_GALLERY_HEIGHT = "min(280px, 64vw)"
ABLATION_GALLERY_HEIGHT = "min(400px, 64vw)"
PICTURE_FORMAT = "jpeg"  # how result pictures reach the page: encodes 20× faster than Gradio's default WebP


def refusal(message: str) -> gr.Error:
    """The error a visitor sees, as one sentence; the log gets nothing (its text may name the visitor's file)."""
    return gr.Error(message, print_exception=False)


class UploadedOnly:
    """For our file inputs: only files uploaded to this app, checked before Gradio acts on a payload.

    Gradio itself would download a payload's `{"path": "https://..."}` from any public server, and decode a
    `{"url": "data:..."}` into a file that its cache sweep never removes; both are refused here, before either
    happens. A file's size is checked before anything reads it (a path may name any file in the cache), and a file
    the sweep removed while its request waited in the queue is said to have expired.
    """

    async def async_move_resource_to_block_cache(self, url_or_file_path: str | Path | None) -> str | None:
        if url_or_file_path is not None and is_http_url_like(str(url_or_file_path)):
            raise refusal(ONLY_UPLOADS)
        return await super().async_move_resource_to_block_cache(url_or_file_path)

    @staticmethod
    def uploaded_path(payload: FileData | ImageData) -> str:
        """The payload's file, if it is one Gradio keeps in our upload folder (an upload, or an example it copied
        there). Gradio checks a path only in payloads that declare themselves FileData; an ImageData payload without
        that `meta` reaches us with any path, so the check is made here, for every payload."""
        if not payload.path or (payload.url or "").startswith("data:"):  # gr.Image takes inline data without a path
            raise refusal(ONLY_UPLOADS)
        if is_http_url_like(payload.path) or not Path(payload.path).resolve().is_relative_to(UPLOAD_ROOT):
            raise refusal(ONLY_UPLOADS)
        try:
            size = os.stat(payload.path).st_size
        except FileNotFoundError:
            raise refusal(EXPIRED) from None
        if size > MAX_FILE_BYTES:
            name = Path(payload.path).name
            raise refusal(f"{name}: {size / 2**20:.1f} MB is over the {MAX_FILE_BYTES // 2**20} MB limit for one file.")
        return payload.path


class PhotoInput(UploadedOnly, gr.Image):
    """gr.Image that hands the uploaded file's path to our loader untouched (one clear sentence for a bad file).
    Used with type="filepath": Gradio's own opening and conversion would fail in its words, or drop transparency
    instead of compositing it on white."""

    def get_block_name(self) -> str:
        return "image"  # the stock front end: without this the page waits forever for a "photoinput" component

    def preprocess(self, payload: ImageData | None) -> str | None:
        return None if payload is None else self.uploaded_path(payload)


class UploadedFiles(UploadedOnly, gr.File):
    """gr.File (several files) that hands over the paths of the uploads in Gradio's cache as they are. Gradio's own
    "filepath" preprocessing leaves an empty temporary file behind per upload, which its cache sweep never removes;
    checking the file types is our loader's job (one error row per file)."""

    def get_block_name(self) -> str:
        return "file"

    def preprocess(self, payload) -> list[str] | None:
        return None if payload is None else [self.uploaded_path(file) for file in payload.root]


def answers_visitors(function):
    """An event function as visitors meet it: a user mistake (a `MemorabilityError`) comes back as its one sentence,
    anything unexpected as a generic one, logged as its kind and place in our code. Gradio would send the exception's
    own text (server paths) and print its traceback (the visitor's file name) instead."""

    @functools.wraps(function)
    def event(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except gr.Error:
            raise
        except MemorabilityError as error:
            raise refusal(str(error)) from None
        except Exception as error:  # noqa: BLE001 - whatever it is, the visitor gets a sentence and the log a line
            frames = traceback.extract_tb(error.__traceback__)
            where = " < ".join(f"{Path(frame.filename).name}:{frame.lineno} {frame.name}" for frame in frames[::-1])
            LOG.error("%s failed: %s at %s (its message is not logged)", function.__name__, type(error).__name__, where)
            raise refusal(UNEXPECTED) from None

    return event


def load_resources() -> tuple:
    """The predictor, the neighbour index and whether the demo model serves (building the demo ones if needed)."""
    model = os.environ.get(MODEL_ENV) or str(build_demo_model())
    predictor = load_predictor(model)
    index_source = os.environ.get(INDEX_ENV) or (
        None if os.environ.get(MODEL_ENV) else str(build_demo_index(model))
    )
    index = NeighbourIndex.load(index_source, predictor=predictor) if index_source else None
    return predictor, index, is_demo_model(model) if Path(model).is_dir() else False


tune_allocator()
try:
    PREDICTOR, INDEX, DEMO = load_resources()
except MemorabilityError as error:  # a bad MEMORABILITY_MODEL or MEMORABILITY_INDEX: one sentence, exit status 1
    sys.exit(f"space/app.py: {error}")


def picture_of(image: str | Image.Image | None) -> Image.Image:
    """The uploaded file as upright RGB, or an `ImageLoadError` naming it. The path is one Gradio chose in its cache;
    the user's file name is its last part and serves as a label only."""
    if image is None:
        raise refusal("Upload a photo first (or pick an example).")
    return load_image(image, name=Path(image).name if isinstance(image, str) else "The uploaded image")


def check_method(method: str) -> None:
    if method not in METHODS:
        raise refusal(f"Unknown heat-map method '{method}'; choose one of {', '.join(METHODS)}.")


def display(image: Image.Image) -> Image.Image:
    """Small model-size pictures are enlarged for the page (nearest-free, so edges stay smooth)."""
    return image.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.BICUBIC) if image.width < DISPLAY_SIZE else image


def gallery(neighbours) -> list[tuple[Image.Image, str]]:
    """Thumbnails captioned "predicted (human)": short enough to show whole under a phone-sized thumbnail."""

    def caption(item) -> str:
        human = f" ({100 * item.human_score:.0f})" if item.human_score is not None else ""
        return f"{100 * item.predicted_score:.0f}{human}"

    return [(item.thumbnail, caption(item)) for item in neighbours]


def standing(percentile: float, reference_images: int) -> str:
    """Where a score stands among the model's predictions on the index, in words ("higher than 100%" reads oddly)."""
    among = f"the model's predictions on {reference_images:,} reference images"
    if percentile >= 99.5:
        return f"Higher than all of {among}"
    if percentile < 0.5:
        return f"Lower than all of {among}"
    return f"Higher than {percentile:.0f}% of {among}"


@answers_visitors
def score_photo(image: str | Image.Image | None, method: str = DEFAULT_CAM_METHOD, opacity: float = 0.5):
    """Score (0–100), percentile, heat-map overlay, and similar / more memorable / more forgettable galleries."""
    check_method(method)
    analysis = analyse(PREDICTOR, picture_of(image), method)
    score = round(100 * analysis.score, 1)
    if INDEX is None:
        return score, f"## Memorability {score:.1f} / 100", display(analysis.overlay(opacity)), [], [], []
    percentile = INDEX.percentile(analysis.score)
    summary = f"## Memorability {score:.1f} / 100\n{standing(percentile, len(INDEX.image_ids))}" + (
        " (demo model: meaningless for real photos)." if DEMO else "."
    )
    query = analysis.embedding
    return (
        score,
        summary,
        display(analysis.overlay(opacity)),
        gallery(INDEX.similar(query, NEIGHBOURS)),
        gallery(INDEX.more_memorable(query, NEIGHBOURS)),
        gallery(INDEX.more_forgettable(query, NEIGHBOURS)),
    )


@answers_visitors
def heat_map(image: str | Image.Image | None, method: str = DEFAULT_CAM_METHOD, opacity: float = 0.5) -> Image.Image:
    """Only the overlay, for the opacity slider and the method switch."""
    check_method(method)
    return display(analyse(PREDICTOR, picture_of(image), method).overlay(opacity))


@answers_visitors
def ablate_photo(image: str | Image.Image | None):
    """The six ablations with their scores and changes (sorted), a bar chart's data, and the faces found.

    They run on a copy at most ABLATION_MAX_SIDE long: each ablation is defined relative to the picture's size and
    the model sees a 256-px resize anyway, while the photo and six ablated copies of a 50 MP photo would hold about
    1 GB per request."""
    picture = picture_of(image)
    picture.thumbnail((ABLATION_MAX_SIDE, ABLATION_MAX_SIDE), Image.Resampling.BICUBIC)
    original = PREDICTOR.predict(picture)
    effects = ablation_effects(PREDICTOR, picture, original)
    table = pd.DataFrame(
        {
            "ablation": [effect.name for effect in effects],
            "score": [round(100 * effect.score, 1) for effect in effects],
            "change": [round(100 * effect.change, 1) for effect in effects],
        }
    )
    faces_found, faces_removed = count_faces(picture, next(e.image for e in effects if e.name == "faces_removed"))
    faces = (
        f"Original score {100 * original:.1f}. Faces found by {FACE_DETECTOR}: {faces_found}; "
        f"removed: {faces_removed}."
    )
    # The change first in a caption: a phone's narrow thumbnail cuts its end.
    images = [(effect.image, f"{100 * effect.change:+.1f} {effect.name}") for effect in effects]
    return images, table, table[["ablation", "change"]], faces


@answers_visitors
def score_batch(files: list[str] | None, progress=gr.Progress()):
    """Many photos or zips → a table of scores (with an error column) and a CSV to download. The request's images
    are counted against BATCH_BUDGET before any is read, then read and scored a batch at a time; user file names
    are labels only."""
    if not files:
        raise refusal("Upload photos or a .zip of photos first.")
    with expand(files, BATCH_BUDGET, labels=[Path(path).name for path in files]) as images:
        if not images:
            raise refusal("No images found: upload photos or a .zip of photos.")
        scored = PREDICTOR.score_images(images, images.names, num_workers=0)
        rows = list(progress.tqdm(scored, total=len(images), desc="Scoring"))
    table = pd.DataFrame(
        {
            "file": [row.path for row in rows],
            "score": [None if row.score is None else round(100 * row.score, 1) for row in rows],
            "error": [row.error or "" for row in rows],
        }
    )
    handle = tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="scores-", dir=UPLOAD_DIR, delete=False)
    with handle:
        table.to_csv(handle, index=False)
    return table, handle.name


def embedding_points() -> pd.DataFrame:
    """The index's embedding map (PCA) as a table for the interactive plot."""
    if INDEX is None:
        return pd.DataFrame({"x": [], "y": [], "score": [], "image_id": []})
    columns = project(INDEX)
    return pd.DataFrame(
        {"x": columns["x"], "y": columns["y"], "score": 100 * columns["score"], "image_id": columns["image_id"]}
    )


POINTS = embedding_points()


def thumbnails_in(x_min: float, x_max: float) -> list[tuple[Image.Image, str]]:
    """Thumbnails of the map's points in a selected x range (at most 12, from the middle of the range)."""
    if INDEX is None:
        return []
    inside = POINTS[(POINTS.x >= x_min) & (POINTS.x <= x_max)]
    inside = inside.iloc[(inside.x - (x_min + x_max) / 2).abs().argsort()[:12]]
    rows = inside.itertuples()
    return [(INDEX.table[int(row.Index)]["thumbnail"], f"{row.score:.0f} ({row.image_id})") for row in rows]


def on_select(event: gr.SelectData) -> list[tuple[Image.Image, str]]:
    x_range = event.index if isinstance(event.index, (list, tuple)) else [event.index, event.index]
    return thumbnails_in(float(min(x_range)), float(max(x_range)))


EXAMPLES = Path(__file__).resolve().parent / "examples"
ABOUT = """
### What the score means
The model predicts the fraction of people who would recognise a photo when they see it again in a memory game
(LaMem, Khosla et al., ICCV 2015), shown here on 0–100. Memorability is about people's memory, not taste: a
memorable photo is not a better photo. The score is **not** a measure of a photo's quality or worth, and must not
be used to judge people.

### The model
A ResNet50 with a small regression head (2048→512→256→1), ImageNet-initialised and trained on LaMem's photos; the
heat map is Grad-CAM++ (or Grad-CAM) of the score at the last backbone stage; neighbours are the most similar
reference images by the model's own embedding. Percentiles compare with the model's predictions on the reference
images, not with human scores (predictions regress to the mean, so human-score percentiles would bunch).

### Privacy
Photos are scored in memory. Gradio's upload copies live in a private temporary folder that is swept every minute
and removed when the app stops. Nothing you send is kept, logged or used for training.
"""


# The settings of every event that runs the model: one pool of CONCURRENCY slots for them all. Gradio counts a
# concurrency_limit per event otherwise, and score, heat map, ablations and batch would compute 4 × CONCURRENCY jobs.
MODEL_JOB = {"concurrency_id": MODEL_JOBS, "concurrency_limit": CONCURRENCY}


def gallery_box(label: str, height: str = NEIGHBOUR_GALLERY_HEIGHT, elem_id: str | None = None) -> gr.Gallery:
    """Three thumbnails a row (more would overflow sideways on a phone); alone in its row on a phone."""
    return gr.Gallery(label=label, columns=3, height=height, min_width=300, format=PICTURE_FORMAT, elem_id=elem_id)


def build_app() -> gr.Blocks:
    with gr.Blocks(title="How memorable is this photo?", delete_cache=(min(60, CACHE_SECONDS), CACHE_SECONDS)) as app:
        gr.Markdown("# How memorable is this photo?\nUpload a photo: how likely are people to remember it, and why?")
        if DEMO:
            gr.Markdown(
                "> ⚠️ **Demo model serving.** A tiny network trained for a minute on generated pictures: its "
                "scores say nothing about real photographs. Set `MEMORABILITY_MODEL` to a trained model.",
                elem_id="demo-banner",
            )
        with gr.Tab("Score"):
            with gr.Row():
                with gr.Column():
                    photo = PhotoInput(
                        type="filepath", image_mode=None, label="Photo", sources=["upload", "webcam", "clipboard"],
                        height=320, elem_id="photo",
                    )
                    examples = sorted(EXAMPLES.glob("*.jpg")) if EXAMPLES.is_dir() else []
                    if examples:
                        gr.Examples([[str(path)] for path in examples], inputs=photo)
                    button = gr.Button("Score", variant="primary")
                with gr.Column():
                    # The number is for the API; the page shows it in the summary (an empty gr.Number reads "0").
                    score = gr.Number(label="Memorability (0–100)", precision=1, visible=False)
                    summary = gr.Markdown("Upload a photo, or pick an example, to see its score.", elem_id="summary")
                    overlay_image = gr.Image(
                        label="Where the model looked", format=PICTURE_FORMAT, elem_id="heatmap", height=320
                    )
                    with gr.Row():
                        method = gr.Radio(list(METHODS), value=DEFAULT_CAM_METHOD, label="Heat map")
                        opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Opacity")
            gr.Markdown("Reference images the model finds similar, captioned *predicted score (human score)*:")
            with gr.Row():
                similar = gallery_box("Most similar", elem_id="similar")
                memorable = gallery_box("Similar but more memorable")
                forgettable = gallery_box("Similar but more forgettable")
            outputs = [score, summary, overlay_image, similar, memorable, forgettable]
            button.click(score_photo, [photo, method, opacity], outputs, api_name="score", **MODEL_JOB)
            photo.upload(score_photo, [photo, method, opacity], outputs, api_name=False, **MODEL_JOB)
            method.change(heat_map, [photo, method, opacity], overlay_image, api_name="heatmap", **MODEL_JOB)
            opacity.release(heat_map, [photo, method, opacity], overlay_image, api_name=False, **MODEL_JOB)
        with gr.Tab("Ablations"):
            gr.Markdown("What happens to the score when one feature is taken away: detail, colour, the surroundings, "
                        "faces, the region that stands out most.")  # fmt: skip
            with gr.Accordion("What each ablation does", open=False):
                gr.Markdown("\n".join(f"- **{name}**: {ablation.description}" for name, ablation in ABLATIONS.items()))
            with gr.Row():
                with gr.Column():
                    ablation_photo = PhotoInput(
                        type="filepath", image_mode=None, label="Photo", sources=["upload", "clipboard"], height=320,
                        elem_id="ablation-photo",
                    )
                    ablate_button = gr.Button("Run the six ablations", variant="primary")
                    faces = gr.Markdown()
                ablated = gallery_box("Ablated photos: change in score", ABLATION_GALLERY_HEIGHT, "ablated")
            with gr.Row():
                ablation_chart = gr.BarPlot(
                    x="ablation", y="change", title="Change in score", height=260, sort="y", x_label_angle=-30
                )
                ablation_table = gr.Dataframe(label="Scores (0–100), most negative change first")
            ablate_button.click(
                ablate_photo, ablation_photo, [ablated, ablation_table, ablation_chart, faces], api_name="ablations",
                **MODEL_JOB,
            )
        with gr.Tab("Batch"):
            gr.Markdown(f"Score many photos at once: choose photos or zips (up to {BATCH_BUDGET.images} images).")
            files = UploadedFiles(
                label="Photos or zips", file_count="multiple", file_types=["image", ".zip"], elem_id="batch-files"
            )
            batch_button = gr.Button("Score all", variant="primary")
            batch_table = gr.Dataframe(label="Scores (0–100)", wrap=True, elem_id="batch-table")
            batch_csv = gr.File(label="Download CSV")
            batch_button.click(score_batch, files, [batch_table, batch_csv], api_name="batch", **MODEL_JOB)
        with gr.Tab("Explore"):
            gr.Markdown(
                "The reference images in the model's embedding space (first two principal components), coloured by "
                "score. Hover a point for its id and score; drag across the plot to see thumbnails from that region."
            )
            with gr.Row():
                scatter = gr.ScatterPlot(
                    POINTS, x="x", y="y", color="score", tooltip=["image_id", "score"], height=420, scale=2,
                    x_title="principal component 1", y_title="principal component 2", color_title="score",
                )  # fmt: skip
                picked = gallery_box("Selected images: score (id)", ABLATION_GALLERY_HEIGHT)
            scatter.select(on_select, None, picked, api_name=False)
        with gr.Tab("About"):
            gr.Markdown(ABOUT)
    return app


if __name__ == "__main__":
    # A stopped Space gets SIGTERM: close the server and run the exit handlers (removing UPLOAD_DIR), as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    build_app().queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size=MAX_FILE_BYTES,
        show_error=False,  # an unexpected exception's text (server paths) stays on the server; ours are gr.Error
    )
