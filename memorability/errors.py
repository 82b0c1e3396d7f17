"""The base class of every error a user can cause; entry points print its one-sentence message, not a traceback."""


class MemorabilityError(Exception):
    """A user-facing error: bad input, missing file, unreachable model. Its message is one clear sentence."""
