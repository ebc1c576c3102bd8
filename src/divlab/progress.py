"""One progress bar for long loops, on stderr (stdout may carry JSON)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import Progress, TextColumn, TimeElapsedColumn, track


def bar(items, label: str | bool | None):
    """``items``, behind a rich progress bar on stderr if ``label`` (its text; ``True``:
    "batches"). Asked for, the bar is drawn even when stderr is not a terminal (a log
    file); it disappears when done."""
    if not label:
        return items
    console = Console(stderr=True, force_terminal=True)
    text = label if isinstance(label, str) else "batches"
    return track(items, description=text, console=console, transient=True)


@contextlib.contextmanager
def counter(label: str | None, unit: str = "docs") -> Iterator[Callable[[int], None]]:
    """A running count and its rate ("1,234,567 docs, 18,200 docs/s") on stderr while the
    block runs, for streams of unknown length; yields ``advance(n)``. ``label`` None or
    empty: no output, ``advance`` does nothing."""
    if not label:
        yield lambda n: None
        return
    columns = (
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} " + unit),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    started = time.perf_counter()
    with Progress(*columns, console=Console(stderr=True, force_terminal=True), transient=True) as p:
        task = p.add_task(label, total=None, rate="")

        def advance(n: int) -> None:
            done = p.tasks[0].completed + n
            rate = done / max(time.perf_counter() - started, 1e-9)
            p.update(task, completed=done, rate=f"{rate:,.0f} {unit}/s")

        yield advance
