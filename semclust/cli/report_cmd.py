"""``semclust report`` and ``semclust export``: a browsable page and a per-cluster folder layout."""

from __future__ import annotations

import typer

from semclust.cli.errors import USER_ERRORS, fail
from semclust.cli.progress import console


def report(
    run_dir: str = typer.Argument(..., help="Run directory written by 'semclust cluster'"),
    out: str | None = typer.Option(None, "--out", help="HTML file to write (default RUN_DIR/report.html)"),
    thumbs: int = typer.Option(12, "--thumbs", help="Representative thumbnails per cluster"),
    borderline: int = typer.Option(4, "--borderline", help="Borderline (least confident) thumbnails per cluster"),
    map_method: str = typer.Option("tsne", "--map", help="2-D map: tsne or pca"),
    max_map_points: int = typer.Option(3000, "--max-map-points", help="Items drawn on the map (seeded subset)"),
    max_thumbs: int = typer.Option(
        2000, "--max-thumbs", min=1, help="Thumbnails embedded in all; members over it are listed by name"
    ),
    max_listed: int = typer.Option(50000, "--max-listed", min=1, help="Members listed in the per-cluster browsers"),
    page_size: int = typer.Option(60, "--page-size", min=1, help="Members per page of a cluster's browser"),
    seed: int = typer.Option(0, "--seed", help="Seed of the map's subset and t-SNE"),
) -> None:
    """Write one self-contained report.html: contents, clusters with thumbnails and a paged browser of
    every member, names with their scores, metrics, a 2-D map."""
    from semclust.outputs.report import write_report

    try:
        path = write_report(
            run_dir,
            out=out,
            thumbs_per_cluster=thumbs,
            borderline=borderline,
            map_method=map_method,
            max_map_points=max_map_points,
            max_thumbnails=max_thumbs,
            max_listed=max_listed,
            page_size=page_size,
            random_state=seed,
        )
    except USER_ERRORS as err:
        fail(str(err))
    console.print(f"wrote {path}", highlight=False, markup=False)


def export(
    run_dir: str = typer.Argument(..., help="Run directory written by 'semclust cluster'"),
    to: str = typer.Option(..., "--to", help="Directory to fill with one folder per cluster"),
    copy: bool = typer.Option(True, "--copy/--link", help="Copy the files (default) or symlink them"),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty directory"),
) -> None:
    """Lay the images out as one folder per cluster, named after the cluster."""
    from semclust.outputs.export import export_clusters

    try:
        counts = export_clusters(run_dir, to, mode="copy" if copy else "link", force=force)
    except USER_ERRORS as err:
        fail(str(err))
    done = ", ".join(f"{counts[k]} {k}" for k in ("copied", "linked", "written") if counts[k])
    console.print(
        f"exported {done or 'nothing'} into {counts['clusters']} folders under {counts['to']}; "
        f"{counts['manifest']} maps each file to its source id",
        highlight=False,
        markup=False,
    )
    if counts["n_missing"]:
        console.print(f"{counts['n_missing']} item(s) could not be found in the source and were left out")


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``export`` to ``app`` (once; a second call is a no-op)."""
    names = {getattr(c, "name", None) or (c.callback.__name__ if c.callback else None) for c in app.registered_commands}
    if "report" not in names:
        app.command("report")(report)
    if "export" not in names:
        app.command("export")(export)
