"""Where each dataset comes from: one ordered table of sources, read by load_dataset and local_source.

For a dataset name, the sources that serve it are tried in table order; the
first that applies is the only one tried, so a wrong ``data_dir`` is an error
rather than a silent fallback to other data. Adding a source (a system folder,
another cache) is adding a row to :data:`SOURCES`. :func:`resolve_source` says
which row would serve a request (kbench.data.checksums checks the files it
would read against the published checksums).
"""

from __future__ import annotations

import os
import socket
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from kbench._validate import check_choice, check_positive_int, check_str
from kbench.data.idx import (
    KBENCH_DATA_DIR_ENV,
    KERAS_DATASETS,
    as_path,
    is_complete_idx_folder,
    load_idx_folder,
    offline_hint,
)
from kbench.data.records import Dataset, DatasetError
from kbench.data.synthetic import SYNTHETIC_TEST_SIZE, SYNTHETIC_TRAIN_SIZE, make_synthetic
from kbench.workflows import DATASETS

__all__ = ["DOWNLOAD_TIMEOUT_S", "MNIST_5K_FOLDER", "SOURCES", "SYSTEM_FASHION_MNIST_FOLDER",
           "DataSource", "Request", "Source", "load_dataset", "local_source", "resolve_source"]

# Per-socket-operation timeout while the Keras loader downloads. The files
# are 11-30 MB from Google Cloud Storage; 30 s covers a slow first byte, and
# an offline machine fails within one timeout instead of hanging.
DOWNLOAD_TIMEOUT_S = 30.0

# The 5,000 real MNIST digits bundled as package data (attribution and checksums in its README).
MNIST_5K_FOLDER = resources.files("kbench") / "datasets" / "mnist_5k"

# Where the Debian/Ubuntu package dataset-fashion-mnist (idx.SYSTEM_PACKAGES) installs
# the four gzipped IDX files. Read when a request is resolved, so tests point it elsewhere.
SYSTEM_FASHION_MNIST_FOLDER = Path("/usr/share/datasets/fashion-mnist")

# A downloader returns ((x_train, y_train), (x_test, y_test)) for a dataset
# name, like keras.datasets.<name>.load_data().
DataSource = Callable[[str], tuple[tuple[Any, Any], tuple[Any, Any]]]


@dataclass(frozen=True)
class Request:
    """What load_dataset (or local_source) was asked for; the sources read it."""

    name: str
    data_dir: Any = None
    download: bool = False
    seed: int = 0
    n_train: int | None = None
    n_test: int | None = None
    downloader: DataSource | None = None


@dataclass(frozen=True)
class Source:
    """One place datasets come from: a row of SOURCES. Validated on construction.

    Attributes:
        name: how messages call it ("Keras cache").
        datasets: the dataset names it serves.
        where: request -> the folder or file it reads, or None where that is
            unset (no data_dir, no KBENCH_DATA_DIR). None instead of a
            function: it reads no local place (a download, the generator).
        applies: (place, request) -> whether it serves this request; the
            first source that applies is the only one tried.
        load: (place, request) -> the Dataset.
        local: place -> what local_source reports: the path, "bundled",
            "generated", or None when the data is not all there.
    """

    name: str
    datasets: tuple[str, ...]
    where: Callable[[Request], Any] | None
    applies: Callable[[Any, Request], bool]
    load: Callable[[Any, Request], Dataset]
    local: Callable[[Any], str | None] = str

    def __post_init__(self) -> None:
        check_str("Source name", self.name, error=DatasetError)
        if not isinstance(self.datasets, tuple) or not self.datasets:
            raise DatasetError(f"Source {self.name!r}: datasets must be a non-empty tuple, "
                               f"got {self.datasets!r}")
        for dataset in self.datasets:
            check_choice("dataset", dataset, DATASETS, error=DatasetError,
                         where=f"Source {self.name!r}")

    def place(self, request: Request) -> Any:
        """The folder or file this source would read for request (None: none)."""
        return None if self.where is None else self.where(request)

    def looked(self, request: Request) -> str | None:
        """Where it looked, for the message when no source applies (None: nowhere)."""
        if self.where is None:
            return None
        place = self.where(request)
        return f"{self.name} is unset" if place is None else f"{self.name} {place}"


# --------------------------------------------------------------------------
# Places
# --------------------------------------------------------------------------

def _data_dir(request: Request) -> Any:
    return None if request.data_dir is None else as_path(request.data_dir)


def _env_folder(request: Request) -> Path | None:
    root = os.environ.get(KBENCH_DATA_DIR_ENV)
    return Path(root).expanduser() / request.name if root else None


