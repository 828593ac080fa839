"""`semclust embed --engine ray` on a real two-node Ray cluster (two `ray start` nodes on loopback).

The store must equal the local engine's, with encoder actors on both nodes; a worker node
killed mid-run must leave a run that completes, or resumes, to that same store; and stopping
the nodes must leave no Ray process of this cluster behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray  # noqa: F401  (the cluster test needs Ray installed, it is part of `make install`)
from PIL import Image

from semclust.engines.local_cluster import LocalRayCluster
from semclust.store.feature_store import FeatureStore

N_IMAGES = 512  # two of the engine's 256-position blocks: one per actor, both busy when a node dies
SHARD = 32
COMMON = ["--encoder", "offline:image_size=32", "--shard-size", str(SHARD), "--dtype", "float32"]
ENCODER_ACTOR = "MapWorker("  # Ray Data's actor class for the encoder pool


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = root / "photos"
    folder.mkdir()
    for i in range(N_IMAGES):
        colour = rng.integers(0, 256, 3)
        image = np.clip(colour + rng.integers(-40, 40, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"img{i:04d}.png")
    return folder


def _embed_args(folder: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "semclust", "embed", str(folder), "--out", str(out), *COMMON, *extra]


def _run(args: list[str], env: dict[str, str], timeout: float = 600) -> str:
    """The command's output (the console writes to stderr); a non-zero exit fails with it."""
    done = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args[2:5])} exited {done.returncode}:\n{done.stdout[-4000:]}"
    return done.stdout


def _same_store(a: Path, b: Path) -> None:
    sa, sb = FeatureStore(a), FeatureStore(b)
    assert sb.complete
    assert sa.manifest == sb.manifest
    shard_files = [{p.name: json.loads(p.read_text()) for p in sorted((s / "shards").glob("*.json"))} for s in (a, b)]
    assert shard_files[0] == shard_files[1]  # ids, positions, skipped: identical
    for view in sa.views:
        np.testing.assert_allclose(sa.load(view), sb.load(view), atol=1e-4)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_embed_on_a_two_node_cluster_survives_losing_a_node(tmp_path: Path) -> None:
    start = time.monotonic()

    def phase(name: str) -> None:  # shown with pytest -s: where the minutes go
        print(f"[{time.monotonic() - start:6.1f}s] {name}")

    folder = _folder(tmp_path)
    # The offline encoder's bridge (an SVD fitted when it is built) depends on the BLAS thread
    # count; Ray's one-CPU actors run one thread, so the reference does too.
    one_thread = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    _run(_embed_args(folder, tmp_path / "local"), one_thread)

    phase("local engine done")
    cluster = LocalRayCluster(cpus=1)
    try:
        cluster.start_head()
        worker = cluster.add_node()
        nodes = cluster.alive_nodes()
        assert len(nodes) == 2
        phase("two nodes up")

        # 1. Both nodes encode; the store is the local engine's.
        ray_args = ["--engine", "ray", "--ray-address", cluster.address, "--ray-actors", "2"]
        first = _run(_embed_args(folder, tmp_path / "two-nodes", *ray_args), cluster.env)
        assert f"embedded {N_IMAGES}/{N_IMAGES} items" in first
        encoders = [a for a in cluster.actors() if a["class"].startswith(ENCODER_ACTOR)]
        assert {a["node"] for a in encoders} == set(nodes)
        _same_store(tmp_path / "local", tmp_path / "two-nodes")
        first_jobs = {a["job"] for a in encoders}
        phase("two-node run done")

        # 2. The worker node dies once the first shard is on disk.
        out = tmp_path / "node-lost"
        run = subprocess.Popen(
            _embed_args(folder, out, *ray_args),
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 300
            while not list((out / "shards").glob("*.json")) and run.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert run.poll() is None, "the run ended before its first shard was seen: " + (run.communicate()[0])
            cluster.kill_node(worker)
            phase("worker node killed")
            try:
                output, _ = run.communicate(timeout=300)
            except subprocess.TimeoutExpired:  # a run stuck on the lost node: stop it, resume below
                run.kill()
                output, _ = run.communicate()
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        cluster.wait_for_nodes(1)
        survivors = cluster.alive_nodes()
        assert len(survivors) == 1 and survivors[0] in nodes
        lost = (set(nodes) - set(survivors)).pop()
        second = [a for a in cluster.actors() if a["class"].startswith(ENCODER_ACTOR) and a["job"] not in first_jobs]
        assert lost in {a["node"] for a in second}, "the killed node never held an encoder of this run"
        if run.returncode != 0:
            print(f"the run failed when the node died (exit {run.returncode}); resuming:\n{output[-2000:]}")
            resumed = _run(_embed_args(folder, out, *ray_args[:-1], "1"), cluster.env)
            assert " reused" in resumed and " 0 reused" not in resumed, resumed
        else:
            print("the run completed after losing the node")
            assert f"embedded {N_IMAGES}/{N_IMAGES} items" in output, output
        _same_store(tmp_path / "local", out)
        phase("run after the node loss checked")
    finally:
        strays = cluster.stop()
        phase("cluster stopped")
    assert strays == [], f"processes outlived their node's shutdown: {strays}"
    assert cluster.processes() == []
