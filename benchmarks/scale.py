"""Scale: time and peak memory of kNN (exact / IVF / HNSW), k-means, laic-notrain and one LAIC
epoch on synthetic clustered embeddings, and the embedding pipeline's overhead.

Run (small first)::

    .venv/bin/python benchmarks/scale.py --sizes 1e4            # clustering stages at n = 10,000
    .venv/bin/python benchmarks/scale.py --sizes 1e4,1e5 --embed 512
    .venv/bin/python benchmarks/scale.py --plot-only              # redraw scale.png from the JSON

Data: a Gaussian mixture on the sphere, d = 512, C = 100 components (unit means; noise of norm
1.2, so a point's cosine to its mean is ~0.64), written once per n as float16 shards of 65,536
rows (``--data-dir``) and read back as memory-mapped shards, as a feature store is.

Every stage runs in its own child process; it reports its own wall time (the stage's work
only, data opened beforehand) and its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``, which
includes the ~0.3-0.5 GB of Python + torch + faiss; ``baseline_rss_mb`` is that part).

Stages (parameters in each record):

- ``knn-exact``: faiss flat, k = 10, self-search. Skipped above n = 2e5: it is quadratic (n^2 d
  = 5e14 multiply-adds at 1e6, ~100x the n = 1e5 time: hours on 2 cores).
- ``knn-ivf`` / ``knn-hnsw``: :func:`semclust.ops.ann.ann_knn`, float16 storage, build +
  search of all n rows; ``recall`` = recall@10 on 1,000 sampled queries against brute force.
- ``kmeans``: :func:`semclust.ops.kmeans.spherical_kmeans`, K = 100, ``n_init=1``,
  ``max_iter=20`` (all points used).
- ``laic-notrain``: :class:`semclust.LAICNoTrain` (K = 100, ``n_centers=100`` so the relation
  matrix is n x <= 500 rather than n x 5n/300, ``n_init=1``) against 20,000 synthetic noun
  embeddings.
- ``laic-epoch``: one epoch of LAIC's training loop (free centers, batch 256, K = 100, one torch
  thread as ``LAIC.fit`` uses) on K random same-component pairs per row; the loop is
  ``LAIC._train`` (private: ``LAIC.fit`` would also run two exact kNN searches, timed above).
- ``embed-local`` / ``embed-ray``: Fashion-MNIST test images (train images above 10,000)
  through the offline encoder into a feature store (shards of 2,048, the default).
  ``forward_s`` is the visual tower's bare forward on the same, already preprocessed batches;
  ``overhead = wall_s / forward_s - 1``;
  ``encoder_s`` is ``encoder.image_views`` on already-decoded images (preprocessing + forward +
  bridge). Fastest of ``--repeat`` interleaved runs each. ``steady_overhead`` (local engine)
  compares the pipeline's rate after the first batch it hands back with the bare forward's.
  Ray's start-up (worker processes, actors building their encoders) is a fixed cost, so its
  overhead is measured at several n (``--embed 4096,16384``): it shrinks as n grows.
  One torch and one BLAS thread per worker (``SCALE_EMBED_THREADS``, ``OMP_NUM_THREADS=1``):
  the local engine is one worker; Ray is a local Ray on 2 CPUs with 2 actors, so its
  ``forward_s`` is the single-thread bare forward / 2 (two forwards in parallel, the ideal);
  its ``wall_s`` includes starting the actors and building their encoders (a fixed cost:
  compare n = 512 with a larger n). ``embed-ray-2nodes``: the same 2 actors on a cluster of
  two ``ray start`` nodes of 1 CPU each on this machine
  (:class:`semclust.engines.local_cluster.LocalRayCluster`), so blocks and results cross
  between raylets and object stores as between machines. Actors run the encoder's backend
  (ONNX Runtime where installed) with one thread each.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "scale.json"
PLOT = HERE / "results" / "scale.png"
DIM, COMPONENTS, K, NOISE = 512, 100, 10, 1.2
SHARD_ROWS = 65_536
N_NOUNS = 20_000
RECALL_QUERIES = 1000
CLUSTER_STAGES = ("knn-exact", "knn-ivf", "knn-hnsw", "kmeans", "laic-notrain", "laic-epoch")
EXACT_KNN_MAX_N = 200_000
IVF = {"index": "ivf", "nprobe": 16, "storage": "float16"}
HNSW = {"index": "hnsw", "M": 16, "ef_construction": 40, "ef_search": 64, "storage": "float16"}
# Recall / query-time trade-off: one index built, searched with each setting (stages ann-sweep-*).
SWEEP_STAGES = ("ann-sweep-ivf", "ann-sweep-hnsw")
IVF_SWEEP = {"nprobe": (8, 16, 32, 64, 128, 256)}
HNSW_SWEEP_BUILD = {"index": "hnsw", "M": 32, "ef_construction": 80, "storage": "float16"}
HNSW_SWEEP = {"ef_search": (32, 64, 128, 256, 512, 1024)}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ---------------------------------------------------------------------------- data


def _means(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed, 999])
    mu = rng.normal(size=(COMPONENTS, DIM))
    return mu / np.linalg.norm(mu, axis=1, keepdims=True)


def make_data(n: int, data_dir: Path) -> Path:
    """float16 shards of the mixture at ``data_dir/n<N>/`` (written once, reused)."""
    out = data_dir / f"n{n}"
    done = out / "done.json"
    if done.is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    mu = _means()
    labels = []
    for shard, lo in enumerate(range(0, n, SHARD_ROWS)):
        rows = min(SHARD_ROWS, n - lo)
        rng = np.random.default_rng([0, shard])
        y = rng.integers(0, COMPONENTS, rows)
        x = mu[y] + rng.normal(scale=NOISE / math.sqrt(DIM), size=(rows, DIM))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(out / f"{shard:05d}.npy", x.astype(np.float16))
        labels.append(y)
    np.save(out / "labels.npy", np.concatenate(labels))
    rng = np.random.default_rng(7)
    picks = rng.integers(0, COMPONENTS, N_NOUNS)
    nouns = mu[picks] + rng.normal(scale=1.5 / math.sqrt(DIM), size=(N_NOUNS, DIM))
    np.save(out / "nouns.npy", (nouns / np.linalg.norm(nouns, axis=1, keepdims=True)).astype(np.float32))
    done.write_text(json.dumps({"n": n}))
    return out


def open_shards(path: Path) -> list[np.ndarray]:
    return [np.load(p, mmap_mode="r") for p in sorted(path.glob("0*.npy"))]


def load_float32(shards: list[np.ndarray]) -> np.ndarray:
    """One float32 ``[n, d]`` array filled shard by shard (no second full-size temporary)."""
    out = np.empty((sum(len(s) for s in shards), shards[0].shape[1]), dtype=np.float32)
    start = 0
    for shard in shards:
        out[start : start + len(shard)] = shard
        start += len(shard)
    return out


# ---------------------------------------------------------------------------- stages (child side)


def _sample_recall(shards: list[np.ndarray], approx: np.ndarray) -> float:
    """recall@K of the approximate self-search on RECALL_QUERIES rows, against brute force."""
    from semclust.ops.ann import recall_at_k

    n = sum(len(shard) for shard in shards)
    sample = np.sort(np.random.default_rng(1).choice(n, size=min(RECALL_QUERIES, n), replace=False))
    return recall_at_k(approx[sample], _exact_sample_neighbours(shards, sample))


def _exact_sample_neighbours(shards: list[np.ndarray], sample: np.ndarray) -> np.ndarray:
    """The K exact nearest other rows of the ``sample`` rows (brute force, block by block)."""
    from semclust.ops.ann import RowBlocks
    from semclust.ops.knn import drop_own_index, knn

    rows = RowBlocks(shards)
    queries = rows.take(sample)
    best_idx = best_sim = None
    for start, block in rows.iter_blocks(SHARD_ROWS):
        idx, sim = knn(block, min(K + 1, len(block)), queries=queries)
        idx = idx + start
        if best_idx is None:
            best_idx, best_sim = idx, sim
        else:
            all_idx, all_sim = np.concatenate([best_idx, idx], 1), np.concatenate([best_sim, sim], 1)
            order = np.argsort(-all_sim, axis=1, kind="stable")[:, : K + 1]
            best_idx, best_sim = np.take_along_axis(all_idx, order, 1), np.take_along_axis(all_sim, order, 1)
    exact, _ = drop_own_index(best_idx, best_sim, sample)
    return exact


def _sweep(stage: str, shards: list[np.ndarray]) -> dict[str, Any]:
    """Build one index, then search RECALL_QUERIES of its rows with each search setting:
    recall@K against brute force and the query time, scaled to a self-search of all n rows."""
    from semclust.ops.ann import RowBlocks, build_index, recall_at_k, search_index

    rows = RowBlocks(shards)
    build = dict(IVF) if stage == "ann-sweep-ivf" else dict(HNSW_SWEEP_BUILD)
    build.pop("nprobe", None)
    t0 = time.perf_counter()
    index = build_index(rows, **build)
    build_s = time.perf_counter() - t0
    sample = np.sort(np.random.default_rng(1).choice(rows.n, size=min(RECALL_QUERIES, rows.n), replace=False))
    queries = rows.take(sample)
    exact = _exact_sample_neighbours(shards, sample)
    name, values = next(iter((IVF_SWEEP if stage == "ann-sweep-ivf" else HNSW_SWEEP).items()))
    points = []
    for value in values:
        t0 = time.perf_counter()
        idx, _ = search_index(index, queries, K + 1, **{name: value})
        search_s = time.perf_counter() - t0
        idx = np.stack([row[row != own][:K] for row, own in zip(idx, sample)])  # drop each query itself
        points.append(
            {
                name: value,
                "recall": recall_at_k(idx, exact),
                "search_s": search_s,
                "est_full_search_s": search_s * rows.n / len(sample),
            }
        )
    return {
        "wall_s": build_s,
        "build_s": build_s,
        "params": {"k": K, **build, "swept": name, "queries": len(sample)},
        "sweep": points,
    }


def _component_neighbours(labels: np.ndarray) -> np.ndarray:
    """K random other members of each row's mixture component: a stand-in for filtered kNN
    pairs (an epoch's cost does not depend on which pairs), without an n-row search first."""
    rng = np.random.default_rng(3)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], labels)
    sizes = np.bincount(labels, minlength=labels.max() + 1)[labels]
    picks = starts[:, None] + (rng.random((len(labels), K)) * sizes[:, None]).astype(np.int64)
    return order[picks]


