from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config) -> None:  # noqa: ANN001 - pytest hook
    """Tests never touch the user's feature cache: one private cache for the whole session,
    set before any fixture (module-scoped ones included) can run the workflow."""
    os.environ["SEMCLUST_CACHE"] = tempfile.mkdtemp(prefix="semclust-test-cache-")
