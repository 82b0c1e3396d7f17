"""The memorability Space: score a photo, see where the model looked, its neighbours, and what ablations do.

The model and the neighbour index are loaded once, at start. MEMORABILITY_MODEL and MEMORABILITY_INDEX name local
folders or Hub ids; by default the demo model and an index of the sample data serve, with a banner. The event
functions are pure (inputs in, values out) and importable without launching the UI; every event has an api_name.

Privacy: uploads reach these functions as paths in a private temporary folder (GRADIO_TEMP_DIR, set here), where
Gradio keeps them and our results; files older than CACHE_SECONDS are deleted every minute, and the folder at exit
(SIGTERM included). Only files uploaded to the app are taken (`UploadedOnly`). A user's file name is a label, never
a path; zips are read one image at a time, never extracted. Nothing a visitor sends is logged: a user mistake goes
back to the visitor alone, and an unexpected failure is logged as its kind and place in our code, never its message.

Capacity: the events that look at one photo (score, heat map, ablations) share one pool of CONCURRENCY queue slots,
whichever tabs they come from, and batches have a pool of their own (BATCH_CONCURRENCY), so that batches never keep
a visitor's single photo waiting. A request's cost is bounded by what its images take decoded, counted from their
headers before a pixel is decoded (`BATCH_BUDGET`), and memory a costly request freed is given back after it
(`VisitorBlocks`). Request bodies other than uploads are refused past MAX_BODY_BYTES before they are read.
"""

import atexit
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

# Gradio keeps uploads (and our CSVs) under GRADIO_TEMP_DIR: a private folder of ours, inside the one given if any,
# swept by Gradio and removed at exit. The given folder itself is never removed (it may be /tmp).
os.makedirs(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir(), exist_ok=True)
UPLOAD_DIR = tempfile.mkdtemp(prefix="memorability-uploads-", dir=os.environ.get("GRADIO_TEMP_DIR"))
os.environ["GRADIO_TEMP_DIR"] = UPLOAD_DIR
atexit.register(shutil.rmtree, UPLOAD_DIR, ignore_errors=True)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # visitors.py, and the vendored package on a Space

from memorability.ablations import ABLATIONS  # noqa: E402
from memorability.archives import Budget, expand, too_many  # noqa: E402
from memorability.batch_scoring import score_each_once  # noqa: E402
from memorability.cache_paths import is_demo_model  # noqa: E402
from memorability.demo import build_demo_index, build_demo_model  # noqa: E402
from memorability.embedding_map import map_points, points_between  # noqa: E402
from memorability.errors import MemorabilityError  # noqa: E402
from memorability.explain import DEFAULT_CAM_METHOD, ablation_effects, analyse, count_faces  # noqa: E402
from memorability.faces import FACE_DETECTOR  # noqa: E402
from memorability.gradcam import METHODS, overlay  # noqa: E402
from memorability.images import load_image  # noqa: E402
from memorability.inference import MODEL_ENV, PRECISIONS, explainer, load_predictor  # noqa: E402
from memorability.neighbours import NeighbourIndex  # noqa: E402
from memorability.run_output import spreadsheet_safe  # noqa: E402
from memorability.runtime import tune_allocator  # noqa: E402
from visitors import (  # noqa: E402
    MALFORMED, MAX_BODY_BYTES, MAX_FILE_BYTES, BodyLimit, PhotoInput, UploadedFiles, VisitorBlocks, answers_visitors,
    refusal,
)

INDEX_ENV = "MEMORABILITY_INDEX"
PRECISION_ENV = "MEMORABILITY_PRECISION"  # the precision every score comes from; default "auto"
# One batch request: every image counted (errors included), its bytes summed and what it takes decoded read from its
# header, before any is decoded; a zip bomb, many zips each under the limit, or a 97 KB PNG that decodes to 100 MB
# listed again and again, stops here. 2 GB decoded is 500 photos of 1024×768, or twenty 16-bit 50 MP PNGs.
BATCH_BUDGET = Budget(images=500, total_bytes=500 * 2**20, image_bytes=MAX_FILE_BYTES, decoded_bytes=2 * 2**30)


