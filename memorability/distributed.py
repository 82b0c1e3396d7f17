"""One way to build an Accelerator for every entry point (training, evaluation, sharded scoring, the study).

On a machine without a GPU it is built with cpu=True: that is what makes `accelerate launch --config_file
train/accelerate/multi.yaml --num_processes N` (a MULTI_GPU launch) start N real CPU ranks (accelerate 1.15) instead
of N lone copies that each do all the work.
"""

import os

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from .errors import MemorabilityError


class LaunchError(MemorabilityError, RuntimeError):
    """The launcher and Accelerate disagree on how many processes there are."""


def launched_processes() -> int:
    """How many processes the launcher says it started (1 for plain `python`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def make_accelerator(**kwargs) -> Accelerator:
    """An Accelerator on the GPU where there is one, else on CPU ranks; refuses silently duplicated work."""
    if launched_processes() == 1:
        # In one process, library calls may follow each other with different precisions (train in bf16, then
        # evaluate in fp32); accelerate keeps the first precision process-wide unless its state is reset.
        AcceleratorState._reset_state()
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), **kwargs)
    if launched_processes() != accelerator.num_processes:
        raise LaunchError(
            f"The launcher started {launched_processes()} processes but Accelerate sees "
            f"{accelerator.num_processes}, so each would work alone on the same data; on a machine without a GPU "
            "launch with `accelerate launch --config_file train/accelerate/multi.yaml --num_processes N` (see the "
            "README)."
        )
    return accelerator
