"""Where photo files go: the output folder (as always), another folder, or any fsspec URL
(``s3://bucket/prefix``, ``gs://...``) with its storage options.

A local folder is written by the downloader itself (a temporary name, synced, renamed into
place). An object store gets each file whole in one call (a PUT, atomic: no partial object
ever stands under a final key). Keys are the paths the state holds (``photos/NNN/NNN/...``),
under the store's root, so photos.csv's ``path`` is relative to the store root either way.

fsspec and its backends (s3fs, gcsfs) are the ``dask`` extra: imported only for a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from inat_async.errors import SettingError, StoreError, StoreGone, TransientError
from inat_async.image import HEAD, is_image
from inat_async.model import PhotoStatus
from inat_async.net.waits import within
from inat_async.store.state import State

log = logging.getLogger("inat_async")

#: Threads that PUT and check objects: each call blocks on the network, not the CPU.
IO_THREADS = 16


def local_folder(store: str | None, out: Path) -> Path | None:
    """The folder photo files go to when the store is one (None: OUT, a path, file://...);
    None for an object store."""
    if store is None:
        return out
    if "://" not in store:
        return Path(store).expanduser()
    scheme, _, rest = store.partition("://")
    return Path(rest) if scheme == "file" else None


#: The state's meta key holding where the harvest's photo files are (see tie_store).
STORE_KEY = "photo_store"
#: What STORE_KEY holds for OUT itself (so a harvest folder may be moved).
IN_OUT = "."


def store_record(store: str | None, out: Path) -> str:
    """The store as the state records it: IN_OUT for OUT itself, a folder's absolute path,
    or the URL (never its storage options: they may hold secrets)."""
    folder = local_folder(store, out)
    if folder is None:
        return str(store).rstrip("/")
    folder = folder.resolve()
    return IN_OUT if folder == out.resolve() else str(folder)


def tie_store(state: State, store: str | None, out: Path) -> None:
    """Tie the harvest's photo files to the store this run writes them to: the first run that
    stores photos records it in the state; a later run with another store (or none, or one
    after none) is refused while the recorded one holds files the state counts as done
    (they are there, and only there)."""
    recorded = state.meta(STORE_KEY)
    done = bool(recorded is not None and state.photo_counts().get(PhotoStatus.DONE))
    state.set_meta(STORE_KEY, check_store(recorded, store, out, done))


def check_store(recorded: str | None, store: str | None, out: Path, done: bool) -> str:
    """The store as the state records it (see store_record), once checked against the one
    ``recorded`` before: another is refused while the state holds files ``done`` there."""
    here = store_record(store, out)
    if recorded is not None and recorded != here and done:
        raise SettingError("store", _store_differs(recorded, out))
    return here


def _store_differs(recorded: str, out: Path) -> str:
    if recorded == IN_OUT:
        return (
            f"the photo files of {out} are in that folder itself (recorded when it first stored "
            "photos), not in this store: run the same command without {store}, or harvest into a new folder"
        )
    return (
        f"the photo files of {out} are in {recorded} (recorded when it first stored photos): "
        f"pass {{store}} {recorded} and its {{storage_options}} again, or harvest into a new folder"
    )


def recorded_store(state: State) -> str | None:
    """Where the state says its photo files are: None for OUT itself (or nothing recorded,
    a harvest from before the store was recorded), else a folder's path or a URL."""
    recorded = state.meta(STORE_KEY)
    return None if recorded in (None, IN_OUT) else recorded


def store_name(store: str | None, out: Path) -> str:
    """What the summary names as the store: its URL, or the folder."""
    folder = local_folder(store, out)
    return str(folder) if folder is not None else str(store)


def file_remover(store: str | None, out: Path) -> Callable[[list[str]], None] | None:
    """What deletes photo files from a folder store by their paths (files that no longer
    belong, on --update): None for OUT itself (the state does it) and for an object store
    (its ObjectStore.remove does); a file already gone is no error."""
    folder = local_folder(store, out)
    if folder is None or folder == out:
        return None
    return lambda paths: _unlink_all(folder, paths)


def _unlink_all(folder: Path, paths: list[str]) -> None:
    for path in paths:
        (folder / path).unlink(missing_ok=True)


class ObjectStore:
    """Photo files as objects under ``url``, written whole; used from one event loop.

    Every call is bounded in time: ``timeout`` (the harvest's --timeout, or the store's own
    read_timeout when the user gave one) for the store to answer, and as long again as its
    bytes take at ``min_rate`` bytes/s. A call of an asynchronous filesystem (s3fs, gcsfs)
    runs on that filesystem's own event loop and is cancelled there when its time is up or
    its caller gives up; another runs in a thread, which close() does not wait for. A delete
    or an upload (``remove``, ``upload``) is made ``tries`` times, ``retry_wait`` doubling
    between (a photo's PUT is tried by the downloader)."""

    def __init__(
        self,
        url: str,
        options: Mapping[str, str] | None = None,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 15.0,
        min_rate: float = 4096.0,
        threads: int = IO_THREADS,
        tries: int = 1,
        retry_wait: float = 1.0,
    ):
        self.url = url.rstrip("/")
        self.options = dict(options or {})
        typed = _typed(self.options)
        if _protocol(self.url) in _S3:
            typed["config_kwargs"] = _s3_config(typed.get("config_kwargs"), connect_timeout, timeout)
            timeout = float(typed["config_kwargs"]["read_timeout"])
        self.timeout = timeout
        self.min_rate = min_rate
        self.tries = tries
        self.retry_wait = retry_wait
        self.fs, self.root = _filesystem_typed(self.url, typed)
        self._io = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="inat_async-store")

    def close(self) -> None:
        """End the store's threads without waiting for a call that hangs in one (each is
        bounded, and the run's end must not wait for the store's own timeouts)."""
        self._io.shutdown(wait=False, cancel_futures=True)

    def key(self, path: str) -> str:
        return f"{self.root}/{path}" if self.root else path

    async def put(self, path: str, data: bytes) -> None:
        """Store ``data`` under ``path`` in one call: the object appears whole or not at all.
        Raises TransientError (no answer in time, a 5xx, SlowDown: worth another try) or
        StoreError (the store refuses writes: every other file would be refused alike)."""
        await self._call("pipe_file", self.key(path), data, nbytes=len(data), doing="a PUT", writing=True)

    def whole_sizes(self, paths: Mapping[int, tuple[str, int]]) -> dict[int, int]:
        """Sizes of the objects already stored whole, by job id: ``paths`` maps an id to
        (path, cap). An object counts when not empty, within its cap and starting with an
        image signature; anything else is fetched and written again (so is what a listing
        or a read that failed or took too long could not show). One listing per folder, then
        a read of the first bytes of each object found. Blocking (the reads run in the
        store's threads at once): call it from a thread."""
        folders = sorted({path.rpartition("/")[0] for path, _ in paths.values()})
        listed: dict[str, int] = {}
        for found in self._io.map(self._listing, folders):
            listed.update(found)
        candidates = {
            job: (path, size)
            for job, (path, cap) in paths.items()
            if 0 < (size := listed.get(self.key(path), 0)) <= cap
        }
        heads = self._io.map(self._starts_as_image, [path for path, _ in candidates.values()])
        return {job: size for (job, (_, size)), image in zip(candidates.items(), heads, strict=True) if image}

    def check(self) -> None:
        """One bounded look at the store's bucket before the run's first request, so that a
        mistake in the store's settings ends the run in one line, not at its first PUT with
        the backend's traceback. Raises SettingError (no credentials, an unknown option, an
        endpoint nobody answers) or StoreError (access denied, no such bucket)."""
        bucket = self.root.partition("/")[0]
        # Once a run, and before any work: not cut as short as a --timeout made for stalled
        # PUTs (a busy store's first answer, connection and credentials included, takes longer).
        seconds = max(self._seconds(0), _CHECK_AT_LEAST)
        _, error = self._waited("info", bucket, seconds=seconds)
        if error is not None:
            raise self._check_failure(error, bucket, seconds) from None

    def _check_failure(self, exc: Exception, bucket: str, seconds: float) -> Exception:
        said = _said(exc)
        if isinstance(exc, FileNotFoundError):
            return StoreError(
                f"{self.url}: its bucket {bucket} is not there ({said}): create it, or pass the "
                "{store} to use, then run the same command again"
            )
        if _named_as(exc, _NO_CREDENTIALS):
            return no_credentials(self.url, said)
        unknown = _UNKNOWN_OPTION.search(said) if isinstance(exc, TypeError) else None
        if unknown is not None:
            return SettingError(
                "storage_options", f"{unknown[1]} is not an option {_protocol(self.url)}:// takes ({said})"
            )
        if isinstance(exc, (TimeoutError, ConnectionError)) or _named_as(exc, _NO_ANSWER):
            return SettingError(
                "storage_options",
                f"nobody answers at {self._endpoint()} (within {seconds:.3g} s: {said}): check its "
                "endpoint_url, or that the store is up, then run the same command again",
            )
        return self._failure(exc, "a check", seconds, writing=False)

    def _endpoint(self) -> str:
        """Where the store's calls go: the endpoint_url given, else the store's URL."""
        client = self.options.get("client_kwargs.endpoint_url")
        return str(self.options.get("endpoint_url") or client or self.url)

    def _listing(self, folder: str) -> dict[str, int]:
        """Objects directly in ``folder`` and their sizes (nothing if it is not there, or the
        store did not say in time: those files are fetched again)."""
        try:
            entries = self._blocking("ls", self.key(folder), doing="a listing", detail=True, refresh=True)
        except (FileNotFoundError, TransientError):
            return {}
        return {
            str(e["name"]).rstrip("/"): int(e.get("size") or 0) for e in entries if e.get("type") == "file"
        }

    def _starts_as_image(self, path: str) -> bool:
        try:
            head = self._blocking("cat_file", self.key(path), doing="a read", start=0, end=HEAD)
        except (FileNotFoundError, TransientError):
            return False
        return is_image(head)

    def upload(self, local: Path, path: str) -> None:
        """A local file stored under ``path`` (one PUT, or a multipart upload completed at
        once: never a partial object under its key), tried again as a delete is (see
        remove). Blocking."""
        nbytes = local.stat().st_size
        self._lasting(
            "put_file", str(local), self.key(path), doing=f"a PUT of {path}", nbytes=nbytes, writing=True
        )

    def remove(self, paths: list[str]) -> None:
        """The objects under these paths deleted (one already gone is no error), each call
        bounded and tried ``tries`` times. Raises StoreError when the store refuses it or
        every try failed: the caller's work (a page's transaction) is then not done. Blocking."""
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                self._lasting("rm_file", self.key(path), doing="a delete")

    def _lasting(self, name: str, *args: Any, doing: str, nbytes: int = 0, writing: bool = False) -> Any:
        """A bounded call (see _blocking) made up to ``tries`` times while it fails in a way
        worth another try (tenacity, as the network's requests are), then a StoreError with
        the store's reason."""
        from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
        from tenacity.wait import wait_exponential

        def said(state: RetryCallState) -> None:
            assert state.outcome is not None and state.next_action is not None
            wait, tried = state.next_action.sleep, state.attempt_number
            log.info(
                "%s: %s, next try in %.2g s (%d of %d)",
                self.url,
                state.outcome.exception(),
                wait,
                tried,
                self.tries,
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.tries),
            wait=wait_exponential(multiplier=self.retry_wait, max=_MOST_WAIT),
            retry=retry_if_exception_type(TransientError),
            before_sleep=said,
            reraise=True,
        )
        try:
            return retrying(self._blocking, name, *args, doing=doing, nbytes=nbytes, writing=writing)
        except TransientError as exc:
            raise StoreError(
                f"{self.url}: {exc} (after {self.tries} tries): check that the store is up, then run "
                "the same command again"
            ) from None

    def read(self, path: str) -> bytes:
        """An object's bytes (for checks and tests)."""
        return bytes(self.fs.cat_file(self.key(path)))

    def paths(self) -> list[str]:
        """Every object under the store's root, by its path there."""
        prefix = f"{self.root}/" if self.root else ""
        return sorted(str(p)[len(prefix) :] for p in self.fs.find(self.root))

    def _seconds(self, nbytes: int) -> float:
        """How long a call moving ``nbytes`` may take: ``timeout``, and as long again as
        the bytes take at ``min_rate``."""
        return self.timeout + nbytes / self.min_rate

    def _start(self, name: str, *args: Any, seconds: float, **kwargs: Any) -> Future[_Outcome]:
        """The filesystem's call ``name`` started: on its own event loop when it has one
        (cancelled there after ``seconds``, or when the returned future is), else in a
        thread."""
        if getattr(self.fs, "async_impl", False):
            call = getattr(self.fs, f"_{name}")(*args, **kwargs)
            return asyncio.run_coroutine_threadsafe(_outcome(call, seconds), self.fs.loop)
        return self._io.submit(_outcome_of, getattr(self.fs, name), *args, **kwargs)

    async def _call(self, name: str, *args: Any, nbytes: int = 0, doing: str, writing: bool = False) -> Any:
        seconds = self._seconds(nbytes)
        future = self._start(name, *args, seconds=seconds)
        try:
            result, error = await within(asyncio.wrap_future(future), seconds + _GRACE)
        except TimeoutError as exc:
            error = exc
        if error is not None:
            raise self._failure(error, doing, seconds, writing) from None
        return result

    def _blocking(
        self, name: str, *args: Any, doing: str, nbytes: int = 0, writing: bool = False, **kwargs: Any
    ) -> Any:
        seconds = self._seconds(nbytes)
        result, error = self._waited(name, *args, seconds=seconds, **kwargs)
        if error is not None:
            raise self._failure(error, doing, seconds, writing) from None
        return result

    def _waited(self, name: str, *args: Any, seconds: float, **kwargs: Any) -> _Outcome:
        """The call ``name`` started and waited for, at most ``seconds`` (and a grace):
        its result and error, a TimeoutError (the call cancelled) when it took longer."""
        future = self._start(name, *args, seconds=seconds, **kwargs)
        try:
            return future.result(timeout=seconds + _GRACE)
        except TimeoutError as exc:
            future.cancel()
            return None, exc

    def _failure(self, exc: Exception, doing: str, seconds: float, writing: bool) -> Exception:
        """What a failed call means for the run: StoreError when the store refuses it (no
        other file would fare better), FileNotFoundError as it is for a read, else a
        TransientError worth another try, its reason without the backend's internals."""
        if isinstance(exc, PermissionError):
            return access_denied(self.url, doing, _said(exc))
        if isinstance(exc, FileNotFoundError):
            if not writing:
                return exc
            return StoreGone(self.url, _said(exc))
        if isinstance(exc, TimeoutError):
            return TransientError(f"the store did not answer {doing} (within {seconds:.3g} s)")
        return TransientError(f"the store failed {doing} ({type(exc).__name__}: {_said(exc)})")


