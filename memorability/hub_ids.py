"""Hub ids: what looks like one, and whether the Hub behind it can be reached, decided in seconds.

Without a network, transformers and huggingface_hub retry a download for about half a minute per file before they
give up (70 s for a backbone's weights), and their error then names a URL. Every place that takes a model, a
dataset or an index by Hub id asks `require_hub` first: where the Hub cannot be reached (HF_HUB_OFFLINE, no name
resolution, no route) and the id is not in the local Hub cache, the answer is one sentence naming the id and how to
pass a local folder instead.
"""

import functools
import os
import re
import socket
from urllib.parse import urlparse

from .errors import MemorabilityError

HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # ORG/NAME: a model, dataset or Space repo
PROBE_TIMEOUT_S = 3.0


class HubUnreachableError(MemorabilityError, OSError):
    """A Hub id that cannot be fetched here, and is not cached; the message says how to pass a folder instead."""


def is_hub_id(source: str | os.PathLike) -> bool:
    """Whether `source` names a Hub repo (ORG/NAME) rather than a folder or file that exists here."""
    return bool(HUB_ID.fullmatch(str(source))) and not os.path.exists(source)


@functools.cache
def hub_unreachable() -> str | None:
    """None where the Hub answers (a TCP connection to its endpoint within PROBE_TIMEOUT_S), else why not, in words;
    asked once per process."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(constants.ENDPOINT)
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as error:
        return f"{host} cannot be reached from this machine ({error.strerror or type(error).__name__})"
    return None


def is_cached(repo_id: str, repo_type: str) -> bool:
    """Whether the local Hub cache holds a snapshot of the repo (then transformers and datasets can load it)."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    snapshots = os.path.join(constants.HF_HUB_CACHE, repo_folder_name(repo_id=repo_id, repo_type=repo_type), "snapshots")
    return os.path.isdir(snapshots) and bool(os.listdir(snapshots))


def require_hub(source: str | os.PathLike, what: str, repo_type: str = "model") -> None:
    """Return at once for a local path, a reachable Hub or a cached repo; else raise `HubUnreachableError` in one
    sentence (`what`: how the id was used, e.g. "the model", "the backbone weights")."""
    if not is_hub_id(source):
        return
    reason = hub_unreachable()
    if reason is None or is_cached(str(source), repo_type):
        return
    kind = "" if repo_type == "model" else f" --repo-type {repo_type}"
    raise HubUnreachableError(
        f"{source}: {what} is a Hub id, but {reason} and it is not in the local Hub cache; download it where the Hub "
        f"can be reached (`hf download {source}{kind} --local-dir DIR`) and pass DIR instead."
    )


__all__ = ["HUB_ID", "HubUnreachableError", "is_hub_id", "require_hub"]