def _system_fashion_mnist(request: Request) -> Path:
    return SYSTEM_FASHION_MNIST_FOLDER


def _keras_datasets_dir() -> Path:
    """Return the folder keras.datasets caches into, resolved as Keras does.

    Keras reads KERAS_HOME (else ~/.keras, or /tmp/.keras when home is not
    writable) at import time (keras/src/backend/config.py), and get_file then
    falls back to /tmp/.keras when that folder is not writable
    (keras/src/utils/file_utils.py). This reads the environment at call time.
    """
    if "KERAS_HOME" in os.environ:
        keras_home = os.environ["KERAS_HOME"]
    else:
        base = os.path.expanduser("~")
        keras_home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    keras_home = os.path.expanduser(keras_home)
    if not os.access(keras_home, os.W_OK):
        keras_home = os.path.join("/tmp", ".keras")
    return Path(keras_home) / "datasets"


def _keras_cache(entry: str) -> Callable[[Request], Path]:
    """The place of one keras.datasets cache entry (mnist.npz, fashion-mnist/)."""
    return lambda request: _keras_datasets_dir() / entry


# --------------------------------------------------------------------------
# Tests of a place
# --------------------------------------------------------------------------

def _is_given(place: Any, request: Request) -> bool:
    return place is not None


def _is_folder(place: Any, request: Request) -> bool:
    return place is not None and place.is_dir()


def _is_file(place: Any, request: Request) -> bool:
    return place.is_file()


def _is_idx_folder(place: Any, request: Request) -> bool:
    return is_complete_idx_folder(place)


def _download_allowed(place: Any, request: Request) -> bool:
    return request.download


def _always(place: Any, request: Request) -> bool:
    return True


def _path_if_complete(place: Any) -> str | None:
    return str(place) if is_complete_idx_folder(place) else None


# --------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------

def _load_idx_folder(place: Any, request: Request) -> Dataset:
    return load_idx_folder(place, request.name)


def _load_keras_npz(place: Path, request: Request) -> Dataset:
    """Load the Keras mnist.npz cache file directly (no hash check, no network)."""
    try:
        with np.load(place, allow_pickle=False) as f:
            arrays = [f[key] for key in ("x_train", "y_train", "x_test", "y_test")]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DatasetError(
            f"Keras cache file {place} is unreadable ({exc}); delete it to re-download"
        ) from exc
    return Dataset(request.name, *arrays)


def _keras_loader(name: str) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """Default downloader: keras.datasets.<name>.load_data()."""
    import keras  # imported lazily: only needed when downloading

    loaders = {"mnist": keras.datasets.mnist.load_data,
               "fashion_mnist": keras.datasets.fashion_mnist.load_data}
    return loaders[name]()


def _download(place: None, request: Request) -> Dataset:
    """Fetch the dataset with the request's downloader under a bounded socket timeout."""
    downloader = request.downloader or _keras_loader
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        (x_train, y_train), (x_test, y_test) = downloader(request.name)
    except Exception as exc:  # any failure means the same thing to the user
        reason = f"could not be downloaded ({type(exc).__name__}: {exc})"
        raise _unavailable(request, f"is not available locally and {reason}") from exc
    finally:
        socket.setdefaulttimeout(previous)
    return Dataset(request.name, x_train, y_train, x_test, y_test)


def _generate(place: None, request: Request) -> Dataset:
    return make_synthetic(request.n_train or SYNTHETIC_TRAIN_SIZE,
                          request.n_test or SYNTHETIC_TEST_SIZE, request.seed)


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------

SOURCES: tuple[Source, ...] = (
    Source("data_dir", KERAS_DATASETS, where=_data_dir, applies=_is_given,
           load=_load_idx_folder, local=_path_if_complete),
    Source(KBENCH_DATA_DIR_ENV, KERAS_DATASETS, where=_env_folder, applies=_is_folder,
           load=_load_idx_folder, local=_path_if_complete),
    Source("system package", ("fashion_mnist",), where=_system_fashion_mnist,
           applies=_is_idx_folder, load=_load_idx_folder),
    Source("Keras cache", ("mnist",), where=_keras_cache("mnist.npz"), applies=_is_file,
           load=_load_keras_npz),
    Source("Keras cache", ("fashion_mnist",), where=_keras_cache("fashion-mnist"),
           applies=_is_idx_folder, load=_load_idx_folder),
    Source("Keras download", KERAS_DATASETS, where=None, applies=_download_allowed,
           load=_download),
    Source("bundled", ("mnist_5k",), where=lambda request: MNIST_5K_FOLDER, applies=_always,
           load=_load_idx_folder, local=lambda place: "bundled"),
    Source("generated", ("synthetic",), where=None, applies=_always, load=_generate,
           local=lambda place: "generated"),
)