def setting(name: str, default: int) -> int:
    """A deployment knob from the environment (tests shrink them); a bad value stops the start in one sentence."""
    value = os.environ.get(name) or str(default)
    if not value.isdigit() or int(value) < 1:
        sys.exit(f"space/app.py: {name} must be a whole number of at least 1, not '{value}'.")
    return int(value)


CONCURRENCY = setting("MEMORABILITY_CONCURRENCY", 2)  # single-photo jobs computed at once, all their events together
BATCH_CONCURRENCY = setting("MEMORABILITY_BATCH_CONCURRENCY", 1)  # batches computed at once, beside them
QUEUE_SIZE = setting("MEMORABILITY_QUEUE_SIZE", 64)  # waiting requests beyond which Gradio refuses
CACHE_SECONDS = setting("MEMORABILITY_CACHE_SECONDS", 300)  # uploads older than this are deleted
NEIGHBOURS = 6
DISPLAY_SIZE = 384
# CSS heights that fit two rows of three thumbnails at a desktop's width and at a phone's (where Gradio's "auto" is a
# fixed 320 px): neighbour galleries sit three abreast on a desktop, the ablations' beside the photo.
NEIGHBOUR_GALLERY_HEIGHT = "min(280px, 64vw)"
ABLATION_GALLERY_HEIGHT = "min(400px, 64vw)"
PICTURE_FORMAT = "jpeg"  # how result pictures reach the page: encodes 20× faster than Gradio's default WebP


def load_resources() -> tuple:
    """The predictor, the neighbour index and whether the demo model serves (building the demo ones if needed)."""
    model = os.environ.get(MODEL_ENV) or str(build_demo_model())
    precision = os.environ.get(PRECISION_ENV) or "auto"
    if precision not in PRECISIONS:
        raise MemorabilityError(f"{PRECISION_ENV} must be one of {', '.join(PRECISIONS)}, not '{precision}'.")
    predictor = load_predictor(model, precision=precision)
    index_source = os.environ.get(INDEX_ENV) or (
        None if os.environ.get(MODEL_ENV) else str(build_demo_index(model))
    )
    index = NeighbourIndex.load(index_source, predictor=predictor) if index_source else None
    return predictor, index, is_demo_model(model) if Path(model).is_dir() else False


tune_allocator()
try:
    # One network gives every score on every tab and endpoint (the precision chosen once, for this process: the
    # fastest form on this CPU, int8 included, unless MEMORABILITY_PRECISION names one); heat maps need gradients
    # and come from EXPLAINER, which is SCORER itself unless SCORER is int8.
    SCORER, INDEX, DEMO = load_resources()
    EXPLAINER = explainer(SCORER)
except MemorabilityError as error:  # a bad MEMORABILITY_MODEL, _INDEX or _PRECISION: one sentence, exit status 1
    sys.exit(f"space/app.py: {error}")
ENSEMBLE = SCORER.model.config.num_heads > 1  # scores come with the spread of the heads around them
PRECISION = SCORER.form.label  # returned with every score the API gives
HEAT_MAP_LABEL = "Where the model looked" + (
    "" if EXPLAINER is SCORER else f" (the {EXPLAINER.form.label} network's: int8 has no gradients)"
)


def picture_of(image: str | Image.Image | None) -> Image.Image:
    """The uploaded file as upright RGB, or an `ImageLoadError` naming it. The path is one Gradio chose in its cache;
    the user's file name is its last part and serves as a label only."""
    if image is None:
        raise refusal("Upload a photo first (or pick an example).")
    return load_image(image, name=Path(image).name if isinstance(image, str) else "The uploaded image")


def check_method(method: str) -> None:
    if method not in METHODS:
        raise refusal(f"Unknown heat-map method '{method}'; choose one of {', '.join(METHODS)}.")


def check_opacity(opacity) -> float:
    """The slider's value as a number from 0 to 1; anything else (NaN from raw JSON, text) is refused."""
    if isinstance(opacity, bool) or not isinstance(opacity, (int, float)) or not 0 <= opacity <= 1:
        raise refusal("The opacity must be a number from 0 to 1.")
    return float(opacity)


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


