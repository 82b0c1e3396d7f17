"""Shared fixtures: generated LaMem-format folders (small, and full-scale with the real split files), and a test run
that never touches the network or the user's `datasets` cache."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: a Hub id then fails at once, no retries

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LAMEM_SPLITS = PROJECT_ROOT.parent / "shared" / "data" / "lamem_splits"
SMALL_SPLIT_FRACTIONS = (0.75, 0.075)  # train and val, as in LaMem (0.77, 0.064); the rest is test


@pytest.fixture(autouse=True, scope="session")
def datasets_cache(tmp_path_factory) -> Iterator[Path]:
    """Point `datasets`' cache at a temporary folder for the whole run, so tests leave ~/.cache alone."""
    cache = tmp_path_factory.mktemp("hf_datasets_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
        yield cache


@pytest.fixture(autouse=True, scope="session")
def memorability_cache(tmp_path_factory) -> Iterator[Path]:
    """Our own cache (the demo model, the measured forms of each model: memorability.forms) in a temporary folder for
    the whole run, shared with the processes tests start, so that they score a model in the form this one chose."""
    cache = tmp_path_factory.mktemp("memorability_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEMORABILITY_CACHE", str(cache))
        yield cache


def write_lamem_folder(root: Path, n_images: int = 40, seed: int = 0) -> Path:
    """A small official-layout folder: n tiny JPEGs (8..32 px a side, random colours) named 00000001.jpg..., and
    splits/{train,val,test}_{1..5}.txt, each index with its own partition and its own scores, in LaMem's format."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "splits").mkdir()
    names = [f"{number:08d}.jpg" for number in range(1, n_images + 1)]
    for name in names:
        height, width = rng.integers(8, 33, size=2)
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / name, quality=90)
    base = rng.uniform(0.3, 0.9, size=n_images)
    for index in range(1, 6):
        order = rng.permutation(n_images)
        scores = np.clip(base + rng.normal(0, 0.08, size=n_images), 0, 1)
        cuts = np.cumsum([max(1, round(n_images * fraction)) for fraction in SMALL_SPLIT_FRACTIONS])
        for role, part in zip(("train", "val", "test"), np.split(order, cuts)):
            lines = "".join(f"{names[i]} {scores[i]:.6f}\n" for i in part)
            (root / "splits" / f"{role}_{index}.txt").write_text(lines)
    return root


@pytest.fixture(scope="session")
def lamem_folder(tmp_path_factory) -> Path:
    """A small LaMem folder built once per run; read it, don't change it (use `make_lamem_folder` for that)."""
    return write_lamem_folder(tmp_path_factory.mktemp("lamem") / "lamem")


@pytest.fixture
def make_lamem_folder(tmp_path) -> Callable[..., Path]:
    """A factory of small LaMem folders a test may change: `make_lamem_folder(n_images=40, seed=0)`."""

    def make(n_images: int = 40, seed: int = 0) -> Path:
        return write_lamem_folder(tmp_path / f"lamem_{n_images}_{seed}", n_images, seed)

    return make


@pytest.fixture(scope="session")
def lamem_splits_dir() -> Path:
    """The 15 real LaMem split files (no images); skips where ../shared is absent (a fresh clone elsewhere)."""
    if not (LAMEM_SPLITS / "train_1.txt").is_file():
        pytest.skip(f"the real LaMem split files are not at {LAMEM_SPLITS} (only in the project's workplace)")
    return LAMEM_SPLITS


@pytest.fixture(scope="session")
def full_lamem_folder(tmp_path_factory, lamem_splits_dir) -> Iterator[Path]:
    """Full-scale LaMem: the real split files and 58,741 stand-in images named by the real ids.

    The images are hard links to one 4×4 JPEG: a second to make, one inode on disk, and the loader only needs the
    files to exist. Removed at the end of the run, so that pytest's kept temporary folders stay small.
    """
    root = tmp_path_factory.mktemp("lamem_full")
    (root / "splits").mkdir()
    (root / "images").mkdir()
    for path in lamem_splits_dir.glob("*_[1-5].txt"):
        shutil.copy(path, root / "splits" / path.name)
    stand_in = root / "stand_in.jpg"
    Image.new("RGB", (4, 4), (128, 64, 32)).save(stand_in)
    lines = [line for path in (root / "splits").glob("*_1.txt") for line in path.read_text().splitlines()]
    for name in {line.split(" ")[0] for line in lines}:
        os.link(stand_in, root / "images" / name)
    yield root
    shutil.rmtree(root)


# --- Models ---------------------------------------------------------------------------------------------------------

TINY_IMAGE_SIZE = 32
# The untrained model's last layer is drawn with std 0.01 so that training starts at LaMem's mean; its scores then
# spread by about 0.002 over different pictures, and a comparison at atol 1e-6 would pass most wrong computations.
# Drawn with std 0.3, they spread over about 0.4-0.6 (not saturated: the sigmoid's slope stays near its maximum).
TINY_LAST_LAYER_STD = 0.3


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """An untrained tiny model (2-stage ResNet, 16-d embeddings) saved with a 32-px image processor; its scores
    differ between pictures by tenths (see TINY_LAST_LAYER_STD), so that comparing two computations means something."""
    import torch

    from memorability import MemorabilityConfig, MemorabilityModel, make_image_processor

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_model")
    backbone = {"layer_type": "basic", "embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1]}
    model = MemorabilityModel(MemorabilityConfig(backbone_config=backbone, head_hidden_sizes=[32, 16]))
    torch.nn.init.normal_(model.head[-1].weight, std=TINY_LAST_LAYER_STD)
    model.save_pretrained(folder)
    make_image_processor(TINY_IMAGE_SIZE).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory) -> Path:
    """Generated LaMem-format sample data with a known score rule (memorability.sample_data), 600 images."""
    from memorability.sample_data import make_sample_data

    return make_sample_data(tmp_path_factory.mktemp("sample") / "sample", n=600, seed=0, progress=False)


@pytest.fixture(scope="session")
def trained_sample_model(tmp_path_factory, sample_data_dir) -> Path:
    """A tiny model trained for ~30 s on the sample data (64 px); it has learnt the rule well enough to be probed."""
    from memorability.demo import sample_training_arguments
    from memorability.training import BEST_DIR, train

    run = tmp_path_factory.mktemp("trained_sample_model")
    train(sample_training_arguments(sample_data_dir, run, epochs=8))
    return run / BEST_DIR


# The Space (tests/space_server.py): the model and index are built once per run, the app once per test module.


@pytest.fixture(scope="session")
def space_model(trained_sample_model, tmp_path_factory) -> Path:
    """The tests' trained tiny model marked as the demo model, so that the app serves as `make demo` does (banner
    included)."""
    from memorability.cache_paths import DEMO_MARKER, DEMO_NOTICE

    folder = tmp_path_factory.mktemp("space_model")
    shutil.copytree(trained_sample_model, folder, dirs_exist_ok=True)
    (folder / DEMO_MARKER).write_text(DEMO_NOTICE)
    return folder


@pytest.fixture(scope="session")
def space_index(space_model, sample_data_dir, tmp_path_factory) -> Path:
    """A neighbour index of the 600 sample images under the space model."""
    from space_server import build_index

    return build_index(space_model, sample_data_dir, tmp_path_factory.mktemp("space_index"))


@pytest.fixture(scope="module")
def space(space_model, space_index, tmp_path_factory) -> Iterator:
    """One app per test module, with the default queue."""
    from space_server import running_space

    with running_space(space_model, space_index, tmp_path_factory.mktemp("space")) as server:
        yield server


@pytest.fixture(scope="module")
def space_client(space):
    return space.client()
