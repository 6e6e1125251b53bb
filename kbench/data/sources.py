"""Where each dataset comes from: one ordered table of sources, read by load_dataset and local_source.

For a dataset name, the sources that serve it are tried in table order; the
first that applies is the only one tried, so a wrong ``data_dir`` is an error
rather than a silent fallback to other data. Adding a source (a system folder,
another cache) is adding a row to :data:`SOURCES`. :func:`resolve_source` says
which row would serve a request; :func:`dataset_status` also checks the files
it would read against :data:`PUBLISHED_CHECKSUMS`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import socket
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from kbench._validate import check_choice, check_positive_int, check_str
from kbench.data.idx import (
    IDX_FILES,
    KBENCH_DATA_DIR_ENV,
    KERAS_DATASETS,
    as_path,
    find_idx_files,
    is_complete_idx_folder,
    load_idx_folder,
    offline_hint,
    offline_hints,
)
from kbench.data.records import Dataset, DatasetError
from kbench.data.synthetic import SYNTHETIC_TEST_SIZE, SYNTHETIC_TRAIN_SIZE, make_synthetic
from kbench.workflows import DATASETS

__all__ = ["CHECK_STATUSES", "DOWNLOAD_TIMEOUT_S", "MNIST_5K_FOLDER", "PUBLISHED_CHECKSUMS",
           "SOURCES", "SYSTEM_FASHION_MNIST_FOLDER", "Checksum", "DataSource", "DataStatus",
           "FileCheck", "Request", "Source", "dataset_status", "known_checksums", "load_dataset",
           "local_source", "resolve_source"]

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


# --------------------------------------------------------------------------
# Checksums: are the files a source reads the published ones?
# --------------------------------------------------------------------------

# What a file check found, from best to worst; a dataset's status is its worst file's.
CHECK_STATUSES = ("ok", "not checked", "mismatch", "missing")
# Files are hashed in chunks of this size: 30 MB never sits in memory at once.
_HASH_CHUNK_BYTES = 1 << 20
# A row of the bundled dataset's README table: | file | records | sha256 |
_BUNDLED_README_ROW = re.compile(r"^\| (\S+\.gz) \| \d+ \| ([0-9a-f]{64}) \|$", re.MULTILINE)


@dataclass(frozen=True)
class Checksum:
    """The published digest of one file and, where published, of its decompressed content.

    Attributes:
        algorithm: a hashlib name, "md5" or "sha256".
        file: hex digest of the file as published (the .gz archive, mnist.npz).
        content: hex digest of the archive decompressed; None where no such
            value is published, so an uncompressed copy cannot be checked.
    """

    algorithm: str
    file: str
    content: str | None = None


def _idx_checksums(algorithm: str,
                   rows: Mapping[str, tuple[str, str | None]]) -> dict[str, Checksum]:
    """{IDX file name: Checksum} from {IDX_FILES key: (file digest, content digest)}."""
    return {IDX_FILES[key]: Checksum(algorithm, *digests) for key, digests in rows.items()}


# Sources, per dataset:
#   fashion_mnist .gz MD5s: the zalandoresearch/fashion-mnist README ("Get the Data").
#     Content MD5s: the label files' computed here from the archives in that repository
#     (whose MD5s match the README); the image files' (absent from the snapshot read) as
#     dataset loaders publish them beside the README's MD5s (e.g. `raw_data` lists of
#     torchvision-based FashionMNIST loaders). The Debian package dataset-fashion-mnist
#     recompressed the archives (gzip mtime 2020-06-05): its .gz MD5s differ from the
#     README's, its decompressed files match all four content MD5s.
#   mnist .gz MD5s: torchvision.datasets.MNIST.resources. Content MD5s: as several
#     loaders publish them (e.g. secml's MNIST loader); not verified here, no MNIST
#     files being on this machine.
#   mnist.npz SHA-256: the file_hash keras.datasets.mnist.load_data passes to get_file
#     (keras/src/datasets/mnist.py, Keras 3.15).
#   mnist_5k: the SHA-256s in its README, computed from the shipped files (known_checksums).
PUBLISHED_CHECKSUMS: Mapping[str, Mapping[str, Checksum]] = {
    "fashion_mnist": _idx_checksums("md5", {
        "train_images": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train_labels": ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
        "test_images": ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
        "test_labels": ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
    }),
    "mnist": {**_idx_checksums("md5", {
        "train_images": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
        "train_labels": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
        "test_images": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
        "test_labels": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
    }), "mnist.npz": Checksum(
        "sha256", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")},
}


@dataclass(frozen=True)
class FileCheck:
    """One file a source reads: its path, one of CHECK_STATUSES, and why (not naming the path)."""

    path: str
    status: str
    detail: str

    def __post_init__(self) -> None:
        check_choice("status", self.status, CHECK_STATUSES, error=DatasetError,
                     where=f"FileCheck {self.path!r}")


@dataclass(frozen=True)
class DataStatus:
    """Where a dataset would load from now, its size, whether its files match the published ones.

    Attributes:
        name: the dataset.
        source: the name of the row of SOURCES that would serve it ("Keras
            download" when nothing local applies).
        place: the folder or file that row reads; None for a download or the generator.
        size_bytes: the size of the files found there.
        status: the worst of its files' CHECK_STATUSES ("missing" when it would
            have to be downloaded, "not checked" when it is generated).
        files: the check of each file.
        hints: how to get it (idx.offline_hints), when it is missing.
    """

    name: str
    source: str
    place: str | None
    size_bytes: int
    status: str
    files: tuple[FileCheck, ...]
    hints: tuple[str, ...]

    def __post_init__(self) -> None:
        check_choice("status", self.status, CHECK_STATUSES, error=DatasetError,
                     where=f"DataStatus {self.name!r}")


def known_checksums(name: str) -> Mapping[str, Checksum]:
    """The checksums of dataset name's files, by file name (empty: none are known)."""
    if name == "mnist_5k":
        readme = (MNIST_5K_FOLDER / "README.md").read_text()
        return {file: Checksum("sha256", sha256)
                for file, sha256 in _BUNDLED_README_ROW.findall(readme)}
    return PUBLISHED_CHECKSUMS.get(name, {})


