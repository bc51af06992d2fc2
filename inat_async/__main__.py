"""``python -m inat_async``: the same CLI as the ``inat-async`` console script."""

from .cli import run

run()
