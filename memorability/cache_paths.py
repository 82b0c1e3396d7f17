"""Where built artefacts live (the demo model, its index, the sample data), and how the demo model is recognised.

A module of its own, at the bottom of the package: loading a model needs to know where the demo model is, and must
not import the training code that builds it.
"""

import os
from pathlib import Path

CACHE_ENV = "MEMORABILITY_CACHE"
DEMO_MARKER = "DEMO_MODEL.txt"
DEMO_NOTICE = (
    "This is a demo model: a tiny network trained for about a minute on generated pictures (coloured squares with "
    "texture and a white disc). Its scores say nothing about real photographs.\n"
)


def cache_dir() -> Path:
    """$MEMORABILITY_CACHE, else ~/.cache/memorability."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "memorability")


def demo_model_dir() -> Path:
    return cache_dir() / "demo-model"


def demo_index_dir() -> Path:
    return cache_dir() / "demo-index"


def sample_data_dir() -> Path:
    return cache_dir() / "sample-data"


def is_demo_model(model_dir: str | os.PathLike) -> bool:
    """Whether a local model folder is the demo model (it carries a marker file)."""
    return (Path(model_dir) / DEMO_MARKER).is_file()
