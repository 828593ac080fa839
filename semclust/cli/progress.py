"""Rich progress bars handed to the workflow as plain callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# soft_wrap: messages hold paths users copy, so never break them across lines.
console = Console(stderr=True, soft_wrap=True)


@contextmanager
def progress_factory() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:

        def make(description: str, total: int) -> Callable[..., None]:
            task = progress.add_task(description, total=total)

            def advance(n: int, info: str | None = None) -> None:
                # info (e.g. the current loss) is shown after the task's name
                progress.update(task, advance=n, description=f"{description} {info}" if info else description)

            return advance

        yield make
