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
        "the Space computes at most its concurrency limit of single-photo jobs at once, all tabs together, and one "
        "batch beside them",
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
        "a batch listing one 97 KB PNG of 50 MP in 16 bits ten times",
        "cost bounded by pixels, memory given back",
        "ten rows, one decode; resident memory back within 20% of where it was",
        "tests/reliability/test_space_costs.py::test_a_batch_listing_one_big_png_ten_times_decodes_it_once",
    ),
    Scenario(
        "two zips of 64 such PNGs (6 MB each)",
        "refused before a pixel is decoded",
        "refused: Decoded, the images in these files would take more than 2,048 MB of memory, the most one request "
        "may use (...)",
        "tests/reliability/test_space_costs.py::test_zips_of_big_pngs_are_refused_from_their_headers",
    ),
    Scenario(
        "batches of costly pictures while another visitor scores a photo",
        "the photo is not kept waiting",
        "the score starts before either batch is done: batches compute in a pool of their own",
        "tests/reliability/test_space_costs.py::test_batches_never_keep_a_single_photo_waiting",
    ),
    Scenario(
        "a hostile payload (a null byte, no `meta`, /etc/passwd, bad event data, NaN)",
        "refused in one sentence, nothing in the log",
        "each refused in one sentence; the app's log holds neither the payload nor a traceback",
        "tests/reliability/test_space_costs.py::test_a_hostile_payload_gets_one_sentence_and_the_log_no_word_of_it",
    ),
    Scenario(
        "a request body of more than 2 MB that is not an upload",
        "refused before it is read",
        "HTTP 413, declared or chunked; the app's memory unchanged",
        "tests/reliability/test_space_costs.py::test_a_body_over_the_limit_is_refused_before_it_is_read",
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
        "a table naming /etc/shadow, scored with `--root`",
        "refused, never read",
        "an error row: PATH: refused: outside the folder --root allows (ROOT).",
        "tests/test_cli.py::test_root_confines_the_paths_a_table_names",
    ),
    Scenario(
        "an output that cannot be written (any command)",
        "refused before the work",
        "exit 2: Cannot write OUT: FOLDER is a file, not a folder; choose another output.",
        "tests/test_run_output.py::test_every_command_that_writes_checks_where_before_the_work",
    ),
    Scenario(
        "two runs on one output",
        "the second refused in one sentence",
        "exit 2: Another run (process N) is writing to OUT.parts; wait for it to end or choose another --out.",
        "tests/test_sharding.py::test_a_second_run_on_the_same_output_is_refused",
    ),
]
