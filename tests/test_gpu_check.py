"""scripts/gpu_check.sh on a machine without CUDA: one clear line, exit 3, no results written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "gpu.json"


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs every check instead")
def test_gpu_check_without_cuda_says_so_and_writes_nothing() -> None:
    before = RESULTS.read_bytes() if RESULTS.exists() else None
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh")],
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no CUDA device: "), done.stdout
    assert (RESULTS.read_bytes() if RESULTS.exists() else None) == before
