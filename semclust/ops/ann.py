"""Cosine kNN at scale: exact (faiss flat, or torch on a GPU), IVF or HNSW, and its recall.

:func:`ann_knn` has :func:`semclust.ops.knn.knn`'s contract (indices and similarities sorted
by decreasing cosine similarity, ``exclude_self`` for a self-search) plus an ``index``:

- ``"exact"``: delegates to :func:`semclust.ops.knn.knn` (faiss ``IndexFlatIP``); on a GPU,
  faiss's GPU flat index when faiss has GPUs, else blocked torch matrix products.
- ``"ivf"``: faiss ``IndexIVFFlat`` (or ``IndexIVFScalarQuantizer`` fp16 with
  ``storage="float16"``): ``nlist`` k-means cells trained on a sample of ``train_size`` rows,
  ``nprobe`` cells searched per query (default :func:`default_nprobe`). Cost ~ n * nprobe /
  nlist per query.
- ``"hnsw"``: faiss ``IndexHNSWFlat`` (``IndexHNSWSQ`` fp16 with ``storage="float16"``), ``M``
  links per node, ``ef_construction`` and ``ef_search`` beam widths. CPU only.

``features`` may be one array (a ``np.memmap`` of float16 included) or a list of row blocks,
such as the memory-mapped shards of a feature store (``list(store.iter_shards("visual"))``);
rows are converted to normalised float32 one block at a time, so the only full-size copy is
the one inside the index (n * d * 4 bytes, or half that with ``storage="float16"``).

Approximate indices can miss neighbours; :func:`recall_at_k` measures how many against an
exact search. With an approximate index a row may have fewer than ``k`` results when the
probed cells hold fewer points; those slots are ``-1`` with similarity ``-inf``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypeAlias

import faiss
import numpy as np
from numpy.typing import ArrayLike

from semclust.ops.features import as_feature_matrix, check_positive_int, l2_normalize
from semclust.ops.knn import DEFAULT_BLOCK_SIZE, drop_own_index, knn

IndexKind = Literal["exact", "ivf", "hnsw"]
INDEX_KINDS = ("exact", "ivf", "hnsw")
STORAGE = ("float32", "float16")


class RowBlocks:
    """Rows of one 2-D array or of a list of 2-D arrays (shards), read a block at a time."""

    def __init__(self, data: Any, *, name: str = "features") -> None:
        if isinstance(data, (list, tuple)):
            parts = [np.asarray(part) for part in data]
        else:
            parts = [np.asarray(data)]
        if not parts:
            raise ValueError(f"{name} must be non-empty, got no blocks")
        for part in parts:
            if part.ndim != 2:
                raise ValueError(f"{name} must be 2-D [n, d] (or a list of such blocks), got shape {part.shape}")
        parts = [p for p in parts if p.shape[0] > 0] or parts[:1]  # empty shards hold no rows
        dims = {p.shape[1] for p in parts}
        if len(dims) != 1:
            raise ValueError(f"{name} blocks have different dimensions: {sorted(dims)}")
        self.parts, self.name = parts, name
        self.offsets = np.cumsum([0] + [p.shape[0] for p in parts])
        self.n, self.dim = int(self.offsets[-1]), dims.pop()
        if self.n == 0 or self.dim == 0:
            raise ValueError(f"{name} must be non-empty, got {self.n} rows of dimension {self.dim}")

    def iter_blocks(self, block_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, float32 unit-norm rows)`` blocks of at most ``block_size`` rows, in order."""
        for offset, part in zip(self.offsets[:-1], self.parts):
            for lo in range(0, part.shape[0], block_size):
                block = as_feature_matrix(part[lo : lo + block_size], name=self.name)
                yield int(offset) + lo, l2_normalize(block)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Unit-norm float32 copies of the given (sorted) global rows."""
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for i in np.unique(which):
            mask = which == i
            local = rows[mask] - self.offsets[i]
            out[mask] = as_feature_matrix(self.parts[i][local], name=self.name)
        return l2_normalize(out)

    def dense(self) -> np.ndarray:
        """All rows as one float32 array (only for the exact search, which needs them anyway)."""
        if len(self.parts) == 1:
            return self.parts[0]
        out = np.empty((self.n, self.dim), dtype=np.float32)
        for offset, part in zip(self.offsets[:-1], self.parts):
            out[offset : offset + part.shape[0]] = part  # filled in place: no second full copy
        return out


Rows: TypeAlias = "ArrayLike | Sequence[np.ndarray] | RowBlocks"


def as_rows(data: Rows, *, name: str = "features") -> RowBlocks:
    """``data`` as :class:`RowBlocks` (unchanged when it already is)."""
    return data if isinstance(data, RowBlocks) else RowBlocks(data, name=name)


def default_nlist(n: int) -> int:
    """faiss's rule of thumb, ~4 sqrt(n) cells, kept to at least 39 training points per cell."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // 39))


