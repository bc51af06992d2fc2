"""The errors a harvest can end with, each mapped to the exit status the CLI returns."""

from __future__ import annotations

import re
from collections.abc import Callable


class HarvestError(Exception):
    """A harvest stopped; the message is one line for the user. State stays consistent."""

    exit_code = 1


class UsageError(HarvestError):
    """Bad input: options, places, an output folder that cannot hold this harvest."""

    exit_code = 2


# A setting named inside a problem's text: "{update}" reads "update" from the library and
# "--update" from the command line.
_MENTION = re.compile(r"\{([a-z][a-z0-9_]*)\}")


class SettingError(UsageError):
    """A setting is invalid. ``setting`` is its keyword (a Settings or Budgets field); the
    message names it, and any setting written ``{name}`` in ``problem``, as the library's
    keywords; the CLI renders the same message with its flags (:meth:`render`)."""

    def __init__(self, setting: str, problem: str):
        self.setting = setting
        self.problem = problem
        super().__init__(self.render(str))

    def render(self, name_of: Callable[[str], str]) -> str:
        """The message with each setting named by ``name_of`` (a keyword, or a CLI flag)."""
        return f"{name_of(self.setting)}: " + _MENTION.sub(lambda m: name_of(m[1]), self.problem)


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