def headline(analysis) -> str:
    """"Memorability 72.3 / 100", or with the spread of the model's heads: "Memorability 72 ± 4 / 100"."""
    if ENSEMBLE:
        return f"## Memorability {100 * analysis.score:.0f} ± {100 * analysis.uncertainty:.0f} / 100"
    return f"## Memorability {100 * analysis.score:.1f} / 100"


@answers_visitors
def score_photo(image: str | Image.Image | None, method: str = DEFAULT_CAM_METHOD, opacity: float = 0.5):
    """Score (0–100), the summary, the heat-map overlay, the similar / more memorable / more forgettable galleries,
    and (kept in the visitor's session, not sent to the API) the picture and map that the opacity slider re-blends."""
    check_method(method)
    opacity = check_opacity(opacity)
    analysis = analyse(SCORER, picture_of(image), method, EXPLAINER)
    score = round(100 * analysis.score, 1)
    shown = display(analysis.overlay(opacity))
    last_map = (analysis.view, analysis.heat_map)
    if INDEX is None:
        return score, headline(analysis), shown, [], [], [], PRECISION, last_map
    percentile = INDEX.percentile(analysis.score)
    summary = f"{headline(analysis)}\n{standing(percentile, len(INDEX.image_ids))}" + (
        " (demo model: meaningless for real photos)." if DEMO else "."
    )
    query = analysis.embedding
    return (
        score,
        summary,
        shown,
        gallery(INDEX.similar(query, NEIGHBOURS)),
        gallery(INDEX.more_memorable(query, NEIGHBOURS)),
        gallery(INDEX.more_forgettable(query, NEIGHBOURS)),
        PRECISION,
        last_map,
    )


@answers_visitors
def heat_map(image: str | Image.Image | None, method: str = DEFAULT_CAM_METHOD, opacity: float = 0.5):
    """The overlay for another method (a new pass of the model), and the picture and map for the slider."""
    check_method(method)
    opacity = check_opacity(opacity)
    analysis = analyse(EXPLAINER, picture_of(image), method)  # the map only: the explainer's own score is not shown
    return display(analysis.overlay(opacity)), (analysis.view, analysis.heat_map)


@answers_visitors
def reblend(last_map: tuple | None, opacity: float):
    """The last map over its picture at another opacity: no model, no queue slot (the slider's event)."""
    if last_map is None:
        return gr.skip()
    view, cam = last_map
    return display(overlay(view, cam, check_opacity(opacity)))


def same_photo(photo: str | None) -> str | None:
    """The photo of one tab, carried to the other (Score and Ablations look at the same picture)."""
    return photo


@answers_visitors
def ablate_photo(image: str | Image.Image | None):
    """The six ablations with their scores and changes (sorted), a bar chart's data, and the faces found.

    They run on the picture the Score tab scores, the loader's working copy (at most 1,023 px on its short side:
    `memorability.images`), so the photo and its six ablated copies hold tens of MB, not the 1 GB a 50 MP photo
    would."""
    picture = picture_of(image)
    original = SCORER.predict(picture)
    effects = ablation_effects(SCORER, picture, original)
    table = pd.DataFrame(
        {
            "ablation": ["original", *(effect.name for effect in effects)],
            "score": [round(100 * original, 1), *(round(100 * effect.score, 1) for effect in effects)],
            "change": [0.0, *(round(100 * effect.change, 1) for effect in effects)],
        }
    )
    faces_found, faces_removed = count_faces(picture, next(e.image for e in effects if e.name == "faces_removed"))
    faces = (
        f"Original score {100 * original:.1f}. Faces found by {FACE_DETECTOR}: {faces_found}; "
        f"removed: {faces_removed}."
    )
    # The change first in a caption: a phone's narrow thumbnail cuts its end.
    images = [(effect.image, f"{100 * effect.change:+.1f} {effect.name}") for effect in effects]
    return images, table, table[["ablation", "change"]].iloc[1:], faces, PRECISION


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
        progress.tqdm(None, total=len(set(images.keys)), desc="Scoring")  # a bar that `update` advances
        rows = score_each_once(SCORER, images, images.names, images.keys, progress)
    table = pd.DataFrame(
        {
            "file": [row.name for row in rows],
            "score": [None if row.score is None else round(100 * row.score, 1) for row in rows],
            "error": [row.error or "" for row in rows],
        }
    )
    handle = tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="scores-", dir=UPLOAD_DIR, delete=False)
    with handle:  # names from a visitor's zip may start a spreadsheet formula: escaped in the file
        table.assign(file=table["file"].map(spreadsheet_safe), error=table["error"].map(spreadsheet_safe)).to_csv(
            handle, index=False
        )
    return table, handle.name, PRECISION


