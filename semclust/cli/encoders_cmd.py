"""``semclust encoders evaluate``: the bridge report for an encoder on a labelled dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from semclust.cli.errors import USER_ERRORS, fail

encoders_app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="Inspect and measure encoders."
)


def _dataset_spec(dataset: str) -> str:
    return dataset if dataset.startswith("dataset:") else f"dataset:{dataset}"


@encoders_app.command("evaluate")
def evaluate_cmd(
    encoder: str = typer.Option("offline", help="offline[:key=value,...] e.g. offline:bridge=linear,class_text=gloss"),
    dataset: str = typer.Option(..., help="Labelled dataset NAME[:SPLIT], e.g. fashion-mnist:train"),
    limit: int | None = typer.Option(None, help="Score a seeded random subset of this many images"),
    seed: int = typer.Option(0, help="Seed for the subset and k-means"),
    out: str | None = typer.Option(None, "--out", help="Write the records to this JSON file"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, or auto"),
    batch_size: int | None = typer.Option(None, help="Images per forward pass"),
    data_root: str | None = typer.Option(None, help="Where local CIFAR/STL-10/SVHN files live"),
) -> None:
    """kNN-10 purity (visual, joint), zero-shot accuracy, k-means ACC/NMI/ARI per view, images/s."""
    from semclust.data.registry import open_source
    from semclust.encoders.registry import get_encoder
    from semclust.outputs.encoder_report import evaluate_bridge

    try:
        if limit is not None and limit < 11:
            raise ValueError(f"--limit must be at least 11 (kNN-10 needs 11 images), got {limit}")
        source = open_source(_dataset_spec(dataset), data_root=data_root)
        labels, class_names = source.labels, source.class_names
        if labels is None or not class_names:
            raise ValueError(f"dataset {dataset!r} has no labels or class names to evaluate against")
        index = np.arange(len(source))
        if limit is not None and limit < len(index):
            index = np.sort(np.random.default_rng(seed).choice(len(index), size=limit, replace=False))
        model = get_encoder(encoder, device=device, batch_size=batch_size)
        images = [source.load(int(i)) for i in index]
        records = evaluate_bridge(model, np.asarray(labels)[index], list(class_names), images=images, seed=seed)
    except USER_ERRORS as err:
        fail(str(err))
    for record in records:
        record.update({"encoder_spec": encoder, "dataset": dataset, "seed": seed, "limit": limit})
        typer.echo(
            f"{encoder} on {dataset} (n={len(index)}): "
            f"kNN-10 purity visual {record['knn10_purity_visual']:.4f} joint {record['knn10_purity_joint']:.4f} | "
            f"zero-shot {record.get('zeroshot_acc', float('nan')):.4f} | "
            f"k-means visual ACC/NMI/ARI {record['kmeans_acc_visual']:.4f}/{record['kmeans_nmi_visual']:.4f}/"
            f"{record['kmeans_ari_visual']:.4f} joint {record['kmeans_acc_joint']:.4f}/"
            f"{record['kmeans_nmi_joint']:.4f}/{record['kmeans_ari_joint']:.4f} | "
            f"{record.get('images_per_s', float('nan')):.1f} images/s"
        )
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=1, default=float) + "\n")
        typer.echo(f"wrote {path}")
