"""The errors a harvest can end with, each mapped to the exit status the CLI returns."""

from __future__ import annotations


class HarvestError(Exception):
    """A harvest stopped; the message is one line for the user. State stays consistent."""

    exit_code = 1


class UsageError(HarvestError):
    """Bad input: options, places, an output folder that cannot hold this harvest."""

    exit_code = 2


class BlockedError(HarvestError):
    """iNaturalist answered 'This IP has been blocked': stop at once, never keep knocking."""

    exit_code = 4


class ServerError(HarvestError):
    """The server kept failing or answered something that is not the API (after retries)."""

    exit_code = 5


class DiskFullError(HarvestError):
    """No space left in the output folder; free some and run the same command again."""

    exit_code = 6


class TransientError(Exception):
    """A failure worth retrying (5xx, 429, dropped connection, bad body); ``retry_after`` in s."""

    def __init__(self, message: str, retry_after: float | None = None, throttled: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.throttled = throttled


class PermanentError(Exception):
    """A failure retrying cannot fix for this item (a missing size, a body too large)."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


EXIT_OK = 0
EXIT_PHOTOS_FAILED = 3
EXIT_INTERRUPTED = 130