def _digest(path: Any, algorithm: str, *, decompress: bool = False) -> str:
    """Hex digest of a file (or of its gzip content), read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if decompress else raw
        for chunk in iter(lambda: stream.read(_HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_content(path: Any, checksum: Checksum, compressed: bool) -> FileCheck:
    """Check the decompressed content of path (the file itself if not compressed)."""
    what = "decompressed content" if compressed else "uncompressed file"
    try:
        got = _digest(path, checksum.algorithm, decompress=compressed)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        return FileCheck(str(path), "mismatch", f"not a valid gzip stream: {exc}")
    if got == checksum.content:
        note = " (the archive was recompressed)" if compressed else ""
        return FileCheck(str(path), "ok", f"{what} {checksum.algorithm} matches{note}")
    return FileCheck(str(path), "mismatch",
                     f"{what} {checksum.algorithm} {got}, published {checksum.content}")


def _check_file(path: Any, checksum: Checksum | None, published_name: str) -> FileCheck:
    """Compare one file with its published checksum: the file's, else its content's.

    A file named as published (train-images-idx3-ubyte.gz, mnist.npz) must match the
    file's digest or, an archive, its content's; an uncompressed copy of an archive
    (train-images-idx3-ubyte) can only match the content's.
    """
    try:
        return _compare(path, checksum, as_published=path.name == published_name)
    except OSError as exc:  # unreadable: as good as missing to load_dataset
        return FileCheck(str(path), "missing", f"unreadable: {exc}")


def _compare(path: Any, checksum: Checksum | None, *, as_published: bool) -> FileCheck:
    if checksum is None:
        return FileCheck(str(path), "not checked", "no published checksum")
    compressed = as_published and path.name.endswith(".gz")
    if as_published:
        got = _digest(path, checksum.algorithm)
        if got == checksum.file:
            return FileCheck(str(path), "ok", f"{checksum.algorithm} matches")
        if checksum.content is None:
            return FileCheck(str(path), "mismatch",
                             f"{checksum.algorithm} {got}, published {checksum.file}")
    elif checksum.content is None:
        return FileCheck(str(path), "not checked",
                         "uncompressed: no published checksum of the decompressed file")
    return _check_content(path, checksum, compressed)


def _size(path: Any) -> int:
    return path.stat().st_size if hasattr(path, "stat") else len(path.read_bytes())


def _check_place(place: Any, known: Mapping[str, Checksum]) -> tuple[tuple[FileCheck, ...], int]:
    """The checks of the files at place (an IDX folder, or a known file) and their total size."""
    if place.is_file() and place.name in known:
        return (_check_file(place, known[place.name], place.name),), _size(place)
    if not place.is_dir():
        return (FileCheck(str(place), "missing", "does not exist or is not a folder"),), 0
    found, missing = find_idx_files(place)
    checks = [FileCheck(str(place / name), "missing", "not found (nor without .gz)")
              for name in missing]
    checks += [_check_file(path, known.get(IDX_FILES[key]), IDX_FILES[key])
               for key, path in found.items()]
    return tuple(checks), sum(_size(path) for path in found.values())


def _worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=CHECK_STATUSES.index, default="ok")


def dataset_status(name: str, data_dir: Any = None) -> DataStatus:
    """Where load_dataset(name, data_dir=...) would read now; are those the published files?

    Reads (and hashes) the files, never downloads.

    Args:
        name: one of kbench.workflows.DATASETS.
        data_dir: the data_dir that would be passed to load_dataset.
    """
    local = resolve_source(name, data_dir)
    if local is None:
        resolved = resolve_source(name, data_dir, download=True)
        source = resolved[0].name if resolved else "none"
        return DataStatus(name, source, None, 0, "missing", (), offline_hints(name))
    source, place = local
    if place is None:
        return DataStatus(name, source.name, None, 0, "not checked", (), ())
    files, size = _check_place(as_path(place), known_checksums(name))
    status = _worst(check.status for check in files)
    return DataStatus(name, source.name, str(place), size, status, files,
                      offline_hints(name) if status == "missing" else ())
