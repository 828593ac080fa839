"""Every ```python block of README.md runs as pasted, in an empty directory.

The session's private SEMCLUST_CACHE (conftest) keeps the features it embeds out of the user's
cache; the blocks are written to be cheap (digits, a few training steps).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_readme_has_python_blocks() -> None:
    assert BLOCKS, f"no ```python block in {README}"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    # the block did what it says: a run directory, a prediction per new image
    if "semclust.cluster(" in code:
        assert (tmp_path / "runs" / "digits" / "assignments.csv").is_file()
    if "predict_images" in code:
        prediction = namespace["prediction"]
        assert prediction.paths == ["0.png", "1.png", "2.png"] and len(prediction.scores) == 3
