"""ResMem's published weights as an ordinary model folder of ours (`memorability import resmem OUT`).

The weights come from the installed `resmem` package (PyPI, 1.1.6: a 490 MB wheel; `pip install --no-deps
resmem==1.1.6`), under the "ResMem Non-commercial License" of The University of Chicago, which allows research and
teaching use only and must travel with anything derived from them: the folder gets its text beside the weights and a
model card that credits the authors. Nothing of ResMem's is copied into this repository or shipped by us; the
weights are read from where pip put them, as a plain state dict (`torch.load(weights_only=True)`: no pickle runs).

The converted model scores what ResMem scores (its own transform: resize to 256 × 256, centre crop 227, no
normalisation; `tests/test_resmem.py` compares them on real photos where the package is installed).
"""

import hashlib
import json
import os
import re
from importlib import metadata
from pathlib import Path

import torch
from PIL import Image

from .configuration_memorability import MemorabilityConfig
from .configuration_resmem import ResMemConfig
from .errors import MemorabilityError
from .modeling_memorability import MemorabilityModel
from .run_output import check_writable, replaced_folder

RESMEM_DISTRIBUTION, RESMEM_VERSION = "resmem", "1.1.6"
WEIGHTS_FILE = "model.pt"  # inside the installed package
LICENCE_FILE = "LICENSE"  # beside the converted weights
RECORD_FILE = "resmem.json"  # where the weights came from
HEAD_HIDDEN_SIZES = [4096, 4096, 2048, 1024, 512, 256]  # fc6 … fc11; fc12 is the head's last layer
HEAD_DROPOUT = 0.5
RESIZE, CROP = 256, 227  # ResMem's transform: Resize((256, 256)), CenterCrop(227), ToTensor (no normalisation)
MISSING = (
    "ResMem's weights come with its PyPI package, which is not installed: pip install --no-deps "
    f"resmem=={RESMEM_VERSION} (490 MB). Its licence (the ResMem Non-commercial License, The University of Chicago) "
    "allows research and teaching use only, not commercial use."
)
CREDIT = (
    "ResMem is the work of Coen D. Needell and Wilma A. Bainbridge: \"Embracing New Techniques in Deep Learning for "
    "Estimating Image Memorability\", Computational Brain & Behavior 5, 168–184 (2022). Its weights, trained on "
    "LaMem and MemCat (about 70,000 photos), are published in the `resmem` package under the ResMem Non-commercial "
    "License (The University of Chicago): research and teaching use only; the licence is in LICENSE beside the "
    "weights. This folder is a conversion of those weights into the memorability package's format, not a new model."
)


FOLDER_CARD = """# ResMem, converted

{credit}

Converted from `resmem` {version} by `memorability import resmem`: the same network and the same scores (its transform
is this folder's image processor: resize to 256 × 256, centre crop 227, no normalisation), in a folder that
`memorability predict`, the Space, the ablation study and `memorability quantize` take like any other model.
`python hub/push_model.py` renders the full model card; publish this folder only as the licence allows.
"""


class ResMemMissingError(MemorabilityError):
    """The `resmem` package (and so its weights) is not installed; the message says how to install it."""


