"""IDX files (the MNIST file format) and folders of the four MNIST IDX files.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the elements in
big-endian order. MNIST and Fashion-MNIST ship as four gzip-compressed IDX files.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from kbench.data.records import IMAGE_SHAPE, Dataset, DatasetError

__all__ = ["IDX_FILES", "KBENCH_DATA_DIR_ENV", "KERAS_DATASETS", "SYSTEM_PACKAGES",
           "find_idx_files", "load_idx_folder", "offline_hint", "offline_hints", "read_idx",
           "save_idx_folder", "write_idx"]

# The four files of the classic MNIST layout, shared by Fashion-MNIST.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# Environment variable naming a folder whose <name>/ subfolders hold IDX files.
KBENCH_DATA_DIR_ENV = "KBENCH_DATA_DIR"
# The datasets keras.datasets can download, also read from IDX folders (data_dir,
# $KBENCH_DATA_DIR/<name>/).
KERAS_DATASETS = ("mnist", "fashion_mnist")
# Debian/Ubuntu packages that install a dataset's four IDX files (the folder they
# install into is a row of kbench.data.sources.SOURCES). No package ships MNIST.
SYSTEM_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}

# IDX type codes (third magic byte) -> big-endian element dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# Magic: two zero bytes, the type code, the number of dimensions.
_IDX_MAGIC_BYTES = 4
# Each dimension follows the magic as a big-endian uint32.
_IDX_DIM_BYTES = 4
_GZIP_SUFFIX = ".gz"


def as_path(path: Any) -> Any:
    """Return a pathlib.Path for str/PathLike, or the object itself for Traversables."""
    if isinstance(path, (str, os.PathLike)):
        return Path(path)
    return path


def _is_gzip_name(path: Any) -> bool:
    return str(path).endswith(_GZIP_SUFFIX)


def _uncompressed_name(gz_name: str) -> str:
    return gz_name[: -len(_GZIP_SUFFIX)]


def _read_idx_bytes(path: Any) -> bytes:
    """Read a file's raw IDX bytes, decompressing when the name ends in .gz."""
    if not path.is_file():
        raise DatasetError(f"IDX file {path} does not exist")
    raw = path.read_bytes()
    if not _is_gzip_name(path):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"IDX file {path} is not a valid gzip stream (corrupted or truncated): {exc}"
        ) from exc


def _parse_idx_header(raw: bytes, path: Any) -> tuple[np.dtype, tuple[int, ...], int]:
    """Return (dtype, dims, header length) from IDX bytes, rejecting bad magic."""
    if len(raw) < _IDX_MAGIC_BYTES:
        raise DatasetError(
            f"IDX file {path} has a truncated header: {len(raw)} bytes, "
            f"need at least {_IDX_MAGIC_BYTES}"
        )
    zero0, zero1, code, ndim = raw[:_IDX_MAGIC_BYTES]
    if zero0 or zero1:
        raise DatasetError(
            f"IDX file {path} has bad magic number 0x{raw[:_IDX_MAGIC_BYTES].hex()}: "
            "the first two bytes must be zero (is it an IDX file?)"
        )
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DatasetError(
            f"IDX file {path} has unknown type code 0x{code:02X}; expected one of {known}"
        )
    if ndim == 0:
        raise DatasetError(f"IDX file {path} declares 0 dimensions; need at least 1")
    header_len = _IDX_MAGIC_BYTES + _IDX_DIM_BYTES * ndim
    if len(raw) < header_len:
        raise DatasetError(
            f"IDX file {path} has a truncated header: {len(raw)} bytes, "
            f"but {ndim} dimensions need {header_len}"
        )
    dims = struct.unpack(f">{ndim}I", raw[_IDX_MAGIC_BYTES:header_len])
    return _IDX_DTYPES[code], dims, header_len


def read_idx(path: Any) -> np.ndarray:
    """Read an IDX file (gzip-compressed when the name ends in .gz) into an array.

    Args:
        path: file path (str, PathLike or importlib.resources Traversable).

    Returns:
        A native-byte-order array with the file's dtype and dimensions.
    """
    path = as_path(path)
    raw = _read_idx_bytes(path)
    dtype, dims, header_len = _parse_idx_header(raw, path)
    count = math.prod(dims)
    expected = count * dtype.itemsize
    actual = len(raw) - header_len
    if actual != expected:
        problem = "is truncated" if actual < expected else "has trailing bytes"
        raise DatasetError(
            f"IDX file {path} {problem}: dims {dims} of {dtype.name} need "
            f"{expected} data bytes, got {actual}"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header_len)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def _idx_type_code(dtype: np.dtype) -> int:
    """Return the IDX type code for a numpy dtype of any byte order."""
    for code, idx_dtype in _IDX_DTYPES.items():
        if dtype.kind == idx_dtype.kind and dtype.itemsize == idx_dtype.itemsize:
            return code
    supported = ", ".join(d.name for d in _IDX_DTYPES.values())
    raise DatasetError(f"IDX cannot store dtype {dtype}; supported: {supported}")


