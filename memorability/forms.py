"""Which form of a model's network a predictor runs on the CPU at hand: fp32 or bf16, channels_last or not, or the
model's int8 file in ONNX Runtime.

What is fastest depends on the CPU (an AVX2-only one emulates bf16; AMX runs bf16 and int8 natively; oneDNN's
fp32 convolutions may or may not prefer channels_last), so it is measured, not assumed: the first time a model
architecture is loaded on a CPU, each candidate form scores a few batches of noise, and the fastest is kept in
`cache_dir()/forms.json`, keyed by the CPU, the libraries and the architecture (not the weights: speed does not
depend on them), and reused by every later process. The model's int8 file is chosen only where it runs at least
INT8_MARGIN times as fast as the best float form: it costs some fidelity, so it must pay for it.
"""

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .cache_paths import cache_dir
from .runtime import cpu_flags, cpu_has_fast_bf16

FORMS_FILE = "forms.json"
FORMS_FORMAT = 1
INT8_MARGIN = 1.1  # int8 is chosen only at 1.1x the best float form's speed or more
MEASURE_BATCH = 8  # a batch large enough to rank the forms, small enough to measure in seconds on a slow CPU
MEASURE_ROUNDS = 2  # timed batches per form, after one untimed: the faster of them counts
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8", "avx512_fp16")
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Form:
    """One way to run a model's network: a precision ("fp32", "bf16", "fp16" or "int8") and, for torch, whether its
    feature maps are channels_last."""

    precision: str
    channels_last: bool = False

    @property
    def label(self) -> str:
        """How it is named to users: "bf16 + channels_last", "fp32", "int8 (ONNX Runtime)"."""
        if self.precision == "int8":
            return "int8 (ONNX Runtime)"
        return self.precision + (" + channels_last" if self.channels_last else "")

    @property
    def dtype(self) -> torch.dtype:
        return PRECISION_DTYPES[self.precision]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @classmethod
    def from_label(cls, label: str) -> "Form":
        if label.startswith("int8"):
            return cls("int8")
        precision, _, layout = label.partition(" + ")
        return cls(precision, layout == "channels_last")


def candidate_forms(precision: str, convolutional: bool, int8: bool) -> list[Form]:
    """The forms worth measuring for `precision` ("auto" or one by name): channels_last only for a CNN's feature
    maps; bf16 only where the CPU computes it natively (elsewhere it is emulated, many times slower); the int8 file
    where the model has a usable one."""
    if precision == "auto":
        precisions = ["fp32", "bf16"] if cpu_has_fast_bf16() else ["fp32"]
    else:
        precisions = [precision]
    layouts = [False, True] if convolutional else [False]
    forms = [Form(name, layout) for name in precisions for layout in layouts]
    return forms + [Form("int8")] if int8 and precision == "auto" else forms


def cpu_key() -> dict:
    """What the speed of a form depends on besides the model: the CPU, its threads and the libraries."""
    try:
        import onnxruntime

        onnxruntime_version = onnxruntime.__version__
    except ImportError:
        onnxruntime_version = None
    flags = cpu_flags()
    return {
        "cpu": cpu_name(),
        "flags": [flag for flag in CPU_FLAGS if flag in flags],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime_version,
        "python": platform.python_version(),
    }


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


def measurement_key(architecture: dict, int8_digest: str | None) -> str:
    """The cache key of one measurement: the CPU, the architecture and the int8 file (by its hash)."""
    text = json.dumps({"cpu": cpu_key(), "architecture": architecture, "int8": int8_digest}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def images_per_second(run: Callable[[torch.Tensor], object], pixels: torch.Tensor) -> float:
    """The faster of MEASURE_ROUNDS timed batches, after one untimed (its set-up: weight packing, first faults)."""
    run(pixels)
    best = float("inf")
    for _ in range(MEASURE_ROUNDS):
        started = time.perf_counter()
        run(pixels)
        best = min(best, time.perf_counter() - started)
    return len(pixels) / best


def read_cache() -> dict:
    path = cache_dir() / FORMS_FILE
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cached.get("measurements", {}) if cached.get("format") == FORMS_FORMAT else {}


def write_cache(key: str, entry: dict) -> None:
    """Add one measurement to the cache, through a temporary file and a rename: a reader never sees half of it."""
    measurements = read_cache() | {key: entry}
    path = cache_dir() / FORMS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"format": FORMS_FORMAT, "measurements": measurements}, indent=1))
        os.replace(temporary, path)
    except OSError:  # a read-only cache: measured again next time, never an error
        pass


def fastest_form(
    key: str,
    forms: list[Form],
    runner: Callable[[Form], Callable[[torch.Tensor], object]],
    pixels: torch.Tensor,
    describe: str,
) -> tuple[Form, dict[str, float]]:
    """The fastest of `forms` and each one's images per second: from the cache under `key`, else measured with
    `runner(form)` (a forward pass of the network in that form) on `pixels`, said on stderr, and cached. int8 must
    be INT8_MARGIN times as fast as the best float form to be chosen."""
    wanted = {form.label for form in forms}
    cached = read_cache().get(key, {}).get("images_per_second", {})
    speeds = {label: speed for label, speed in cached.items() if label in wanted}
    missing = [form for form in forms if form.label not in speeds]
    if missing and len(forms) > 1:
        started = time.perf_counter()
        print(f"Measuring which form of {describe} runs fastest on this CPU ({', '.join(f.label for f in missing)}); "
              f"once: the choice is kept in {cache_dir() / FORMS_FILE}.", file=sys.stderr)  # fmt: skip
        for form in missing:
            speeds[form.label] = images_per_second(runner(form), pixels)
        write_cache(key, {"images_per_second": {**cached, **speeds}, "describe": describe, "cpu": cpu_key(),
                          "seconds": round(time.perf_counter() - started, 2)})  # fmt: skip
    return choose(forms, speeds), speeds


def choose(forms: list[Form], speeds: dict[str, float]) -> Form:
    """The fastest float form, or int8 where it is INT8_MARGIN times as fast as that."""
    floats = [form for form in forms if form.precision != "int8"]
    best = max(floats, key=lambda form: speeds.get(form.label, 0.0)) if floats else forms[0]
    int8 = next((form for form in forms if form.precision == "int8"), None)
    if int8 is not None and speeds.get(int8.label, 0.0) >= INT8_MARGIN * speeds.get(best.label, float("inf")):
        return int8
    return best


__all__ = ["Form", "INT8_MARGIN", "candidate_forms", "choose", "cpu_key", "fastest_form", "measurement_key"]
