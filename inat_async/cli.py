"""The command line: options in, a harvest run, a summary and an exit status out."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import math
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from inat_async.config import (
    DEFAULT_FILTERS,
    FORMATS,
    PHOTO_LICENSES,
    SIZES,
    Budgets,
    Settings,
    api_url_default,
    make_settings,
    parse_formats,
    parse_params,
    parse_storage_options,
    read_places_file,
    setting_default,
)
from inat_async.errors import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PHOTOS_FAILED,
    HarvestError,
    SettingError,
)
from inat_async.version import __version__

if TYPE_CHECKING:
    from rich.console import Console

# The harvester itself (aiohttp, rich, ...) is imported once the options are good: --help and
# bad input are answered in a fraction of a second.
PROG = "inat-async"
T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, exit 2: bad input needs no usage dump."""
        self.exit(2, f"{PROG}: error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default said once, and only when it has one worth saying (no
    ``None``, ``False`` or ``[]``); the description and epilog kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unsaid = default is None or default is False or default == [] or default is argparse.SUPPRESS
        if unsaid or not action.option_strings or "default" in text:
            return text
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


# Budgets fields set from the command line: (metavar, what a user reads of each).
_BUDGET_HELP = {
    "api_rpm": ("N", "API requests in any sliding minute (iNaturalist asks <= 60)"),
    "api_daily": ("N", "API requests in any sliding 24 hours (iNaturalist asks <= 10,000)"),
    "media_rpm": ("N", "photo requests a minute per photo host"),
    "media_gb_per_hour": ("GB", "GB of photos per host in any sliding hour (blocking starts at 5)"),
    "media_gb_per_day": ("GB", "GB of photos per host in any sliding day (blocking starts at 24)"),
    "media_concurrency": ("N", "photo downloads at once per photo host"),
}
_USAGE = f"""\
{PROG} --place ID [--place ID ...] [options]
       {PROG} export OUT [--format LIST] [--api-url URL]
       {PROG} opendata --out DIR [--place ID | --polygon FILE] [--taxon ID] [options]
       {PROG} photos OUT [--scheduler ADDRESS|local[:N]] [--store URL] [options]"""
_EPILOG = f"""\
other commands:
  export OUT            write exports (csv, parquet, dwca, ...) from a harvest folder
                        alone, with no request; see {PROG} export --help
  opendata              harvest a selection of iNaturalist's open-data dumps (a place,
                        a polygon, a taxon, ...); see {PROG} opendata --help
  photos OUT            download the photo files of a paged harvest or opendata
                        folder, here or on a Dask cluster; see {PROG} photos --help"""


# The flag of each setting whose flag is not its name with dashes (see flag_of).
_FLAGS = {
    "places": "--place",
    "filters": "--param",
    "photo_licenses": "--photo-license",
    "formats": "--format",
    "storage_options": "--storage-option",
    "request_timeout": "--timeout",
    "connect_timeout": "--timeout",
    "max_photo_bytes": "--max-photo-mb",
    "backoff_initial": "--retry-wait",
    "limits": "--no-limits",
    "minute": "--budget-window-scale",
    "hour": "--budget-window-scale",
    "day": "--budget-window-scale",
}
_SETTINGS = {f.name for f in dataclasses.fields(Settings)} | {f.name for f in dataclasses.fields(Budgets)}


def flag_of(setting: str) -> str:
    """The flag that sets ``setting`` (a Settings or Budgets field): errors name it so."""
    if setting in _FLAGS:
        return _FLAGS[setting]
    if setting in _SETTINGS or setting in ("places_file", "log_file"):
        return f"--{setting.replace('_', '-')}"
    return f"{{{setting}}}"  # not a setting: left as written


def _default_list(setting: str) -> str:
    return ",".join(setting_default(setting))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        usage=_USAGE,
        description="Harvest iNaturalist observations and their photos into a folder: a resumable\n"
        "SQLite state, photos/, observations.csv and photos.csv.",
        epilog=_EPILOG,
        formatter_class=_HelpFormatter,
    )
    what = p.add_argument_group("what to harvest")
    _add_places(what)
    _add_photo_choices(what)
    _add_run_kinds(what)
    _add_where(p.add_argument_group("where"))
    speed = p.add_argument_group("speed and politeness")
    _add_pace(speed)
    _add_request_limits(speed)
    _add_cluster_options(p)
    _add_output(p.add_argument_group("output"))
    return p


