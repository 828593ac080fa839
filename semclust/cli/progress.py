"""Rich progress bars handed to the workflow as plain callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass
class BarPosition:
    """Where a bar stood when it last moved: its description, steps done and total."""

    description: str
    completed: int
    total: int


class Bars:
    """The factory handed to the workflow: ``bars(description, total)`` adds a bar and returns its
    :class:`Advance`; ``last`` is the position of the bar that moved last (what an interrupted
    command reports)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self.last: BarPosition | None = None

    def __call__(self, description: str, total: int) -> Advance:
        task = self._progress.add_task(description, total=total, unit=unit_of(description))
        position = BarPosition(description, 0, int(total))

        def advance(n: int, info: str | None = None) -> None:
            # info (e.g. the current loss) is shown after the task's name
            self._progress.update(task, advance=n, description=f"{description} {info}" if info else description)
            position.completed += int(n)
            self.last = position

        return advance


@contextmanager
def progress_factory() -> Iterator[Bars]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        RateColumn(),
        console=console,
    ) as progress:
        yield Bars(progress)
