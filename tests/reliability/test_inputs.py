"""Every corpus case through the predictor, the CLI and the data loader: a correct score or one clear error naming
the file, never a traceback; and the README's reliability table is the one this suite observes."""

import ast
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from corpus import CASES, Case
from scenarios import SCENARIOS

from memorability.data import load_lamem
from memorability.images import ImageLoadError, load_image
from memorability.inference import load_predictor
from memorability.transforms import collate_batch, prepare_for_model

PROJECT = Path(__file__).resolve().parents[2]
README = PROJECT / "README.md"
TABLE_START, TABLE_END = "<!-- reliability-table:start -->", "<!-- reliability-table:end -->"
BY_NAME = {case.name: case for case in CASES}
REFUSED = [case for case in CASES if case.outcome == "refuse"]
SCORED = [case for case in CASES if case.outcome == "score"]


@pytest.fixture(scope="module")
def predictor(trained_sample_model):
    return load_predictor(trained_sample_model, precision="fp32")


def ids(cases: list[Case]) -> list[str]:
    return [case.name for case in cases]


@pytest.mark.parametrize("case", REFUSED, ids=ids(REFUSED))
def test_refused_with_one_sentence_naming_the_file(case, corpus):
    with pytest.raises(ImageLoadError) as caught:
        load_image(corpus[case.name])
    message = str(caught.value)
    assert message.startswith(str(corpus[case.name])) and case.expect in message and "\n" not in message


@pytest.mark.parametrize("case", SCORED, ids=ids(SCORED))
def test_decoded_as_its_plain_picture(case, corpus):
    decoded = np.asarray(load_image(corpus[case.name]), dtype=np.float64)
    reference = np.asarray(case.reference(), dtype=np.float64)
    assert decoded.shape == reference.shape
    assert np.abs(decoded - reference).mean() < (3.0 if case.tolerance > 1e-5 else 0.5)


@pytest.mark.parametrize("case", SCORED, ids=ids(SCORED))
def test_scored_as_its_plain_picture(case, corpus, predictor):
    score = predictor.predict(corpus[case.name])
    assert 0.0 <= score <= 1.0
    assert score == pytest.approx(predictor.predict(case.reference()), abs=case.tolerance)


def test_sixteen_bit_is_scaled_not_clipped(corpus):
    decoded = np.asarray(load_image(corpus["16-bit PNG"]))
    assert decoded.max() == 255 and 120 <= np.median(decoded) <= 135  # a full-range ramp stays a full-range ramp


def test_cli_scores_the_good_and_names_the_bad(corpus, trained_sample_model, tmp_path):
    out = tmp_path / "scores.csv"
    result = subprocess.run(
        [sys.executable, "-m", "memorability.cli", "predict", *map(str, corpus.values()), "--model",
         str(trained_sample_model), "--out", str(out), "--precision", "fp32", "--num-workers", "0"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    with out.open(newline="") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    for case in CASES:
        row = rows[case.filename]
        if case.outcome == "refuse":
            assert not row["score"] and case.filename in row["error"] and case.expect in row["error"]
        else:
            assert row["score"] and not row["error"]


def test_data_loader_skips_and_names_the_bad(corpus, tmp_path):
    lines = ["image,score,split"] + [f"{path},0.5,train" for path in corpus.values()]
    (tmp_path / "all.csv").write_text("\n".join(lines) + "\n")
    from memorability.image_processing import make_image_processor

    train = prepare_for_model(load_lamem(tmp_path / "all.csv")["train"], make_image_processor(32), train=False)
    batch = collate_batch([train[index] for index in range(len(train))])
    assert len(batch["labels"]) == len(SCORED)
    assert len(batch["skipped"]) == len(REFUSED)


def observed_table(corpus) -> str:
    """The reliability table from what load_image (shared by predictor, CLI, loader and Space) does to each case,
    then the situations of use, each checked by the test it names."""
    rows = ["| input | expected | outcome |", "|---|---|---|"]
    for case in CASES:
        try:
            picture = load_image(corpus[case.name])
            outcome = f"scored ({picture.width}×{picture.height} RGB, {case.why})"
        except ImageLoadError as error:
            outcome = "refused: " + re.sub(r"^\S+: ", "", str(error)).replace("|", "/")
        expected = "refused with a clear error" if case.outcome == "refuse" else "scored"
        rows.append(f"| {case.name} | {expected} | {outcome} |")
    rows += [f"| {scenario.name} | {scenario.expected} | {scenario.outcome} |" for scenario in SCENARIOS]
    return "\n".join(rows)


def test_every_scenario_names_a_test_that_exists():
    for scenario in SCENARIOS:
        path, function = scenario.test.split("::")
        defined = {node.name for node in ast.parse((PROJECT / path).read_text()).body if isinstance(node, ast.FunctionDef)}
        assert function in defined, scenario.test


def test_readme_reliability_table_is_what_the_suite_observes(corpus):
    table = observed_table(corpus)
    artifacts = PROJECT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "reliability_table.md").write_text(table + "\n")
    text = README.read_text()
    before, rest = text.split(TABLE_START)
    current, after = rest.split(TABLE_END)
    if os.environ.get("MEMORABILITY_UPDATE_README") == "1":
        README.write_text(f"{before}{TABLE_START}\n{table}\n{TABLE_END}{after}")
        current = table
    current = current.strip()
    assert current == table, "README's reliability table is stale: rerun with MEMORABILITY_UPDATE_README=1"