def _add_places(what: argparse._ArgumentGroup) -> None:
    """Which places, and the API's filters."""
    what.add_argument(
        "--place",
        action="append",
        default=[],
        metavar="ID",
        help="iNaturalist place id or place URL; repeat it or give a comma list of ids",
    )
    what.add_argument(
        "--places-file",
        type=Path,
        metavar="FILE",
        help="place ids one a line (# comments, blank lines and place URLs allowed)",
    )
    what.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add or override an API filter (defaults: "
        f"{' '.join(f'{k}={v}' for k, v in DEFAULT_FILTERS.items())}); KEY= drops one",
    )


def _add_count(group: argparse._ActionsContainer, flag: str, help: str) -> None:
    """An integer option of a setting named as the flag is (--per-page: per_page): its default
    and its bounds (config.COUNT_LIMITS, checked by Settings) are the setting's."""
    default = setting_default(flag.removeprefix("--").replace("-", "_"))
    group.add_argument(flag, type=int, default=default, metavar="N", help=help)


def _add_photo_choices(what: argparse._ArgumentGroup) -> None:
    """Which photo files, and how many observations a request."""
    what.add_argument(
        "--sizes",
        default=_default_list("sizes"),
        metavar="LIST",
        help=f"photo sizes, comma separated, of {', '.join(SIZES)}",
    )
    _add_count(what, "--per-page", "observations per API request (at most 200; smaller helps a heavy query)")
    what.add_argument(
        "--photo-license",
        metavar="LIST",
        help="fetch only photos under these licences of their own, comma separated, any case, of "
        f"{', '.join(PHOTO_LICENSES)} (none); the others are recorded as skipped",
    )
    photos = what.add_mutually_exclusive_group()
    photos.add_argument(
        "--all-photos", action="store_true", help="every photo of an observation, not only the first"
    )
    photos.add_argument("--no-photos", action="store_true", help="metadata only")


def _add_run_kinds(what: argparse._ArgumentGroup) -> None:
    """A harvest, an update of one, or a dry run of either."""
    what.add_argument(
        "--update",
        action="store_true",
        help="fetch only what was created or changed since the last complete run",
    )
    what.add_argument(
        "--dry-run",
        action="store_true",
        help="count and estimate the harvest (requests, photos, bytes, time); write nothing",
    )


def _add_where(where: argparse._ArgumentGroup) -> None:
    """The output folder, its exports, and the API."""
    where.add_argument(
        "--out",
        default=str(setting_default("out")),
        metavar="DIR",
        help="output folder; running again continues the harvest in it",
    )
    where.add_argument(
        "--format",
        default=_default_list("formats"),
        metavar="LIST",
        help=f"exports written at the end, of {', '.join(FORMATS)}",
    )
    where.add_argument(
        "--no-taxonomy",
        action="store_true",
        help="do not name each observation's kingdom .. genus (fewer API requests)",
    )
    _add_count(where, "--shard-size", "samples per WebDataset shard (--format webdataset)")
    where.add_argument(
        "--webdataset-size",
        default=setting_default("webdataset_size"),
        metavar="SIZE",
        help="the photo size of WebDataset samples, one of --sizes",
    )
    where.add_argument(
        "--api-url",
        default=api_url_default(),
        metavar="URL",
        help="API base URL (or the INAT_API_URL environment variable)",
    )


def _add_pace(speed: argparse._ArgumentGroup, paging: bool = True) -> None:
    """Concurrency and the budgets every harvest of the user shares; without ``paging`` (the
    photos command) none of the API's."""
    _add_count(speed, "--workers", "photo downloads at once, all hosts together")
    if paging:
        ranges = "id ranges of a query paged at once, so API latency leaves no request budget unused"
        _add_count(speed, "--ranges", ranges)
    _add_budgets(speed, api=paging)