def warm_up() -> None:
    """One analysis and one full batch before the first visitor: nobody waits for a first call's set-up, and the
    memory that serving needs is in place when `VisitorBlocks.memory` notes it."""
    picture = Image.new("RGB", (640, 480), (120, 140, 160))
    analyse(SCORER, picture, explainer=EXPLAINER)
    SCORER.predict([picture] * SCORER.batch_size)


EMPTY_MAP = pd.DataFrame({"x": [], "y": [], "score": [], "image_id": []})
POINTS = map_points(INDEX) if INDEX is not None else EMPTY_MAP


@answers_visitors
def on_select(event: gr.SelectData) -> list[tuple[Image.Image, str]]:
    """Thumbnails of the map's points in the x range the visitor dragged across (at most 12, from its middle)."""
    if INDEX is None:
        return []
    x_range = event.index if isinstance(event.index, (list, tuple)) else [event.index]
    if not 1 <= len(x_range) <= 2 or not all(is_finite_number(x) for x in x_range):
        raise refusal(MALFORMED)
    rows = points_between(POINTS, float(min(x_range)), float(max(x_range)))
    return [(INDEX.table[int(row.Index)]["thumbnail"], f"{row.score:.0f} ({row.image_id})") for row in rows.itertuples()]


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


EXAMPLES = Path(__file__).resolve().parent / "examples"
ABOUT = Path(__file__).resolve().parent / "about.md"  # the About tab: {model}, {layer}, {spread} filled in


def about_text() -> str:
    """The About tab, describing the model that serves (its backbone, its heads), not a fixed one."""
    config = SCORER.model.config
    heads = f"{config.num_heads} heads" if ENSEMBLE else "one head"
    model = f"A {type(SCORER.model.backbone).__name__} backbone with {heads} on its {config.embedding_size}-d features"
    spread = (
        " The ± after a score is the spread (standard deviation) of the heads' scores around their mean: how much "
        "models fitted on different data disagree about this photo, not the spread of people's memory."
        if ENSEMBLE
        else ""
    )
    return ABOUT.read_text().format(
        model=model, layer=SCORER.model.default_cam_layer(), spread=spread, precision=precision_text()
    )


def precision_text() -> str:
    """Which network gives the scores, and the heat maps where another one must (int8 has no gradients)."""
    scores = f"Every score on every tab comes from one network: {PRECISION}, the fastest form of this model on this "
    scores += "server's CPU" if os.environ.get(PRECISION_ENV, "auto") == "auto" else f"server (set by {PRECISION_ENV})"
    if EXPLAINER is SCORER:
        return scores + ", which gives the heat maps too."
    return scores + f". Heat maps come from the same model in {EXPLAINER.form.label}, since int8 has no gradients."


# The settings of the events that run the model: one pool of CONCURRENCY slots for those that look at one photo, and
# one of BATCH_CONCURRENCY for batches. Gradio counts a concurrency_limit per event otherwise, and score, heat map
# and ablations would compute 3 × CONCURRENCY jobs.
PHOTO_JOB = {"concurrency_id": "photo", "concurrency_limit": CONCURRENCY}
BATCH_JOB = {"concurrency_id": "batch", "concurrency_limit": BATCH_CONCURRENCY}


def precision_box() -> gr.Textbox:
    """The precision the scores came from, returned with each endpoint's scores for API clients (the page shows it
    in the About tab)."""
    return gr.Textbox(label="Precision", visible=False)


