"""Rich progress bars handed to the workflow as plain callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# soft_wrap: messages hold paths users copy, so never break them across lines.
console = Console(stderr=True, soft_wrap=True)


class Advance(Protocol):
    """Moves a bar ``n`` steps on; ``info`` (e.g. the current loss) is shown after its name."""

    def __call__(self, n: int, info: str | None = None) -> None: ...


@contextmanager
def progress_factory() -> Iterator[Callable[[str, int], Advance]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:

        def make(description: str, total: int) -> Advance:
            task = progress.add_task(description, total=total)

            def advance(n: int, info: str | None = None) -> None:
                # info (e.g. the current loss) is shown after the task's name
                progress.update(task, advance=n, description=f"{description} {info}" if info else description)

            return advance

        yield make
