"""Every training hyper-parameter, with its default, help text, YAML loading and command-line overrides."""

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def option(default: Any, help: str, choices: tuple | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainingArguments:
    """Defaults match train/config.yaml; a YAML file overrides them and the command line overrides both."""

    data: str | None = option(None, "LaMem folder, a CSV of scored photos, a Parquet table folder or a Hub id.")
    output_dir: str | None = option(None, "Where checkpoints, logs and the best model go.")
    split: int = option(1, "LaMem split index (1..5): its train/val partition and its scores.")
    backbone: str = option(
        "resnet50",
        "A preset (resnet50, resnet18, tiny) or the Hub id / folder of a pretrained ResNet, ConvNeXt, DINOv2, ViT, "
        "CLIP or SigLIP model.",
    )
    backbone_weights: str = option(
        "default",
        "'default' (the preset's ImageNet checkpoint, or the pretrained model's own), 'none' (random init), or a Hub "
        "id / folder.",
    )
    image_size: int = option(224, "Square input size after resize and centre crop.")
    head_dropout: float = option(0.3, "Dropout in the regression head.")
    epochs: int = option(10, "Passes over the training split.")
    max_steps: int = option(0, "Stop after this many optimizer steps (0: no limit); for smoke runs.")
    batch_size: int = option(32, "Images per process per step.")
    eval_batch_size: int = option(64, "Images per process per evaluation batch.")
    gradient_accumulation_steps: int = option(1, "Batches per optimizer step.")
    learning_rate: float = option(1e-3, "Peak learning rate of the head.")
    backbone_learning_rate: float = option(1e-4, "Peak learning rate of the backbone (lower: it starts pretrained).")
    weight_decay: float = option(1e-4, "AdamW weight decay.")
    warmup_ratio: float = option(0.05, "Fraction of steps with linear warmup before the cosine decay.")
    freeze_backbone_epochs: int = option(0, "Train only the head for this many first epochs.")
    augment: bool = option(True, "Random resized crop and horizontal flip on training images.")
    mixed_precision: str = option("auto", "'auto': bf16 where the hardware has it, else fp32.", ("auto", "no", "bf16", "fp16"))
    seed: int = option(42, "Seed for initialisation, data order and dropout.")
    num_workers: int = option(2, "DataLoader worker processes per training process.")
    save_steps: int = option(200, "Save a resumable state every N optimizer steps (and at each epoch end).")
    keep_states: int = option(2, "How many resumable states to keep.")
    report_to: str = option("tensorboard", "Tracker for accelerate's log_with ('none' to disable).")
    resume: bool = option(False, "Continue from the last saved state in output_dir.")
    overwrite: bool = option(False, "Allow starting a new run in an output_dir that already holds one.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_yaml_defaults(path: str | os.PathLike) -> dict[str, Any]:
    """Keys of a YAML config file, checked against TrainingArguments' fields."""
    values = yaml.safe_load(Path(path).read_text()) or {}
    known = {item.name for item in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}.")
    return values


def build_parser(description: str) -> argparse.ArgumentParser:
    """--config FILE plus one --flag per field (booleans get --flag / --no-flag)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="YAML file of defaults (keys are the flags below, with underscores).")
    for item in dataclasses.fields(TrainingArguments):
        flag = "--" + item.name.replace("_", "-")
        help_text = item.metadata["help"]
        if item.type is bool or item.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = {int: int, float: float}.get(type(item.default), str)
            parser.add_argument(flag, type=kind, default=None, choices=item.metadata["choices"], help=help_text)
    return parser


def parse_training_arguments(argv: list[str] | None, default_config: str | os.PathLike | None) -> TrainingArguments:
    """Fields from dataclass defaults, then the YAML file, then the command line."""
    parser = build_parser("Train a memorability model (runs under `accelerate launch` or plain python).")
    namespace = parser.parse_args(argv)
    config_path = namespace.config or default_config
    values = read_yaml_defaults(config_path) if config_path else {}
    values.update({key: value for key, value in vars(namespace).items() if key != "config" and value is not None})
    arguments = TrainingArguments(**values)
    if not arguments.data or not arguments.output_dir:
        parser.error("--data and --output-dir are required.")
    return arguments