def _add_budgets(speed: argparse._ArgumentGroup, api: bool = True) -> None:
    """The budgets every harvest of the user shares (the API's only with ``api``), and the
    file that shares them."""
    budgets = Budgets()
    for field_name, (metavar, help_text) in _BUDGET_HELP.items():
        if not api and field_name.startswith("api_"):
            continue
        default = getattr(budgets, field_name)
        speed.add_argument(f"--{field_name.replace('_', '-')}", type=type(default), default=default,
                           metavar=metavar, help=help_text)  # fmt: skip
    speed.add_argument(
        "--no-limits", action="store_true", help="lift every limit: only for a local simulator or mirror"
    )
    speed.add_argument(
        "--budget-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="shared budget counters (default: ~/.cache/inat_async/budget.sqlite, or INAT_ASYNC_BUDGET_FILE)",
    )


def _add_request_limits(speed: argparse._ArgumentGroup) -> None:
    """Each request's deadline, size cap and backoff (and the tests' knobs)."""
    speed.add_argument(
        "--timeout",
        type=float,
        default=setting_default("request_timeout"),
        metavar="SECONDS",
        help="a request whose answer has not started within this, or whose body then comes slower "
        "than 4 KB/s on average, is retried",
    )
    speed.add_argument(
        "--max-photo-mb",
        type=float,
        default=setting_default("max_photo_bytes") / 1e6,
        metavar="MB",
        help="refuse a photo file larger than this (no photo is near it)",
    )
    speed.add_argument(
        "--retry-wait",
        type=float,
        default=setting_default("backoff_initial"),
        metavar="SECONDS",
        help="first backoff before a retry; it doubles, with jitter, up to 5 minutes",
    )
    # Shrinks every budget window (minute, hour, day) for tests that must run in seconds.
    speed.add_argument("--budget-window-scale", type=float, default=1.0, help=argparse.SUPPRESS)
    # How long to wait for a budget file another program holds (tests shorten it).
    speed.add_argument(
        "--budget-lock-wait", type=float, default=setting_default("budget_lock_wait"), help=argparse.SUPPRESS
    )


def _add_output(talk: argparse._ArgumentGroup) -> None:
    """What the run says, and where."""
    talk.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    talk.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    talk.add_argument("--log-file", type=Path, metavar="FILE", help="also log everything (debug) to FILE")
    talk.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    """--store, --storage-option, --scheduler, --budget-scope: beyond one machine."""
    many = p.add_argument_group("many machines (pip install 'inat_async[dask]')")
    many.add_argument(
        "--store",
        metavar="URL",
        help="where photo files go: a folder or an fsspec URL (s3://bucket/prefix); default: OUT",
    )
    many.add_argument(
        "--storage-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the store (endpoint_url=..., profile=..., key=..., secret=...); repeat it",
    )
    many.add_argument(
        "--export-store",
        metavar="URL",
        nargs="?",
        const=_SAME_STORE,
        help="copy the exports, summary.json and report.html there too: a folder or an fsspec URL "
        "(alone: the --store)",
    )
    many.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="download photos on a Dask cluster: local[:N] (N worker processes here) or tcp://host:8786",
    )
    many.add_argument(
        "--budget-scope",
        choices=("cluster", "worker"),
        default=setting_default("budget_scope"),
        help="photo budgets shared by the whole cluster (one egress IP) or each worker's own",
    )
    many.add_argument(
        "--worker-wait",
        type=float,
        default=setting_default("worker_wait"),
        metavar="SECONDS",
        help="how long the photo stage waits for a Dask worker when the cluster has none, then stops",
    )
    shards = "most photo files a cluster task fetches (fewer, so that every worker thread gets two)"
    _add_count(many, "--shard-files", shards)


_SAME_STORE = "\0the store"  # --export-store given alone


def _cluster_settings(args: argparse.Namespace) -> dict[str, Any]:
    same = args.export_store == _SAME_STORE
    if same and args.store is None:
        raise SettingError("export_store", "given alone means the {store}: give one, or a URL")
    return {
        "export_store": args.store if same else args.export_store,
        "store": args.store,
        "storage_options": parse_storage_options(args.storage_option),
        "scheduler": args.scheduler,
        "budget_scope": args.budget_scope,
        "shard_files": args.shard_files,
        "worker_wait": args.worker_wait,
    }


