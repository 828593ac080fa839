"""export's manifest.csv (exported path -> source id) and its handling of repeated base names;
the library's errors name force=True, the CLI's the --force flag."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from semclust.cli.report_cmd import register
from semclust.outputs.export import ExportError, export_clusters
from semclust.outputs.run_dir import write_run

# Two "cat.png" and two "Dog.png" (other case) in cluster 0; one "cat.png" alone in cluster 1.
IDS = ["a/cat.png", "b/cat.png", "a/Dog.png", "b/dog.png", "c/cat.png", "solo.png"]
CLUSTERS = [0, 0, 0, 0, 1, 1]


def _run(tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    for i, item_id in enumerate(IDS):
        (photos / item_id).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(photos / item_id)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_run(
        run_dir,
        ids=IDS,
        clusters=np.array(CLUSTERS),
        n_clusters=2,
        cluster_names=[["pets"], ["other"]],
        metrics=None,
        run_record={"source": str(photos), "n_clusters": 2},
    )
    return run_dir


def _manifest(to: Path) -> list[dict[str, str]]:
    with open(to / "manifest.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("mode", ["copy", "link"])
def test_manifest_maps_every_exported_file_to_its_source_id(tmp_path: Path, mode: str) -> None:
    run_dir = _run(tmp_path)
    to = tmp_path / "sorted"
    counts = export_clusters(run_dir, to, mode=mode)
    rows = _manifest(to)
    assert [r["id"] for r in rows] == IDS and [int(r["cluster"]) for r in rows] == CLUSTERS
    assert counts["manifest"] == str(to / "manifest.csv")
    photos = tmp_path / "photos"
    for row in rows:
        exported = to / row["path"]
        assert exported.parent.name == counts["folders"][row["cluster"]]
        assert exported.read_bytes() == (photos / row["id"]).read_bytes()
    on_disk = {p.relative_to(to).as_posix() for p in to.rglob("*") if p.name != "manifest.csv" and not p.is_dir()}
    assert on_disk == {r["path"] for r in rows}
    by_id = {r["id"]: r["path"].split("/", 1)[1] for r in rows}
    # a repeated base name is prefixed by its folder for every file that has it, not all but
    # the first; case-insensitive (Dog/dog would collide on macOS and Windows)
    assert by_id["a/cat.png"] == "a__cat.png" and by_id["b/cat.png"] == "b__cat.png"
    assert by_id["a/Dog.png"] == "a__Dog.png" and by_id["b/dog.png"] == "b__dog.png"
    # alone in its folder, a base name stays as it is
    assert by_id["c/cat.png"] == "cat.png" and by_id["solo.png"] == "solo.png"


def test_python_errors_say_force_true_and_the_cli_says_force(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    to = tmp_path / "sorted"
    export_clusters(run_dir, to)
    with pytest.raises(ExportError, match=r"pass force=True") as caught:
        export_clusters(run_dir, to)
    assert "--force" not in str(caught.value)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["export", str(run_dir), "--to", str(to)])
    assert result.exit_code == 2 and "pass --force to write" in result.output and "force=True" not in result.output
    result = CliRunner().invoke(app, ["export", str(run_dir), "--to", str(tmp_path / "again")])
    assert result.exit_code == 0 and "manifest.csv maps each file to its source id" in result.output
    assert (tmp_path / "again" / "manifest.csv").is_file()


def test_cluster_refusal_names_force_true_in_python_and_force_in_the_cli(tmp_path: Path) -> None:
    from semclust.cli.main import app
    from semclust.workflow import cluster

    out = tmp_path / "run"
    out.mkdir()
    (out / "something.txt").write_text("x")
    with pytest.raises(ValueError, match=r"pass force=True to overwrite") as caught:
        cluster("dataset:digits", method="kmeans", n_clusters=10, out=out)
    assert "--force" not in str(caught.value)
    result = CliRunner().invoke(app, ["cluster", "dataset:digits", "--k", "10", "--out", str(out)])
    assert result.exit_code == 2 and "pass --force to overwrite" in result.output
    assert "force=True" not in result.output
