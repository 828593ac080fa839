"""report.html from a real run: sections, sizes, escaping, thumbnails that decode."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from fakes import colour_images
from PIL import Image

from semclust.outputs.report import confidences, write_report

SMALL = "offline:image_size=64"
# Names with markup and an ampersand: the page must show them as text.
VOCABULARY = ["red apple", "<i>green</i> leaf", "blue sky & sea", "cat", "car"]
MARKUP_ID = "<b>bold</b>.png"  # a folder "<b>bold<" holding a file "b>.png"
COLOURS = ["red", "green", "blue"]


def make_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(image folder, run directory) shared by the report, export and browser tests of a session."""
    base = tmp_path_factory.getbasetemp() / "report-fixture"
    photos, run_dir = base / "photos", base / "run"
    if (run_dir / "run.json").is_file():
        return photos, run_dir

    _build(photos, run_dir, base)  # conftest already points SEMCLUST_CACHE at a private directory
    return photos, run_dir


def _build(photos: Path, run_dir: Path, base: Path) -> None:
    from semclust.workflow import cluster

    images, labels = colour_images(18, seed=3)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = photos / COLOURS[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((40, 40)).save(folder / f"img{i:02d}.png")
    markup = photos / MARKUP_ID
    markup.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(images[0]).resize((40, 40)).save(markup)
    (photos / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    vocabulary = base / "nouns.txt"
    vocabulary.write_text("\n".join(VOCABULARY) + "\n")
    cluster(
        str(photos),
        method="kmeans",
        n_clusters=3,
        encoder=SMALL,
        vocabulary=str(vocabulary),
        labels_from_folders=True,
        out=run_dir,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory)[1]


class _Page(HTMLParser):
    """Sections, their sizes and names, every <img> src and all visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict] = []
        self.images: list[str] = []
        self.tags: list[str] = []
        self.scripts: list[dict] = []
        self.text: list[str] = []
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "script":
            self.scripts.append(a)
        if tag == "section" and "cluster" in (a.get("class") or "").split():
            self.sections.append({"id": a["id"], "size": int(a["data-size"]), "names": "", "shown": "", "ids": []})
        if tag == "img":
            self.images.append(a["src"])
        if tag == "span" and a.get("class") in ("names", "size", "id"):
            self._field = a["class"]
            if self._field == "id" and self.sections:
                self.sections[-1]["ids"].append("")  # filled by the text around <wbr> breaks

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._field = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._field and self.sections:
            section = self.sections[-1]
            if self._field == "id":
                section["ids"][-1] += data
            else:
                section["names" if self._field == "names" else "shown"] += data


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_sections_sizes_names_and_thumbnails(run_dir: Path) -> None:
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    page = _parse(path)
    clusters = json.loads((run_dir / "clusters.json").read_text())
    assert [s["id"] for s in page.sections] == [f"cluster-{c['id']}" for c in clusters]
    assert [s["size"] for s in page.sections] == [c["size"] for c in clusters]
    assert [int(s["shown"]) for s in page.sections] == [c["size"] for c in clusters]
    # the first name shown as given (parsed text == raw name), a weak cluster marked as such;
    # markup never became tags
    def shown(c: dict) -> str:
        return f"weak: {c['names'][0]}?" if c["weak"] else c["names"][0]

    assert all(len(c["name_scores"]) == len(c["names"]) for c in clusters)
    assert [s["names"] for s in page.sections] == [shown(c) for c in clusters]
    assert "i" not in page.tags and "b" not in page.tags
    # the only scripts are the report's pager and its JSON data blocks, none from the data
    assert page.scripts.count({}) == 1
    assert all(a == {} or a == {"type": "application/json", "class": "member-data"} for a in page.scripts)
    raw = path.read_text(encoding="utf-8")
    assert "&lt;b&gt;bold&lt;/b&gt;.png" in raw and "<b>" not in raw
    # every item of the run appears once per section (12 top + 4 borderline >= 7 members)
    ids = [line.split(",")[0] for line in (run_dir / "assignments.csv").read_text().splitlines()[1:]]
    assert sorted(i for s in page.sections for i in s["ids"]) == sorted(ids)
    assert MARKUP_ID in ids
    # thumbnails are data URIs that decode to images; one per item, no network needed
    assert len(page.images) == len(ids)
    for src in page.images:
        match = re.fullmatch(r"data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)", src)
        assert match, src[:60]
        with Image.open(io.BytesIO(base64.b64decode(match.group(2)))) as img:
            img.load()
            assert img.width > 0 and img.height > 0
    assert "http://" not in raw.replace("http://www.w3.org/2000/svg", "") and "https://" not in raw
    # summary, metrics, confusion matrix with escaped class names, the map
    text = "".join(page.text)
    assert "kmeans" in text and "offline" in text and "files skipped" in text
    assert 'id="confusion"' in raw and "&lt;b&gt;bold&lt;" in raw
    assert 'class="map"' in raw and raw.count("<circle") == len(ids)


def test_report_ranks_by_confidence_and_pca_map(run_dir: Path, tmp_path: Path) -> None:
    out = write_report(run_dir, out=tmp_path / "r.html", thumbs_per_cluster=2, borderline=1, map_method="pca")
    page = _parse(out)
    for section in page.sections:
        assert len(section["ids"]) == min(3, section["size"])
    assert "PCA" in "".join(page.text)


def test_confidences_are_cosines_to_the_mean() -> None:
    x = np.array([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0], [0.1, 1.0]])
    conf = confidences(x, np.array([0, 0, 1, 1]), 2)
    assert conf.shape == (4,) and np.all(conf > 0.9) and np.all(conf <= 1.0 + 1e-9)


def test_report_without_images_says_why(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("assignments.csv", "clusters.json", "metrics.json"):
        (copy / name).write_bytes((run_dir / name).read_bytes())
    record = json.loads((run_dir / "run.json").read_text())
    record["source"] = str(tmp_path / "gone")
    record["features"] = {"store": str(tmp_path / "no-store")}
    (copy / "run.json").write_text(json.dumps(record))
    page = _parse(write_report(copy))
    assert len(page.sections) == 3 and page.images == []
    assert "cannot be opened" in "".join(page.text)


def test_report_rejects_bad_options(run_dir: Path) -> None:
    with pytest.raises(ValueError, match="map_method"):
        write_report(run_dir, map_method="umap")
    with pytest.raises(ValueError, match="not a semclust run directory"):
        write_report(run_dir.parent / "photos")
