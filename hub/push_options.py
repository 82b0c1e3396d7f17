"""The options every push shares (hub/push_model.py, push_dataset.py, push_space.py), and running one push as a
command line: where it went, or `error: <one sentence>` and exit status 2."""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import HfApi

from memorability.errors import MemorabilityError
from memorability.hub_upload import Destination, publish

TOKEN_WARNING = "warning: --token shows in `ps` and in your shell's history; prefer HF_TOKEN or `hf auth login`."


def add_push_arguments(parser: argparse.ArgumentParser, private_by_default: bool = False) -> None:
    """--repo-id, --local-dir, visibility, --revision, --commit-message and --token: the options every push shares."""
    parser.add_argument("--repo-id", required=True, help="The Hub repo to push to, ORG/NAME.")
    parser.add_argument(
        "--local-dir",
        help="Write exactly what would be uploaded to this new folder instead, offline (no token needed).",
    )
    visibility = parser.add_mutually_exclusive_group()
    marks = {True: " (default)", False: ""}
    visibility.add_argument(
        "--private", dest="private", action="store_true", default=private_by_default,
        help=f"Create the repo private{marks[private_by_default]}; an existing public repo is refused.",
    )
    visibility.add_argument(
        "--public", dest="private", action="store_false",
        help=f"Create the repo public{marks[not private_by_default]}; an existing repo keeps its visibility.",
    )
    parser.add_argument("--revision", help="Branch to commit to (created from main if absent; default: main).")
    parser.add_argument("--commit-message", help="The commit's message.")
    parser.add_argument(
        "--token",
        help="Hub token with write access. It shows in `ps` and your shell's history: prefer HF_TOKEN or "
        "`hf auth login` (the default, used when this is not given).",
    )


def destination_from_args(args: argparse.Namespace, repo_type: str) -> Destination:
    if args.token:
        print(TOKEN_WARNING, file=sys.stderr)
    return Destination(args.repo_id, repo_type, args.private, args.revision, args.commit_message, args.token)


def run_push(stage: Callable[[Path], object], args: argparse.Namespace, repo_type: str, api: HfApi | None) -> int:
    """Run one push for a command line: print where it went, or `error: <one sentence>` and exit status 2."""
    try:
        where = publish(stage, destination_from_args(args, repo_type), args.local_dir, api)
    except MemorabilityError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {where}" if args.local_dir else f"Pushed {args.repo_id}: {where}")
    return 0