def run_stage(stage: str, n: int, data: Path) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(os.environ.get("SCALE_THREADS", "2")))
    shards = open_shards(data)
    baseline = rss_mb()
    record: dict[str, Any] = {"stage": stage, "n": n, "d": DIM}
    if stage == "knn-exact":
        from semclust.ops.ann import ann_knn

        t0 = time.perf_counter()
        ann_knn(shards, K, index="exact")
        record.update(wall_s=time.perf_counter() - t0, params={"k": K, "index": "faiss IndexFlatIP"})
    elif stage in ("knn-ivf", "knn-hnsw"):
        from semclust.ops.ann import ann_knn

        params = dict(IVF if stage == "knn-ivf" else HNSW)
        t0 = time.perf_counter()
        idx, _ = ann_knn(shards, K, **params)
        record.update(wall_s=time.perf_counter() - t0, params={"k": K, **params})
        record["peak_rss_mb_before_recall"] = rss_mb()
        record["recall"] = _sample_recall(shards, idx)
        record["recall_queries"] = min(RECALL_QUERIES, n)
    elif stage in SWEEP_STAGES:
        record.update(_sweep(stage, shards))
    elif stage == "kmeans":
        from semclust.ops.kmeans import spherical_kmeans

        x = load_float32(shards)
        t0 = time.perf_counter()
        spherical_kmeans(x, 100, n_init=1, max_iter=20, random_state=0)
        record.update(wall_s=time.perf_counter() - t0, params={"K": 100, "n_init": 1, "max_iter": 20})
    elif stage == "laic-notrain":
        from semclust.methods.laic_notrain import LAICNoTrain

        x = load_float32(shards)
        nouns = np.load(data / "nouns.npy")
        t0 = time.perf_counter()
        model = LAICNoTrain(n_clusters=100, n_centers=100, n_init=1, random_state=0).fit(x, nouns)
        record.update(
            wall_s=time.perf_counter() - t0,
            params={"K": 100, "n_centers": 100, "n_init": 1, "nouns": N_NOUNS},
            relation_shape=list(model.relation_.shape),
        )
    elif stage == "laic-epoch":
        from semclust.methods.laic import LAIC, _FreeCenters
        from semclust.ops.features import l2_normalize

        x = load_float32(shards)
        neigh = _component_neighbours(np.load(data / "labels.npy"))
        centers = l2_normalize(_means()[:100].astype(np.float32))
        laic = LAIC(n_clusters=100, centers="free", epochs=1, batch_size=256, random_state=0)
        torch.manual_seed(0)
        module = _FreeCenters(centers)
        mask = np.ones_like(neigh, dtype=bool)
        torch.set_num_threads(int(laic.torch_threads or 1))  # as LAIC.fit does (default 1 thread)
        baseline = rss_mb()
        t0 = time.perf_counter()
        laic._train(module, x, neigh, mask, torch.device("cpu"), None)
        record.update(
            wall_s=time.perf_counter() - t0,
            params={"K": 100, "centers": "free", "batch_size": 256, "epochs": 1, "neighbours": f"{K} same-component"},
        )
    else:
        raise ValueError(f"unknown stage {stage!r}")
    record["peak_rss_mb"] = record.pop("peak_rss_mb_before_recall", None) or rss_mb()
    record["baseline_rss_mb"] = baseline
    return record