def write_idx(path: Any, array: Any) -> None:
    """Write an array as an IDX file, gzip-compressed when the name ends in .gz.

    Args:
        path: destination file; its parent folder must exist.
        array: array of at least one dimension, dtype uint8, int8, int16,
            int32, float32 or float64.
    """
    array = np.asarray(array)
    if array.ndim == 0:
        raise DatasetError(f"IDX needs an array of at least 1 dimension, got shape {array.shape}")
    code = _idx_type_code(array.dtype)
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(_IDX_DTYPES[code]).tobytes()
    if _is_gzip_name(path):
        # mtime=0 makes the output byte-for-byte reproducible.
        payload = gzip.compress(payload, mtime=0)
    Path(path).write_bytes(payload)


# --------------------------------------------------------------------------
# Folders of the four IDX files
# --------------------------------------------------------------------------

def offline_hints(name: str) -> tuple[str, ...]:
    """The ways to get dataset name onto this machine, one clause each."""
    files = ", ".join(IDX_FILES.values())
    hints = []
    if name in SYSTEM_PACKAGES:
        hints.append(f"apt-get install {SYSTEM_PACKAGES[name]} (Debian/Ubuntu)")
    elif name in KERAS_DATASETS:
        hints.append(f"no Debian/Ubuntu package ships {name}")
    hints.append(
        f"put the four IDX files ({files}; gzip-compressed, or the same names "
        f"without .gz) in a folder and pass data_dir=<folder> (kbench run --data-dir), "
        f"or set {KBENCH_DATA_DIR_ENV}=<dir> so that <dir>/{name}/ holds them"
    )
    if name in KERAS_DATASETS:
        hints.append(f"let Keras download it once into its cache (keras.datasets.{name}"
                     ".load_data(), as load_dataset does with download=True)")
    return tuple(hints)


def offline_hint(name: str) -> str:
    """How to provide dataset name without a network: :func:`offline_hints` as one clause."""
    *others, last = offline_hints(name)
    return "; ".join([*others, f"or {last}" if others else last])


def find_idx_files(folder: Any) -> tuple[dict[str, Any], list[str]]:
    """Return ({IDX_FILES key: file}, [missing .gz names]) for the four IDX files in folder.

    Each file is found under its .gz name or, failing that, the same name without .gz.
    """
    found, missing = {}, []
    for key, gz_name in IDX_FILES.items():
        candidates = [folder / gz_name, folder / _uncompressed_name(gz_name)]
        present = [c for c in candidates if c.is_file()]
        if present:
            found[key] = present[0]
        else:
            missing.append(gz_name)
    return found, missing


def is_complete_idx_folder(folder: Any) -> bool:
    """True if folder exists and holds all four IDX_FILES (each .gz or not)."""
    return folder.is_dir() and not find_idx_files(folder)[1]


def _check_split_files(
    images: np.ndarray, labels: np.ndarray, image_file: Any, label_file: Any
) -> None:
    """Check one split's image and label files agree with each other and MNIST's layout."""
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DatasetError(
            f"{image_file} must hold images of shape (N, 28, 28), got {images.shape}"
        )
    if labels.ndim != 1:
        raise DatasetError(f"{label_file} must hold 1-D labels (N,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(
            f"{label_file.name} has {len(labels)} labels but {image_file.name} "
            f"has {len(images)} images"
        )


def load_idx_folder(folder: Any, name: str = "idx") -> Dataset:
    """Load a Dataset from a folder holding the four IDX_FILES.

    Args:
        folder: folder (str, PathLike or Traversable) with the files, either
            with their .gz names or the same names without .gz.
        name: name of the returned Dataset.

    Returns:
        The validated Dataset.
    """
    folder = as_path(folder)
    if not folder.is_dir():
        raise DatasetError(f"data folder {folder} does not exist or is not a folder; "
                           f"to get it: {offline_hint(name)}")
    files, missing = find_idx_files(folder)
    if missing:
        raise DatasetError(
            f"data folder {folder} is missing {', '.join(missing)}; to get it: {offline_hint(name)}"
        )
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        _check_split_files(
            arrays[f"{split}_images"], arrays[f"{split}_labels"],
            files[f"{split}_images"], files[f"{split}_labels"],
        )
    try:
        return Dataset(name, arrays["train_images"], arrays["train_labels"],
                       arrays["test_images"], arrays["test_labels"])
    except DatasetError as exc:
        raise DatasetError(f"data folder {folder}: {exc}") from exc


def save_idx_folder(dataset: Dataset, folder: Any, *, compress: bool = True) -> Path:
    """Write a Dataset as the four IDX files into folder (created if needed).

    Args:
        dataset: the Dataset to write; images must be uint8 (N, 28, 28).
        folder: destination folder.
        compress: write the .gz names (gzip) if True, else uncompressed names.

    Returns:
        The folder as a Path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": dataset.x_train, "train_labels": dataset.y_train,
        "test_images": dataset.x_test, "test_labels": dataset.y_test,
    }
    for key, gz_name in IDX_FILES.items():
        file_name = gz_name if compress else _uncompressed_name(gz_name)
        write_idx(folder / file_name, arrays[key])
    return folder

