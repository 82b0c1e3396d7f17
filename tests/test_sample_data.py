"""Generated sample data: LaMem's format, a documented rule, per-index noise, a known ceiling."""

import numpy as np
import pytest
from scipy import stats

from memorability.cli import main
from memorability.data import load_lamem
from memorability.sample_data import INTERCEPT, WEIGHTS, draw_features, make_sample_data, read_clean_scores, render


def test_writes_the_official_layout(sample_data_dir):
    names = sorted(path.name for path in (sample_data_dir / "images").iterdir())
    assert names[0] == "00000001.jpg" and len(names) == 600
    for index in range(1, 6):
        listed = []
        for role in ("train", "val", "test"):
            for line in (sample_data_dir / "splits" / f"{role}_{index}.txt").read_text().splitlines():
                name, score = line.split(" ")
                assert len(name) == 12 and 0.0 <= float(score) <= 1.0 and len(score.split(".")[1]) == 6
                listed.append(name)
        assert sorted(listed) == names  # each index partitions all images


def test_loads_with_the_lamem_loader(sample_data_dir):
    splits = load_lamem(sample_data_dir, split=2)
    assert sum(len(splits[name]) for name in ("train", "validation", "test")) == 600
    assert splits["test"][0]["image"].size == (80, 80)


def test_score_follows_the_documented_rule_plus_noise(sample_data_dir):
    clean = read_clean_scores(sample_data_dir)
    for features in list(clean.values())[:20]:
        expected = INTERCEPT + sum(weight * getattr(features, name) for name, weight in WEIGHTS.items())
        assert features.clean_score == pytest.approx(expected)
    assert WEIGHTS["colour"] == 0.0  # the visible feature the score ignores
    rhos, noisy = [], {}
    for index in range(1, 6):
        lines = [line.split() for line in (sample_data_dir / "splits" / f"test_{index}.txt").read_text().splitlines()]
        rhos.append(stats.spearmanr([clean[n[:-4]].clean_score for n, _ in lines], [float(s) for _, s in lines])[0])
        noisy[index] = dict(lines)
    assert all(0.8 < rho <= 0.95 for rho in rhos)  # learnable, and the noise keeps the ceiling at or below 0.95
    shared = set(noisy[1]) & set(noisy[2])
    assert sum(noisy[1][name] != noisy[2][name] for name in shared) > 0.9 * len(shared)  # scores differ by index


def test_object_is_never_central():
    rng = np.random.default_rng(0)
    for _ in range(200):
        features = draw_features(rng, 80)
        assert max(abs(features.object_x - 40), abs(features.object_y - 40)) > 80 * 0.25


def test_rendering_is_deterministic_and_shows_the_object():
    features = draw_features(np.random.default_rng(3), 80)
    first, second = render(features, seed=5), render(features, seed=5)
    assert first.tobytes() == second.tobytes()
    pixels = np.asarray(first)
    assert pixels[features.object_y, features.object_x].min() > 240  # the disc is bright white


def test_too_few_images_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 20"):
        make_sample_data(tmp_path, n=5)


def test_cli_writes_sample_data(tmp_path, capsys):
    assert main(["sample-data", str(tmp_path / "s"), "--n", "30", "--size", "32"]) == 0
    assert (tmp_path / "s" / "README.txt").read_text().startswith("Generated LaMem-format sample data")
    assert "Wrote 30 sample images" in capsys.readouterr().out
