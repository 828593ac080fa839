"""The report for browsing: every member reachable (grids + paged browser), caps with notes,
labelled scores, names with their scores, contents, a named legend, wrap points in file names."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from test_outputs_report import make_run
from typer.testing import CliRunner

from semclust.outputs.report import confidences, write_report
from semclust.outputs.report_page import wrappable_id
from semclust.store.feature_store import FeatureStore


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory)[1]


class _Members(HTMLParser):
    """Per cluster section: ids in its grids (with their score label and whether an <img> came
    with them), its browser's JSON rows, and the page's anchors, links and legend text."""

    def __init__(self) -> None:
        super().__init__()
        self.grid: dict[int, list[dict]] = {}
        self.browser: dict[int, list[list]] = {}
        self.anchors: set[str] = set()
        self.links: list[str] = []
        self.legend = ""
        self.names: dict[int, str] = {}
        self._k: int | None = None
        self._figure: dict | None = None
        self._in: str | None = None
        self._json = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if "id" in a:
            self.anchors.add(a["id"])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "section":
            self._k = int(a["id"].split("-")[1])
            self.grid[self._k], self.names[self._k] = [], ""
        if tag == "figure" and self._k is not None:
            self._figure = {"id": "", "score": "", "img": False}
            self.grid[self._k].append(self._figure)
        if tag == "img" and self._figure is not None:
            self._figure["img"] = True
        if tag == "span" and a.get("class") in ("id", "score") and self._figure is not None:
            self._in = a["class"]
        if tag == "p" and a.get("class") in ("legend", "namelist"):
            self._in = a["class"]
        if tag == "script" and a.get("class") == "member-data":
            self._in, self._json = "json", ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._figure = None
        if tag == "script" and self._in == "json":
            assert self._k is not None
            self.browser[self._k] = json.loads(self._json)
        closes = {"span": ("id", "score"), "p": ("legend", "namelist"), "script": ("json",)}
        if self._in in closes.get(tag, ()):
            self._in = None
        if tag == "section":
            self._k = None

    def handle_data(self, data: str) -> None:
        if self._in in ("id", "score") and self._figure is not None:
            self._figure[self._in] += data
        elif self._in == "json":
            self._json += data
        elif self._in == "legend":
            self.legend += data
        elif self._in == "namelist" and self._k is not None:
            self.names[self._k] += data


def _parse(path: Path) -> _Members:
    page = _Members()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _run_files(run_dir: Path) -> tuple[list[str], np.ndarray, list[dict]]:
    lines = (run_dir / "assignments.csv").read_text().splitlines()[1:]
    ids = [line.rsplit(",", 1)[0] for line in lines]
    clusters = np.array([int(line.rsplit(",", 1)[1]) for line in lines])
    return ids, clusters, json.loads((run_dir / "clusters.json").read_text())


def test_every_member_is_reachable_once_with_its_labelled_confidence(run_dir: Path, tmp_path: Path) -> None:
    out = write_report(run_dir, out=tmp_path / "r.html", thumbs_per_cluster=1, borderline=1, page_size=2)
    page = _parse(out)
    ids, clusters, summaries = _run_files(run_dir)
    # reference confidences: the store's visual rows of the run's ids, cosine to each cluster mean
    record = json.loads((run_dir / "run.json").read_text())
    store = FeatureStore(record["features"]["store"])
    position = {item_id: i for i, item_id in enumerate(store.ids)}
    visual = store.load("visual")[[position[i] for i in ids]]
    conf = confidences(visual, clusters, 3)
    expected_conf = {item_id: conf[i] for i, item_id in enumerate(ids)}
    for c in summaries:
        k = c["id"]
        members = sorted(i for i, kk in zip(ids, clusters.tolist()) if kk == k)
        grid = page.grid[k]
        assert len(grid) == 2 and all(f["img"] for f in grid)  # 1 representative + 1 borderline
        browser = page.browser.get(k, [])
        assert sorted([f["id"] for f in grid] + [row[0] for row in browser]) == members
        for f in grid:
            assert f["score"] == f"confidence {expected_conf[f['id']]:.2f}"
        for item_id, score, uri, _ in browser:
            assert score == pytest.approx(expected_conf[item_id], abs=1e-4)
            assert uri.startswith("data:image/")
        # most confident first, in the grid and on through the browser
        shown = [grid[0]["id"], *[row[0] for row in browser], grid[1]["id"]]
        assert shown == sorted(members, key=lambda i: -expected_conf[i])
    raw = out.read_text(encoding="utf-8")
    assert 'data-page-size="2"' in raw and "</script>" not in raw.split("member-data")[1].split("]</script>")[0]


def test_thumbnail_cap_lists_the_rest_by_name_and_says_so(run_dir: Path, tmp_path: Path) -> None:
    out = write_report(run_dir, out=tmp_path / "r.html", thumbs_per_cluster=1, borderline=1, max_thumbnails=4)
    page = _parse(out)
    ids, _, _ = _run_files(run_dir)
    with_image = [f for g in page.grid.values() for f in g if f["img"]]
    browser = [row for rows in page.browser.values() for row in rows]
    # the representative thumbnails first (3 clusters), then one borderline; nothing else
    assert len(with_image) == 4 and not any(row[2] for row in browser)
    assert all(page.grid[k][0]["img"] for k in page.grid)
    listed = [f["id"] for g in page.grid.values() for f in g] + [row[0] for row in browser]
    assert sorted(listed) == sorted(ids)  # still every member, by name
    text = out.read_text(encoding="utf-8")
    assert f"thumbnails of 4 of the {len(ids)} items" in text and "max_thumbnails" in text
    assert "listed without a thumbnail" in text


def test_member_cap_notes_the_unlisted(run_dir: Path, tmp_path: Path) -> None:
    out = write_report(run_dir, out=tmp_path / "r.html", thumbs_per_cluster=1, borderline=0, max_listed=3)
    page = _parse(out)
    ids, _, _ = _run_files(run_dir)
    n_listed = sum(len(g) for g in page.grid.values()) + sum(len(r) for r in page.browser.values())
    n_unlisted = len(ids) - n_listed
    assert n_listed == 3 + 3 and n_unlisted > 0
    assert f"{n_unlisted} members are not listed at all" in out.read_text(encoding="utf-8")


def test_names_scores_contents_and_named_legend(run_dir: Path, tmp_path: Path) -> None:
    out = write_report(run_dir, out=tmp_path / "r.html")
    page = _parse(out)
    _, _, summaries = _run_files(run_dir)
    for c in summaries:
        text = " ".join(page.names[c["id"]].split())
        expected = "; ".join(f"{n} score {s:.2f}" for n, s in zip(c["names"], c["name_scores"]))
        assert text.startswith(f"Names: {expected}"), (text, expected)
        assert ("weak" in text) == c["weak"]
        label = f"weak: {c['names'][0]}?" if c["weak"] else c["names"][0]
        assert f"{c['id']} {label}" in page.legend
    # contents: every part and every cluster, each link landing on an anchor of the page
    for anchor in ("summary", "metrics", "confusion", "clusters", "map", *(f"cluster-{c['id']}" for c in summaries)):
        assert f"#{anchor}" in page.links and anchor in page.anchors
    assert all(link[1:] in page.anchors for link in page.links if link.startswith("#"))
    raw = out.read_text(encoding="utf-8")
    assert "name score (csls)" in raw or "name score (classifier-wordnet)" in raw


def test_file_names_break_after_path_separators_only() -> None:
    assert wrappable_id("holidays/beach day/IMG_0001.png") == "holidays/<wbr>beach day/<wbr>IMG_0001.png"
    assert wrappable_id("a\\b.png") == "a\\<wbr>b.png"
    assert wrappable_id("<b>/x&y.png") == "&lt;b&gt;/<wbr>x&amp;y.png"
    from semclust.outputs.report_page import CSS

    caption = re.search(r"figcaption\{([^}]*)\}", CSS).group(1)
    assert "break-all" not in caption and "anywhere" not in caption


def test_cli_report_caps(run_dir: Path, tmp_path: Path) -> None:
    from semclust.cli.main import app

    out = tmp_path / "c.html"
    result = CliRunner().invoke(
        app, ["report", str(run_dir), "--out", str(out), "--thumbs", "1", "--borderline", "0", "--max-thumbs", "2"]
    )
    assert result.exit_code == 0, result.output
    page = _parse(out)
    assert sum(f["img"] for g in page.grid.values() for f in g) == 2
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--page-size", "0"])
    assert result.exit_code == 2