def gallery_box(label: str, height: str = NEIGHBOUR_GALLERY_HEIGHT, elem_id: str | None = None) -> gr.Gallery:
    """Three thumbnails a row (more would overflow sideways on a phone); alone in its row on a phone."""
    return gr.Gallery(label=label, columns=3, height=height, min_width=300, format=PICTURE_FORMAT, elem_id=elem_id)


def build_app() -> gr.Blocks:
    with VisitorBlocks(
        title="How memorable is this photo?", delete_cache=(min(60, CACHE_SECONDS), CACHE_SECONDS)
    ) as app:
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
                    precision = precision_box()
                    summary = gr.Markdown("Upload a photo, or pick an example, to see its score.", elem_id="summary")
                    overlay_image = gr.Image(
                        label=HEAT_MAP_LABEL, format=PICTURE_FORMAT, elem_id="heatmap", height=320
                    )
                    with gr.Row():
                        method = gr.Radio(list(METHODS), value=DEFAULT_CAM_METHOD, label="Heat map")
                        opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Opacity")
            gr.Markdown("Reference images the model finds similar, captioned *predicted score (human score)*:")
            with gr.Row():
                similar = gallery_box("Most similar", elem_id="similar")
                memorable = gallery_box("Similar but more memorable")
                forgettable = gallery_box("Similar but more forgettable")
            last_map = gr.State(None)  # this visitor's last picture and map, for the opacity slider
            outputs = [score, summary, overlay_image, similar, memorable, forgettable, precision, last_map]
            button.click(score_photo, [photo, method, opacity], outputs, api_name="score", **PHOTO_JOB)
            photo.upload(score_photo, [photo, method, opacity], outputs, api_name=False, **PHOTO_JOB)
            method.change(heat_map, [photo, method, opacity], [overlay_image, last_map], api_name="heatmap", **PHOTO_JOB)
            opacity.release(reblend, [last_map, opacity], overlay_image, api_name=False, queue=False)
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
                    faces = gr.Markdown(elem_id="faces")
                ablated = gallery_box("Ablated photos: change in score", ABLATION_GALLERY_HEIGHT, "ablated")
            with gr.Row():
                ablation_chart = gr.BarPlot(
                    x="ablation", y="change", title="Change in score", height=260, sort="y", x_label_angle=-30
                )
                ablation_table = gr.Dataframe(label="Scores (0–100): the original, then the most negative change first")
            ablate_button.click(
                ablate_photo, ablation_photo, [ablated, ablation_table, ablation_chart, faces, precision_box()],
                api_name="ablations",
                **PHOTO_JOB,
            )
            # One photo for both tabs: what a visitor puts in one is there when they open the other.
            photo.input(same_photo, photo, ablation_photo, api_name=False, queue=False, show_progress="hidden")
            ablation_photo.input(same_photo, ablation_photo, photo, api_name=False, queue=False, show_progress="hidden")
        with gr.Tab("Batch"):
            gr.Markdown(f"Score many photos at once: choose photos or zips (up to {BATCH_BUDGET.images} images).")
            files = UploadedFiles(
                label="Photos or zips", file_count="multiple", file_types=["image", ".zip"], elem_id="batch-files"
            ).limited(BATCH_BUDGET.images, too_many(BATCH_BUDGET))
            batch_button = gr.Button("Score all", variant="primary")
            batch_table = gr.Dataframe(label="Scores (0–100)", wrap=True, elem_id="batch-table")
            batch_csv = gr.File(label="Download CSV")
            batch_button.click(
                score_batch, files, [batch_table, batch_csv, precision_box()], api_name="batch", **BATCH_JOB
            )
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
            gr.Markdown(about_text())
    return app


if __name__ == "__main__":
    # A stopped Space gets SIGTERM: close the server and run the exit handlers (removing UPLOAD_DIR), as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    app = build_app()
    warm_up()
    app.memory.settle()  # from now on, memory over what serving needs is given back after each request
    app.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size=MAX_FILE_BYTES,
        show_error=False,  # an unexpected exception's text (server paths) stays on the server; ours are gr.Error
        app_kwargs={"middleware": [Middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)]},
    )
