"""Images stored as fixed-size binary records (CIFAR, STL-10), read lazily through memmaps.

Memory-mapping keeps a 100k-image split from being read whole just to open it, and lets
many worker processes share the page cache instead of each holding a copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semclust.data.base import ImageSource, SourceError


class RecordFile:
    """A binary file made of ``record_size``-byte records, with no header."""

    def __init__(self, path: str | os.PathLike[str], record_size: int, dataset: str) -> None:
        self.path = Path(path)
        self.record_size = record_size
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            raise SourceError(f"{dataset}: cannot read {self.path} ({exc.strerror or exc})") from None
        if size == 0 or size % record_size:
            raise SourceError(
                f"{dataset}: {self.path} is {size} bytes, not a whole number of "
                f"{record_size}-byte records (wrong file or incomplete download?)"
            )
        self.n = size // record_size
        self._map: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n

    @property
    def records(self) -> np.ndarray:
        """The records as a read-only ``[n, record_size]`` uint8 memmap."""
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.n, self.record_size))
        return self._map

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a memmap copies its whole content; workers should reopen the file instead.
        state = self.__dict__.copy()
        state["_map"] = None
        return state


class RecordImageSource(ImageSource):
    """Concatenated record files; ids are ``<prefix><n>`` with ``n`` counting on across files
    that share a prefix (CIFAR-10's five train batches make one ``train/0..49999`` run).

    ``to_image`` turns one record (a uint8 row) into an ``[H, W, 3]`` uint8 array; it must be
    a module-level function (or a ``functools.partial`` of one) so the source stays picklable.
    """

    def __init__(
        self,
        parts: Sequence[tuple[str, RecordFile]],
        to_image: Callable[[np.ndarray], np.ndarray],
        *,
        labels: np.ndarray | None,
        class_names: list[str] | None,
        name: str,
        info: dict[str, Any] | None = None,
    ) -> None:
        self._files = [part for _, part in parts]
        self._starts = np.cumsum([0] + [len(f) for f in self._files])
        self._ids: list[str] = []
        counters: dict[str, int] = {}
        for prefix, part in parts:
            start = counters.get(prefix, 0)
            self._ids.extend(f"{prefix}{start + row}" for row in range(len(part)))
            counters[prefix] = start + len(part)
        self._to_image = to_image
        if labels is not None:
            labels = np.asarray(labels, dtype=np.int64)
            if len(labels) != len(self._ids):
                raise SourceError(f"{name}: {len(labels)} labels for {len(self._ids)} images")
        self._labels = labels
        self._class_names = class_names
        self.name = name
        self._info = dict(info or {})

    def load(self, index: int) -> Image.Image:
        total = len(self._ids)
        if index < 0:
            index += total
        if not 0 <= index < total:
            raise IndexError(f"{self.name}: index {index} out of range for {total} items")
        part = int(np.searchsorted(self._starts, index, side="right")) - 1
        record = np.asarray(self._files[part].records[index - self._starts[part]])
        return Image.fromarray(np.ascontiguousarray(self._to_image(record)), mode="RGB")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self._info, "n": len(self)}