#: A call's result and its error (None: it succeeded), passed back whole: a call whose caller
#: gave up meanwhile leaves no error unseen on the filesystem's loop.
_Outcome = tuple[Any, Exception | None]


async def _outcome(call: Awaitable[Any], seconds: float) -> _Outcome:
    try:
        return await within(call, seconds), None
    except Exception as exc:  # the backends' errors share no base (botocore, aiohttp, gcsfs, ...)
        return None, exc


def _outcome_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> _Outcome:
    try:
        return call(*args, **kwargs), None
    except Exception as exc:  # the backends' errors share no base
        return None, exc


#: The longest wait between two tries of a delete or an upload.
_MOST_WAIT = 30.0
#: The least time the store's one look before the run (ObjectStore.check) is given.
_CHECK_AT_LEAST = 10.0
#: Seconds beyond a call's own bound before its caller stops waiting for it (the bound is
#: kept on the filesystem's loop; this only guards a loop that cannot keep it).
_GRACE = 1.0
#: Errors (by class name: the backends' own, imported only with them) that say no credentials
#: were found, and that nobody answers at the store's address.
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError")
_NO_ANSWER = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ClientConnectorError",
    "ConnectionClosedError",
)
#: How Python says a keyword argument (here a storage option) is not taken.
_UNKNOWN_OPTION = re.compile(r"unexpected keyword argument '([^']+)'")


