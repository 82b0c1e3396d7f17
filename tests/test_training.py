"""Training with Accelerate: two real CPU processes, SIGKILL + --resume, and user mistakes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from launching import UNSET_WARNING, launcher

from memorability.data import load_lamem
from memorability.distributed import make_accelerator
from memorability.evaluation import score_split
from memorability.inference import load_predictor
from memorability.metrics import regression_metrics
from memorability.training import RESULTS_FILE, TrainingError, check_output_dir, cosine_with_warmup
from memorability.training_args import TrainingArguments, parse_training_arguments
from train.train import main as train_main

PROJECT = Path(__file__).resolve().parents[1]
TRAIN = PROJECT / "train" / "train.py"
FAST = [
    "--backbone", "tiny", "--backbone-weights", "none", "--image-size", "32", "--batch-size", "16",
    "--num-workers", "0", "--report-to", "none", "--mixed-precision", "no", "--seed", "3",
]  # fmt: skip


def subprocess_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "HF_HUB_OFFLINE": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def run_train(*args: str, launcher: list[str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    command = (launcher or [sys.executable]) + [str(TRAIN), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=subprocess_env(), timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"train.py failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def results(run: Path) -> dict:
    return json.loads((run / RESULTS_FILE).read_text())


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory) -> Path:
    from memorability.sample_data import make_sample_data

    return make_sample_data(tmp_path_factory.mktemp("small") / "sample", n=200, seed=1, size=48, progress=False)


def test_two_cpu_processes_match_single_process_evaluation(small_sample, tmp_path):
    run = tmp_path / "run"
    launched = run_train("--data", str(small_sample), "--output-dir", str(run), "--epochs", "2", *FAST,
                         launcher=launcher(2))  # fmt: skip
    assert UNSET_WARNING not in launched.stderr  # the README's launch command sets every value accelerate wants
    summary = results(run)
    assert summary["num_processes"] == 2
    best = summary["history"][summary["best_epoch"]]
    # Single process, fp32, the same validation split and preprocessing, in batches of another size.
    validation = load_lamem(small_sample, split=1)["validation"]
    predictor = load_predictor(run / "best", device="cpu", precision="fp32", batch_size=7)
    scores = score_split(predictor, validation, make_accelerator())
    metrics = regression_metrics(scores.predicted, scores.human)
    assert metrics["n"] == best["val_n"] == len(validation)
    for name in ("spearman", "pearson", "mse", "mae"):
        assert metrics[name] == pytest.approx(best[f"val_{name}"], abs=1e-6)


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(small_sample, tmp_path):
    common = ["--data", str(small_sample), "--epochs", "3", "--save-steps", "4", "--no-augment", *FAST]
    reference = tmp_path / "reference"
    run_train("--output-dir", str(reference), *common)
    # ~150 training images / 16 = 10 steps per epoch: the state at step 12 is in the middle of epoch 1.
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, str(TRAIN), "--output-dir", str(killed), *common],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "step_12").is_dir():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / RESULTS_FILE).exists(), "the run finished before the kill: nothing was tested"
    run_train("--output-dir", str(killed), "--resume", *common)
    resumed, uninterrupted = results(killed), results(reference)
    assert resumed["steps"] == uninterrupted["steps"] == 30
    # Tolerance: 1e-6 absolute on every validation metric of every epoch (same seed, same data order, RNG restored).
    for after, before in zip(resumed["history"], uninterrupted["history"], strict=True):
        for name in ("val_spearman", "val_pearson", "val_mse", "val_mae"):
            assert after[name] == pytest.approx(before[name], abs=1e-6)


def test_corrupt_image_is_skipped_counted_once_and_named(small_sample, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_sample, data)
    first_train = (data / "splits" / "train_1.txt").read_text().split()[0]
    (data / "images" / first_train).write_bytes(b"\xff\xd8\xff\xe0 truncated")
    run = tmp_path / "run"
    done = run_train("--data", str(data), "--output-dir", str(run), "--epochs", "2", *FAST)
    assert results(run)["skipped_images"] == 1  # one image, unreadable in both epochs
    assert f"skipped 1 unreadable image(s): {first_train.removesuffix('.jpg')}" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/nonexistent/lamem"], "no such LaMem folder"),
        (["--split", "7"], "split index 7 is not one of 1, 2, 3, 4, 5"),
    ],
)
def test_bad_data_arguments_are_one_sentence(small_sample, tmp_path, args, message):
    base = {"--data": str(small_sample), "--split": "1"}
    base.update(dict(zip(args[::2], args[1::2])))
    flat = [item for pair in base.items() for item in pair]
    result = run_train(*flat, "--output-dir", str(tmp_path / "run"), *FAST, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and message in result.stderr


def test_existing_run_is_refused_unless_overwrite_or_resume(tmp_path):
    (tmp_path / "best").mkdir()
    with pytest.raises(TrainingError, match="already holds a run; pass --resume"):
        check_output_dir(TrainingArguments(data="x", output_dir=str(tmp_path)))
    assert check_output_dir(TrainingArguments(data="x", output_dir=str(tmp_path), overwrite=True)) == tmp_path
    with pytest.raises(TrainingError, match="Nothing to resume"):
        check_output_dir(TrainingArguments(data="x", output_dir=str(tmp_path), resume=True))


def test_yaml_defaults_and_command_line_overrides(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("epochs: 4\nbatch_size: 8\naugment: false\n")
    arguments = parse_training_arguments(
        ["--config", str(config), "--data", "d", "--output-dir", "o", "--epochs", "2", "--augment"], None
    )
    assert (arguments.epochs, arguments.batch_size, arguments.augment) == (2, 8, True)


def test_unknown_yaml_key_is_named(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("epochz: 4\n")
    with pytest.raises(ValueError, match="unknown key"):
        parse_training_arguments(["--config", str(config), "--data", "d", "--output-dir", "o"], None)


def test_schedule_warms_up_then_decays_and_freezes():
    multiplier = cosine_with_warmup(total_steps=100, warmup_steps=10, frozen_steps=5)
    values = np.array([multiplier(step) for step in range(100)])
    assert np.all(values[:5] == 0)
    assert values[9] == pytest.approx(1.0)
    assert np.all(np.diff(values[10:]) <= 1e-12) and values[-1] < 0.01


def test_shipped_config_matches_the_arguments():
    arguments = parse_training_arguments(["--data", "d", "--output-dir", "o"], PROJECT / "train" / "config.yaml")
    assert arguments.backbone == "resnet50" and arguments.split == 1


# --- A NaN is never the best; small splits are named as small ---------------------------------------------------


def scripted_validation(monkeypatch, spearman: list[float], n: int = 40) -> None:
    """validate() returns these validation ρ, epoch after epoch (the model itself is trained for real)."""
    import memorability.training as training

    values = iter(spearman)

    def validate(*args, **kwargs):
        rho = next(values)
        return {"spearman": rho, "pearson": rho, "mse": 0.01, "mae": 0.1, "n": n}

    monkeypatch.setattr(training, "validate", validate)


def tiny_run(data: Path, run: Path, epochs: int) -> dict:
    from memorability.training import train

    arguments = parse_training_arguments(["--data", str(data), "--output-dir", str(run), "--epochs", str(epochs),
                                          *FAST], PROJECT / "train" / "config.yaml")  # fmt: skip
    return train(arguments)


def test_an_epoch_whose_validation_rho_is_nan_is_never_the_best(small_sample, tmp_path, monkeypatch):
    """Epoch 0's ρ was NaN (constant predictions): it was kept as best, and since nothing compares greater than
    NaN, no later epoch could replace it; the saved model scored 1.000000 for every photo."""
    scripted_validation(monkeypatch, [float("nan"), 0.31, 0.52, 0.40])
    summary = tiny_run(small_sample, tmp_path / "run", epochs=4)
    assert summary["best_epoch"] == 2 and summary["best_val_spearman"] == 0.52 and summary["kept"] == "best"
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "last").exists()


def test_a_run_with_no_finite_epoch_keeps_the_last_one_and_says_so(small_sample, tmp_path, monkeypatch, capsys):
    scripted_validation(monkeypatch, [float("nan")] * 2)
    summary = tiny_run(small_sample, tmp_path / "run", epochs=2)
    assert summary["best_epoch"] is None and summary["best_val_spearman"] is None and summary["kept"] == "last"
    assert (tmp_path / "run" / "last" / "model.safetensors").is_file() and not (tmp_path / "run" / "best").exists()
    assert "No epoch had a finite validation Spearman ρ" in capsys.readouterr().out


def test_a_validation_figure_on_few_images_is_named_as_such(small_sample, tmp_path, monkeypatch, capsys):
    scripted_validation(monkeypatch, [0.5], n=3)
    summary = tiny_run(small_sample, tmp_path / "run", epochs=1)
    assert summary["best_val_n"] == 3
    assert "on 3 images (warning: only 3 images: a figure on so few means nothing)" in capsys.readouterr().out


def test_a_csv_too_small_for_every_split_is_refused_in_one_sentence(tmp_path, capsys):
    """Seven photos: the seeded 80/10/10 split gives the test split none (with 30 it gave validation 3)."""
    from PIL import Image

    rows = ["image,score"]
    for number in range(7):
        Image.new("RGB", (16, 16), (number * 20, 40, 90)).save(tmp_path / f"{number}.jpg")
        rows.append(f"{number}.jpg,{0.5 + number / 40}")
    (tmp_path / "scores.csv").write_text("\n".join(rows) + "\n")
    assert train_main(["--data", str(tmp_path / "scores.csv"), "--output-dir", str(tmp_path / "run"), *FAST]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: {tmp_path / 'scores.csv'} gives a split no image")


def test_backbone_weights_that_cannot_be_fetched_are_one_sentence(small_sample, tmp_path, capsys):
    """`--backbone-weights microsoft/resnet-50` without the Hub spent about 70 s in retries, then ended in an
    accelerate traceback."""
    at = FAST.index("--backbone-weights")
    fast = FAST[:at] + FAST[at + 2 :]
    assert train_main(["--data", str(small_sample), "--output-dir", str(tmp_path / "run"), *fast,
                       "--backbone-weights", "org/weights"]) == 2  # fmt: skip
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "error: org/weights: the backbone weights is a Hub id, but HF_HUB_OFFLINE is set"
    )