def _speed_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of _add_pace's and _add_request_limits' flags (--ranges aside)."""
    windows = Budgets()
    scale = args.budget_window_scale
    budgets = Budgets(
        **{name: getattr(args, name) for name in _BUDGET_HELP if hasattr(args, name)},
        minute=windows.minute * scale,
        hour=windows.hour * scale,
        day=windows.day * scale,
    )
    return {
        "workers": args.workers,
        "limits": not args.no_limits,
        "budgets": budgets,
        "budget_file": args.budget_file,
        "budget_lock_wait": args.budget_lock_wait,
        "backoff_initial": args.retry_wait,
        "request_timeout": args.timeout,
        "max_photo_bytes": _bytes(args.max_photo_mb),
    }


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The flags as :class:`Settings`; every check is the Settings' own (see flag_of)."""
    places = list(args.place)
    if args.places_file is not None:
        places += read_places_file(args.places_file)
    return make_settings(
        places,
        out=args.out,
        api_url=args.api_url,
        filters=parse_params(args.param),
        sizes=args.sizes,
        all_photos=args.all_photos,
        no_photos=args.no_photos,
        update=args.update,
        photo_licenses=args.photo_license,
        formats=args.format,
        taxonomy=not args.no_taxonomy,
        shard_size=args.shard_size,
        webdataset_size=args.webdataset_size,
        per_page=args.per_page,
        ranges=args.ranges,
        **_speed_settings(args),
        **_cluster_settings(args),
    )


def _bytes(megabytes: float) -> int:
    """MB as bytes; NaN and infinity stay as they are, for Settings to refuse."""
    return round(megabytes * 1e6) if math.isfinite(megabytes) else megabytes  # type: ignore[return-value]


def _console(args: argparse.Namespace) -> Console | None:
    """Live bars only for a person at a terminal; logs and pipes get plain lines."""
    if args.quiet or not sys.stderr.isatty():
        return None
    from rich.console import Console

    return Console(stderr=True)


def _setup_logging(args: argparse.Namespace, console: Console | None) -> None:
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    handler: logging.Handler
    if console is not None:
        from rich.logging import RichHandler

        # RichHandler prints the time and level itself: the message alone, or basicConfig's
        # default format would print the level a second time ("INFO INFO:inat_async:...").
        handler = RichHandler(console=console, show_path=False, log_time_format="%H:%M:%S")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler.setLevel(level)
    if not args.verbose:
        handler.addFilter(_ours_or_warnings)
    handlers: list[logging.Handler] = [handler]
    if args.log_file is not None:
        try:
            to_file = logging.FileHandler(args.log_file, encoding="utf-8")
        except OSError as exc:
            raise SettingError("log_file", f"cannot write to {args.log_file} ({exc.strerror})") from None
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers.append(to_file)
    logging.basicConfig(level=logging.DEBUG, handlers=handlers, force=True)
    logging.getLogger("asyncio").setLevel(logging.WARNING)


def _ours_or_warnings(record: logging.LogRecord) -> bool:
    """The console says inat_async's lines, and other libraries' warnings and errors: their
    INFO (botocore's "Found credentials in environment variables.") is their own news."""
    return record.name.partition(".")[0] == "inat_async" or record.levelno >= logging.WARNING


