"""Rich progress bars handed to the workflow as plain callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# soft_wrap: messages hold paths users copy, so never break them across lines.
console = Console(stderr=True, soft_wrap=True)


class Advance(Protocol):
    """Moves a bar ``n`` steps on; ``info`` (e.g. the current loss) is shown after its name."""

    def __call__(self, n: int, info: str | None = None) -> None: ...


class RateColumn(ProgressColumn):
    """Items per second, named by the task's ``unit`` field ("images/s", "texts/s")."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit")
        if not unit or task.speed is None:
            return Text("")
        return Text(f"{task.speed:,.0f} {unit}/s", style="progress.data.speed")


def unit_of(description: str) -> str | None:
    """What a bar counts, from its description: embedding bars count images or texts."""
    if "vocabulary" in description or "texts" in description:
        return "texts"
    if description.startswith("embedding"):
        return "images"
    return None


@contextmanager
def progress_factory() -> Iterator[Callable[[str, int], Advance]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        RateColumn(),
        console=console,
    ) as progress:

        def make(description: str, total: int) -> Advance:
            task = progress.add_task(description, total=total, unit=unit_of(description))

            def advance(n: int, info: str | None = None) -> None:
                # info (e.g. the current loss) is shown after the task's name
                progress.update(task, advance=n, description=f"{description} {info}" if info else description)

            return advance

        yield make
