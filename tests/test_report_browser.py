"""report.html as a person sees it, in a real headless Debian Chromium (skipped without it)."""

from __future__ import annotations

import json
import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_outputs_report import MARKUP_ID, make_run

from semclust.outputs.report import write_report

CHROMIUM = os.environ.get("SEMCLUST_CHROMIUM", "/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)),
    reason=f"{CHROMIUM} not found: install Debian's 'chromium' package (scripts/install.sh tries to)",
)

# Run in the page once everything has loaded; writes what a viewer would see into the DOM.
PROBE = """
<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll("img"));
  var probe = {
    sections: document.querySelectorAll("section.cluster").length,
    images: imgs.length,
    loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    bold: document.querySelectorAll("b, i").length,
    markup_text: document.body.innerText.indexOf(%s) >= 0,
    svgs: document.querySelectorAll("svg").length
  };
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
});
</script>
"""


class _Probe(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.data = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.inside = tag == "pre" and dict(attrs).get("id") == "probe"

    def handle_endtag(self, tag: str) -> None:
        self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.data += data


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def test_report_in_headless_chromium(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    _, run_dir = make_run(tmp_path_factory)
    report = write_report(run_dir, out=tmp_path / "report.html")
    html_text = report.read_text(encoding="utf-8")
    page = tmp_path / "probed.html"
    page.write_text(html_text.replace("</body>", PROBE % json.dumps(MARKUP_ID) + "</body>"), encoding="utf-8")

    result = _chromium("--virtual-time-budget=2000", "--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    parser = _Probe()
    parser.feed(result.stdout)
    assert parser.data, f"probe missing from the dumped DOM; stderr: {result.stderr[-1000:]}"
    probe = json.loads(parser.data)
    n_items = len((run_dir / "assignments.csv").read_text().splitlines()) - 1
    assert probe["sections"] == 3
    assert probe["images"] == n_items and probe["loaded"] == n_items  # every thumbnail decoded
    assert probe["bold"] == 0  # the <b>/<i> in file and cluster names created no element
    assert probe["markup_text"] is True  # ... and show literally
    assert probe["svgs"] >= 2  # confusion matrix and map
