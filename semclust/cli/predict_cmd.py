"""``semclust predict RUN_DIR IMAGES_OR_FOLDER... --out DIR``: new images into a run's clusters."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import typer

from semclust.cli.errors import USER_ERRORS, fail
from semclust.cli.progress import console, progress_factory
from semclust.outputs.prediction import count


def predict_cmd(
    run_dir: str = typer.Argument(..., help="Run directory of 'semclust cluster' or 'semclust ssl ...' (with model/)"),
    images: list[str] = typer.Argument(..., help="Image files and/or folders to assign"),
    out: str = typer.Option(..., "--out", help="Directory for assignments.csv and predict.json"),
    force: bool = typer.Option(False, help="Overwrite assignments.csv in --out"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, or auto"),
    batch_size: int | None = typer.Option(None, help="Images per forward pass"),
) -> None:
    """Assign new images to the clusters a run learned; writes assignments.csv (id, cluster, name, score)."""
    from semclust.atomic import write_json, write_text
    from semclust.outputs.model import load

    out_dir = Path(out)
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"output {out_dir} exists and is not a directory")
        if out_dir.is_dir() and out_dir.resolve() == Path(run_dir).resolve():
            raise ValueError(f"--out {out_dir} is the run directory itself; choose another directory")
        if (out_dir / "assignments.csv").exists() and not force:
            raise ValueError(f"{out_dir / 'assignments.csv'} already exists; pass --force to overwrite")
        model = load(run_dir)
        with progress_factory() as progress:
            prediction = model.predict_images(images, device=device, progress=progress, batch_size=batch_size)
    except USER_ERRORS as err:
        fail(str(err))

    ids, labels, skipped = prediction.paths, prediction.clusters, prediction.skipped
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "cluster", "name", "score"])
    for row in prediction.rows():
        score = "" if row["score"] is None else f"{row['score']:.4f}"
        writer.writerow([row["path"], row["cluster"], row["name"], score])
    sizes = np.bincount(labels, minlength=model.n_clusters).tolist() if len(labels) else [0] * model.n_clusters
    write_text(out_dir / "assignments.csv", buffer.getvalue())
    write_json(
        out_dir / "predict.json",
        {
            "run_dir": str(run_dir),
            "method": model.method,
            "n_clusters": model.n_clusters,
            "n_items": len(ids),
            "sizes": sizes,
            "score": prediction.score_meaning,
            "n_skipped": len(skipped),
            "skipped": [{"id": s.item_id, "reason": s.reason} for s in skipped],
        },
    )
    groups = "classes" if hasattr(model, "class_names") else "clusters"  # an ssl run's model classifies
    console.print(
        f"{model.method}: assigned {count(len(ids), 'image')} to {model.n_clusters} {groups}, sizes {sizes}; "
        f"score: {prediction.score_meaning}",
        highlight=False,
        markup=False,
    )
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} unreadable file(s):[/]")
        for item in skipped[:20]:
            console.print(f"  {item.item_id}: {item.reason}", highlight=False, markup=False)
        if len(skipped) > 20:
            console.print(f"  ... and {len(skipped) - 20} more (all listed in predict.json)")
    console.print(f"wrote {out_dir}/assignments.csv, predict.json", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``predict`` to ``app`` (once; registering again does nothing)."""
    if any(c.name == "predict" or c.callback is predict_cmd for c in app.registered_commands):
        return
    app.command("predict")(predict_cmd)
