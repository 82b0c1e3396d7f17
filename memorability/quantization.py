"""Make a model's int8 file once (`memorability quantize MODEL`): export, calibrate, measure, and refuse a lossy one.

The fp32 network (the predictor's scoring copy: batch norm folded) is exported to ONNX, exactly (|Δscore| under
1e-5 against torch fp32), and quantized statically by ONNX Runtime in QDQ form: int8 weights per output channel,
uint8 activations whose ranges come from calibration pictures (MinMax). The pictures are real-looking photos
(`memorability.calibration`); a third of them (whole photos, never their crops) are held out, and the int8 file's
scores, embeddings and neighbours are compared with the fp32 model's on those. Below `MIN_SPEARMAN` or above
`MAX_P99_DIFFERENCE` the file is refused in one sentence unless `allow_lossy`: a backbone or layer that does not
quantize well never degrades the scores silently. The file, and a record of how it was made (which pictures, the
settings, the weights it belongs to, the fidelity measured), are written beside the model (`memorability.int8`).
"""

import json
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from .calibration import DEFAULT_MAX_IMAGES, CalibrationSet, calibration_set
from .errors import MemorabilityError
from .fingerprint import model_fingerprint
from .inference import load_model, scoring_copy
from .int8 import (
    INPUT_NAME, INT8_FILE, OUTPUT_NAMES, RECORD_FILE, RECORD_FORMAT, file_digest, open_session, run_session,
)
from .modeling_memorability import MemorabilityModel, MemorabilityOutput, first_line
from .run_output import atomic_file, check_writable

MIN_SPEARMAN = 0.99  # int8 scores against fp32 scores, on held-out calibration photos
MAX_P99_DIFFERENCE = 0.01  # 99th percentile of |int8 score - fp32 score|
MIN_IMAGES = 30
NEIGHBOURS = 10
CALIBRATION_BATCH = 8
OPSET = 17
# The settings passed to onnxruntime.quantization.quantize_static, recorded with the file.
SETTINGS = {
    "method": "onnxruntime.quantization.quantize_static",
    "quant_format": "QDQ",
    "per_channel": True,
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "calibrate_method": "MinMax",
    "opset": OPSET,
    "excluded": "the head (Gemm/MatMul under `head`) in fp32; the stem too (every node up to the first Add) where "
    "the whole network in int8 missed the thresholds (`stem_in_fp32`)",
}


class QuantizationError(MemorabilityError):
    """A model that cannot be exported or quantized, or whose int8 scores stray too far from fp32; one sentence."""


@dataclass(frozen=True)
class Fidelity:
    """How closely int8 outputs follow fp32 outputs on the same pictures."""

    images: int
    spearman: float
    p99_abs_difference: float
    max_abs_difference: float
    embedding_cosine_mean: float
    embedding_cosine_min: float
    neighbour_top10_overlap: float  # mean share of a query's 10 fp32 neighbours that its int8 query also finds

    @property
    def meets_thresholds(self) -> bool:
        return self.spearman >= MIN_SPEARMAN and self.p99_abs_difference <= MAX_P99_DIFFERENCE

    def summary(self) -> str:
        return (
            f"Spearman ρ {self.spearman:.4f}, p99 |Δscore| {self.p99_abs_difference:.4f} on {self.images} held-out "
            f"pictures (embedding cosine {self.embedding_cosine_mean:.4f}, neighbour top-{NEIGHBOURS} overlap "
            f"{self.neighbour_top10_overlap:.2f})"
        )


def measure_fidelity(reference: MemorabilityOutput, candidate: MemorabilityOutput) -> Fidelity:
    """int8 (`candidate`) against fp32 (`reference`) outputs of the same pictures. Neighbours: each picture's 10
    nearest others by cosine among the fp32 embeddings, found with its fp32 and with its int8 embedding as the query
    (an index built in fp32, queried in int8)."""
    scores, expected = candidate.scores.double().numpy(), reference.scores.double().numpy()
    difference = np.abs(scores - expected)
    gallery = torch.nn.functional.normalize(reference.embeddings.double(), dim=1)
    queries = torch.nn.functional.normalize(candidate.embeddings.double(), dim=1)
    cosine = (gallery * queries).sum(dim=1)
    rho = spearmanr(scores, expected).statistic
    return Fidelity(
        images=len(scores),
        spearman=float(rho) if np.isfinite(rho) else float("nan"),
        p99_abs_difference=float(np.percentile(difference, 99)),
        max_abs_difference=float(difference.max()),
        embedding_cosine_mean=float(cosine.mean()),
        embedding_cosine_min=float(cosine.min()),
        neighbour_top10_overlap=neighbour_overlap(gallery, queries, min(NEIGHBOURS, len(scores) - 1)),
    )


def neighbour_overlap(gallery: torch.Tensor, queries: torch.Tensor, k: int) -> float:
    """Mean share of the k nearest gallery rows (itself excluded) that the query finds, against the gallery's own."""
    own = gallery @ gallery.T
    other = queries @ gallery.T
    for similarities in (own, other):
        similarities.fill_diagonal_(-float("inf"))
    expected, found = own.topk(k, dim=1).indices, other.topk(k, dim=1).indices
    shared = [len(set(a.tolist()) & set(b.tolist())) / k for a, b in zip(expected, found)]
    return float(np.mean(shared))