def run_embed(stage: str, n: int, repeat: int = 3) -> dict[str, Any]:
    """Embed n Fashion-MNIST test images; compare with the bare forward of the same batches.

    Each of the three timings (bare forward, ``image_views``, the whole pipeline) is taken
    ``repeat`` times, interleaved, and the fastest kept: on a shared machine the minimum is the
    least disturbed estimate of each. ``steady_images_per_s`` is the pipeline's rate after the
    first batch it hands back (``first_batch_s`` after the start), i.e. without start-up.
    """
    import torch

    from semclust.data.base import ArraySource
    from semclust.data.fashion_mnist import FashionMNISTSource
    from semclust.encoders.preprocess import images_to_array
    from semclust.encoders.registry import get_encoder
    from semclust.store.feature_store import build_store

    # One torch thread per worker: the local engine is one worker, Ray runs one per CPU. (Two
    # OpenMP threads on a shared 2-core machine were up to 7x slower and erratic.)
    threads = int(os.environ.get("SCALE_EMBED_THREADS", "1"))
    torch.set_num_threads(threads)
    split = "test" if n <= 10_000 else "train"  # the test split has 10,000 images
    full = FashionMNISTSource(split)
    if n > len(full):
        raise ValueError(f"embedding benchmark: n={n} is more than Fashion-MNIST {split}'s {len(full)} images")
    gray = np.stack([np.asarray(full.load(i).convert("L")) for i in range(n)])
    source = ArraySource(gray, full.labels[:n], name=f"fashion-mnist-{split}-{n}")
    encoder = get_encoder("offline", threads=threads)
    encoder.image_views([source.load(0)])  # build the towers and the bridge before any timing
    images = [source.load(i) for i in range(n)]
    batches = [
        images_to_array(images[i : i + encoder.batch_size], encoder.preprocessing)
        for i in range(0, n, encoder.batch_size)
    ]
    shard_size = 2048  # the store's default
    engine: Any = None
    cluster: Any = None
    extra: dict[str, Any] = {"engine": "local", "torch_threads": threads, "backend": encoder.backend}
    if stage in ("embed-ray", "embed-ray-2nodes"):
        t0 = time.perf_counter()
        if stage == "embed-ray-2nodes":
            from semclust.engines.local_cluster import LocalRayCluster

            cluster = LocalRayCluster(cpus=1).__enter__()
            # A crash below must not leave the nodes running (they outlive this process).
            atexit.register(cluster.stop)
            cluster.add_node()
            os.environ.update(cluster.driver_env())  # before `import ray`, which reads the auth mode
        import ray

        from semclust.engines.ray import RayEngine

        if cluster is None:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            what = "ray (1 node: local, 2 CPUs, 2 actors x 1 thread)"
        else:
            ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
            what = "ray (2 nodes x 1 CPU on this machine, ray start on loopback, 2 actors x 1 thread)"
        extra = {"engine": what, "backend": encoder.backend, "ray_init_s": time.perf_counter() - t0}
        engine = RayEngine(num_actors=2)
    forward, encode, wall, steady, first_batch = [], [], [], [], []
    baseline = rss_mb()
    for _ in range(repeat):
        t0 = time.perf_counter()
        for batch in batches:
            encoder.visual_tower.run(batch)
        forward.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        encoder.image_views(images)
        encode.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            # (time, images) at every batch the pipeline hands back: the rate after the first
            # batch leaves out the start-up (Ray: starting actors that each build the encoder;
            # the local engine's encoder is built before timing).
            events: list[tuple[float, int]] = []
            t0 = time.perf_counter()
            build_store(
                source,
                encoder,
                Path(tmp) / "store",
                shard_size=shard_size,
                embedder=engine,
                on_progress=lambda k, events=events: events.append((time.perf_counter(), int(k))),
            )
            wall.append(time.perf_counter() - t0)
            if len(events) > 1:
                first_batch.append(events[0][0] - t0)
                # Ray returns batches in order, so its first one arrives after the actors have done
                # much of the work in parallel: a rate after it would flatter Ray. Local only.
                if engine is None:
                    after_first = sum(k for _, k in events[1:])
                    steady.append(after_first / (events[-1][0] - events[0][0]))
    if engine is not None:
        import ray

        ray.shutdown()
    if cluster is not None:
        cluster.stop()
    # The ideal for W workers is W bare forwards in parallel: one worker's time / W.
    workers = engine.num_actors if engine is not None else 1
    forward_s, encoder_s, wall_s = min(forward) / workers, min(encode) / workers, min(wall)
    return {
        "stage": stage,
        "n": n,
        "d": encoder.visual_dim,
        "wall_s": wall_s,
        "images_per_s": n / wall_s,
        "steady_images_per_s": max(steady) if steady else None,
        "forward_s": forward_s,
        "forward_images_per_s": n / forward_s,
        "encoder_s": encoder_s,
        "overhead": wall_s / forward_s - 1,
        "overhead_vs_encoder": wall_s / encoder_s - 1,
        "steady_overhead": (n / forward_s) / max(steady) - 1 if steady else None,
        "first_batch_s": min(first_batch) if first_batch else None,
        "peak_rss_mb": rss_mb(),
        "baseline_rss_mb": baseline,
        "repeats": {"forward_s": forward, "encoder_s": encode, "wall_s": wall},
        "workers": workers,
        "params": {
            "encoder": "offline",
            "image_size": encoder.image_size,
            "batch_size": encoder.batch_size,
            "shard_size": shard_size,
            "repeat": repeat,
            **extra,
        },
    }


