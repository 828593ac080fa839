"""`--help` of every command at 80 columns: option names whole, lines within 80, defaults shown."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from semclust.cli.main import app

runner = CliRunner()


def _commands() -> list[tuple[list[str], Any]]:
    """Every command of the CLI with the words that reach it (``["ssl", "fixmatch"]``)."""
    found: list[tuple[list[str], Any]] = []

    def walk(words: list[str], command: Any) -> None:
        found.append((words, command))
        if hasattr(command, "commands"):  # a group (typer's own click fork: not click.Group)
            for name, sub in command.commands.items():
                walk([*words, name], sub)

    walk([], typer.main.get_command(app))
    return found


def _help(words: list[str]) -> str:
    result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


COMMANDS = _commands()


def test_the_walk_finds_the_nested_commands() -> None:
    names = {" ".join(words) for words, _ in COMMANDS}
    assert {"cluster", "predict", "report", "export", "datasets", "ssl fixmatch", "ssl metaexpert"} <= names


@pytest.mark.parametrize("words", [w for w, _ in COMMANDS], ids=lambda w: " ".join(w) or "semclust")
def test_help_fits_80_columns_and_names_every_option_whole(words: list[str]) -> None:
    text = _help(words)
    too_long = [line for line in text.splitlines() if len(line) > 80]
    assert not too_long, too_long
    command = dict((tuple(w), c) for w, c in COMMANDS)[tuple(words)]
    # every option's every spelling appears unbroken, followed by a space or the line's end
    for param in command.params:
        for flag in [*param.opts, *param.secondary_opts]:
            if flag.startswith("-"):
                assert re.search(rf"(^|[\s/,]){re.escape(flag)}(\s|$|,)", text, re.M), (flag, text)


def test_defaults_of_k_and_steps_are_shown() -> None:
    cluster = " ".join(_help(["cluster"]).split())  # joined: the wrap may split a sentence
    assert "--k K" in cluster and "[default: none; zeroshot: one per class name]" in cluster
    for command in ("fixmatch", "fixmatch-la", "cpe", "metaexpert"):
        text = " ".join(_help(["ssl", command]).split())
        assert "--steps" in text and "[default: digits 300, --labelled 1000, others 20000]" in text, command
