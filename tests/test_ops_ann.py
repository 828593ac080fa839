"""Approximate kNN (faiss IVF / HNSW) against the exact search, and the recall measure."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from semclust.ops import ann
from semclust.ops.ann import RowBlocks, ann_knn, default_nlist, default_nprobe, recall_at_k, torch_knn
from semclust.ops.knn import knn


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clustered() -> np.ndarray:
    """4000 points around 20 directions in 64-d (a Gaussian mixture on the sphere)."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 64))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    x = centers[rng.integers(0, 20, 4000)] + 0.15 * rng.normal(size=(4000, 64))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def exact(clustered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return knn(clustered, 10)


def test_exact_delegates_to_knn(clustered: np.ndarray, exact: tuple[np.ndarray, np.ndarray]) -> None:
    idx, sims = ann_knn(clustered, 10, index="exact")
    np.testing.assert_array_equal(idx, exact[0])
    np.testing.assert_array_equal(sims, exact[1])


@pytest.mark.parametrize(
    ("options", "floor"),
    [
        ({"index": "ivf"}, 0.97),
        ({"index": "ivf", "storage": "float16"}, 0.97),
        ({"index": "hnsw"}, 0.97),
        ({"index": "hnsw", "storage": "float16", "M": 16}, 0.95),
    ],
)
def test_approximate_indices_have_high_recall(
    clustered: np.ndarray, exact: tuple[np.ndarray, np.ndarray], options: dict, floor: float
) -> None:
    idx, sims = ann_knn(clustered, 10, **options)
    assert idx.shape == (4000, 10) and idx.dtype == np.int64 and sims.dtype == np.float32
    assert recall_at_k(idx, exact[0]) >= floor
    assert not (idx == np.arange(4000)[:, None]).any()  # self excluded
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # sorted by decreasing similarity


def test_ivf_recall_grows_with_nprobe_and_is_exact_when_every_cell_is_probed(
    clustered: np.ndarray, exact: tuple[np.ndarray, np.ndarray]
) -> None:
    nlist = 64
    recalls = [recall_at_k(ann_knn(clustered, 10, index="ivf", nlist=nlist, nprobe=p)[0], exact[0]) for p in (1, 4)]
    full, full_sims = ann_knn(clustered, 10, index="ivf", nlist=nlist, nprobe=nlist)
    assert recalls[0] < recalls[1] < 1.0
    assert recall_at_k(full, exact[0]) >= 0.999  # only exact ties may order differently
    np.testing.assert_allclose(full_sims, exact[1], atol=1e-5)


def test_default_nprobe_grows_with_the_number_of_cells(
    clustered: np.ndarray, exact: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [default_nprobe(n) for n in (1, 64, 2048, 2049, 4000)] == [16, 16, 16, 17, 32]
    nlist = 64
    default_idx, _ = ann_knn(clustered, 10, index="ivf", nlist=nlist)
    np.testing.assert_array_equal(default_idx, ann_knn(clustered, 10, index="ivf", nlist=nlist, nprobe=16)[0])
    # The search asks default_nprobe about the index's own nlist: probing every cell is exact.
    asked: list[int] = []
    monkeypatch.setattr(ann, "default_nprobe", lambda cells: asked.append(cells) or cells)
    everything, _ = ann_knn(clustered, 10, index="ivf", nlist=nlist)
    assert asked == [nlist] and recall_at_k(everything, exact[0]) >= 0.999


def test_memory_mapped_shards_give_the_same_neighbours_as_one_array(clustered: np.ndarray, tmp_path) -> None:
    """A feature store's shards (float16 memmaps, one empty) are searched without concatenating."""
    half = clustered.astype(np.float16)
    paths = []
    for i, (lo, hi) in enumerate([(0, 1500), (1500, 1500), (1500, 4000)]):
        np.save(tmp_path / f"{i}.npy", half[lo:hi])
        paths.append(tmp_path / f"{i}.npy")
    shards = [np.load(p, mmap_mode="r") for p in paths]
    assert RowBlocks(shards).n == 4000
    a = ann_knn(shards, 5, index="ivf", block_size=700)
    b = ann_knn(half, 5, index="ivf")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)


def test_queries_against_a_base(clustered: np.ndarray) -> None:
    base, queries = clustered[:3000], clustered[3000:]
    exact_idx, _ = knn(base, 5, queries=queries)
    idx, _ = ann_knn(base, 5, queries=queries, index="hnsw")
    assert idx.shape == (1000, 5) and idx.max() < 3000
    assert recall_at_k(idx, exact_idx) >= 0.97


def test_torch_path_equals_faiss_exact(clustered: np.ndarray, exact: tuple[np.ndarray, np.ndarray]) -> None:
    idx, sims = torch_knn(clustered, 10, device="cpu", query_block=700, base_block=900)
    assert recall_at_k(idx, exact[0]) >= 0.999
    np.testing.assert_allclose(sims, exact[1], atol=1e-5)


def test_recall_at_k_counts_shared_neighbours() -> None:
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.array([[3, 2, 9], [-1, -1, 4]]), exact) == pytest.approx(3 / 6)
    assert recall_at_k(np.array([[7, 8, 9], [0, 0, 0]]), exact) == 0.0
    with pytest.raises(ValueError, match="same rows"):
        recall_at_k(exact[:1], exact)


def test_bad_parameters_are_named(clustered: np.ndarray) -> None:
    with pytest.raises(ValueError, match="index must be one of"):
        ann_knn(clustered, 5, index="lsh")
    with pytest.raises(ValueError, match="k < n"):
        ann_knn(clustered[:10], 10, index="ivf")
    with pytest.raises(ValueError, match="storage"):
        ann_knn(clustered, 5, index="ivf", storage="int8")
    assert default_nlist(10_000) == 256 and default_nlist(1_000_000) == 4000
