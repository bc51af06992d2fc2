"""The errors a harvest can end with, each mapped to the exit status the CLI returns."""

from __future__ import annotations

import re
from collections.abc import Callable

# A setting named in a message: "{update}" reads "update" from the library (its keyword) and
# "--update" from the command line (its flag).
_MENTION = re.compile(r"\{([a-z][a-z0-9_]*)\}")
NameOf = Callable[[str], str]


def _named(text: str, name_of: NameOf) -> str:
    return _MENTION.sub(lambda m: name_of(m[1]), text)


class HarvestError(Exception):
    """A harvest stopped; the message is one line for the user. State stays consistent.
    A setting is named in it as ``{keyword}``: ``str()`` says the keyword, and the CLI says
    its flag through :meth:`render`."""

    exit_code = 1

    def __str__(self) -> str:
        return self.render(str)

    def render(self, name_of: NameOf) -> str:
        """The message with each setting named by ``name_of`` (a keyword, or a CLI flag)."""
        return _named(str(self.args[0]) if self.args else "", name_of)


class UsageError(HarvestError):
    """Bad input: options, places, an output folder that cannot hold this harvest."""

    exit_code = 2


class SettingError(UsageError):
    """A setting is invalid: ``setting`` is its keyword (a Settings or Budgets field), which
    the message starts with, ``problem`` the rest."""

    def __init__(self, setting: str, problem: str):
        super().__init__(setting, problem)  # args that rebuild it (copy, pickle)
        self.setting = setting
        self.problem = problem

    def render(self, name_of: NameOf) -> str:
        return f"{name_of(self.setting)}: {_named(self.problem, name_of)}"


class BlockedError(HarvestError):
    """iNaturalist answered 'This IP has been blocked': stop at once, never keep knocking."""

    exit_code = 4


class ServerError(HarvestError):
    """The server kept failing or answered something that is not the API (after retries)."""

    exit_code = 5


class DiskFullError(HarvestError):
    """No space left in the output folder; free some and run the same command again."""

    exit_code = 6


class StoreError(HarvestError):
    """The photo store refuses the run's writes (access denied, its bucket gone): every file
    would be refused alike, so the run stops at once with one line naming the store."""

    exit_code = 8


class StoreGone(StoreError):
    """The store's bucket is not there: the files stored in it are gone with it.
    ``forgotten``: how many the state called done there, set pending again."""

    def __init__(self, store: str, said: str, forgotten: int = 0):
        super().__init__(store, said, forgotten)  # args that rebuild it (pickle: a cluster task's error)
        self.store = store
        self.said = said
        self.forgotten = forgotten

    def render(self, name_of: NameOf) -> str:
        gone = (
            f"; the {self.forgotten:,} files recorded there went with it: they are pending again"
            if self.forgotten
            else ""
        )
        return _named(
            f"{self.store} refuses a PUT: its bucket is not there ({self.said}){gone}; "
            "create it, or pass the {store} to use, then run the same command again",
            name_of,
        )


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
EXIT_INCOMPLETE = 7  # observations the API counts could not be found (Summary.unfound)
EXIT_INTERRUPTED = 130
