"""How every command reports a user's mistake: one line, exit code 2, no traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.markup import escape

from semclust.cli.progress import console

# Errors users cause (bad paths, names, values); anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError)


def fail(message: str) -> NoReturn:
    # The message is text, not markup: "pip install 'semclust[distributed]'" must print as is.
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(2)
