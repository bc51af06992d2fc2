"""``python -m inat_async``: the same CLI as the ``inat-async`` console script."""

from inat_async.cli import run

run()
