"""The ``semclust`` command: a thin layer over :mod:`semclust.workflow`."""

from __future__ import annotations

import json
import sys

import typer

from semclust.cli.encoders_cmd import encoders_app
from semclust.cli.errors import USER_ERRORS, fail
from semclust.cli.interrupt import print_resume, run_progress
from semclust.cli.predict_cmd import register as register_predict
from semclust.cli.progress import console, progress_factory
from semclust.cli.report_cmd import register as register_report_commands
from semclust.cli.ssl_cmd import register as register_ssl

# rich_markup_mode=None: click's plain help wraps at the terminal's width without cutting option
# names (rich's table squeezed them at 80 columns) and prints "[default: ...]" in help texts
# literally (rich took it for markup and dropped it). The ssl and encoders groups do the same.
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Cluster unlabelled images and name the clusters.",
)


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def parse_params(method: str, items: list[str]) -> dict:
    """``["epochs=5", "taus=1,2"]`` -> values typed by method ``method``'s parameter annotations
    (:meth:`semclust.methods.spec.MethodSpec.parse_params`); ValueError naming a bad key or value."""
    from semclust.methods.registry import get_spec

    texts: dict[str, str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {item!r} is not KEY=VALUE")
        texts[key.strip().replace("-", "_")] = text
    return get_spec(method).parse_params(texts)


@app.command()
def datasets() -> None:
    """List the built-in dataset sources, whether their files are here, and how to get missing ones."""
    from semclust.data.registry import list_datasets

    entries = list_datasets()
    width = max(len(e["name"]) for e in entries) + len("dataset:")
    for entry in entries:
        available = "available" if entry["available"] else "missing  "
        typer.echo(
            f"{'dataset:' + entry['name']:<{width}}  {available}  splits: {','.join(entry['splits']):<22} "
            f"{entry['description']}"
        )
        if not entry["available"] and entry.get("how_to_get"):
            typer.echo(f"{'':<{width}}  to get it: {entry['how_to_get']}")


@app.command()
def embed(
    source: str = typer.Argument(..., help="Image folder or dataset:NAME[:split]"),
    out: str = typer.Option(..., "--out", help="Feature-store directory to write (resumes if present)"),
    encoder: str = typer.Option("offline", help="offline | clip:<hf-name-or-dir> | open_clip:<arch>[:<ckpt>]"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, or auto"),
    batch_size: int | None = typer.Option(None, help="Images per forward pass"),
    shard_size: int = typer.Option(2048, help="Items per shard (resume granularity)"),
    dtype: str = typer.Option("float16", help="float16 or float32 storage"),
    force: bool = typer.Option(False, help="Rebuild even if the store holds other features"),
    labels_from_folders: bool = typer.Option(False, help="First-level folder names are class labels"),
    data_root: str | None = typer.Option(None, help="Where local CIFAR/STL-10/SVHN files live"),
    engine: str = typer.Option(
        "local", help="local (this process) or ray (Ray Data: the 'distributed' extra of semclust)"
    ),
    ray_address: str | None = typer.Option(
        None, help="Ray cluster to join (auto, ray://host:10001); default: start a local Ray. GPUs: --device auto"
    ),
    ray_actors: int | None = typer.Option(None, help="Encoder actors (default: one per GPU, else one per CPU)"),
    threads: int | None = typer.Option(None, min=1, help="CPU threads for the encoder (default: all cores)"),
) -> None:
    """Embed images into a resumable feature store."""
    from semclust import workflow

    try:
        with run_progress(None, "finished shards are kept: rerun the same command to continue from them") as progress:
            result = workflow.embed(
                source,
                encoder=encoder,
                out=out,
                device=device,
                batch_size=batch_size,
                shard_size=shard_size,
                dtype=dtype,
                force=force,
                labels_from_folders=labels_from_folders,
                data_root=data_root,
                progress=progress,
                engine=engine,
                ray_address=ray_address,
                engine_options={"num_actors": ray_actors} if ray_actors is not None else None,
                threads=threads,
            )
    except USER_ERRORS as err:
        fail(str(err))
    report = result.report
    rate = f", {report.items_per_s:.0f} images/s" if report.items_per_s else ""
    console.print(
        f"embedded {report.n_embedded}/{report.n_items} items into {out} "
        f"({report.shards_written} shards written, {report.shards_reused} reused, {report.wall_s:.1f}s{rate})"
    )
    _report_skipped(report.skipped)


def _report_skipped(skipped: list) -> None:
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} unreadable file(s):[/]")
        for item in skipped[:20]:
            console.print(f"  {item.item_id}: {item.reason}", highlight=False, markup=False)
        if len(skipped) > 20:
            console.print(f"  ... and {len(skipped) - 20} more (all listed in run.json)")


@app.command("cluster")
def cluster_cmd(
    source: str = typer.Argument(..., help="Image folder, dataset:NAME[:split], or a feature-store directory"),
    k: str | None = typer.Option(
        None,
        "--k",
        metavar="K",
        help="Number of clusters (2 or more) or 'auto'; required [default: none; zeroshot: one per class name]",
    ),
    method: str = typer.Option("kmeans", help="Method; 'semclust methods' lists them with their parameters"),
    seed: int = typer.Option(0, help="Random seed"),
    out: str = typer.Option(..., "--out", help="Run directory to write"),
    force: bool = typer.Option(False, help="Overwrite an existing run directory"),
    resume: bool = typer.Option(
        False, help="Continue a killed run in --out from its training checkpoint (tac, laic, scan, asd)"
    ),
    encoder: str = typer.Option("offline", help="Encoder for sources not yet embedded"),
    view: str | None = typer.Option(None, help="kmeans features: visual (default when present) or joint"),
    param: list[str] = typer.Option([], "--param", help="Method parameter KEY=VALUE (repeatable), e.g. epochs=5"),
    class_names: str | None = typer.Option(None, help="zeroshot class names, comma-separated"),
    templates: str | None = typer.Option(None, help="zeroshot prompt templates, '|'-separated, each with {}"),
    vocabulary: str | None = typer.Option(
        None, help="Noun file (one per line) for naming, or wordnet-all; default wordnet-concrete"
    ),
    noun_templates: str | None = typer.Option(
        None, help="Noun prompt templates: single ('a photo of a {}.') or tac (7) [default: tac for tac/tac-notrain]"
    ),
    names: bool = typer.Option(True, "--names/--no-names", help="Name clusters by their nearest nouns"),
    report: bool = typer.Option(False, "--report", help="Also write RUN_DIR/report.html"),
    device: str = typer.Option("cpu", help="cpu, cuda, or auto"),
    batch_size: int | None = typer.Option(None, help="Images per forward pass when embedding"),
    labels_from_folders: bool = typer.Option(False, help="First-level folder names are class labels"),
    data_root: str | None = typer.Option(None, help="Where local CIFAR/STL-10/SVHN files live"),
    threads: int | None = typer.Option(None, min=1, help="CPU threads for the encoder (default: all cores)"),
) -> None:
    """Cluster images and write assignments.csv, clusters.json, metrics.json and run.json."""
    from semclust import workflow

    # Checked before anything is embedded: the method, --k and every --param.
    try:
        options: dict = parse_params(method, param)
    except ValueError as err:
        fail(str(err))
    if view:
        options["view"] = view
    if class_names:
        options["class_names"] = _split(class_names)
    if templates:
        options["templates"] = [t for t in templates.split("|") if t]
    from semclust.methods.registry import get_spec

    if k is None and get_spec(method).needs_k:
        fail(f"method {method} needs --k")
    n_clusters: int | str | None = k
    if k is not None and k != "auto":
        if not k.isdigit() or int(k) < 2:
            fail(f"--k must be 'auto' or an integer of at least 2, got {k}")
        n_clusters = int(k)
    if resume:
        print_resume(out, method, "epoch")
    restart = "finished embedding shards are kept: rerun the same command to continue from them"
    try:
        with run_progress(out, restart) as progress:
            run = workflow.cluster(
                source,
                method=method,
                n_clusters=n_clusters,
                random_state=seed,
                out=out,
                force=force,
                resume=resume,
                encoder=encoder,
                device=device,
                batch_size=batch_size,
                labels_from_folders=labels_from_folders,
                data_root=data_root,
                method_options=options,
                vocabulary=vocabulary,
                noun_templates=noun_templates,
                name_clusters=names,
                progress=progress,
                threads=threads,
            )
            from semclust.distributed import is_main_process

            if not is_main_process():
                return  # under torchrun rank 0 wrote the run; it alone writes the report and prints
            if report:
                from semclust.outputs.report import write_report

                report_path = write_report(out)  # the run directory just written
    except USER_ERRORS as err:
        fail(str(err))
    _print_run(run)
    if report:
        console.print(f"wrote {report_path}", highlight=False)


def _print_run(run) -> None:
    if run.record.get("k_auto"):
        auto = run.record["k_auto"]
        best = sorted(auto["gaps"].items(), key=lambda item: -item[1])[:5]
        console.print(
            f"--k auto ({auto['criterion']}, {auto['view']} view): chose K={auto['k']}; largest gaps "
            + ", ".join(f"K={k}: {gap:.4f}" for k, gap in best)
        )
    sizes = json.dumps(
        [int(s) for s in __import__("numpy").bincount(run.result.labels, minlength=run.result.n_clusters)]
    )
    console.print(f"{run.record['method']}: {len(run.ids)} items in {run.result.n_clusters} clusters, sizes {sizes}")
    from semclust.methods.registry import get_spec

    summary = get_spec(run.record["method"]).run_summary
    for line in summary(run.record.get("method_options", {})) if summary else []:
        console.print(line, highlight=False, markup=False)
    if run.metrics:
        m = run.metrics
        console.print(f"ACC {m['acc']:.4f}  NMI {m['nmi']:.4f}  ARI {m['ari']:.4f}  (n={m['n']})")
    naming = getattr(run.result, "naming", None)
    if naming is not None:
        console.print(
            f"names ({naming.source}; score = {naming.score_meaning}; weak below {naming.weak_below}):"
        )
        for k in range(run.result.n_clusters):
            line = f"  cluster {k}: {naming.label(k)}"
            if naming.centers is not None:
                centre = [f"{n.name} (hub)" if n.hub else n.name for n in naming.centers[k][:3]]
                line += f"  | center: {', '.join(centre)}"
            console.print(line, highlight=False, markup=False)
    elif run.result.cluster_names:
        for k, names in enumerate(run.result.cluster_names):
            console.print(f"  cluster {k}: {', '.join(names)}", highlight=False, markup=False)
    _report_skipped(run.skipped)
    if run.out_dir is not None:
        console.print(
            f"wrote {run.out_dir}/assignments.csv, clusters.json, run.json" + (", metrics.json" if run.metrics else "")
        )


@app.command("methods")
def methods_cmd(
    method: str | None = typer.Argument(None, help="One method: list its parameters"),
) -> None:
    """List the clustering methods, or one method's parameters (what --param may set)."""
    from semclust.methods.registry import METHODS, get_spec

    if method is None:
        width = max(map(len, METHODS))
        for name, spec in METHODS.items():
            flags = [f for f, on in (("resumable", spec.resumable), ("needs no --k", not spec.needs_k)) if on]
            extra = f"  [{', '.join(flags)}]" if flags else ""
            typer.echo(f"{name:<{width}}  {spec.summary}{extra}")
        typer.echo("'semclust methods NAME' lists a method's parameters.")
        return
    try:
        spec = get_spec(method)
    except ValueError as err:
        fail(str(err))
    typer.echo(f"{spec.name}: {spec.summary}")
    typer.echo(f"estimator: {spec.estimator.__module__}.{spec.estimator.__name__}; --param KEY=VALUE sets:")
    for parameter in spec.parameters().values():
        typer.echo(f"  {parameter.describe()}")


@app.command()
def demo(
    out: str = typer.Option("runs/demo", help="Where the demo's run directory goes"),
    method: str = typer.Option("laic", help="Method to run"),
    device: str = typer.Option("cpu", help="cpu, cuda, or auto"),
    threads: int | None = typer.Option(None, min=1, help="CPU threads for the encoder (default: all cores)"),
) -> None:
    """Embed Fashion-MNIST test (10k; cached after the first run), cluster it with LAIC, name the clusters."""
    from semclust import workflow

    console.print(
        "semclust demo: Fashion-MNIST test split (10,000 images), offline encoder, "
        f"method {method}, K=10. First run embeds the images and the WordNet nouns (cached)."
    )
    try:
        with progress_factory() as progress:
            run = workflow.cluster(
                "dataset:fashion-mnist:test",
                method=method,
                n_clusters=10,
                random_state=0,
                out=out,
                force=True,
                device=device,
                progress=progress,
                threads=threads,
            )
    except USER_ERRORS as err:
        fail(str(err))
    _print_run(run)


# Registered after the core commands so `semclust --help` lists them in workflow order.
register_predict(app)
register_report_commands(app)
app.add_typer(encoders_app, name="encoders", help="Inspect and evaluate encoders.")
register_ssl(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print(
            "interrupted; finished shards are kept and the next run resumes from them "
            "(cluster: rerun with --resume to continue training from the last checkpoint)"
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
