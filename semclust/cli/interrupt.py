"""Ctrl-C and ``--resume`` made visible: one line saying where a run stopped (exit 130), and
one saying where a resumed run continues.

Where a run stopped is read from what it saved, its checkpoint in ``RUN_DIR/checkpoint``
(:func:`semclust.store.checkpoint.saved_position`: the epoch of a clustering method, the step
of the semi-supervised trainer), and from the progress bar that moved last (its total, and
how far it got past the last checkpoint).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from semclust.cli.progress import BarPosition, Bars, console, progress_factory

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as shells report a Ctrl-C


def describe_position(position: dict[str, Any]) -> str:
    """``{"epoch": 12}`` -> ``"epoch 12"``; ASD's ``{"stage": "round1-ssl", "step": 50}`` ->
    ``"step 50 of stage round1-ssl"``."""
    if "stage" in position:
        return f"step {position['step']} of stage {position['stage']}"
    unit = "epoch" if "epoch" in position else "step"
    return f"{unit} {position[unit]}"


def checkpoint_position(out_dir: str | Path | None) -> dict[str, Any] | None:
    from semclust.outputs.run_dir import CHECKPOINT_DIR
    from semclust.store.checkpoint import saved_position

    return None if out_dir is None else saved_position(Path(out_dir) / CHECKPOINT_DIR)


def interrupted_line(out_dir: str | Path | None, bar: BarPosition | None, restart_hint: str) -> str:
    """The one line an interrupted command prints (see the module docstring)."""
    saved = checkpoint_position(out_dir)
    if saved is not None:
        unit = "epoch" if "epoch" in saved else "step"
        done = saved.get(unit, 0)
        # the bar of the training loop that checkpointed: it counts the same units
        training = bar is not None and "stage" not in saved and bar.total >= done
        total = f" of {bar.total}" if training and bar is not None else ""
        if training and bar is not None and bar.completed > done:
            return (
                f"interrupted at {unit} {bar.completed}{total}; rerun with --resume to continue from its last "
                f"checkpoint, {describe_position(saved)}"
            )
        return f"interrupted after {describe_position(saved)}{total}; rerun with --resume"
    where = f" during {bar.description} ({bar.completed} of {bar.total})" if bar is not None else ""
    return f"interrupted{where}; {restart_hint}"


@contextmanager
def run_progress(out_dir: str | Path | None, restart_hint: str) -> Iterator[Bars]:
    """:func:`progress_factory`, and on Ctrl-C (once the bars have stopped) the line of
    :func:`interrupted_line` and exit code 130. ``restart_hint`` is what to do when nothing was
    checkpointed yet."""
    bars: Bars | None = None
    try:
        with progress_factory() as bars:
            yield bars
    except KeyboardInterrupt:
        line = interrupted_line(out_dir, bars.last if bars is not None else None, restart_hint)
        console.print(line, highlight=False, markup=False)
        raise typer.Exit(INTERRUPTED_EXIT) from None


def print_resume(out_dir: str | Path, what: str, start_unit: str) -> dict[str, Any] | None:
    """Before a ``--resume`` run: "resuming tac from epoch 12", or that there is no checkpoint
    and training starts at ``start_unit`` 0. Returns the saved position."""
    saved = checkpoint_position(out_dir)
    if saved is None and (Path(out_dir) / "run.json").is_file():
        return None  # a finished run without a checkpoint: the run directory's check refuses it
    if saved is None:
        console.print(
            f"no checkpoint in {out_dir}; {what} starts from {start_unit} 0", highlight=False, markup=False
        )
    else:
        console.print(f"resuming {what} from {describe_position(saved)}", highlight=False, markup=False)
    return saved