async def _until_signal(work: Awaitable[T]) -> T:
    """SIGTERM cancels like Ctrl-C does, so both leave the state consistent."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await work


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    kept = "everything harvested so far is kept. Run the same command again to continue."
    return _run_command(lambda: _harvest_command(args), kept)


def _harvest_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    console = _console(args)
    _setup_logging(args, console)
    if args.dry_run:
        from inat_async.pipeline import dryrun

        print(dryrun.report(settings, asyncio.run(_until_signal(dryrun.estimate(settings)))))
        return EXIT_OK
    from inat_async.api import harvest

    summary = asyncio.run(_until_signal(harvest(settings, console=console)))
    print(summary.table())
    if summary.unfound:
        return EXIT_INCOMPLETE
    return EXIT_PHOTOS_FAILED if summary.photos_failed else EXIT_OK


def _run_command(work: Callable[[], int], interrupted: str, name_of: Callable[[str], str] = flag_of) -> int:
    """A command's exit status: ``work``'s own, or its error said in one line (settings named
    by ``name_of``'s flags), or an interruption said with ``interrupted``."""
    try:
        return work()
    except HarvestError as exc:
        print(f"{PROG}: error: {exc.render(name_of)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a log file or folder the system refuses
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"{PROG}: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _export_main(argv: list[str]) -> int:
    """`inat-async export OUT --format csv,parquet,dwca`: exports from the state, no request."""
    p = _Parser(
        prog=f"{PROG} export",
        description="Write exports of a harvest folder from its state alone, with no request.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("out", type=Path, metavar="OUT", help="a harvest folder")
    p.add_argument(
        "--format",
        default=_default_list("formats"),
        metavar="LIST",
        help=f"exports to write, of {', '.join(FORMATS)}",
    )
    p.add_argument(
        "--api-url",
        default=None,
        metavar="URL",
        help="the source named in the Darwin Core metadata (default: the URL the folder was harvested from)",
    )
    _add_count(p, "--shard-size", "samples per WebDataset shard")
    p.add_argument("--webdataset-size", default=setting_default("webdataset_size"), metavar="SIZE",
                   help="the photo size of WebDataset samples (its files must be in the folder)")  # fmt: skip
    args = p.parse_args(argv)
    return _run_command(lambda: _export_command(args), "exports already written are whole.")


def _export_command(args: argparse.Namespace) -> int:
    formats = parse_formats(args.format)
    from inat_async.api import export

    export(args.out, formats, args.api_url, shard_size=args.shard_size, webdataset_size=args.webdataset_size)
    print(f"wrote {', '.join(formats)} in {args.out}")
    return EXIT_OK


def _opendata_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=f"{PROG} opendata",
        description="Select observations and photos from iNaturalist's open-data dumps (no API\n"
        "paging) and harvest them into a folder as any harvest: state, photos/, exports.",
        formatter_class=_HelpFormatter,
    )
    what = p.add_argument_group("what to select")
    what.add_argument(
        "--place", type=int, metavar="ID", help="inside this place's boundary (one API request)"
    )
    what.add_argument("--polygon", type=Path, metavar="FILE", help="inside a GeoJSON Polygon or MultiPolygon")
    what.add_argument(
        "--bbox",
        metavar="W,S,E,N",
        help="inside this box, in degrees (--bbox=-9.2,38.3,-8.8,38.6 with a minus)",
    )
    what.add_argument("--taxon", type=int, metavar="ID", help="this taxon or any of its descendants")
    what.add_argument("--quality-grade", metavar="LIST", help="research, needs_id, casual (comma list)")
    what.add_argument(
        "--photo-license", metavar="LIST", help=f"photos under these licences, of {', '.join(PHOTO_LICENSES)}"
    )
    what.add_argument("--observed-from", metavar="DATE", help="observed on or after (YYYY-MM-DD)")
    what.add_argument("--observed-to", metavar="DATE", help="observed on or before (YYYY-MM-DD)")
    what.add_argument(
        "--sizes", default=_default_list("sizes"), metavar="LIST", help=f"photo sizes, of {', '.join(SIZES)}"
    )
    photos = what.add_mutually_exclusive_group()
    photos.add_argument("--all-photos", action="store_true", help="every photo, not only the first")
    photos.add_argument("--no-photos", action="store_true", help="metadata only")
    what.add_argument(
        "--hydrate",
        action="store_true",
        help="also fetch each selected observation's full API record (200 a request, in the API budget)",
    )
    what.add_argument(
        "--dry-run",
        action="store_true",
        help="read the dump and count the selection, requests and time; write nothing",
    )
    where = p.add_argument_group("where")
    where.add_argument("--out", default=str(setting_default("out")), metavar="DIR", help="output folder")
    where.add_argument("--dump", default=None, metavar="URL",
                       help="the dump: s3://inaturalist-open-data (anonymous; the default), any fsspec URL "
                       "or a local folder")  # fmt: skip
    where.add_argument("--dump-storage-option", action="append", default=[], metavar="K=V",
                       help="an option of the dump's file system (endpoint_url=...); repeat it")  # fmt: skip
    where.add_argument("--photo-base", default=None, metavar="URL",
                       help="where the dump's photos are (default: the bucket's web address)")  # fmt: skip
    where.add_argument(
        "--format", default=_default_list("formats"), metavar="LIST", help=f"of {', '.join(FORMATS)}"
    )
    where.add_argument("--api-url", default=api_url_default(), metavar="URL", help="API base URL (--place)")
    speed = p.add_argument_group("speed and politeness")
    _add_count(speed, "--workers", "photo downloads at once")
    _add_budgets(speed)
    _add_cluster_options(p)
    _add_output(p.add_argument_group("output"))
    return p


def _opendata_main(argv: list[str]) -> int:
    """`inat-async opendata --out DIR [filters]`: a harvest selected from the open-data dumps."""
    args = _opendata_parser().parse_args(argv)
    name_of = lambda name: flag_of(name) if name in _SETTINGS else f"--{name.replace('_', '-')}"  # noqa: E731
    return _run_command(lambda: _opendata_command(args), "run the same command again to continue.", name_of)


def _opendata_command(args: argparse.Namespace) -> int:
    from inat_async.pipeline import opendata

    budgets = Budgets(**{name: getattr(args, name) for name in _BUDGET_HELP})
    job = opendata.job_from_args(args, budgets, _cluster_settings(args))
    console = _console(args)
    _setup_logging(args, console)
    if args.dry_run:
        print(asyncio.run(_until_signal(opendata.dry_run(job))))
        return EXIT_OK
    from inat_async.api import photo_stage_for

    stage = photo_stage_for(job.settings)
    summary = asyncio.run(_until_signal(opendata.run_opendata(job, console=console, photo_stage=stage)))
    print(summary.table())
    return EXIT_PHOTOS_FAILED if summary.photos_failed else EXIT_OK


def _photos_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=f"{PROG} photos",
        description="Download the photo files of a harvest folder whose observations are paged (by an\n"
        "API harvest with or without --no-photos, or by opendata): in this process, or on a Dask\n"
        "cluster with --scheduler; into OUT or an object store with --store. Running it again continues.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("out", type=Path, metavar="OUT", help="a harvest folder")
    what = p.add_argument_group("which files")
    what.add_argument(
        "--sizes",
        default=_default_list("sizes"),
        metavar="LIST",
        help=f"photo sizes, comma separated, of {', '.join(SIZES)}",
    )
    what.add_argument(
        "--photo-license",
        metavar="LIST",
        help=f"fetch only photos under these licences, of {', '.join(PHOTO_LICENSES)}",
    )
    what.add_argument("--all-photos", action="store_true", help="every photo of an observation")
    what.add_argument(
        "--format",
        metavar="LIST",
        help="exports rewritten at the end (default: those the folder's last run wrote)",
    )
    speed = p.add_argument_group("speed and politeness")
    _add_pace(speed, paging=False)
    _add_request_limits(speed)
    _add_cluster_options(p)
    _add_output(p.add_argument_group("output"))
    return p


def _photos_main(argv: list[str]) -> int:
    """`inat-async photos OUT [--scheduler ...] [--store URL]`: the photo stage alone."""
    args = _photos_parser().parse_args(argv)
    kept = "every file stored so far is kept. Run the same command again."
    return _run_command(lambda: _photos_command(args), kept)


def _photos_command(args: argparse.Namespace) -> int:
    options = {**_speed_settings(args), **_cluster_settings(args)}
    options.update(sizes=args.sizes, photo_licenses=args.photo_license, all_photos=args.all_photos)
    if args.format is not None:
        options["formats"] = args.format
    console = _console(args)
    _setup_logging(args, console)
    from inat_async.api import photos

    summary = asyncio.run(_until_signal(photos(args.out, console=console, **options)))
    print(summary.table())
    return EXIT_PHOTOS_FAILED if summary.photos_failed else EXIT_OK


#: `inat-async NAME ...`: the commands beside the harvest, each `(argv) -> exit status`.
SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "export": _export_main,
    "opendata": _opendata_main,
    "photos": _photos_main,
}


def run() -> NoReturn:
    sys.exit(main())
