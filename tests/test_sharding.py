"""Sharded, resumable `memorability predict`: two processes give one process's scores, a rerun skips finished parts
whose model and images are unchanged, and one run at a time writes an output."""

import csv
import os
import shutil
import socket
import subprocess

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from launching import launcher
from PIL import Image

from memorability import MemorabilityModel
from memorability.cli import main
from memorability.run_output import hold_lock, temporary_name
from memorability.sharding import MANIFEST, PART_NAME, parts_folder, write_csv

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


def scores_by_name(out) -> dict[str, str]:
    """File name → the score as the CSV writes it."""
    return {os.path.basename(row["path"]): row["score"] for row in read_csv(out)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_two(photos, model, out, *extra: str) -> subprocess.CompletedProcess:
    """`memorability predict` under `accelerate launch` with two CPU processes."""
    launch = [*launcher(2), "--main_process_port", str(free_port()), "-m", "memorability.cli", "predict", str(photos)]
    launch += ["--model", str(model), "--out", str(out), "--precision", "fp32", "--num-workers", "0"]
    launch += ["--chunk-size", str(CHUNK), *extra]
    environment = os.environ | {"CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(launch, capture_output=True, text=True, env=environment, timeout=300)


def test_two_processes_give_the_single_process_scores(tiny_model_dir, photos, tmp_path):
    single = tmp_path / "single.csv"
    assert predict(photos, tiny_model_dir, single, "--keep-parts") == 1  # the broken file
    sharded = tmp_path / "sharded.csv"
    result = launch_two(photos, tiny_model_dir, sharded, "--keep-parts")
    assert result.returncode == 1, result.stderr[-3000:]  # the broken file fails the run; the launcher says 1
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
    temporary_name(parts_folder(out) / "part-000000-rank0.parquet").write_bytes(b"half a file")  # a killed writer's
    predict(photos, tiny_model_dir, out)
    assert not parts_folder(out).exists()
    assert len(read_csv(out)) == PHOTOS + 1


def test_a_removed_image_rescores_only_its_part(tiny_model_dir, photos, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    predict(photos, tiny_model_dir, out, "--keep-parts")
    (photos / "broken.jpg").unlink()  # the last image: only the last part changes
    capsys.readouterr()
    assert predict(photos, tiny_model_dir, out) == 0
    assert "1 of 5 parts hold images that changed" in capsys.readouterr().out
    assert len(read_csv(out)) == PHOTOS


def test_a_photo_replaced_under_the_same_name_is_scored_again(tiny_model_dir, photos, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    predict(photos, tiny_model_dir, out, "--keep-parts")
    before, old_scores = part_files(out), scores_by_name(out)
    pixels = np.random.default_rng(99).integers(0, 256, size=(50, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photos / "05.jpg")  # image 5: in the second part (images 4-7)
    capsys.readouterr()

    assert predict(photos, tiny_model_dir, out, "--keep-parts") == 1
    assert "Resumed: 4 of 5 parts were already done." in capsys.readouterr().out
    after = part_files(out)
    assert {name for name in before if after.get(name) != before[name]} == {"part-000001-rank0.parquet"}
    fresh = tmp_path / "fresh.csv"
    predict(photos, tiny_model_dir, fresh)
    assert scores_by_name(out) == scores_by_name(fresh)
    assert scores_by_name(out)["05.jpg"] != old_scores["05.jpg"]


def test_a_model_saved_again_into_the_same_folder_is_used(tiny_model_dir, photos, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    out = tmp_path / "scores.csv"
    predict(photos, model, out, "--keep-parts")
    old_scores = scores_by_name(out)
    retrained = MemorabilityModel.from_pretrained(model)
    with torch.no_grad():
        for parameter in retrained.parameters():
            parameter.mul_(1.5)
    retrained.save_pretrained(model)
    capsys.readouterr()

    predict(photos, model, out, "--keep-parts")
    assert "parts of another run (model, precision, flip, columns or chunk size); starting afresh." in capsys.readouterr().out
    fresh = tmp_path / "fresh.csv"
    predict(photos, model, fresh)
    assert scores_by_name(out) == scores_by_name(fresh) != old_scores


def test_a_damaged_manifest_starts_afresh_in_one_sentence(tiny_model_dir, photos, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    predict(photos, tiny_model_dir, out, "--keep-parts")
    expected, manifest = read_csv(out), parts_folder(out) / MANIFEST
    manifest.write_bytes(manifest.read_bytes()[: manifest.stat().st_size // 2])  # as if killed while writing it
    capsys.readouterr()

    assert predict(photos, tiny_model_dir, out, "--keep-parts") == 1
    printed = capsys.readouterr().out
    assert f"{manifest} cannot be read (JSONDecodeError); its parts belong to an unknown run, so scoring " in printed
    assert "Resumed" not in printed and read_csv(out) == expected
    assert predict(photos, tiny_model_dir, out, "--keep-parts") == 1  # the manifest is whole again
    assert "Resumed: 5 of 5 parts were already done." in capsys.readouterr().out


def test_an_output_inside_an_input_folder_resumes(tiny_model_dir, photos, capsys):
    out = photos / "scores.csv"  # its parts, Parquet files, lie in the folder being scored
    assert predict(photos, tiny_model_dir, out, "--keep-parts") == 1
    capsys.readouterr()
    assert predict(photos, tiny_model_dir, out, "--keep-parts") == 1
    assert "Resumed: 5 of 5 parts were already done." in capsys.readouterr().out
    assert len(read_csv(out)) == PHOTOS + 1


def test_a_second_run_on_the_same_output_is_refused(tiny_model_dir, photos, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    with hold_lock(parts_folder(out)):  # a first run, still going
        assert predict(photos, tiny_model_dir, out) == 2
        refusal = capsys.readouterr().err.splitlines()[-1]  # after transformers' "Loading weights" bar
        assert refusal == f"error: Another run (process {os.getpid()}) is writing to {parts_folder(out)}; " \
            "wait for it to end or choose another --out."  # fmt: skip
        assert not out.exists()
    assert predict(photos, tiny_model_dir, out) == 1  # once the first run has ended


def test_an_output_that_cannot_be_prepared_is_one_sentence(tiny_model_dir, photos, tmp_path, capsys):
    out = tmp_path / ("s" * 248 + ".csv")  # a valid name, but OUT.parts is over the 255-byte limit of a name
    assert predict(photos, tiny_model_dir, out) == 2
    assert f"error: {parts_folder(out)}: cannot prepare the output there (File name too long)." in capsys.readouterr().err


def test_a_refused_run_ends_every_process(tiny_model_dir, photos, tmp_path):
    out = tmp_path / "scores.csv"
    with hold_lock(parts_folder(out)):
        result = launch_two(photos, tiny_model_dir, out)
    assert result.returncode == 1 and not out.exists()  # the launcher exits 1 whatever its processes return
    refusal = f"error: Another run (process {os.getpid()}) is writing to {parts_folder(out)}"
    assert result.stderr.count(refusal) == 2, result.stderr[-3000:]  # both ranks stop, neither waits forever


def test_two_writers_of_one_csv_do_not_clobber_each_other(tmp_path):
    out = tmp_path / "scores.csv"

    def first_rows():
        yield {"path": "a.jpg", "score": 0.5, "error": None}
        write_csv(out, iter([{"path": "b.jpg", "score": None, "error": "b.jpg: no such file."}]), False)  # meanwhile
        assert [row["path"] for row in read_csv(out)] == ["b.jpg"]
        yield {"path": "c.jpg", "score": 0.25, "error": None}

    assert write_csv(out, first_rows(), uncertainty=False) == (2, 0)
    assert [(row["path"], row["score"]) for row in read_csv(out)] == [("a.jpg", "0.500000"), ("c.jpg", "0.250000")]
    assert list(tmp_path.iterdir()) == [out]
