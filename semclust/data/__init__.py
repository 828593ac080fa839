"""Image sources: folders of files and the standard benchmark datasets."""

from __future__ import annotations

from semclust.data.base import (
    ArraySource,
    ImageDecodeError,
    ImageSource,
    SkippedItem,
    SourceError,
)
from semclust.data.cifar import CIFAR10Source, CIFAR100Source
from semclust.data.decode import DEFAULT_MAX_PIXELS, decode_image
from semclust.data.digits import DigitsSource
from semclust.data.fashion_mnist import FASHION_MNIST_CLASSES, FashionMNISTSource
from semclust.data.folder import DEFAULT_EXTENSIONS, FolderSource
from semclust.data.idx import read_idx
from semclust.data.pixels import source_images
from semclust.data.records import RecordFile, RecordImageSource
from semclust.data.registry import DATA_ROOT_ENV, list_datasets, open_source
from semclust.data.stl10 import STL10Source
from semclust.data.svhn import SVHNSource

__all__ = [
    "DATA_ROOT_ENV",
    "DEFAULT_EXTENSIONS",
    "DEFAULT_MAX_PIXELS",
    "FASHION_MNIST_CLASSES",
    "ArraySource",
    "CIFAR10Source",
    "CIFAR100Source",
    "DigitsSource",
    "FashionMNISTSource",
    "FolderSource",
    "ImageDecodeError",
    "ImageSource",
    "RecordFile",
    "RecordImageSource",
    "STL10Source",
    "SVHNSource",
    "SkippedItem",
    "SourceError",
    "decode_image",
    "list_datasets",
    "open_source",
    "read_idx",
    "source_images",
]
