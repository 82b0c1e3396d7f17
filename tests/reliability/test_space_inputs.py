"""Every corpus case uploaded to the Space's /score: the predictor's own score, or our one error naming the uploaded
file, never a traceback; and the app serves on after all of them."""

import pytest
from corpus import CASES, Case
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from space_server import EXAMPLES

from memorability.inference import load_predictor

REFUSED = [case for case in CASES if case.outcome == "refuse"]
SCORED = [case for case in CASES if case.outcome == "score"]


@pytest.fixture(scope="module")
def predictor(space_model):
    return load_predictor(space_model)  # the app's precision


@pytest.fixture(scope="module")
def space_client(space):
    return space.client(download=False)  # only the score is looked at


def ids(cases: list[Case]) -> list[str]:
    return [case.name for case in cases]


def score(space_client, path):
    return space_client.predict(handle_file(path), "gradcam++", 0.5, api_name="/score")[0]


@pytest.mark.parametrize("case", SCORED, ids=ids(SCORED))
def test_scored_as_the_predictor_scores_it(case, corpus, space_client, predictor):
    assert score(space_client, corpus[case.name]) == round(100 * predictor.predict(corpus[case.name]), 1)


@pytest.mark.parametrize("case", REFUSED, ids=ids(REFUSED))
def test_refused_with_one_sentence_naming_the_upload(case, corpus, space_client):
    with pytest.raises(AppError) as caught:
        score(space_client, corpus[case.name])
    message = str(caught.value)
    assert message.startswith(f"{case.filename}: ") and case.expect in message
    assert "\n" not in message and "Traceback" not in message


def test_the_app_serves_on(space, space_client, predictor):
    photo = EXAMPLES / "rocket.jpg"
    assert space.serving() and score(space_client, photo) == round(100 * predictor.predict(photo), 1)
