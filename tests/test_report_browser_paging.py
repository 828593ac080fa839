"""The report's member browser and captions in a real headless Chromium (skipped without it):
paging reaches every member, and file names break only after path separators."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from test_report_browser import _chromium, _Probe, pytestmark  # noqa: F401 - the same skip rule

from semclust.outputs.report import write_report
from semclust.outputs.run_dir import write_run

PROBE = """
<script>
window.addEventListener("load", function () {
  var boxes = Array.prototype.slice.call(document.querySelectorAll("details.members"));
  boxes.forEach(function (b) { b.open = true; });
  setTimeout(function () {
    var result = {browsers: [], broken: [], wrapped: 0, captions: 0};
    boxes.forEach(function (b) {
      var seen = [], pages = 0, next = b.querySelector("button.next");
      while (pages < 100) {
        pages += 1;
        b.querySelectorAll(".page-grid figure").forEach(function (f) {
          seen.push({id: f.querySelector("span.id").textContent, img: f.querySelector("img") !== null});
        });
        if (next.disabled) break;
        next.click();
      }
      result.browsers.push({id: b.id, seen: seen, pages: pages, label: b.querySelector(".page").textContent});
    });
    document.querySelectorAll("figcaption span.id").forEach(function (s) {
      result.captions += 1;
      var lines = {};
      Array.prototype.forEach.call(s.getClientRects(), function (q) { lines[Math.round(q.top)] = 1; });
      if (Object.keys(lines).length > 1) result.wrapped += 1;
      s.childNodes.forEach(function (n) {
        if (n.nodeType !== 3) return;
        var range = document.createRange();
        range.selectNodeContents(n);
        var tops = {};
        Array.prototype.forEach.call(range.getClientRects(), function (q) { tops[Math.round(q.top)] = 1; });
        if (Object.keys(tops).length > 1) result.broken.push(n.textContent);
      });
    });
    var out = document.createElement("pre");
    out.id = "probe";
    out.textContent = JSON.stringify(result);
    document.body.appendChild(out);
  }, 300);
});
</script>
"""

IDS = [f"holidays2024/beachday{k}/IMG_{i:04d}.png" for k in range(2) for i in range(7)]


def test_paging_reaches_every_member_and_names_wrap_at_separators(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for i, item_id in enumerate(IDS):
        (photos / item_id).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), (15 * i, 80, 0)).save(photos / item_id)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    clusters = np.array([0] * 7 + [1] * 7)
    write_run(
        run_dir,
        ids=IDS,
        clusters=clusters,
        n_clusters=2,
        cluster_names=[["sand"], ["sea"]],
        metrics=None,
        run_record={"source": str(photos), "n_clusters": 2},
    )
    report = write_report(run_dir, out=tmp_path / "r.html", thumbs_per_cluster=1, borderline=1, page_size=2)
    page = tmp_path / "probed.html"
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = _chromium("--virtual-time-budget=3000", "--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    parser = _Probe()
    parser.feed(result.stdout)
    assert parser.data, f"probe missing from the dumped DOM; stderr: {result.stderr[-1000:]}"
    probe = json.loads(parser.data)
    assert [b["id"] for b in probe["browsers"]] == ["members-0", "members-1"]
    for k, browser in enumerate(probe["browsers"]):
        # 7 members: 1 representative + 1 borderline in the grids, 5 others on 3 pages of 2
        assert browser["pages"] == 3 and browser["label"] == "page 3 of 3"
        assert [s["id"] for s in browser["seen"]] == IDS[7 * k + 1 : 7 * k + 6]
        assert all(s["img"] for s in browser["seen"])
    assert probe["captions"] == 2 * 2 + 2 * 1  # the grids' figures, and each browser's last page (1 of 5)
    assert probe["wrapped"] == probe["captions"]  # the names are too long for one line ...
    assert probe["broken"] == []  # ... and break only after "/"