# ---------------------------------------------------------------------------- driver


def mem_available_mb() -> float:
    """The kernel's estimate of memory available without swapping (/proc/meminfo)."""
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024.0
    return float("inf")


def child(
    args: list[str], timeout_s: float, min_free_mb: float = 1500.0, env: dict[str, str] | None = None
) -> dict[str, Any] | None:
    """Run one stage in a fresh interpreter; its JSON record is the last line of stdout.

    The machine has no swap and is shared: a stage is stopped (and reported) when the memory
    available falls below ``min_free_mb``, before the kernel's OOM killer picks a victim.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    load_before = os.getloadavg()[0]  # other work on the machine skews wall times; keep a trace
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env={**os.environ, **(env or {})})
        started, lowest = time.monotonic(), mem_available_mb()
        while process.poll() is None:
            time.sleep(0.5)
            lowest = min(lowest, mem_available_mb())
            reason = None
            if lowest < min_free_mb:
                reason = f"stopped: memory available fell to {lowest:.0f} MB"
            elif time.monotonic() - started > timeout_s:
                reason = f"timed out after {timeout_s:.0f} s"
            if reason:
                process.kill()
                process.wait()
                print(f"  {reason}: {' '.join(args)}", flush=True)
                return None
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        print(f"  failed ({process.returncode}): {' '.join(args)}\n{stderr[-3000:]}", flush=True)
        return None
    record = json.loads(stdout.strip().splitlines()[-1])
    record["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]  # before, after
    record["min_mem_available_mb"] = round(lowest)
    return record


def merge(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """New records replace older ones of the same (stage, n)."""
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    keys = {(r["stage"], r["n"]) for r in records}
    merged = [r for r in old if (r["stage"], r["n"]) not in keys] + records
    return sorted(merged, key=lambda r: (r["stage"], r["n"]))


def slopes(records: list[dict[str, Any]], key: str = "wall_s") -> dict[str, float]:
    """Least-squares slope of log(key) against log(n) per stage (>= 2 sizes measured)."""
    out: dict[str, float] = {}
    for stage in dict.fromkeys(r["stage"] for r in records):
        rows = [r for r in records if r["stage"] == stage and r.get(key) and not r.get("skipped")]
        if len({r["n"] for r in rows}) >= 2 and not stage.startswith(("embed", "ann-sweep")):
            ns = np.log10([r["n"] for r in rows])
            out[stage] = float(np.polyfit(ns, np.log10([r[key] for r in rows]), 1)[0])
    return out


COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _draw_panel(draw: Any, rows: list[dict[str, Any]], stages: list[str], key: str, title: str, box: tuple) -> None:
    """One log-log panel: gridlines at decades, a line per stage, the fitted slope in the legend."""
    x0, x1, y0, y1 = box
    ns = [r["n"] for r in rows]
    lx0, lx1 = math.floor(math.log10(min(ns))) - 0.2, math.ceil(math.log10(max(ns))) + 0.2
    vals = [r[key] for r in rows if r.get(key)]
    ly0, ly1 = (
        math.floor(math.log10(min(vals))),
        max(math.ceil(math.log10(max(vals))), math.floor(math.log10(min(vals))) + 1),
    )

    def to_xy(n: float, v: float) -> tuple[float, float]:
        fx = (math.log10(n) - lx0) / (lx1 - lx0)
        fy = (math.log10(v) - ly0) / (ly1 - ly0)
        return x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)

    draw.rectangle([x0, y1, x1, y0], outline="black")
    for e in range(math.ceil(lx0), math.floor(lx1) + 1):
        x, _ = to_xy(10**e, 10**ly0)
        draw.line([x, y0, x, y1], fill="#dddddd")
        draw.text((x - 12, y0 + 5), f"1e{e}", fill="black")
    for e in range(ly0, ly1 + 1):
        _, y = to_xy(10**lx0, 10**e)
        draw.line([x0, y, x1, y], fill="#dddddd")
        draw.text((x0 - 45, y - 6), f"1e{e}", fill="black")
    draw.text(((x0 + x1) / 2 - 60, 15), f"{title} vs n (log-log)", fill="black")
    draw.text(((x0 + x1) / 2 - 5, y0 + 22), "n", fill="black")
    fitted = slopes(rows, key)
    for i, stage in enumerate(stages):
        pts = sorted((r["n"], r[key]) for r in rows if r["stage"] == stage and r.get(key))
        xy = [to_xy(n, v) for n, v in pts]
        colour = COLOURS[i % len(COLOURS)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for x, y in xy:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
        label = f"{stage}: slope {fitted[stage]:.2f}" if stage in fitted else stage
        lx, ly = x0 + (i % 3) * 190, y0 + 40 + (i // 3) * 18
        draw.rectangle([lx, ly + 3, lx + 12, ly + 11], fill=colour)
        draw.text((lx + 16, ly), label, fill="black")


def plot(records: list[dict[str, Any]], path: Path = PLOT) -> None:
    """Log-log wall time and peak RSS against n, one line per stage, slopes in the legend (PIL)."""
    from PIL import Image, ImageDraw

    rows = [r for r in records if not r["stage"].startswith(("embed", "ann-sweep")) and not r.get("skipped")]
    if not rows:
        return
    stages = [s for s in CLUSTER_STAGES if any(r["stage"] == s for r in rows)]
    width, height, pad = 1300, 560, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for key, title, left in [("wall_s", "wall time (s)", 0), ("peak_rss_mb", "peak RSS (MB)", width // 2)]:
        box = (left + pad, left + width // 2 - 20, height - pad - 90, 40)
        _draw_panel(draw, rows, stages, key, title, box)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1e4,1e5", help="comma-separated n, e.g. 1e4,1e5,1e6 ('' for none)")
    parser.add_argument(
        "--stages",
        default=",".join(CLUSTER_STAGES),
        help=f"clustering stages to run (also: {', '.join(SWEEP_STAGES)}, recall against search settings)",
    )
    parser.add_argument("--embed", default="", help="also time embedding of this many images (comma-separated n)")
    parser.add_argument(
        "--engines", default="local,ray,ray-2nodes", help="embedding engines: local, ray (1 node), ray-2nodes"
    )
    parser.add_argument("--repeat", type=int, default=3, help="embedding timings: repeats, fastest kept")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "semclust-scale-data"))
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per stage")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        stage, n = args.child[0], int(args.child[1])
        if stage.startswith("embed"):
            record = run_embed(stage, n, int(args.child[2]))
        else:
            record = run_stage(stage, n, Path(args.child[2]))
        print(json.dumps(record, default=float))
        return
    if args.plot_only:
        plot(json.loads(RESULTS.read_text()))
        return

    sys.path.insert(0, str(HERE))
    from common import write_records

    records: list[dict[str, Any]] = []
    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    for n in sizes:
        t0 = time.perf_counter()
        data = make_data(n, Path(args.data_dir))
        print(f"n={n}: data ready in {time.perf_counter() - t0:.1f} s ({data})", flush=True)
        for stage in [s for s in args.stages.split(",") if s]:
            if stage == "knn-exact" and n > EXACT_KNN_MAX_N:
                records.append(
                    {
                        "stage": stage,
                        "n": n,
                        "d": DIM,
                        "skipped": f"exact kNN at n={n:.0e} is n^2 d = {n * n * DIM:.1e} multiply-adds, "
                        f"~{(n / 1e5) ** 2:.0f}x the n=1e5 time (hours on 2 cores); approximate indices only, "
                        "their recall measured on 1,000 queries against brute force",
                    }
                )
                print(f"  {stage:13s} skipped: {records[-1]['skipped']}", flush=True)
                continue
            record = child([stage, str(n), str(data)], args.timeout)
            if record is None:
                continue
            records.append(record)
            recall = f", recall@{K} {record['recall']:.3f}" if "recall" in record else ""
            print(f"  {stage:13s} {record['wall_s']:9.2f} s  peak {record['peak_rss_mb']:8.0f} MB{recall}", flush=True)
            write_records(RESULTS, merge(records))
    for embed_n in [int(float(v)) for v in args.embed.split(",") if v.strip()]:
        for engine in [e for e in args.engines.split(",") if e]:
            if engine.startswith("ray"):
                from semclust.engines.ray import ray_available

                if not ray_available():
                    print("  ray not installed: embed-ray skipped", flush=True)
                    continue
            # One thread per worker for BLAS too, as Ray gives its one-CPU actors (OMP_NUM_THREADS=1):
            # the bridge's small matrix products on 2 OpenBLAS threads stalled on the busy machine.
            one = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            record = child([f"embed-{engine}", str(embed_n), str(args.repeat)], args.timeout, env=one)
            if record is None:
                continue
            records.append(record)
            print(
                f"  embed-{engine}: {record['images_per_s']:.1f} images/s, bare forward "
                f"{record['forward_images_per_s']:.1f} images/s, overhead {record['overhead']:+.1%} "
                + (f"(steady state {record['steady_overhead']:+.1%})" if record["steady_overhead"] is not None else ""),
                flush=True,
            )
            write_records(RESULTS, merge(records))
    if records:
        final = merge(records)
        write_records(RESULTS, final)
        print("slopes (log wall_s vs log n):", {k: round(v, 2) for k, v in slopes(final).items()})
        plot(final)


if __name__ == "__main__":
    main()
