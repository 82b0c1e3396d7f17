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
    check_writable,
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


# --- Checked before the work ----------------------------------------------------------------------------------------

COMMANDS = {
    "sample-data": ("memorability.cli", ["sample-data", "{out}", "--n", "20"]),
    "demo-model": ("memorability.cli", ["demo-model", "--out", "{out}"]),
    "train": ("train.train", ["--data", "{lamem}", "--output-dir", "{out}", "--backbone-weights", "none"]),
    "evaluate": ("train.evaluate", ["{model}", "--data", "{lamem}", "--out-dir", "{out}"]),
    "build_index": ("train.build_index", ["{model}", "--data", "{lamem}", "--out", "{out}"]),
    "ablation_study": ("train.ablation_study", ["{model}", "--images", "{lamem}", "--out-dir", "{out}"]),
    "embed": ("train.embed", ["--encoder", "{model}", "--data", "{lamem}", "--out", "{out}"]),
    "fit_head": ("train.fit_head", ["{model}", "--data", "{lamem}", "--out", "{out}"]),
    "push_model": ("hub.push_model", ["{model}", "--repo-id", "org/name", "--local-dir", "{out}"]),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_that_writes_checks_where_before_the_work(command, tiny_model_dir, lamem_folder, tmp_path,
                                                                capsys):  # fmt: skip
    """Its output's folder is a file: one sentence (the check's own, naming the file in the way) and exit status 2,
    before any work, which would have ended at its first write or at the end, in a traceback."""
    import importlib

    (tmp_path / "taken").write_text("a file where the output's folder should be")
    out = tmp_path / "taken" / "out"
    module, template = COMMANDS[command]
    argv = [part.format(out=out, lamem=lamem_folder, model=tiny_model_dir) for part in template]
    entry = importlib.import_module(module)
    code = entry.main(argv)
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: Cannot write {out}: {tmp_path / 'taken'} is a file, not a " \
        "folder; choose another output."  # fmt: skip


def test_an_unwritable_folder_is_named_with_the_reason(tmp_path):
    """What the system says (a read-only file system, a permission): here a file stands where a folder should."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"Cannot write .*file/deeper/out.csv: .*file is a file, not a folder"):
        check_writable(tmp_path / "file" / "deeper" / "out.csv")
    check_writable(tmp_path / "new" / "deeper" / "out.csv")  # folders a command will create are fine
    assert not (tmp_path / "new").exists()  # and the check creates none


def test_a_write_that_fails_anyway_is_one_sentence(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="Cannot write"), atomic_file(tmp_path / "file" / "out.csv"):
        pass
