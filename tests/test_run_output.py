"""Where a run writes: one run at a time per output, files that appear whole, and no stale lock after a kill."""

import os
import signal
import subprocess
import sys

import pytest

from memorability.run_output import (
    LOCK,
    OutputError,
    atomic_file,
    hold_lock,
    leftover_temporaries,
    temporary_name,
)

HOLD_AND_WAIT = """
import sys, time
from pathlib import Path
from memorability.run_output import hold_lock
with hold_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    folder = tmp_path / "scores.csv.parts"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_AND_WAIT, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(OutputError, match=rf"Another run \(process {holder.pid}\) is writing to"):
            with hold_lock(folder):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (folder / LOCK).exists()  # left behind by the killed run, and no obstacle
    with hold_lock(folder):
        assert (folder / LOCK).read_text() == f"{os.getpid()}\n"


def test_a_file_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "scores.csv"
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(target) as handle:
            handle.write("half of it")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as first:
        with atomic_file(target) as second:  # two writers at once: each has its own temporary file
            first.write("first")
            second.write("second")
        assert target.read_text() == "second"
    assert target.read_text() == "first" and list(tmp_path.iterdir()) == [target]


def test_leftovers_of_a_killed_writer_are_found_by_name(tmp_path):
    mine = temporary_name(tmp_path / "scores.csv")
    for path in (mine, temporary_name(tmp_path / "other.csv"), temporary_name(tmp_path / "scores.csv.x.csv")):
        path.write_text("")
    (tmp_path / ".scores.csv.old.tmp").write_text("")  # not a name we write
    assert leftover_temporaries(tmp_path, "scores.csv") == [mine]  # never another run's, such as scores.csv.x.csv's
    assert len(leftover_temporaries(tmp_path)) == 3
