"""Situations of use, beyond single files, that the README's reliability table lists: each with the outcome one named
test asserts (tests/reliability/test_inputs.py checks that every named test exists and that the README shows these
rows)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """One row of the table and the test (`path::function`, from the project root) that checks its outcome."""

    name: str
    expected: str
    outcome: str
    test: str


ONLY_UPLOADS = "This app scores only files uploaded to it, not links or inline data: upload the file itself."

SCENARIOS: list[Scenario] = [
    Scenario(
        "two visitors at once",
        "each gets their own photo's result",
        "100 face detections on 2 threads (astronaut and coffee in turn) each return their own photo's faces; "
        "the Space computes at most its concurrency limit of model jobs at once, all tabs together",
        "tests/test_ablations.py::test_face_detection_is_thread_safe",
    ),
    Scenario(
        "many zips in one request (3 zips of 494 MB unpacked)",
        "refused before anything is read",
        "refused: The images in these files come to more than 500 MB, the most one request may read; send fewer "
        "at a time. (the app's memory unchanged)",
        "tests/reliability/test_safety.py::test_many_zips_in_one_request_are_refused_before_any_is_read",
    ),
    Scenario(
        "a `data:` payload",
        "refused, nothing written",
        f"refused: {ONLY_UPLOADS}",
        "tests/reliability/test_safety.py::test_inline_data_is_refused_and_nothing_is_written",
    ),
    Scenario(
        "a URL or a server file as a payload's path",
        "refused, nothing fetched or read",
        f"refused: {ONLY_UPLOADS}",
        "tests/reliability/test_safety.py::test_a_payload_without_gradios_marker_cannot_point_at_a_server_file",
    ),
    Scenario(
        "a resume after a change (a photo replaced under the same name)",
        "what changed is scored again, never mixed",
        "only the changed chunk is rescored, and its scores equal a fresh run's; a model saved again into the same "
        "folder rescores everything",
        "tests/test_sharding.py::test_a_photo_replaced_under_the_same_name_is_scored_again",
    ),
    Scenario(
        "`--out` = an input (the CSV list, an image, a Parquet table)",
        "refused, the input untouched",
        "exit 2: The output OUT is one of the inputs (NAME); choose another --out.",
        "tests/test_cli.py::test_an_output_that_is_an_input_is_refused_and_the_input_kept",
    ),
    Scenario(
        "two runs on one output",
        "the second refused in one sentence",
        "exit 2: Another run (process N) is writing to OUT.parts; wait for it to end or choose another --out.",
        "tests/test_sharding.py::test_a_second_run_on_the_same_output_is_refused",
    ),
]
