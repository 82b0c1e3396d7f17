"""What a cached score depends on: the model's weights and processor, and each input's name, size and mtime."""

import os

import pytest
import torch

from memorability.fingerprint import chunk_fingerprints, model_fingerprint
from memorability.inference import load_model, load_predictor


def test_the_model_hash_follows_the_weights_and_the_processor(tiny_model_dir):
    model, processor = load_model(tiny_model_dir)
    reference = model_fingerprint(model, processor)
    assert model_fingerprint(load_predictor(tiny_model_dir, precision="bf16")) == reference  # the same model
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    assert model_fingerprint(model, processor) != reference
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] -= 1e-3
    assert model_fingerprint(model, processor) == reference
    processor.crop_pct = 0.5
    assert model_fingerprint(model, processor) != reference
    with pytest.raises(TypeError, match="needs the image processor"):
        model_fingerprint(model)


def test_the_model_hash_follows_the_config_not_where_it_was_saved(tiny_model_dir, tmp_path):
    """Two models with the same weights score differently when their configs do (a sigmoid, the number of heads)."""
    model, processor = load_model(tiny_model_dir)
    reference = model_fingerprint(model, processor)
    model.save_pretrained(tmp_path / "elsewhere")
    processor.save_pretrained(tmp_path / "elsewhere")
    assert model_fingerprint(*load_model(tmp_path / "elsewhere")) == reference
    model.config.sigmoid_output = False
    assert model_fingerprint(model, processor) != reference


def test_a_chunk_hash_changes_with_its_inputs_only(tmp_path):
    files = [tmp_path / f"{index}.jpg" for index in range(5)]
    for path in files:
        path.write_bytes(b"photo")
    names = [str(path) for path in files]
    before = chunk_fingerprints(names, names, 2)
    assert len(before) == 3 and chunk_fingerprints(names, names, 2) == before
    files[2].write_bytes(b"other")  # same size, another modification time
    os.utime(files[2], ns=(0, files[2].stat().st_mtime_ns + 1))
    assert [old == new for old, new in zip(before, chunk_fingerprints(names, names, 2))] == [True, False, True]
    files[4].unlink()
    assert chunk_fingerprints(names, names, 2)[2] != before[2]
    renamed = names[:1] + ["elsewhere.jpg"] + names[2:]
    assert chunk_fingerprints(renamed, names, 2)[0] != chunk_fingerprints(names, names, 2)[0]


def test_rows_of_a_table_follow_the_table_file(tmp_path):
    table, photo = tmp_path / "table.parquet", tmp_path / "photo.jpg"
    table.write_bytes(b"rows")
    photo.write_bytes(b"photo")
    names, files = ["a.jpg", "b.jpg", "c.jpg"], [str(table), str(table), str(photo)]
    before = chunk_fingerprints(names, files, 1)
    table.write_bytes(b"more rows")
    after = chunk_fingerprints(names, files, 1)
    assert [old == new for old, new in zip(before, after)] == [False, False, True]