def _serving(name: str) -> tuple[Source, ...]:
    return tuple(source for source in SOURCES if name in source.datasets)


def _resolve(request: Request) -> tuple[Source, Any] | None:
    """The first source that applies to request, and the place it reads; None if none does."""
    for source in _serving(request.name):
        place = source.place(request)
        if source.applies(place, request):
            return source, place
    return None


def _unavailable(request: Request, reason: str) -> DatasetError:
    looked = [text for source in _serving(request.name) if (text := source.looked(request))]
    return DatasetError(
        f"dataset {request.name!r} {reason} (looked in: {', '.join(looked)}). "
        f"To get it: {offline_hint(request.name)}"
    )


# --------------------------------------------------------------------------
# load_dataset and local_source
# --------------------------------------------------------------------------

def _check_count(field: str, value: Any) -> None:
    if value is not None:
        check_positive_int(field, value, error=DatasetError)


def _take_first(dataset: Dataset, n_train: int | None, n_test: int | None) -> Dataset:
    """Keep the first n_train / n_test records of each split (None keeps all)."""
    for field, value, available in (("n_train", n_train, len(dataset.x_train)),
                                    ("n_test", n_test, len(dataset.x_test))):
        if value is not None and value > available:
            raise DatasetError(f"{field}={value} exceeds the {available} records available")
    if n_train is None and n_test is None:
        return dataset
    return Dataset(dataset.name, dataset.x_train[:n_train], dataset.y_train[:n_train],
                   dataset.x_test[:n_test], dataset.y_test[:n_test])


def load_dataset(
    name: str,
    *,
    data_dir: Any = None,
    download: bool = True,
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    downloader: DataSource | None = None,
) -> Dataset:
    """Load one of kbench.workflows.DATASETS as a validated Dataset.

    mnist / fashion_mnist come from, in order (see SOURCES): data_dir (no
    fallback if it is wrong), $KBENCH_DATA_DIR/<name>/ if that folder exists,
    (fashion_mnist) the Debian package's SYSTEM_FASHION_MNIST_FOLDER, the Keras
    cache, and finally (if download) the Keras loader under a socket timeout.

    Args:
        name: "mnist", "fashion_mnist", "mnist_5k" (bundled) or "synthetic".
        data_dir: folder of the four IDX_FILES; only used by mnist/fashion_mnist.
        download: allow a network download when no local copy exists.
        seed: seed of the synthetic dataset (ignored by the others).
        n_train: keep the first n_train training records (synthetic: generate
            that many, default SYNTHETIC_TRAIN_SIZE).
        n_test: as n_train, for the test split (default SYNTHETIC_TEST_SIZE).
        downloader: seam for tests; callable(name) returning
            ((x_train, y_train), (x_test, y_test)); default keras.datasets.

    Returns:
        The Dataset.
    """
    check_choice("dataset", name, DATASETS, error=DatasetError)
    _check_count("n_train", n_train)
    _check_count("n_test", n_test)
    request = Request(name, data_dir=data_dir, download=download, seed=seed,
                      n_train=n_train, n_test=n_test, downloader=downloader)
    resolved = _resolve(request)
    if resolved is None:
        raise _unavailable(request, "is not available locally and download=False")
    source, place = resolved
    return _take_first(source.load(place, request), n_train, n_test)


def resolve_source(name: str, data_dir: Any = None, *,
                   download: bool = False) -> tuple[Source, Any] | None:
    """The row of SOURCES that load_dataset(name, data_dir=..., download=...) would read.

    Returns:
        (source, place): the place it reads (a folder or file; None for a
        download or the generator), or None when no source applies.
    """
    check_choice("dataset", name, DATASETS, error=DatasetError)
    return _resolve(Request(name, data_dir=data_dir, download=download))


def local_source(name: str, data_dir: Any = None) -> str | None:
    """Say where load_dataset(name, data_dir=...) would read from, without downloading.

    Args:
        name: one of kbench.workflows.DATASETS.
        data_dir: the data_dir that would be passed to load_dataset.

    Returns:
        "bundled" (mnist_5k), "generated" (synthetic), the path of a complete
        IDX folder or Keras cache file/folder, or None if the data would have
        to be downloaded (or cannot be had).
    """
    resolved = resolve_source(name, data_dir)
    if resolved is None:
        return None
    source, place = resolved
    return source.local(place)
