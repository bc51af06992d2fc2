"""Start-up (issue 18): what a harvest imports before its first request. The export writers, rich
(a live display only) and tenacity (a retry only) are loaded where they are used, not on the
way to the first request, which aiohttp's import alone already takes most of."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

#: What the command line imports to start a harvest (cli.main imports the api on a harvest).
START = "import inat_async.cli, inat_async.api"
WRITERS = ("inat_async.exports.csvs", "inat_async.exports.dwca", "inat_async.exports.report")
LATER = ("rich", "tenacity", *WRITERS, "inat_async.pipeline.photostage", "pandas", "pyarrow")


def test_a_harvest_starts_without_the_exports_rich_or_tenacity() -> None:
    probe = f"{START}; import sys; print(' '.join(m for m in {LATER!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    )
    assert done.stdout.split() == []
