"""Tests for kbench.data.idx: IDX files, and folders of the four MNIST IDX files."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kbench.data import (
    IDX_FILES,
    KBENCH_DATA_DIR_ENV,
    Dataset,
    DatasetError,
    load_idx_folder,
    offline_hint,
    read_idx,
    save_idx_folder,
    write_idx,
)
from kbench.data.idx import find_idx_files, offline_hints
from kbench.data.sources import MNIST_5K_FOLDER
from kbench.testing import tiny_dataset

IDX_SETTINGS = settings(max_examples=40, deadline=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture])

# Standard MNIST IDX magic numbers (0x00000803 images, 0x00000801 labels).
MNIST_IMAGES_MAGIC = 2051
MNIST_LABELS_MAGIC = 2049
# A gzip member starts with a 10-byte header whose mtime/xfl/os bytes
# (4..9) are never checked; corruption from here on must be detected.
GZIP_HEADER_BYTES = 10


@pytest.fixture
def small() -> Dataset:
    return tiny_dataset(n_train=30, n_test=10)


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------

IDX_DTYPES = st.sampled_from(["u1", "i1", ">i2", "<i2", ">i4", "<i4", "<f4", ">f4", "<f8", ">f8"])


@IDX_SETTINGS
@given(
    array=IDX_DTYPES.flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    ),
    compress=st.booleans(),
)
def test_idx_round_trip(tmp_path_factory, array, compress):
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, array)
    result = read_idx(path)
    assert result.shape == array.shape
    assert result.dtype == array.dtype.newbyteorder("=")
    assert result.dtype.isnative
    # Bitwise comparison: NaN payloads and signed zeros must survive too.
    assert result.tobytes() == array.astype(result.dtype).tobytes()


def test_write_idx_uses_standard_mnist_header(tmp_path):
    write_idx(tmp_path / "images", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "labels", np.zeros(3, np.uint8))
    images, labels = (tmp_path / "images").read_bytes(), (tmp_path / "labels").read_bytes()
    assert int.from_bytes(images[:4], "big") == MNIST_IMAGES_MAGIC
    assert images[4:16] == bytes.fromhex("00000003" "0000001c" "0000001c")
    assert int.from_bytes(labels[:4], "big") == MNIST_LABELS_MAGIC


def test_write_idx_gzip_is_reproducible(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    payload = gzip.decompress((tmp_path / "a.gz").read_bytes())
    assert payload[4:] == (100).to_bytes(4, "big") + array.tobytes()


@pytest.mark.parametrize("array, match", [
    (np.zeros(3, np.int64), "int64"),
    (np.zeros(3, bool), "bool"),
    (np.zeros(3, np.complex64), "complex64"),
    (np.array(5, np.uint8), r"got shape \(\)"),
])
def test_write_idx_rejects_unstorable_arrays(tmp_path, array, match):
    with pytest.raises(DatasetError, match=match):
        write_idx(tmp_path / "x.idx", array)


def _valid_idx_bytes() -> bytes:
    header = bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    return header + bytes(range(256)) * 6 + bytes(2 * 28 * 28 - 256 * 6)


BAD_MAGIC = st.one_of(
    st.tuples(st.sampled_from([0, 1]), st.integers(1, 255)),          # leading bytes must be zero
    st.tuples(st.just(2), st.integers(0, 255).filter(lambda c: c not in (8, 9, 11, 12, 13, 14))),
    st.tuples(st.just(3), st.just(0)),                                 # zero dimensions
)


@IDX_SETTINGS
@given(corruption=BAD_MAGIC, compress=st.booleans())
def test_read_idx_rejects_bad_magic(tmp_path_factory, corruption, compress):
    index, value = corruption
    raw = bytearray(_valid_idx_bytes())
    raw[index] = value
    path = tmp_path_factory.mktemp("idx") / ("bad-magic.gz" if compress else "bad-magic")
    path.write_bytes(gzip.compress(bytes(raw)) if compress else bytes(raw))
    problem = "(bad magic number|unknown type code|declares 0 dimensions)"
    with pytest.raises(DatasetError, match=rf"{re.escape(path.name)}.*{problem}"):
        read_idx(path)


@IDX_SETTINGS
@given(cut=st.integers(0, len(_valid_idx_bytes()) - 1))
def test_read_idx_rejects_truncation(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("idx") / "truncated-idx3"
    path.write_bytes(_valid_idx_bytes()[:cut])
    problem = rf"(truncated header|truncated: .* need 1568 data bytes, got {max(cut - 16, 0)})"
    with pytest.raises(DatasetError, match=rf"{re.escape(path.name)}.*{problem}"):
        read_idx(path)


@IDX_SETTINGS
@given(trailing=st.binary(min_size=1, max_size=64), compress=st.booleans())
def test_read_idx_rejects_trailing_bytes(tmp_path_factory, trailing, compress):
    raw = _valid_idx_bytes() + trailing
    path = tmp_path_factory.mktemp("idx") / ("trailing.gz" if compress else "trailing")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    problem = rf"has trailing bytes.*need 1568 data bytes, got {1568 + len(trailing)}"
    with pytest.raises(DatasetError, match=rf"{re.escape(path.name)} {problem}"):
        read_idx(path)


@IDX_SETTINGS
@given(data_=st.data())
def test_read_idx_rejects_corrupted_gzip(tmp_path_factory, data_):
    compressed = bytearray(gzip.compress(_valid_idx_bytes(), mtime=0))
    kind = data_.draw(st.sampled_from(["flip", "truncate"]))
    index = data_.draw(st.integers(GZIP_HEADER_BYTES, len(compressed) - 1))
    if kind == "flip":
        compressed[index] ^= data_.draw(st.integers(1, 255))
    else:
        del compressed[index:]
    path = tmp_path_factory.mktemp("idx") / "corrupt-idx3-ubyte.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(DatasetError, match=re.escape(path.name)):
        read_idx(path)


def test_read_idx_missing_file_names_it(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere-idx1-ubyte\.gz does not exist"):
        read_idx(tmp_path / "nowhere-idx1-ubyte.gz")


# --------------------------------------------------------------------------
# IDX folders
# --------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False])
def test_load_idx_folder_round_trip(tmp_path, small, compress):
    save_idx_folder(small, tmp_path, compress=compress)
    suffix = ".gz" if compress else ""
    expected_names = [n.removesuffix(".gz") + suffix for n in IDX_FILES.values()]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected_names)
    np.testing.assert_equal(vars(load_idx_folder(tmp_path, name="mine")), vars(small) | {"name": "mine"})


def test_load_idx_folder_accepts_mixed_compression(tmp_path, small):
    save_idx_folder(small, tmp_path)
    gz = tmp_path / IDX_FILES["test_labels"]
    gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    np.testing.assert_equal(vars(load_idx_folder(tmp_path)), vars(small) | {"name": "idx"})


def test_load_idx_folder_missing_file_names_it_and_the_fix(tmp_path, small):
    save_idx_folder(small, tmp_path)
    (tmp_path / IDX_FILES["train_labels"]).unlink()
    pattern = rf"{re.escape(str(tmp_path))} is missing train-labels-idx1-ubyte\.gz;.*data_dir=.*{KBENCH_DATA_DIR_ENV}"
    with pytest.raises(DatasetError, match=pattern):
        load_idx_folder(tmp_path)


def test_load_idx_folder_missing_folder(tmp_path):
    pattern = rf"{re.escape(str(tmp_path / 'absent'))} does not exist or is not a folder; to get it: "
    with pytest.raises(DatasetError, match=pattern):
        load_idx_folder(tmp_path / "absent")


def test_load_idx_folder_reads_the_debian_package_layout(tmp_path, small):
    """dataset-fashion-mnist installs the four .gz names, gzipped with a real mtime (not 0)."""
    save_idx_folder(small, tmp_path)
    for name in IDX_FILES.values():
        path = tmp_path / name
        path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), mtime=1591347949))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(IDX_FILES.values())
    assert find_idx_files(tmp_path) == ({key: tmp_path / name for key, name in IDX_FILES.items()}, [])
    np.testing.assert_equal(vars(load_idx_folder(tmp_path, "fashion_mnist")),
                            vars(small) | {"name": "fashion_mnist"})


def test_find_idx_files_prefers_the_gz_name_and_lists_the_missing(tmp_path, small):
    save_idx_folder(small, tmp_path)
    save_idx_folder(small, tmp_path, compress=False)
    (tmp_path / IDX_FILES["test_labels"]).unlink()
    (tmp_path / IDX_FILES["test_images"]).unlink()
    (tmp_path / IDX_FILES["test_images"].removesuffix(".gz")).unlink()
    found, missing = find_idx_files(tmp_path)
    assert found == {"train_images": tmp_path / IDX_FILES["train_images"],
                     "train_labels": tmp_path / IDX_FILES["train_labels"],
                     "test_labels": tmp_path / "t10k-labels-idx1-ubyte"}
    assert missing == ["t10k-images-idx3-ubyte.gz"]


# --------------------------------------------------------------------------
# How to get a dataset
# --------------------------------------------------------------------------

def test_offline_hint_for_fashion_mnist_names_the_debian_package_the_folders_and_keras():
    hint = offline_hint("fashion_mnist")
    assert hint.startswith("apt-get install dataset-fashion-mnist (Debian/Ubuntu); put the four IDX files (")
    assert f"{KBENCH_DATA_DIR_ENV}=<dir> so that <dir>/fashion_mnist/ holds them" in hint
    assert hint.endswith("; or let Keras download it once into its cache "
                         "(keras.datasets.fashion_mnist.load_data(), as load_dataset does with download=True)")


def test_offline_hint_for_mnist_says_no_package_ships_it_and_names_the_keras_download():
    hints = offline_hints("mnist")
    assert hints[0] == "no Debian/Ubuntu package ships mnist"
    assert "keras.datasets.mnist.load_data()" in hints[-1]
    assert "apt-get" not in offline_hint("mnist")
    assert offline_hint("mnist") == "; ".join([*hints[:-1], f"or {hints[-1]}"])


def test_offline_hint_for_any_other_folder_is_the_files_alone():
    assert offline_hints("idx") == (
        f"put the four IDX files ({', '.join(IDX_FILES.values())}; gzip-compressed, or the same names "
        f"without .gz) in a folder and pass data_dir=<folder> (kbench run --data-dir), or set "
        f"{KBENCH_DATA_DIR_ENV}=<dir> so that <dir>/idx/ holds them",)
    assert offline_hint("idx") == offline_hints("idx")[0]


def test_load_idx_folder_rejects_mismatched_counts(tmp_path, small):
    save_idx_folder(small, tmp_path)
    write_idx(tmp_path / IDX_FILES["train_labels"], small.y_train[:-1])
    message = "train-labels-idx1-ubyte.gz has 29 labels but train-images-idx3-ubyte.gz has 30 images"
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_idx_folder(tmp_path)


@pytest.mark.parametrize("key, array, match", [
    ("test_images", np.zeros((10, 28, 27), np.uint8),
     r"t10k-images-idx3-ubyte\.gz must hold images of shape \(N, 28, 28\), got \(10, 28, 27\)"),
    ("test_labels", np.zeros((10, 2), np.uint8), r"t10k-labels-idx1-ubyte\.gz must hold 1-D labels .* got shape \(10, 2\)"),
    ("test_labels", np.full(10, 12, np.uint8), r"data folder .*: y_test labels .* max 12"),
])
def test_load_idx_folder_rejects_bad_contents(tmp_path, small, key, array, match):
    save_idx_folder(small, tmp_path)
    write_idx(tmp_path / IDX_FILES[key], array)
    with pytest.raises(DatasetError, match=match):
        load_idx_folder(tmp_path)


def test_bundled_files_have_standard_mnist_magic():
    for key, file_name in IDX_FILES.items():
        magic = int.from_bytes(gzip.decompress((MNIST_5K_FOLDER / file_name).read_bytes())[:4], "big")
        assert magic == (MNIST_IMAGES_MAGIC if key.endswith("images") else MNIST_LABELS_MAGIC), file_name