class ScoringNetwork(torch.nn.Module):
    """The scoring copy with a plain tuple for output, in `OUTPUT_NAMES` order, as the ONNX file returns them."""

    def __init__(self, model: MemorabilityModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.model(pixel_values=pixel_values, return_dict=True)
        return tuple(output[name] for name in OUTPUT_NAMES)


def export_fp32(model: MemorabilityModel, size: tuple[int, int], path: Path) -> None:
    """The fp32 scoring copy as ONNX, any batch size, at the processor's input size; refuses a backbone whose
    export fails, in one sentence."""
    network = ScoringNetwork(scoring_copy(model, torch.float32, torch.contiguous_format))
    example = torch.zeros(1, 3, *size)
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)}
    try:
        # The TorchScript exporter (dynamo=False): exact, and it names nodes by module path (the head is found by
        # name). Its warnings about traced Python conditions concern shapes, which are fixed here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(network, (example,), str(path), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                              dynamic_axes=axes, opset_version=OPSET, dynamo=False)  # fmt: skip
    except Exception as error:  # the exporter raises many kinds; any of them means this backbone does not export
        kind = model.config.backbone_config.model_type
        raise QuantizationError(
            f"The {kind} backbone could not be exported to ONNX ({first_line(error)}); int8 is not available for it."
        ) from None


def float_nodes(path: Path, stem: bool) -> list[str]:
    """The nodes kept in fp32: the head's matrix products (a few thousand weights that every score passes through),
    and with `stem` every node up to the first Add in graph order (a ResNet's stem convolution and first bottleneck
    at full resolution; a ViT's patch embedding and position add), where int8 rounding of fine textures costs the
    most. On a ResNet50 trained on sample data (bench/int8_fidelity.py), p99 |Δscore| on held-out photos fell from
    0.0111 to 0.0072 with the stem in fp32, for about 8% of the network's operations and a quarter of int8's speed."""
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node
    first_add = next((position for position, node in enumerate(nodes) if node.op_type == "Add"), -1)
    kept = [node.name for node in nodes[: first_add + 1]] if stem else []
    ours = [node.name for node in nodes if node.name.startswith("/model/head") and node.op_type in ("Gemm", "MatMul")]
    return kept + ours  # `/model/head`: our heads, not a backbone's own (SigLIP's attention-pooling head)


class PixelBatches:
    """onnxruntime's CalibrationDataReader protocol: the calibration pixels, a batch at a time."""

    def __init__(self, pixels: np.ndarray):
        self.batches = iter([{INPUT_NAME: pixels[start : start + CALIBRATION_BATCH]}
                             for start in range(0, len(pixels), CALIBRATION_BATCH)])  # fmt: skip

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def quantize_file(fp32: Path, int8: Path, pixels: np.ndarray, stem_in_fp32: bool = False) -> None:
    """Static int8 quantization of `fp32` into `int8`, calibrated on `pixels` (see `SETTINGS`); any failure of ONNX
    Runtime's tools is one sentence."""
    try:
        quantize_prepared(fp32, int8, pixels, stem_in_fp32)
    except ImportError as error:
        raise QuantizationError(
            f"int8 needs onnx and onnxruntime ({first_line(error)}): pip install onnx onnxruntime."
        ) from None
    except Exception as error:  # ONNX Runtime's tools raise many kinds, with no common base class
        raise QuantizationError(f"ONNX Runtime could not quantize this model ({first_line(error)}).") from None


def quantize_prepared(fp32: Path, int8: Path, pixels: np.ndarray, stem_in_fp32: bool) -> None:
    """ONNX Runtime's pre-processing (shape inference, graph clean-up; once per fp32 file, which the stem fallback
    quantizes a second time), then `quantize_static` with `SETTINGS`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = fp32.with_name(fp32.stem + "_prepared.onnx")
    if not prepared.is_file():
        try:
            quant_pre_process(str(fp32), str(prepared))
        except Exception:  # symbolic shape inference fails on some graphs (SigLIP's attention-pooling head)
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(int8),
        PixelBatches(pixels),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=float_nodes(prepared, stem_in_fp32),
    )


def pixels_of(processor, pictures: list) -> np.ndarray:
    return processor(pictures, return_tensors="np")["pixel_values"].astype(np.float32)


def in_batches(run, pixels: np.ndarray | torch.Tensor, batch: int) -> MemorabilityOutput:
    """`run`'s outputs (a `MemorabilityOutput` per batch) for `pixels`, `batch` at a time, joined, in float32."""
    parts = [run(pixels[start : start + batch]) for start in range(0, len(pixels), batch)]
    return MemorabilityOutput(**{name: torch.cat([part[name] for part in parts]).float() for name in OUTPUT_NAMES})


@torch.inference_mode()
def fp32_outputs(model: MemorabilityModel, pixels: np.ndarray, batch: int = 16) -> MemorabilityOutput:
    """The fp32 model's own outputs (not the exported copy's): what int8 is measured against."""
    return in_batches(lambda part: model(pixel_values=torch.from_numpy(part)), pixels, batch)