def no_credentials(url: str, said: str) -> SettingError:
    """The store at ``url`` found no credentials (the backend ``said`` so): where its protocol
    takes them from."""
    protocol = _protocol(url)
    if protocol in _S3:
        how = (
            "pass them as {storage_options} key=... and {storage_options} secret=... (or profile=...), "
            "or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or write them in ~/.aws/credentials)"
        )
    elif protocol in _GCS:
        how = (
            "pass {storage_options} token=FILE (a service account's key file), or set "
            "GOOGLE_APPLICATION_CREDENTIALS to that file (or run: gcloud auth application-default login)"
        )
    else:
        how = f"pass them as the storage options {protocol}:// takes ({{storage_options}} KEY=VALUE)"
    return SettingError("storage_options", f"{url} needs credentials and none were found ({said}): {how}")


def access_denied(url: str, doing: str, said: str) -> StoreError:
    """The store at ``url`` refused ``doing`` (the backend ``said`` why): which credentials of
    its protocol to check."""
    protocol = _protocol(url)
    if protocol in _S3:
        which = "{storage_options} key and secret, or profile"
    elif protocol in _GCS:
        which = "{storage_options} token, or GOOGLE_APPLICATION_CREDENTIALS"
    else:
        which = f"the {{storage_options}} of {protocol}://"
    return StoreError(
        f"{url} refuses {doing} (access denied: {said}): check its credentials ({which}) and that "
        "they may write there, then run the same command again"
    )


