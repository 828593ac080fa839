"""How every command reports a user's mistake: one line, exit code 2, no traceback."""

from __future__ import annotations

import re
from typing import NoReturn

import typer
from rich.markup import escape

from semclust.cli.progress import console

# Errors users cause (bad paths, names, values); anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError)


# The library's errors name its keyword arguments ("pass force=True"); a command names its flags.
_PYTHON_FLAGS = re.compile(r"\b(force|resume)=True\b")


def as_cli_message(message: str) -> str:
    """``"pass force=True to overwrite"`` -> ``"pass --force to overwrite"``."""
    return _PYTHON_FLAGS.sub(lambda match: f"--{match.group(1)}", message)


def fail(message: str) -> NoReturn:
    # The message is text, not markup: "pip install 'semclust[distributed]'" must print as is.
    console.print(f"[bold red]error:[/] {escape(as_cli_message(message))}", markup=True, highlight=False)
    raise typer.Exit(2)