def default_nprobe(nlist: int) -> int:
    """Cells an IVF search probes by default: ``max(16, ceil(nlist / 128))``.

    A fixed 16 loses recall as n (and with it ``nlist``) grows: on the scale benchmark's
    clustered d = 512 data, recall@10 was 0.999 at n = 1e5 (nlist 1,265) but 0.863 at n = 1e6
    (nlist 4,000), where 32 cells gave 0.995 (benchmarks/RESULTS.md, ann-sweep-ivf).
    """
    return max(16, math.ceil(check_positive_int(nlist, "nlist") / 128))


def _faiss_gpus(device: str) -> int:
    """GPUs faiss may use for ``device`` (0 on a CPU-only faiss build or with device="cpu")."""
    if device == "cpu":
        return 0
    count = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if device.startswith("cuda") and count == 0:
        return 0  # the torch path (exact) or the CPU index (ivf) is used instead
    return count


def _torch_cuda(device: str) -> bool:
    if device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()


def build_index(
    features: Rows,
    *,
    index: IndexKind = "ivf",
    nlist: int | None = None,
    train_size: int | None = None,
    M: int = 32,
    ef_construction: int = 80,
    storage: str = "float32",
    random_state: int = 0,
    device: str = "cpu",
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> faiss.Index:
    """A trained and filled faiss inner-product index over the unit-normalised rows."""
    if index not in ("ivf", "hnsw"):
        raise ValueError(f"build_index builds 'ivf' or 'hnsw' indices, got {index!r}")
    if storage not in STORAGE:
        raise ValueError(f"storage must be one of {STORAGE}, got {storage!r}")
    rows = as_rows(features)
    block_size = check_positive_int(block_size, "block_size")
    metric = faiss.METRIC_INNER_PRODUCT
    fp16: Any = faiss.ScalarQuantizer.QT_fp16
    if index == "hnsw":
        M = check_positive_int(M, "M")
        built: Any = (
            faiss.IndexHNSWSQ(rows.dim, fp16, M, metric)
            if storage == "float16"
            else faiss.IndexHNSWFlat(rows.dim, M, metric)
        )
        built.hnsw.efConstruction = check_positive_int(ef_construction, "ef_construction")
        if storage == "float16":
            built.train(rows.take(np.arange(min(rows.n, 1000))))  # fp16 needs no statistics; faiss asks anyway
    else:
        nlist = default_nlist(rows.n) if nlist is None else check_positive_int(nlist, "nlist")
        if nlist > rows.n:
            raise ValueError(f"need nlist <= n, got nlist={nlist} and n={rows.n}")
        quantizer = faiss.IndexFlatIP(rows.dim)
        if storage == "float16":
            built = faiss.IndexIVFScalarQuantizer(quantizer, rows.dim, nlist, fp16, metric)
        else:
            built = faiss.IndexIVFFlat(quantizer, rows.dim, nlist, metric)
        built.cp.seed = int(random_state)
        built.cp.min_points_per_centroid = 1  # silence faiss's advisory printed to C stderr
        gpus = _faiss_gpus(device)
        if gpus:
            built = faiss.index_cpu_to_all_gpus(built)
        n_train = min(rows.n, 64 * nlist if train_size is None else check_positive_int(train_size, "train_size"))
        n_train = max(n_train, nlist)
        sample = np.sort(np.random.default_rng(random_state).choice(rows.n, size=n_train, replace=False))
        built.train(rows.take(sample))
    for _, block in rows.iter_blocks(block_size):
        built.add(block)
    return built


def search_index(
    built: faiss.Index,
    queries: Rows,
    k: int,
    *,
    nprobe: int | None = None,
    ef_search: int = 64,
    exclude_self: bool = False,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Search a :func:`build_index` index; ``exclude_self`` when the queries are its own rows."""
    k = check_positive_int(k, "k")
    rows = as_rows(queries, name="queries")
    if rows.dim != built.d:
        raise ValueError(f"queries have dimension {rows.dim} but the index has {built.d}")
    if hasattr(built, "nprobe"):
        cells = int(getattr(built, "nlist"))  # noqa: B009 - faiss's stubs give the base Index no nlist
        built.nprobe = default_nprobe(cells) if nprobe is None else check_positive_int(nprobe, "nprobe")
    else:
        inner = faiss.downcast_index(built)
        if hasattr(inner, "hnsw"):
            inner.hnsw.efSearch = max(check_positive_int(ef_search, "ef_search"), k + 1)
    search_k = k + 1 if exclude_self else k
    indices = np.empty((rows.n, k), dtype=np.int64)
    sims = np.empty((rows.n, k), dtype=np.float32)
    for start, block in rows.iter_blocks(check_positive_int(block_size, "block_size")):
        block_sims, block_idx = built.search(block, search_k)
        block_sims = np.where(block_idx < 0, -np.inf, block_sims).astype(np.float32)
        if exclude_self:
            block_idx, block_sims = drop_own_index(block_idx, block_sims, np.arange(start, start + len(block)))
        indices[start : start + len(block)] = block_idx
        sims[start : start + len(block)] = block_sims
    return indices, sims


def torch_knn(
    features: ArrayLike,
    k: int,
    *,
    queries: ArrayLike | None = None,
    exclude_self: bool = True,
    device: str = "cuda",
    query_block: int = 2048,
    base_block: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine kNN with torch matrix products, both sides in blocks (for GPUs).

    Memory on the device: the base rows (float16 on CUDA, float32 on CPU) plus one
    ``query_block x base_block`` similarity block; a running top-k is merged per base block.
    """
    import torch

    base_np = l2_normalize(as_feature_matrix(features, name="features"))
    n = base_np.shape[0]
    self_search = queries is None
    query_np = base_np if queries is None else l2_normalize(as_feature_matrix(queries, name="queries"))
    if query_np.shape[1] != base_np.shape[1]:
        raise ValueError(f"queries have dimension {query_np.shape[1]} but features have {base_np.shape[1]}")
    drop_self = self_search and exclude_self
    k = check_positive_int(k, "k")
    if k > (n - 1 if drop_self else n):
        raise ValueError(f"need {'k < n (self is excluded)' if drop_self else 'k <= n'}, got k={k} and n={n}")
    dev = torch.device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    base = torch.from_numpy(base_np).to(dev, dtype)
    search_k = k + 1 if drop_self else k
    m = query_np.shape[0]
    indices = np.empty((m, k), dtype=np.int64)
    sims = np.empty((m, k), dtype=np.float32)
    with torch.no_grad():
        for qs in range(0, m, query_block):
            q = torch.from_numpy(query_np[qs : qs + query_block]).to(dev, dtype)
            best_v = torch.full((len(q), 0), -math.inf, device=dev)
            best_i = torch.empty((len(q), 0), dtype=torch.int64, device=dev)
            for bs in range(0, n, base_block):
                block = (q @ base[bs : bs + base_block].T).float()
                kk = min(search_k, block.shape[1])
                v, i = torch.topk(block, kk, dim=1)
                best_v, order = torch.topk(torch.cat([best_v, v], 1), min(search_k, best_v.shape[1] + kk), dim=1)
                best_i = torch.gather(torch.cat([best_i, i + bs], 1), 1, order)
            block_idx, block_sims = best_i.cpu().numpy(), best_v.cpu().numpy().astype(np.float32)
            if drop_self:
                block_idx, block_sims = drop_own_index(block_idx, block_sims, np.arange(qs, qs + len(q)))
            indices[qs : qs + len(q)] = block_idx
            sims[qs : qs + len(q)] = block_sims
    return indices, sims


def ann_knn(
    features: Rows,
    k: int,
    *,
    index: IndexKind = "exact",
    queries: Rows | None = None,
    exclude_self: bool = True,
    nlist: int | None = None,
    nprobe: int | None = None,
    train_size: int | None = None,
    M: int = 32,
    ef_construction: int = 80,
    ef_search: int = 64,
    storage: str = "float32",
    random_state: int = 0,
    device: str = "cpu",
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar rows for every query, exactly or approximately.

    Returns ``(indices int64[m, k], similarities float32[m, k])``, as
    :func:`semclust.ops.knn.knn`. ``device``: ``"cpu"``, or ``"cuda"``/``"auto"`` to use faiss's
    GPU indices when faiss was built with GPUs, and for ``index="exact"`` torch on CUDA when
    only torch has the GPU. ``nlist`` defaults to :func:`default_nlist`; ``train_size`` to
    ``64 * nlist`` rows (faiss's k-means needs 39-256 per cell).
    """
    if index not in INDEX_KINDS:
        raise ValueError(f"index must be one of {INDEX_KINDS}, got {index!r}")
    k = check_positive_int(k, "k")
    self_search = queries is None
    if index == "exact":
        base = as_rows(features).dense()
        query = None if queries is None else as_rows(queries, name="queries").dense()
        if _faiss_gpus(device) == 0 and _torch_cuda(device):
            return torch_knn(base, k, queries=query, exclude_self=exclude_self, device="cuda")
        if _faiss_gpus(device):
            return _faiss_gpu_flat(base, k, query, exclude_self, block_size)
        return knn(base, k, queries=query, exclude_self=exclude_self, block_size=block_size)
    rows = as_rows(features)
    drop_self = self_search and exclude_self
    if k > (rows.n - 1 if drop_self else rows.n):
        raise ValueError(f"need {'k < n (self is excluded)' if drop_self else 'k <= n'}, got k={k} and n={rows.n}")
    built = build_index(
        rows,
        index=index,
        nlist=nlist,
        train_size=train_size,
        M=M,
        ef_construction=ef_construction,
        storage=storage,
        random_state=random_state,
        device=device,
        block_size=block_size,
    )
    return search_index(
        built,
        rows if queries is None else as_rows(queries, name="queries"),
        k,
        nprobe=nprobe,
        ef_search=ef_search,
        exclude_self=drop_self,
        block_size=block_size,
    )


def _faiss_gpu_flat(
    base: ArrayLike, k: int, queries: ArrayLike | None, exclude_self: bool, block_size: int
) -> tuple[np.ndarray, np.ndarray]:
    rows = RowBlocks(base)
    flat = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(rows.dim))
    for _, block in rows.iter_blocks(block_size):
        flat.add(block)
    self_search = queries is None
    return search_index(
        flat,
        rows if queries is None else as_rows(queries, name="queries"),
        k,
        exclude_self=self_search and exclude_self,
        block_size=block_size,
    )


def recall_at_k(approx: ArrayLike, exact: ArrayLike) -> float:
    """Mean fraction of each row's exact ``k`` neighbours that the approximate list contains.

    ``approx`` is ``[m, k']`` (``-1`` for missing results), ``exact`` is ``[m, k]``; with
    ``k' = k`` this is the usual recall@k (1.0 = the same neighbour sets).
    """
    a, e = np.asarray(approx), np.asarray(exact)
    if a.ndim != 2 or e.ndim != 2 or a.shape[0] != e.shape[0] or e.shape[1] == 0:
        raise ValueError(f"approx and exact must be 2-D with the same rows, got {a.shape} and {e.shape}")
    hits = 0
    for start in range(0, e.shape[0], 4096):  # [rows, k', k] comparisons a block at a time
        ab, eb = a[start : start + 4096], e[start : start + 4096]
        found = (ab[:, :, None] == eb[:, None, :]) & (ab[:, :, None] >= 0)
        hits += int(found.any(axis=1).sum())
    return float(hits / e.size)
