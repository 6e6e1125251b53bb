"""Are the files a dataset source reads the published ones? Checksums and dataset_status.

:data:`PUBLISHED_CHECKSUMS` holds the published digests (and where each comes
from); :func:`dataset_status` says where ``load_dataset`` would read a dataset
now (:func:`kbench.data.sources.resolve_source`), its size, and whether each
file matches. Files are hashed, never downloaded.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kbench._validate import check_choice
from kbench.data.idx import IDX_FILES, as_path, find_idx_files, offline_hints
from kbench.data.records import DatasetError
from kbench.data.sources import MNIST_5K_FOLDER, resolve_source

__all__ = ["CHECK_STATUSES", "PUBLISHED_CHECKSUMS", "Checksum", "DataStatus", "FileCheck",
           "dataset_status", "known_checksums"]

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
