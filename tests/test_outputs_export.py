"""export: one folder per cluster, safe unique names, copies or symlinks, the CLI's errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from PIL import Image
from test_outputs_report import MARKUP_ID, make_run
from typer.testing import CliRunner

from semclust.cli.report_cmd import register
from semclust.outputs.export import ExportError, cluster_folder_names, export_clusters, safe_name


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_run(tmp_path_factory)


def _expected(run_dir: Path) -> dict[int, list[str]]:
    by_cluster: dict[int, list[str]] = {}
    for line in (run_dir / "assignments.csv").read_text().splitlines()[1:]:
        item_id, k = line.rsplit(",", 1)
        by_cluster.setdefault(int(k), []).append(item_id)
    return by_cluster


def test_copy_export_one_folder_per_cluster(run: tuple[Path, Path], tmp_path: Path) -> None:
    photos, run_dir = run
    counts = export_clusters(run_dir, tmp_path / "out")
    clusters = json.loads((run_dir / "clusters.json").read_text())
    folders = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert (tmp_path / "out" / "manifest.csv").is_file()
    assert len(folders) == len(clusters) == counts["clusters"] == 3
    assert len({f.lower() for f in folders}) == 3
    for c in clusters:
        expected = f"{c['id']:02d}-{safe_name(c['names'][0])}"
        assert counts["folders"][str(c["id"])] == expected and expected in folders
        assert all(ch.isalnum() or ch in "-_." for ch in expected)
    expected = _expected(run_dir)
    assert counts["copied"] == sum(len(v) for v in expected.values()) and counts["n_missing"] == 0
    for k, ids in expected.items():
        files = sorted((tmp_path / "out" / counts["folders"][str(k)]).iterdir())
        assert len(files) == len(ids)
        assert all(f.is_file() and not f.is_symlink() for f in files)
        # every file's bytes are an original's
        originals = {(photos / i).read_bytes() for i in ids}
        assert {f.read_bytes() for f in files} == originals
    # the markup-named file got a safe name
    names = [f.name for f in (tmp_path / "out").rglob("*")]
    assert not any("<" in n or ">" in n for n in names)
    assert not any(MARKUP_ID.split("/")[-1] == n for n in names)


def test_link_export_and_force(run: tuple[Path, Path], tmp_path: Path) -> None:
    photos, run_dir = run
    target = tmp_path / "links"
    counts = export_clusters(run_dir, target, mode="link")
    links = [p for p in target.rglob("*") if p.is_symlink()]
    assert counts["linked"] == len(links) == sum(len(v) for v in _expected(run_dir).values())
    assert all(p.resolve().is_relative_to(photos.resolve()) for p in links)
    with pytest.raises(ExportError, match="not empty"):
        export_clusters(run_dir, target, mode="link")
    again = export_clusters(run_dir, target, mode="copy", force=True)
    assert again["copied"] == counts["linked"] and not any(p.is_symlink() for p in target.rglob("*"))
    with pytest.raises(ExportError, match="mode"):
        export_clusters(run_dir, tmp_path / "x", mode="move")


def test_folder_names_sanitised_unique_and_unnamed() -> None:
    names = cluster_folder_names(
        [
            {"id": 0, "names": ["Sneaker"]},
            {"id": 1, "names": ["sneaker"]},
            {"id": 2, "names": []},
            {"id": 3, "names": ["../<script>/..", "x"]},
            {"id": 4, "names": ["  "]},
        ],
        12,
    )
    assert names == {
        0: "00-sneaker",
        1: "01-sneaker",
        2: "cluster-02",
        3: "03-script",
        4: "cluster-04",
        **{k: f"cluster-{k:02d}" for k in range(5, 12)},
    }


def test_dataset_source_writes_png(run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from semclust.data.base import ArraySource

    _, run_dir = run
    ids = [line.rsplit(",", 1)[0] for line in (run_dir / "assignments.csv").read_text().splitlines()[1:]]
    import numpy as np

    source = ArraySource(np.zeros((len(ids), 8, 8, 3), dtype=np.uint8))
    source._ids = ids  # the run's ids, as a dataset would give them
    monkeypatch.setattr("semclust.outputs.export.open_run_source", lambda record: (source, None))
    counts = export_clusters(run_dir, tmp_path / "ds")
    files = list((tmp_path / "ds").rglob("*.png"))
    assert counts["written"] == len(files) == len(ids) and counts["copied"] == 0
    with Image.open(files[0]) as img:
        assert img.size == (8, 8)


def test_cli_report_and_export(run: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = run
    app = typer.Typer()
    register(app)
    register(app)  # a second call adds nothing
    assert sorted(c.name for c in app.registered_commands) == ["export", "report"]
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").read_text().count('<section class="cluster"') == 3
    result = runner.invoke(app, ["export", str(run_dir), "--to", str(tmp_path / "e"), "--link"])
    assert result.exit_code == 0, result.output and "linked" in result.output
    result = runner.invoke(app, ["export", str(run_dir), "--to", str(tmp_path / "e")])
    assert result.exit_code == 2 and "not empty" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not a semclust run directory" in result.output
