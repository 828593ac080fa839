"""How every command reports a user's mistake: one line, exit code 2, no traceback."""

from __future__ import annotations

import typer

from semclust.cli.progress import console

# Errors users cause (bad paths, names, values); anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError)


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(2)
