"""The memorability Space: score a photo, see where the model looked, its neighbours, and what ablations do.

The model and the neighbour index are loaded once, at start. MEMORABILITY_MODEL and MEMORABILITY_INDEX name local
folders or Hub ids; by default the demo model and an index of the sample data serve, with a banner. The event
functions are pure (inputs in, values out) and importable without launching the UI; every event has an api_name.

Privacy: uploads reach these functions as in-memory images; Gradio's own upload copies live in a private temporary
folder that is swept every minute (files older than five minutes) and removed at exit. Nothing is logged.
"""

import atexit
import io
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

# Gradio keeps uploads under GRADIO_TEMP_DIR: a private folder of ours, removed at exit.
UPLOAD_DIR = tempfile.mkdtemp(prefix="memorability-uploads-")
os.environ.setdefault("GRADIO_TEMP_DIR", UPLOAD_DIR)
atexit.register(shutil.rmtree, UPLOAD_DIR, ignore_errors=True)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the vendored package when deployed as a Space

from memorability.demo import build_demo_index, build_demo_model, is_demo_model  # noqa: E402
from memorability.embedding_map import project  # noqa: E402
from memorability.explain import DEFAULT_CAM_METHOD, ablation_effects, analyse, count_faces  # noqa: E402
from memorability.gradcam import METHODS  # noqa: E402
from memorability.images import IMAGE_EXTENSIONS, ImageLoadError, load_image  # noqa: E402
from memorability.inference import MODEL_ENV, load_predictor  # noqa: E402
from memorability.neighbours import NeighbourIndex  # noqa: E402
from memorability.runtime import tune_allocator  # noqa: E402

INDEX_ENV = "MEMORABILITY_INDEX"
MAX_FILE_SIZE = "20mb"
MAX_BATCH_FILES = 500
MAX_ZIP_BYTES = 500 * 1024 * 1024  # uncompressed: a zip bomb stops here
CONCURRENCY = 2
QUEUE_SIZE = 64
NEIGHBOURS = 6
DISPLAY_SIZE = 384


class PhotoInput(gr.Image):
    """gr.Image that hands an unreadable upload to our loader (one clear sentence) instead of failing in Gradio."""

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception:  # noqa: BLE001 - any decoding failure: our loader explains it to the user
            return payload.path if payload is not None else None


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
PREDICTOR, INDEX, DEMO = load_resources()


def picture_of(image: str | Image.Image | None) -> Image.Image:
    """The uploaded file (a path Gradio chose, never the user's file name) as upright RGB, or a readable gr.Error."""
    if image is None:
        raise gr.Error("Upload a photo first (or pick an example).")
    try:
        return load_image(image, name="The uploaded image")
    except ImageLoadError as error:
        raise gr.Error(str(error)) from None


def display(image: Image.Image) -> Image.Image:
    """Small model-size pictures are enlarged for the page (nearest-free, so edges stay smooth)."""
    return image.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.BICUBIC) if image.width < DISPLAY_SIZE else image


def gallery(neighbours) -> list[tuple[Image.Image, str]]:
    def caption(item) -> str:
        human = f", human {100 * item.human_score:.0f}" if item.human_score is not None else ""
        return f"{item.image_id}: predicted {100 * item.predicted_score:.0f}{human} (similarity {item.similarity:.2f})"

    return [(item.thumbnail, caption(item)) for item in neighbours]


