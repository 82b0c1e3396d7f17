"""Sharded, resumable `memorability predict`: two processes give one process's scores, a rerun skips finished parts."""

import csv
import os
import socket
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from memorability.cli import main
from memorability.sharding import PART_NAME, parts_folder

PHOTOS = 18
CHUNK = 4  # 18 photos + 1 broken file: 5 parts, the last one short


@pytest.fixture
def photos(tmp_path):
    """18 random photos and one empty file, in a folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(PHOTOS):
        Image.fromarray(rng.integers(0, 256, size=(36, 44, 3), dtype=np.uint8)).save(folder / f"{index:02d}.jpg")
    (folder / "broken.jpg").write_bytes(b"")
    return folder


def predict(photos, model, out, *extra: str) -> int:
    arguments = ["predict", str(photos), "--model", str(model), "--out", str(out), "--precision", "fp32"]
    return main([*arguments, "--num-workers", "0", "--chunk-size", str(CHUNK), *extra])


def part_files(out) -> dict[str, int]:
    """Part file name → its modification time in ns."""
    folder = parts_folder(out)
    return {path.name: path.stat().st_mtime_ns for path in folder.iterdir() if PART_NAME.fullmatch(path.name)}


def part_scores(out) -> dict[str, float | None]:
    rows = pa.concat_tables(pq.read_table(path) for path in sorted(parts_folder(out).glob("part-*.parquet")))
    return dict(zip(rows.column("path").to_pylist(), rows.column("score").to_pylist()))


def read_csv(path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_give_the_single_process_scores(tiny_model_dir, photos, tmp_path):
    single = tmp_path / "single.csv"
    assert predict(photos, tiny_model_dir, single, "--keep-parts") == 1  # the broken file
    sharded = tmp_path / "sharded.csv"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    launch += ["--main_process_port", str(free_port()), "-m", "memorability.cli", "predict", str(photos)]
    launch += ["--model", str(tiny_model_dir), "--out", str(sharded), "--precision", "fp32", "--num-workers", "0"]
    launch += ["--chunk-size", str(CHUNK), "--keep-parts"]
    result = subprocess.run(launch, capture_output=True, text=True, env=os.environ | {"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode != 0, result.stderr[-3000:]  # the broken file fails the run, in every process count
    assert "18 scored, 1 failed" in result.stdout and "2 process(es)" in result.stdout, result.stderr[-3000:]
    ranks = {PART_NAME.fullmatch(name)["rank"] for name in part_files(sharded)}
    assert ranks == {"0", "1"} and len(part_files(sharded)) == 5
    expected, got = part_scores(single), part_scores(sharded)
    assert list(got) == list(expected)
    scored = [name for name, score in expected.items() if score is not None]
    np.testing.assert_allclose([got[name] for name in scored], [expected[name] for name in scored], atol=1e-6)
    assert [row["path"] for row in read_csv(sharded)] == [row["path"] for row in read_csv(single)]


def test_rerun_computes_only_the_missing_parts(tiny_model_dir, photos, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    predict(photos, tiny_model_dir, out, "--keep-parts")
    first = part_files(out)
    assert len(first) == 5
    missing, marked = sorted(first)[1], sorted(first)[3]
    (parts_folder(out) / missing).unlink()  # as if the run had been killed before writing it
    table = pq.read_table(parts_folder(out) / marked)
    marker = table.set_column(2, "score", pa.array([0.123456] * len(table), pa.float64()))
    pq.write_table(marker, parts_folder(out) / marked)  # a reused part shows its marker in the CSV
    first[marked] = (parts_folder(out) / marked).stat().st_mtime_ns
    capsys.readouterr()

    assert predict(photos, tiny_model_dir, out, "--keep-parts") == 1
    assert "Resumed: 4 of 5 parts were already done." in capsys.readouterr().out
    again = part_files(out)
    untouched = {name: mtime for name, mtime in first.items() if name != missing}
    assert {name: again[name] for name in untouched} == untouched
    assert missing in again
    rows = read_csv(out)
    assert [row["score"] for row in rows[3 * CHUNK : 4 * CHUNK]] == ["0.123456"] * CHUNK
    assert len(rows) == PHOTOS + 1 and sum(bool(row["error"]) for row in rows) == 1


def test_parts_are_removed_after_the_merge_and_leftovers_ignored(tiny_model_dir, photos, tmp_path):
    out = tmp_path / "scores.csv"
    parts_folder(out).mkdir()
    (parts_folder(out) / ".part-000000-rank0.parquet.tmp").write_bytes(b"half a file")
    predict(photos, tiny_model_dir, out)
    assert not parts_folder(out).exists()
    assert len(read_csv(out)) == PHOTOS + 1


def test_parts_of_another_run_are_not_mixed_in(tiny_model_dir, photos, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    predict(photos, tiny_model_dir, out, "--keep-parts")
    (photos / "broken.jpg").unlink()
    capsys.readouterr()
    assert predict(photos, tiny_model_dir, out) == 0
    assert "parts of another run" in capsys.readouterr().out
    assert len(read_csv(out)) == PHOTOS
