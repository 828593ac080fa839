"""Where semclust keeps what it can recompute: features, text embeddings."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$SEMCLUST_CACHE``, else ``~/.cache/semclust``."""
    return Path(os.environ.get("SEMCLUST_CACHE", Path.home() / ".cache" / "semclust"))