def installed_resmem() -> tuple[Path, Path, str]:
    """(weights file, licence file, version) of the installed `resmem` package, or `ResMemMissingError`."""
    try:
        distribution = metadata.distribution(RESMEM_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise ResMemMissingError(MISSING) from None
    weights = Path(distribution.locate_file(f"resmem/{WEIGHTS_FILE}"))
    licence = next((file for file in distribution.files or () if file.name.startswith("LICENSE")), None)
    if not weights.is_file() or licence is None:
        raise ResMemMissingError(f"The installed resmem {distribution.version} has no {WEIGHTS_FILE} or licence. {MISSING}")
    return weights, Path(distribution.locate_file(licence)), distribution.version


def resmem_config(backbone: ResMemConfig | None = None, head_hidden_sizes: list[int] = HEAD_HIDDEN_SIZES) -> MemorabilityConfig:
    """Our config of ResMem's network: its two readings as the backbone, fc6 … fc12 and the sigmoid as the head."""
    return MemorabilityConfig(
        backbone_config=backbone or ResMemConfig(), head_hidden_sizes=head_hidden_sizes, head_dropout=HEAD_DROPOUT
    )


def config_of(state: dict[str, torch.Tensor]) -> MemorabilityConfig:
    """The config of the network whose weights `state` holds, read from their names and shapes: the published one
    gives `resmem_config()`; a smaller network of the same shape (in tests) gives its own."""
    try:
        depths = [len({key.split(".")[2] for key in state if key.startswith(f"features.layer{stage}.")})
                  for stage in range(1, 5)]  # fmt: skip
        backbone = ResMemConfig(
            resnet_depths=depths,
            resnet_hidden_sizes=[state[f"features.layer{stage}.0.conv3.weight"].shape[0] for stage in range(1, 5)],
            resnet_embedding_size=state["features.conv1.weight"].shape[0],
            resnet_classes=state["features.fc.weight"].shape[0],
            branch_channels=[state[f"conv{index}.weight"].shape[0] for index in range(1, 6)],
        )
        linear = sorted((key for key in state if re.fullmatch(r"fc\d+\.weight", key)), key=lambda key: int(key[2:-7]))
        head = [state[key].shape[0] for key in linear[:-1]]
        reads = state[linear[0]].shape[1]
    except (KeyError, IndexError) as error:
        raise ValueError(f"not ResMem's network: no weight {error}") from None
    if reads != backbone.hidden_size:
        raise ValueError(f"not ResMem's network at {CROP} px: fc6 reads {reads} features, not {backbone.hidden_size}")
    return resmem_config(backbone, head)


def resmem_processor(resize: int = RESIZE, crop: int = CROP):
    """ResMem's transform as a stock transformers image processor (PIL-backed, as torchvision resizes a PIL image):
    resize to resize × resize (not keeping the aspect ratio), centre crop crop × crop, scale to [0, 1], no
    normalisation."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"height": resize, "width": resize},
        crop_size={"height": crop, "width": crop},
        resample=Image.Resampling.BILINEAR,
        do_normalize=False,
        do_rescale=True,
        rescale_factor=1 / 255,
    )


def converted_state_dict(state: dict[str, torch.Tensor], config: MemorabilityConfig) -> dict[str, torch.Tensor]:
    """ResMem's weight names as ours: its torchvision ResNet (`features.*`) as a transformers ResNet, its classifier,
    the branch's conv1 … conv5, and fc6 … fc12 as the head's linear layers in order."""
    converted = {}
    linear_layers = [name for name in sorted({key.split(".")[0] for key in state if key.startswith("fc")},
                                             key=lambda name: int(name[2:]))]  # fmt: skip
    head_positions = [index * 3 for index in range(len(config.head_hidden_sizes))] + [3 * len(config.head_hidden_sizes)]
    for key, tensor in state.items():
        converted[our_name(key, dict(zip(linear_layers, head_positions)))] = tensor
    return converted


def our_name(key: str, head: dict[str, int]) -> str:
    """One ResMem weight name as ours (see `converted_state_dict`)."""
    parts = key.split(".")
    if parts[0] in head:
        return f"head.{head[parts[0]]}.{parts[1]}"
    if re.fullmatch(r"conv[1-5]", parts[0]):
        return f"backbone.branch.{key}"
    if parts[0] != "features":
        raise ValueError(f"{key}: not a weight of ResMem's network")
    name, rest = parts[1], parts[2:]
    if name == "fc":
        return "backbone.classifier." + ".".join(rest)
    if name in ("conv1", "bn1"):
        return f"backbone.resnet.embedder.embedder.{'convolution' if name == 'conv1' else 'normalization'}." + ".".join(rest)
    stage, block, layer, *tail = int(name.removeprefix("layer")) - 1, rest[0], rest[1], *rest[2:]
    where = f"backbone.resnet.encoder.stages.{stage}.layers.{block}"
    if layer == "downsample":
        part = "convolution" if tail[0] == "0" else "normalization"
        return f"{where}.shortcut.{part}." + ".".join(tail[1:])
    number = int(layer[-1]) - 1
    return f"{where}.layer.{number}.{'convolution' if layer.startswith('conv') else 'normalization'}." + ".".join(tail)


def convert(state: dict[str, torch.Tensor]) -> MemorabilityModel:
    """A model of ours holding ResMem's weights `state`, every one of them placed (strictly) and in eval mode."""
    model = MemorabilityModel(config_of(state))
    model.load_state_dict(converted_state_dict(state, model.config), strict=True)
    return model.eval()


def import_resmem(out: str | os.PathLike) -> Path:
    """Convert the installed package's weights into the model folder `out` (replaced whole, never half-written):
    config, safetensors, image processor, LICENSE (ResMem's), a record of where the weights came from, and a model
    card crediting the authors. Returns `out`."""
    weights, licence, version = installed_resmem()
    out = Path(out)
    check_writable(out, replaced=True)
    model = convert(torch.load(weights, map_location="cpu", weights_only=True))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    with replaced_folder(out) as staging:
        model.save_pretrained(staging)
        resmem_processor().save_pretrained(staging)
        (staging / LICENCE_FILE).write_bytes(licence.read_bytes())
        record = {"source": f"{RESMEM_DISTRIBUTION} {version} (PyPI)", "weights_sha256": digest, "credit": CREDIT,
                  "licence": "ResMem Non-commercial License (The University of Chicago), in LICENSE"}  # fmt: skip
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
        (staging / "README.md").write_text(FOLDER_CARD.format(credit=CREDIT, version=version))
    return out


def resmem_record(model_dir: str | os.PathLike) -> dict | None:
    """Where a converted ResMem folder's weights came from (`import_resmem`), or None for any other model."""
    path = Path(model_dir) / RECORD_FILE
    return json.loads(path.read_text()) if path.is_file() else None


__all__ = ["CREDIT", "ResMemMissingError", "convert", "import_resmem", "resmem_config", "resmem_processor"]
