"""One progress bar for long loops, on stderr (stdout may carry JSON)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import track


def bar(items, label: str | bool | None):
    """``items``, behind a rich progress bar on stderr if ``label`` (its text; ``True``:
    "batches"). Asked for, the bar is drawn even when stderr is not a terminal (a log
    file); it disappears when done."""
    if not label:
        return items
    console = Console(stderr=True, force_terminal=True)
    text = label if isinstance(label, str) else "batches"
    return track(items, description=text, console=console, transient=True)