def score_photo(image: str | Image.Image | None, method: str = DEFAULT_CAM_METHOD, opacity: float = 0.5):
    """Score (0–100), percentile, heat-map overlay, and similar / more memorable / more forgettable galleries."""
    picture = picture_of(image)
    if method not in METHODS:
        raise gr.Error(f"Unknown heat-map method '{method}'; choose one of {', '.join(METHODS)}.")
    analysis = analyse(PREDICTOR, picture, method)
    score = round(100 * analysis.score, 1)
    if INDEX is None:
        return score, "No neighbour index loaded.", display(analysis.overlay(opacity)), [], [], []
    percentile = INDEX.percentile(analysis.score)
    summary = (
        f"**{score:.1f} / 100**, higher than {percentile:.0f}% of the model's predictions on "
        f"{len(INDEX.image_ids):,} reference images" + (" (demo model: meaningless for real photos)" if DEMO else "")
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


def heat_map(image: str | Image.Image | None, method: str = DEFAULT_CAM_METHOD, opacity: float = 0.5) -> Image.Image:
    """Only the overlay, for the opacity slider and the method switch."""
    if method not in METHODS:
        raise gr.Error(f"Unknown heat-map method '{method}'; choose one of {', '.join(METHODS)}.")
    return display(analyse(PREDICTOR, picture_of(image), method).overlay(opacity))


def ablate_photo(image: str | Image.Image | None):
    """The six ablations with their scores and changes (sorted), a bar chart's data, and the faces found."""
    picture = picture_of(image)
    original = PREDICTOR.predict(picture)
    effects = ablation_effects(PREDICTOR, picture, original)
    table = pd.DataFrame(
        {
            "ablation": [effect.name for effect in effects],
            "score": [round(100 * effect.score, 1) for effect in effects],
            "change": [round(100 * effect.change, 1) for effect in effects],
            "what it removes": [effect.description for effect in effects],
        }
    )
    faces_found, faces_removed = count_faces(picture, next(e.image for e in effects if e.name == "faces_removed"))
    faces = f"Original score {100 * original:.1f}. Faces found: {faces_found}; removed: {faces_removed}."
    images = [(effect.image, f"{effect.name}: {100 * effect.score:.1f} ({100 * effect.change:+.1f})") for effect in effects]
    return images, table, table[["ablation", "change"]], faces


def zip_members(path: str) -> list[tuple[str, bytes | None, str | None]]:
    """(name, bytes, error) for each image in a zip, read in memory: nothing is extracted, so nothing can be
    written anywhere; entries that would escape their folder (zip-slip) are refused by name."""
    members = []
    try:
        with zipfile.ZipFile(path) as archive:
            entries = [entry for entry in archive.infolist() if not entry.is_dir()]
            if sum(entry.file_size for entry in entries) > MAX_ZIP_BYTES:
                raise gr.Error(f"The zip unpacks to more than {MAX_ZIP_BYTES // 2**20} MB; send fewer photos.")
            for entry in entries:
                name = PurePosixPath(entry.filename.replace("\\", "/"))
                if name.is_absolute() or ".." in name.parts:
                    members.append((entry.filename, None, "refused: the path leaves the zip's folder (zip-slip)"))
                elif name.suffix.lower() in IMAGE_EXTENSIONS:
                    members.append((entry.filename, archive.read(entry), None))
    except zipfile.BadZipFile:
        raise gr.Error("The .zip file is damaged or not a zip.") from None
    return members


def batch_inputs(files: list[str]) -> list[tuple[str, bytes | None, str | None]]:
    """Every image of the uploads and zips as (display name, bytes, error); user file names are labels only."""
    items = []
    for path in files:
        label = Path(path).name
        if label.lower().endswith(".zip"):
            items.extend(zip_members(path))
        else:
            items.append((label, Path(path).read_bytes(), None))
    if not items:
        raise gr.Error("No images found: upload photos or a .zip of photos.")
    if len(items) > MAX_BATCH_FILES:
        raise gr.Error(f"{len(items)} images is over the {MAX_BATCH_FILES}-image limit of this page; use the CLI.")
    return items


def score_batch(files: list[str] | None, progress=gr.Progress()):
    """Many photos or a zip → a table of scores (with an error column) and a CSV to download."""
    if not files:
        raise gr.Error("Upload photos or a .zip of photos first.")
    rows = []
    for name, data, error in progress.tqdm(batch_inputs(files), desc="Scoring"):
        score = None
        if error is None:
            try:
                score = round(100 * PREDICTOR.predict(load_image(data, name=name)), 1)
            except ImageLoadError as failure:
                error = str(failure)
        rows.append({"file": name, "score": score, "error": error or ""})
    table = pd.DataFrame(rows)
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
    return [(INDEX.table[int(row.Index)]["thumbnail"], f"{row.image_id}: {row.score:.0f}") for row in inside.itertuples()]


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
and removed when the app stops. Nothing is kept, logged or used for training.
"""


def build_app() -> gr.Blocks:
    with gr.Blocks(title="How memorable is this photo?", delete_cache=(60, 300)) as app:
        gr.Markdown("# How memorable is this photo?\nUpload a photo to see how likely people are to remember it, and why.")
        if DEMO:
            gr.Markdown(
                "> ⚠️ **Demo model serving.** A tiny network trained for a minute on generated pictures: its scores "
                "say nothing about real photographs. Set `MEMORABILITY_MODEL` to a trained model.",
                elem_id="demo-banner",
            )
        with gr.Tab("Score"):
            with gr.Row():
                with gr.Column():
                    photo = PhotoInput(type="filepath", label="Photo", sources=["upload", "webcam", "clipboard"], height=320)
                    examples = sorted(EXAMPLES.glob("*.jpg")) if EXAMPLES.is_dir() else []
                    if examples:
                        gr.Examples([[str(path)] for path in examples], inputs=photo)
                    button = gr.Button("Score", variant="primary")
                with gr.Column():
                    score = gr.Number(label="Memorability (0–100)", precision=1, elem_id="score")
                    summary = gr.Markdown()
                    overlay_image = gr.Image(label="Where the model looked", elem_id="heatmap", height=320)
                    with gr.Row():
                        method = gr.Radio(list(METHODS), value=DEFAULT_CAM_METHOD, label="Heat map")
                        opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Opacity")
            similar = gr.Gallery(label="Most similar reference images", columns=6, height=200)
            with gr.Row():
                memorable = gr.Gallery(label="Similar but more memorable", columns=3, height=200)
                forgettable = gr.Gallery(label="Similar but more forgettable", columns=3, height=200)
            outputs = [score, summary, overlay_image, similar, memorable, forgettable]
            button.click(score_photo, [photo, method, opacity], outputs, api_name="score")
            photo.upload(score_photo, [photo, method, opacity], outputs, api_name=False)
            method.change(heat_map, [photo, method, opacity], overlay_image, api_name="heatmap")
            opacity.release(heat_map, [photo, method, opacity], overlay_image, api_name=False)
        with gr.Tab("Ablations"):
            gr.Markdown("What happens to the score when one feature is taken away: blur, colour, the centre, faces, the most salient region.")
            ablation_photo = PhotoInput(type="filepath", label="Photo", sources=["upload", "clipboard"], height=260)
            ablate_button = gr.Button("Run the six ablations", variant="primary")
            faces = gr.Markdown()
            ablated = gr.Gallery(label="Ablated photos (score, change)", columns=3, height=420)
            with gr.Row():
                ablation_table = gr.Dataframe(label="Scores (0–100), most negative change first", wrap=True)
                ablation_chart = gr.BarPlot(x="ablation", y="change", title="Change in score", height=260, sort="y")
            ablate_button.click(
                ablate_photo, ablation_photo, [ablated, ablation_table, ablation_chart, faces], api_name="ablations"
            )
        with gr.Tab("Batch"):
            gr.Markdown(f"Score many photos at once: select several files or a .zip (up to {MAX_BATCH_FILES} images).")
            files = gr.File(label="Photos or a .zip", file_count="multiple", file_types=["image", ".zip"])
            batch_button = gr.Button("Score all", variant="primary")
            batch_table = gr.Dataframe(label="Scores (0–100)", wrap=True)
            batch_csv = gr.File(label="Download CSV")
            batch_button.click(score_batch, files, [batch_table, batch_csv], api_name="batch")
        with gr.Tab("Explore"):
            gr.Markdown(
                "The reference images in the model's embedding space (first two principal components), coloured by "
                "score. Hover a point for its id and score; drag across the plot to see thumbnails from that region."
            )
            scatter = gr.ScatterPlot(
                POINTS, x="x", y="y", color="score", tooltip=["image_id", "score"], height=420,
                x_title="principal component 1", y_title="principal component 2", color_title="score",
            )  # fmt: skip
            picked = gr.Gallery(label="Selected images", columns=6, height=200)
            scatter.select(on_select, None, picked, api_name=False)
        with gr.Tab("About"):
            gr.Markdown(ABOUT)
    return app


if __name__ == "__main__":
    build_app().queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size=MAX_FILE_SIZE,
        show_error=True,
    )
