"""The live display's bars: rich's progress bars, imported only when a terminal shows them."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, RenderableType
from rich.progress import BarColumn, TextColumn
from rich.progress import Progress as RichBars
from rich.table import Column
from rich.text import Text


class Bars(RichBars):
    """Rich's bars, one line for each live part, and below them what the harvest waits for:
    a line of its own, so a long reason never widens the bars' columns."""

    status: str = ""

    def __init__(self, console: Console) -> None:
        super().__init__(
            TextColumn("{task.description}"),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=10)),
            TextColumn("{task.fields[count]}", justify="right"),
            TextColumn("{task.fields[rate]}", justify="right"),
            TextColumn("{task.fields[eta]}", justify="right"),
            console=console,
            transient=False,
            expand=True,
        )

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.status:
            yield Text(self.status, no_wrap=True, overflow="ellipsis")
