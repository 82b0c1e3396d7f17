"""int8 scoring on the CPU: the model's network quantized to int8 and run by ONNX Runtime.

`memorability quantize MODEL` (memorability.quantization) writes `onnx/model_int8.onnx` beside the model's weights,
with `onnx/quantization.json` recording how it was made, from which model (its fingerprint: config, weights, image
processor), the file's own hash, and what it costs in fidelity against fp32. This module finds and opens that file,
refuses one that was made from another model than the one beside it or that does not match its record, and runs
it. Static quantization in QDQ form, per-channel int8 weights and uint8 activations (the u8×s8 VNNI kernels are
the fast ones: with int8 activations, the prototype behind this module ran no faster than fp32): on our 2-core Zen 4
CPU (AVX512-VNNI) ONNX Runtime ran a ResNet50 1.55-2.0× as fast as the bare torchvision network in bf16 +
channels_last (bench/inference.py). The predictor loads in under a second and nothing compiles; torchao's PT2E
route compiled for 15-20 s at the first call of every new process, and again per batch shape
(bench/int8_routes.py; README, "int8 scoring on the CPU").

This module imports no other scoring code, so that `memorability.inference.load_predictor` can open it.
"""

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from transformers.utils import cached_file

from .errors import MemorabilityError
from .modeling_memorability import MemorabilityOutput, first_line

INT8_FILE = "onnx/model_int8.onnx"
RECORD_FILE = "onnx/quantization.json"
RECORD_FORMAT = 2
INPUT_NAME = "pixel_values"
OUTPUT_NAMES = ("scores", "embeddings", "uncertainty")  # MemorabilityOutput's fields, in the file's output order


class Int8Error(MemorabilityError):
    """An int8 file that is absent, unreadable, or made from other weights; the message says how to make it."""


def make_hint(model: str) -> str:
    return f"make it with `memorability quantize {model}`"


def find_int8(source: str | os.PathLike, name: str = INT8_FILE) -> Path | None:
    """The local path of the model's int8 file (or its record, by `name`), in a model folder or a Hub repo (through
    the Hub cache, as transformers finds a model's other files), or None where it has none."""
    try:
        found = cached_file(
            str(source),
            name,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except (OSError, ValueError):
        return None
    return Path(found) if found else None


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 8 MB blocks: about 0.03 s for a ResNet50's 25 MB int8 file here."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_record(source: str | os.PathLike) -> dict:
    """The quantization record beside a model's int8 file, or an `Int8Error` naming what is wrong with it."""
    path = find_int8(source, RECORD_FILE)
    try:
        record = json.loads(Path(path).read_text()) if path is not None else None
    except (OSError, ValueError) as error:
        raise Int8Error(f"{path}: cannot read the int8 record ({first_line(error)}); {make_hint(str(source))}.") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise Int8Error(f"{source} has no int8 record this version can read ({RECORD_FILE}); {make_hint(str(source))}.")
    return record


def require_int8(source: str | os.PathLike) -> Path:
    """The model's int8 file, or an `Int8Error` saying how to make it."""
    path = find_int8(source)
    if path is None:
        raise Int8Error(f"{source} has no int8 file ({INT8_FILE}); {make_hint(str(source))}.")
    return path


def usable_int8(source: str | os.PathLike) -> bool:
    """Whether "auto" may score with the model's int8 file: it has one, ONNX Runtime is installed, and the file met
    the fidelity thresholds when it was made (a file kept with --allow-lossy is used only when asked for)."""
    if find_int8(source) is None:
        return False
    return importlib.util.find_spec("onnxruntime") is not None and bool(read_record(source).get("meets_thresholds"))


def checked_int8(source: str | os.PathLike, fingerprint: str) -> tuple[Path, dict, str]:
    """(path, record, sha256) of the model's int8 file, once it is checked to belong to the model now beside it
    (`fingerprint`: weights, config, image processor) and to be the file its record describes."""
    path = require_int8(source)
    record, digest = read_record(source), file_digest(path)
    if record.get("model_fingerprint") != fingerprint:
        raise Int8Error(
            f"{source}: {INT8_FILE} was made from another model than the one now beside it (other weights, config or "
            f"image processor); {make_hint(str(source))} again."
        )
    if record.get("int8_sha256") != digest:
        raise Int8Error(f"{source}: {INT8_FILE} is not the file its record describes; {make_hint(str(source))} again.")
    return path, record, digest


def copy_int8(model_dir: str | os.PathLike, out_dir: Path, fingerprint: str) -> dict | None:
    """Copy a model folder's int8 file and record into a copy of the model saved at `out_dir` (a Hub push's staging
    folder), or None where the model has none; a stale file is refused (`checked_int8`), never published."""
    if not (Path(model_dir) / INT8_FILE).is_file():
        return None
    _, record, _ = checked_int8(model_dir, fingerprint)
    (out_dir / INT8_FILE).parent.mkdir(parents=True, exist_ok=True)
    for name in (INT8_FILE, RECORD_FILE):
        shutil.copyfile(Path(model_dir) / name, out_dir / name)
    return record


def open_session(path: str | os.PathLike, threads: int | None = None):
    """An ONNX Runtime session on the CPU. One knob for both runtimes: torch's thread count (1 per process under
    `accelerate launch`, see memorability.distributed), so that several processes on one machine do not fight over
    its cores."""
    try:
        import onnxruntime  # about 0.1 s to import: only where int8 is asked for
    except ImportError:
        raise Int8Error("int8 scoring needs ONNX Runtime: pip install onnxruntime.") from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(session, pixel_values: torch.Tensor | np.ndarray) -> MemorabilityOutput:
    """Scores (B,), embeddings (B, D) and uncertainty (B,) in float32, as the torch model returns them."""
    if isinstance(pixel_values, torch.Tensor):
        pixel_values = pixel_values.detach().cpu().float().numpy()
    outputs = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(pixel_values, dtype=np.float32)})
    return MemorabilityOutput(**{name: torch.from_numpy(value) for name, value in zip(OUTPUT_NAMES, outputs)})


class Int8Session:
    """The int8 network of one model in an ONNX Runtime session, checked against the model beside it.

    `label` names the file by its hash: a run's manifest records it as the precision, so parts scored by another
    int8 file (quantized again, or with other calibration images) are never reused.
    """

    def __init__(self, source: str | os.PathLike, fingerprint: str, threads: int | None = None):
        path, self.record, digest = checked_int8(source, fingerprint)
        try:
            self.session = open_session(path, threads)
        except Int8Error:
            raise
        except Exception as error:  # onnxruntime raises its own exception types, with no common base class
            raise Int8Error(f"{path}: ONNX Runtime cannot open it ({first_line(error)}); {make_hint(str(source))}.") from None
        self.path = path
        self.label = f"int8 {digest[:16]}"

    def run(self, pixel_values: torch.Tensor) -> MemorabilityOutput:
        """The model's outputs for a batch, in float32 (`run_session`)."""
        return run_session(self.session, pixel_values)


__all__ = ["INT8_FILE", "RECORD_FILE", "Int8Error", "Int8Session", "checked_int8", "copy_int8", "open_session", "run_session", "find_int8", "read_record", "require_int8", "usable_int8"]
