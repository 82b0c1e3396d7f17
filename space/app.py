"""The memorability Space: upload a photo, get a memorability score.

The model is loaded once at start; `score_image` is pure (image in, values out) and importable without launching.
MEMORABILITY_MODEL names a local folder or Hub id; by default the demo model (built by `make demo`) serves, with a
banner saying its scores mean nothing about real photos.
"""

import os
import sys
from pathlib import Path

import gradio as gr
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the vendored package when deployed as a Space

from memorability.demo import build_demo_model, is_demo_model  # noqa: E402
from memorability.images import ImageLoadError, load_image  # noqa: E402
from memorability.inference import MODEL_ENV, load_predictor  # noqa: E402
from memorability.runtime import tune_allocator  # noqa: E402

MAX_FILE_SIZE = "20mb"
CONCURRENCY = 2
QUEUE_SIZE = 32


def resolve_model() -> str:
    """$MEMORABILITY_MODEL, else the demo model (built on first use)."""
    return os.environ.get(MODEL_ENV) or str(build_demo_model())


tune_allocator()
MODEL_SOURCE = resolve_model()
PREDICTOR = load_predictor(MODEL_SOURCE)
DEMO = is_demo_model(MODEL_SOURCE)


def score_image(image: Image.Image | None) -> tuple[float, str]:
    """Score one photo on 0–100, with a sentence saying what the number is."""
    if image is None:
        raise gr.Error("Upload a photo first.")
    try:
        picture = load_image(image, name="The uploaded file")
    except ImageLoadError as error:
        raise gr.Error(str(error)) from None
    score = 100.0 * PREDICTOR.predict(picture)
    return round(score, 1), f"Predicted memorability: {score:.1f} / 100" + (" (demo model)" if DEMO else "")


def build_app() -> gr.Blocks:
    with gr.Blocks(title="Memorability") as app:
        gr.Markdown("# How memorable is this photo?\nUpload a photo: the model predicts how likely people are to remember it.")
        if DEMO:
            gr.Markdown(
                "**Demo model serving.** A tiny network trained for a minute on generated pictures: its scores say "
                "nothing about real photographs. Set `MEMORABILITY_MODEL` to a trained model."
            )
        with gr.Row():
            image = gr.Image(type="pil", label="Photo", sources=["upload", "webcam", "clipboard"])
            with gr.Column():
                score = gr.Number(label="Memorability (0–100)", precision=1)
                summary = gr.Markdown()
        button = gr.Button("Score", variant="primary")
        button.click(score_image, inputs=image, outputs=[score, summary], api_name="score")
    return app


if __name__ == "__main__":
    build_app().queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        max_file_size=MAX_FILE_SIZE,
    )