def _named_as(exc: BaseException, names: tuple[str, ...]) -> bool:
    return any(kind.__name__ in names for kind in type(exc).__mro__)


#: fsspec's names for Google Cloud Storage.
_GCS = ("gs", "gcs")
#: fsspec's names for S3, whose client (botocore) takes connect and read timeouts.
_S3 = ("s3", "s3a")


def _said(exc: BaseException) -> str:
    """An error's own words on one line, at most 200 characters."""
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _protocol(url: str) -> str:
    return url.partition("://")[0] if "://" in url else "file"


def _s3_config(given: object, connect_timeout: float, read_timeout: float) -> dict[str, Any]:
    """botocore's Config for the store: the user's config_kwargs, with connect and read
    timeouts from the harvest's own where the user gave none (s3fs's are 5 and 15 s, and
    botocore and s3fs retry a read that timed out, 25 times in all), and no retries of
    botocore's own: a failed PUT is tried again by the downloader, with the harvest's backoff,
    logged and counted, within the bound of each call."""
    config = dict(given) if isinstance(given, Mapping) else {}
    config.setdefault("connect_timeout", connect_timeout)
    config.setdefault("read_timeout", read_timeout)
    config.setdefault("retries", {"max_attempts": 0})
    return config


def _filesystem_typed(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:
        raise SettingError("store", "an object store needs fsspec: pip install 'inat_async[dask]'") from None
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError, OSError) as exc:  # unknown, not installed, not reachable
        raise SettingError("store", f"{url}: {exc}") from None
    return fs, str(root).rstrip("/")


def _typed(options: Mapping[str, str]) -> dict[str, Any]:
    """--storage-option values as fsspec wants them: true/false as booleans, the rest as
    given; ``endpoint_url`` and the like S3 takes as client options. A dotted key sets an
    option's own key (``config_kwargs.read_timeout=300``), its value a number if it reads
    as one."""
    typed: dict[str, Any] = {}
    for key, value in options.items():
        outer, dot, inner = key.partition(".")
        if not dot:
            typed[key] = _boolean(value)
            continue
        nested = typed.setdefault(outer, {})
        if isinstance(nested, dict):
            nested[inner] = _number(_boolean(value))
    return typed


def _boolean(value: str) -> str | bool:
    return {"true": True, "false": False}.get(value.lower(), value)


def _number(value: str | bool) -> str | bool | int | float:
    if isinstance(value, bool):
        return value
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(value)
    return value
