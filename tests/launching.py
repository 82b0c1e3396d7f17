"""How the tests start several CPU processes: the README's own launch command (train/accelerate/multi.yaml), which
sets every value accelerate would otherwise warn about."""

import sys
from pathlib import Path

MULTI = Path(__file__).resolve().parents[1] / "train" / "accelerate" / "multi.yaml"
UNSET_WARNING = "were not passed to `accelerate launch`"


def launcher(processes: int = 2) -> list[str]:
    """The start of a command that runs what follows in `processes` processes under `accelerate launch`."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(MULTI), "--num_processes",
            str(processes)]  # fmt: skip