def quantize_model(
    model_dir: str | os.PathLike,
    calibration: str | os.PathLike | None = None,
    allow_lossy: bool = False,
    max_images: int = DEFAULT_MAX_IMAGES,
    seed: int = 0,
    stem_in_fp32: bool | None = None,
) -> dict:
    """Write `onnx/model_int8.onnx` and `onnx/quantization.json` into the model folder `model_dir`; return the
    record. `calibration`: a folder of images (or CSV, Parquet table, zip) or a neighbour index folder, else the
    package photographs (see `memorability.calibration`). The whole network goes to int8 first; where that misses
    the thresholds, again with the stem in fp32 (slower, closer: see `float_nodes`); `stem_in_fp32` forces either."""
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise QuantizationError(
            f"{model_dir}: not a saved model folder (no config.json); the int8 file is written beside the weights."
        )
    check_writable(folder / INT8_FILE)
    pictures = calibration_set(calibration, max_images, seed)
    if len(pictures.names) < MIN_IMAGES:
        raise QuantizationError(
            f"Only {len(pictures.names)} readable calibration images in {calibration}; int8 needs at least "
            f"{MIN_IMAGES} real-looking photos."
        )
    model, processor = load_model(folder)
    model.eval()
    calibrate, held_out = pictures.split()
    pixels = pixels_of(processor, pictures.pictures)
    reference = fp32_outputs(model, pixels[held_out])
    if float(reference.scores.max() - reference.scores.min()) == 0.0:
        raise QuantizationError(
            f"{model_dir} gives every calibration photo the same score ({float(reference.scores[0]):.6f}) in fp32, so "
            "there is no ranking for int8 to keep: the float model is broken or untrained, not int8; nothing was "
            "written."
        )
    with tempfile.TemporaryDirectory(prefix="quantize-") as work:
        fp32_file, int8_file = Path(work) / "model_fp32.onnx", Path(work) / "model_int8.onnx"
        export_fp32(model, tuple(pixels.shape[2:]), fp32_file)
        for stem in (False, True) if stem_in_fp32 is None else (stem_in_fp32,):
            quantize_file(fp32_file, int8_file, pixels[calibrate], stem)
            fidelity = measure_fidelity(reference, run_file(int8_file, pixels[held_out]))
            if fidelity.meets_thresholds:
                break
        if not fidelity.meets_thresholds and not allow_lossy:
            raise QuantizationError(
                f"int8 strays too far from fp32 for this {model.config.backbone_config.model_type} model: "
                f"{fidelity.summary()}, against ρ ≥ {MIN_SPEARMAN} and p99 ≤ {MAX_P99_DIFFERENCE}; nothing was "
                "written (pass --allow-lossy to keep it anyway)."
            )
        record = make_record(int8_file, model, processor, pictures, (calibrate, held_out), fidelity, stem)
        (folder / INT8_FILE).parent.mkdir(exist_ok=True)
        with atomic_file(folder / INT8_FILE, binary=True) as handle:
            handle.write(int8_file.read_bytes())
    with atomic_file(folder / RECORD_FILE) as handle:
        json.dump(record, handle, indent=2)
    return record


def run_file(path: Path, pixels: np.ndarray) -> MemorabilityOutput:
    """The outputs of an ONNX file on `pixels`, in one ONNX Runtime session, a batch at a time."""
    session = open_session(path)
    return in_batches(lambda part: run_session(session, part), pixels, CALIBRATION_BATCH)


def make_record(
    int8_file: Path,
    model: MemorabilityModel,
    processor,
    pictures: CalibrationSet,
    split: tuple[list[int], list[int]],
    fidelity: Fidelity,
    stem_in_fp32: bool,
) -> dict:
    """What `onnx/quantization.json` says: the file's format and hash, the model it belongs to, how it was made
    (with the stem in fp32 or not) and from which pictures (`split`: calibrated on, held out), and its measured
    fidelity against fp32."""
    import onnxruntime

    calibrate, held_out = split
    return {
        "format": RECORD_FORMAT,
        "file": INT8_FILE,
        "int8_sha256": file_digest(int8_file),
        "model_fingerprint": model_fingerprint(model, processor),
        "backbone": model.config.backbone_config.model_type,
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "settings": SETTINGS | {"stem_in_fp32": stem_in_fp32},
        "calibration": {
            "source": pictures.description,
            "images": len(calibrate),
            "held_out_images": len(held_out),
            "unreadable_skipped": pictures.unreadable,
            "calibrated_on": [pictures.names[index] for index in calibrate],
            "held_out": [pictures.names[index] for index in held_out],
        },
        "thresholds": {"min_spearman": MIN_SPEARMAN, "max_p99_abs_difference": MAX_P99_DIFFERENCE},
        "fidelity": asdict(fidelity),
        "meets_thresholds": fidelity.meets_thresholds,
    }


__all__ = ["Fidelity", "QuantizationError", "in_batches", "measure_fidelity", "quantize_model"]
