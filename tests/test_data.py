"""Tests for kbench.data: IDX files, dataset sources, synthetic data, tf.data pipelines."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import re
import socket
import time
from importlib import resources

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kbench import data
from kbench.data import (
    AUTOTUNE,
    DOWNLOAD_TIMEOUT_S,
    IDX_FILES,
    IMAGE_SHAPE,
    KBENCH_DATA_DIR_ENV,
    NUM_CLASSES,
    Dataset,
    DatasetError,
    PipelineOptions,
    load_dataset,
    load_idx_folder,
    local_source,
    make_pipeline,
    make_splits,
    read_idx,
    save_idx_folder,
    to_arrays,
    validate_arrays,
    write_idx,
)

# tf.data pipelines take tens of milliseconds each to build and iterate, so
# property tests draw few examples and have no per-example deadline.
PIPELINE_SETTINGS = settings(max_examples=20, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])
IDX_SETTINGS = settings(max_examples=40, deadline=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture])

# Standard MNIST IDX magic numbers (0x00000803 images, 0x00000801 labels).
MNIST_IMAGES_MAGIC = 2051
MNIST_LABELS_MAGIC = 2049
# A gzip member starts with a 10-byte header whose mtime/xfl/os bytes
# (4..9) are never checked; corruption from here on must be detected.
GZIP_HEADER_BYTES = 10
# Nearest-centroid test accuracy on synthetic (seeds 0-2, default sizes)
# measured 1.000; 0.95 leaves margin for noise while a dataset whose labels
# do not depend on the image scores ~0.10.
SYNTHETIC_CENTROID_ACCURACY_MIN = 0.95
# preprocess_cost=200 on 64 samples measured 12-18x the process CPU time of
# cost 0 (0.18-0.20 s vs 0.011-0.015 s, 2 shared cores); requiring 4x keeps
# a 3x margin yet fails if the work is optimised away (ratio ~1).
COST_FOR_TIMING = 200
COST_SLOWDOWN_MIN = 4.0
TIMING_REPEATS = 3


def _bundled_dir():
    return resources.files("kbench") / "datasets" / "mnist_5k"


def _readme_checksums() -> dict[str, tuple[int, str]]:
    """Parse {file: (records, sha256)} from the bundled README table."""
    text = (_bundled_dir() / "README.md").read_text()
    rows = re.findall(r"^\| (\S+\.gz) \| (\d+) \| ([0-9a-f]{64}) \|$", text, flags=re.MULTILINE)
    return {name: (int(records), sha) for name, records, sha in rows}


def assert_same_dataset(actual: Dataset, expected: Dataset) -> None:
    """Assert two datasets hold identical arrays (names may differ)."""
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(actual, field), getattr(expected, field), err_msg=field)


@pytest.fixture
def small() -> Dataset:
    return load_dataset("synthetic", n_train=30, n_test=10)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No KBENCH_DATA_DIR and an empty Keras home; returns the Keras home."""
    keras_home = tmp_path / "keras_home"
    keras_home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.delenv(KBENCH_DATA_DIR_ENV, raising=False)
    return keras_home


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
# validate_arrays and Dataset
# --------------------------------------------------------------------------

def _images(n: int, dtype=np.uint8) -> np.ndarray:
    return np.zeros((n, *IMAGE_SHAPE), dtype)


def _nan_images() -> np.ndarray:
    x = _images(4, np.float32)
    x[1, 2, 3] = np.nan
    x[2, 0, 0] = np.inf
    return x


@pytest.mark.parametrize("x, y, match", [
    (np.zeros((5, 27, 28), np.uint8), np.zeros(5, int), r"x_train must have shape \(N, 28, 28\).*got \(5, 27, 28\)"),
    (np.zeros((5, 784), np.uint8), np.zeros(5, int), r"got \(5, 784\)"),
    (np.zeros((5, 28, 28, 3), np.uint8), np.zeros(5, int), r"got \(5, 28, 28, 3\)"),
    (np.full((2, 28, 28), "a"), np.zeros(2, int), r"integer or float dtype, got <U1"),
    (_images(5), np.zeros(4, int), r"x_train has 5 images but y_train has 4 labels"),
    (_images(0), np.zeros(0, int), r"x_train is empty"),
    (_images(5), np.zeros((5, 1), int), r"y_train must be 1-D .* got \(5, 1\)"),
    (_images(5), np.zeros(5, np.float32), r"y_train must have an integer dtype, got float32"),
    (_images(5), np.array([0, 1, 2, 10, 3]), r"got min 0 and max 10; the first bad label is 10 at index 3"),
    (_images(5), np.array([0, -1, 2, 3, 4]), r"got min -1 and max 4; the first bad label is -1 at index 1"),
    (_nan_images(), np.zeros(4, int), r"x_train has 2 non-finite values .* first is nan at index \(1, 2, 3\)"),
])
def test_validate_arrays_rejects_bad_inputs(x, y, match):
    with pytest.raises(DatasetError, match=match):
        validate_arrays(x, y)


def test_validate_arrays_names_the_split_and_respects_num_classes():
    with pytest.raises(ValueError, match=r"y_test labels must be in \[0, 10\)"):
        validate_arrays(_images(2), np.array([0, 10]), split="test")
    validate_arrays(_images(2), np.array([0, 10]), num_classes=11)


@pytest.mark.parametrize("x", [_images(3), _images(3, np.float64), np.zeros((3, 28, 28, 1), np.float32)])
def test_validate_arrays_accepts_well_formed_inputs(x):
    validate_arrays(x, np.array([0, 5, 9]))


def test_dataset_validates_both_splits_and_is_read_only(small):
    with pytest.raises(DatasetError, match=r"x_test must have shape .* got \(10, 28, 27\)"):
        Dataset("bad", small.x_train, small.y_train, np.zeros((10, 28, 27), np.uint8), small.y_test)
    with pytest.raises(DatasetError, match="Dataset name must be a non-empty str, got ''"):
        Dataset("", small.x_train, small.y_train, small.x_test, small.y_test)
    with pytest.raises(ValueError, match="read-only"):
        small.x_train[0, 0, 0] = 1


# --------------------------------------------------------------------------
# IDX folders
# --------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False])
def test_load_idx_folder_round_trip(tmp_path, small, compress):
    save_idx_folder(small, tmp_path, compress=compress)
    suffix = ".gz" if compress else ""
    expected_names = [n.removesuffix(".gz") + suffix for n in IDX_FILES.values()]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected_names)
    loaded = load_idx_folder(tmp_path, name="mine")
    assert loaded.name == "mine"
    assert_same_dataset(loaded, small)


def test_load_idx_folder_accepts_mixed_compression(tmp_path, small):
    save_idx_folder(small, tmp_path)
    gz = tmp_path / IDX_FILES["test_labels"]
    gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    assert_same_dataset(load_idx_folder(tmp_path), small)


def test_load_idx_folder_missing_file_names_it_and_the_fix(tmp_path, small):
    save_idx_folder(small, tmp_path)
    (tmp_path / IDX_FILES["train_labels"]).unlink()
    pattern = rf"{re.escape(str(tmp_path))} is missing train-labels-idx1-ubyte\.gz;.*data_dir=.*{KBENCH_DATA_DIR_ENV}"
    with pytest.raises(DatasetError, match=pattern):
        load_idx_folder(tmp_path)


def test_load_idx_folder_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=rf"{re.escape(str(tmp_path / 'absent'))} does not exist"):
        load_idx_folder(tmp_path / "absent")


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


# --------------------------------------------------------------------------
# Bundled mnist_5k
# --------------------------------------------------------------------------

def test_bundled_files_match_readme_checksums():
    checksums = _readme_checksums()
    assert sorted(checksums) == sorted(IDX_FILES.values())
    for file_name, (records, sha256) in checksums.items():
        raw = (_bundled_dir() / file_name).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == sha256, file_name
        assert int.from_bytes(gzip.decompress(raw)[4:8], "big") == records, file_name


def test_bundled_files_have_standard_mnist_magic():
    for key, file_name in IDX_FILES.items():
        magic = int.from_bytes(gzip.decompress((_bundled_dir() / file_name).read_bytes())[:4], "big")
        assert magic == (MNIST_IMAGES_MAGIC if key.endswith("images") else MNIST_LABELS_MAGIC), file_name


def test_mnist_5k_loads_real_stratified_digits():
    ds = load_dataset("mnist_5k")
    checksums = _readme_checksums()
    assert ds.name == "mnist_5k"
    assert ds.x_train.shape == (checksums[IDX_FILES["train_images"]][0], *IMAGE_SHAPE) == (4000, 28, 28)
    assert ds.x_test.shape == (checksums[IDX_FILES["test_images"]][0], *IMAGE_SHAPE) == (1000, 28, 28)
    assert ds.x_train.dtype == ds.x_test.dtype == np.uint8
    # README: 500 per class, split stratified 4:1.
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=NUM_CLASSES), [400] * NUM_CLASSES)
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=NUM_CLASSES), [100] * NUM_CLASSES)
    # Real digits: dark background, bright strokes, full uint8 range.
    assert ds.x_train.min() == 0 and ds.x_train.max() == 255
    assert local_source("mnist_5k") == "bundled"


def test_n_train_and_n_test_take_the_first_records():
    full = load_dataset("mnist_5k")
    part = load_dataset("mnist_5k", n_train=7, n_test=3)
    np.testing.assert_array_equal(part.x_train, full.x_train[:7])
    np.testing.assert_array_equal(part.y_test, full.y_test[:3])
    assert (len(part.x_train), len(part.x_test)) == (7, 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_train": 0}, "n_train must be None or a positive int, got 0"),
    ({"n_test": -1}, "n_test must be None or a positive int, got -1"),
    ({"n_train": 1.5}, "n_train must be None or a positive int, got 1.5"),
    ({"n_train": True}, "n_train must be None or a positive int, got True"),
    ({"n_train": 4001}, "n_train=4001 exceeds the 4000 records available"),
    ({"n_test": 1001}, "n_test=1001 exceeds the 1000 records available"),
])
def test_bad_record_counts_are_rejected(kwargs, match):
    with pytest.raises(DatasetError, match=match):
        load_dataset("mnist_5k", **kwargs)


def test_unknown_dataset_name_lists_valid_names():
    message = "unknown dataset 'mnits'; valid names: mnist, fashion_mnist, mnist_5k, synthetic"
    with pytest.raises(DatasetError, match=re.escape(message)):
        load_dataset("mnits")
    with pytest.raises(DatasetError, match="'cifar10'"):
        local_source("cifar10")


# --------------------------------------------------------------------------
# mnist / fashion_mnist sources, offline
# --------------------------------------------------------------------------

class FakeDownloader:
    """Downloader seam: records calls and the socket timeout in force, then fails or returns data."""

    def __init__(self, result=None, error=None):
        self.result, self.error = result, error
        self.calls, self.timeouts = [], []

    def __call__(self, name):
        self.calls.append(name)
        self.timeouts.append(socket.getdefaulttimeout())
        if self.error is not None:
            raise self.error
        return self.result


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_data_dir_is_used_first(offline, tmp_path, small, name, monkeypatch):
    other = load_dataset("synthetic", seed=1, n_train=30, n_test=10)
    save_idx_folder(other, tmp_path / "env" / name)
    monkeypatch.setenv(KBENCH_DATA_DIR_ENV, str(tmp_path / "env"))
    folder = save_idx_folder(small, tmp_path / "explicit")
    loaded = load_dataset(name, data_dir=folder, downloader=FakeDownloader(error=AssertionError("no")))
    assert loaded.name == name
    assert_same_dataset(loaded, small)
    assert local_source(name, data_dir=folder) == str(folder)


def test_wrong_data_dir_is_an_error_without_fallback(offline, tmp_path, small, monkeypatch):
    save_idx_folder(small, tmp_path / "env" / "mnist")
    monkeypatch.setenv(KBENCH_DATA_DIR_ENV, str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()
    fake = FakeDownloader(error=AssertionError("must not download"))
    with pytest.raises(DatasetError, match=r"empty is missing train-images-idx3-ubyte\.gz, train-labels"):
        load_dataset("mnist", data_dir=tmp_path / "empty", downloader=fake)
    assert fake.calls == []
    assert local_source("mnist", data_dir=tmp_path / "empty") is None


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_kbench_data_dir_env_is_used(offline, tmp_path, small, monkeypatch, name):
    save_idx_folder(small, tmp_path / "data" / name, compress=False)
    monkeypatch.setenv(KBENCH_DATA_DIR_ENV, str(tmp_path / "data"))
    assert local_source(name) == str(tmp_path / "data" / name)
    assert_same_dataset(load_dataset(name, download=False), small)


def test_kbench_data_dir_without_the_subfolder_falls_through(offline, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv(KBENCH_DATA_DIR_ENV, str(tmp_path / "data"))
    assert local_source("mnist") is None
    with pytest.raises(DatasetError, match=rf"{KBENCH_DATA_DIR_ENV}='{re.escape(str(tmp_path / 'data'))}'"):
        load_dataset("mnist", download=False)


def test_keras_mnist_cache_is_read_without_network(offline, small):
    cache = offline / "datasets" / "mnist.npz"
    cache.parent.mkdir()
    np.savez(cache, x_train=small.x_train, y_train=small.y_train, x_test=small.x_test, y_test=small.y_test)
    assert local_source("mnist") == str(cache)
    fake = FakeDownloader(error=AssertionError("must not download"))
    assert_same_dataset(load_dataset("mnist", downloader=fake), small)
    assert fake.calls == []


def test_unreadable_keras_mnist_cache_says_so(offline):
    cache = offline / "datasets" / "mnist.npz"
    cache.parent.mkdir()
    cache.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match=rf"Keras cache file {re.escape(str(cache))} is unreadable"):
        load_dataset("mnist", download=False)


def test_keras_fashion_cache_is_read_without_network(offline, small):
    folder = save_idx_folder(small, offline / "datasets" / "fashion-mnist")
    assert local_source("fashion_mnist") == str(folder)
    assert_same_dataset(load_dataset("fashion_mnist", download=False), small)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_no_local_data_and_no_download_explains_how_to_provide_it(offline, name):
    fake = FakeDownloader(error=AssertionError("must not download"))
    assert local_source(name) is None
    pattern = (rf"'{name}' is not available locally and download=False.*{KBENCH_DATA_DIR_ENV} is unset.*"
               rf"train-images-idx3-ubyte\.gz.*data_dir=.*{KBENCH_DATA_DIR_ENV}=<dir> so that <dir>/{name}/")
    with pytest.raises(DatasetError, match=pattern):
        load_dataset(name, download=False, downloader=fake)
    assert fake.calls == []


def test_failed_download_explains_reason_and_offline_fix(offline):
    fake = FakeDownloader(error=OSError("Network is unreachable"))
    before = socket.getdefaulttimeout()
    pattern = (r"'mnist' is not available locally and could not be downloaded "
               r"\(OSError: Network is unreachable\)"
               rf".*t10k-labels-idx1-ubyte\.gz.*data_dir=.*{KBENCH_DATA_DIR_ENV}")
    with pytest.raises(DatasetError, match=pattern):
        load_dataset("mnist", downloader=fake)
    assert fake.calls == ["mnist"]
    assert fake.timeouts == [DOWNLOAD_TIMEOUT_S]
    assert socket.getdefaulttimeout() == before


def test_successful_download_is_validated_and_trimmed(offline, small):
    arrays = ((small.x_train, small.y_train), (small.x_test, small.y_test))
    loaded = load_dataset("fashion_mnist", downloader=FakeDownloader(result=arrays), n_train=5)
    assert loaded.name == "fashion_mnist"
    np.testing.assert_array_equal(loaded.x_train, small.x_train[:5])
    bad = ((small.x_train, small.y_train + 10), (small.x_test, small.y_test))
    with pytest.raises(DatasetError, match="y_train labels"):
        load_dataset("mnist", downloader=FakeDownloader(result=bad))


@pytest.mark.full_data
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_full_dataset_shapes(name):
    if local_source(name) is None:
        pytest.skip(f"{name} not available locally: set {KBENCH_DATA_DIR_ENV} or fill the Keras cache")
    ds = load_dataset(name, download=False)
    assert ds.x_train.shape == (60000, *IMAGE_SHAPE)
    assert ds.x_test.shape == (10000, *IMAGE_SHAPE)
    assert set(np.unique(ds.y_train)) == set(range(NUM_CLASSES))


# --------------------------------------------------------------------------
# synthetic
# --------------------------------------------------------------------------

def test_synthetic_is_deterministic_per_seed():
    a, b = load_dataset("synthetic", seed=3), load_dataset("synthetic", seed=3)
    assert_same_dataset(a, b)
    c = load_dataset("synthetic", seed=4)
    assert not np.array_equal(a.x_train, c.x_train)
    assert (a.x_train.shape, a.x_test.shape) == ((4000, 28, 28), (1000, 28, 28))
    assert a.x_train.dtype == np.uint8
    assert local_source("synthetic") == "generated"


def test_synthetic_sizes_are_independent_streams():
    a = load_dataset("synthetic", n_train=100, n_test=20)
    b = load_dataset("synthetic", n_train=200, n_test=20)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    counts = np.bincount(b.y_train, minlength=NUM_CLASSES)
    assert counts.max() - counts.min() <= 1


def test_synthetic_is_learnable():
    x_train, y_train, x_test, y_test = to_arrays(load_dataset("synthetic", seed=0))
    flat_train, flat_test = x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)
    centroids = np.stack([flat_train[y_train == c].mean(axis=0) for c in range(NUM_CLASSES)])
    distances = ((flat_test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    accuracy = float((distances.argmin(axis=1) == y_test).mean())
    assert accuracy > SYNTHETIC_CENTROID_ACCURACY_MIN


@pytest.mark.parametrize("seed", [-1, 1.0, "0"])
def test_synthetic_rejects_bad_seed(seed):
    with pytest.raises(DatasetError, match=re.escape(f"seed must be a non-negative int, got {seed!r}")):
        load_dataset("synthetic", seed=seed)


# --------------------------------------------------------------------------
# tf.data pipelines
# --------------------------------------------------------------------------

def _indexed_arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose pixel (0, 0) is the record index; labels index % 10."""
    images = np.random.default_rng(n).integers(0, 256, size=(n, *IMAGE_SHAPE), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n)
    return images, (np.arange(n) % NUM_CLASSES).astype(np.uint8)


def _run(pipeline) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Return (record indices in order seen, labels, batch sizes) for normalised indexed images."""
    # Seeded with empty arrays: drop_remainder can leave no batch at all.
    indices, labels, sizes = [np.zeros(0, int)], [np.zeros(0, np.int32)], []
    for images, batch_labels in pipeline:
        indices.append(np.rint(images.numpy()[:, 0, 0] * data.PIXEL_MAX).astype(int))
        labels.append(batch_labels.numpy())
        sizes.append(len(batch_labels))
    return np.concatenate(indices), np.concatenate(labels), sizes


TUNING = dict(
    prefetch=st.sampled_from([None, 1, AUTOTUNE]),
    cache=st.booleans(),
    map_parallelism=st.sampled_from([None, 2, AUTOTUNE]),
)


@PIPELINE_SETTINGS
@given(
    n=st.integers(1, 50),
    batch_size=st.integers(1, 16),
    shuffle=st.booleans(),
    shuffle_seed=st.integers(0, 2**31 - 1),
    shuffle_buffer=st.none() | st.integers(1, 64),
    drop_remainder=st.booleans(),
    tuning=st.fixed_dictionaries(TUNING),
)
def test_pipeline_tuning_never_changes_the_examples(
    n, batch_size, shuffle, shuffle_seed, shuffle_buffer, drop_remainder, tuning
):
    x, y = _indexed_arrays(n)
    base = PipelineOptions(batch_size=batch_size, shuffle=shuffle, shuffle_seed=shuffle_seed,
                           shuffle_buffer=shuffle_buffer, drop_remainder=drop_remainder)
    indices, labels, sizes = _run(make_pipeline(x, y, dataclasses.replace(base, **tuning)))
    kept = n // batch_size * batch_size if drop_remainder else n
    assert sum(sizes) == len(indices) == kept
    assert all(size == batch_size for size in sizes[:-1])
    if drop_remainder:
        assert set(sizes) <= {batch_size}
    assert len(set(indices.tolist())) == kept
    np.testing.assert_array_equal(labels, indices % NUM_CLASSES)
    if shuffle:
        np.testing.assert_array_equal(indices, _run(make_pipeline(x, y, base))[0])
    else:
        np.testing.assert_array_equal(indices, np.arange(kept))
    if not drop_remainder:
        np.testing.assert_array_equal(np.sort(indices), np.arange(n))


@PIPELINE_SETTINGS
@given(n=st.integers(1, 40), batch_size=st.integers(1, 16), shuffle=st.booleans(),
       cache=st.booleans(), prefetch=st.sampled_from([None, AUTOTUNE]))
def test_repeat_streams_every_example_without_epoch_gaps(n, batch_size, shuffle, cache, prefetch):
    assume(batch_size <= n)
    x, y = _indexed_arrays(n)
    options = PipelineOptions(batch_size=batch_size, shuffle=shuffle, cache=cache,
                              prefetch=prefetch, repeat=True, drop_remainder=True)
    epochs = 3
    steps = epochs * n // batch_size
    indices, labels, sizes = _run(make_pipeline(x, y, options).take(steps))
    assert sizes == [batch_size] * steps, "repeat before batching: every batch is full"
    np.testing.assert_array_equal(labels, indices % NUM_CLASSES)
    if shuffle:
        # A shuffle buffer of size B over the repeated stream can only emit
        # what it has read: after L outputs it has read L + B - 1 records, so
        # every prefix of the output is a sub-multiset of that stream prefix
        # (an example may wait in the buffer across epochs, so there is no
        # lower bound on how often each appears).
        buffer = n
        stream = np.tile(np.arange(n), epochs + 2)
        emitted = np.zeros(n, dtype=int)
        for position, index in enumerate(indices):
            emitted[index] += 1
            readable = np.bincount(stream[:position + buffer], minlength=n)
            assert (emitted <= readable).all(), (position, emitted, readable)
    else:
        np.testing.assert_array_equal(indices, np.tile(np.arange(n), epochs)[:len(indices)])


def test_shuffle_reshuffles_each_epoch_and_depends_on_seed():
    x, y = _indexed_arrays(50)
    pipeline = make_pipeline(x, y, PipelineOptions(batch_size=8, shuffle_seed=1))
    first, second = _run(pipeline)[0], _run(pipeline)[0]
    other_seed = _run(make_pipeline(x, y, PipelineOptions(batch_size=8, shuffle_seed=2)))[0]
    # 50! orders: equal orders here would mean shuffling is broken.
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, other_seed)
    np.testing.assert_array_equal(np.sort(first), np.arange(50))


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("channel_axis", [True, False])
@pytest.mark.parametrize("input_channels", [False, True])
def test_pipeline_shapes_dtypes_and_values(small, normalize, channel_axis, input_channels):
    x = small.x_train[..., None] if input_channels else small.x_train
    options = PipelineOptions(batch_size=8, normalize=normalize, channel_axis=channel_axis, shuffle=False)
    batches = list(make_pipeline(x, small.y_train, options))
    images = np.concatenate([b[0].numpy() for b in batches])
    assert batches[0][0].dtype.name == "float32" and batches[0][1].dtype.name == "int32"
    assert batches[0][0].shape == ((8, 28, 28, 1) if channel_axis else (8, 28, 28))
    expected = to_arrays(small, normalize=normalize, channel_axis=channel_axis)[0]
    assert expected.dtype == np.float32 and expected.shape == images.shape
    np.testing.assert_array_equal(images, expected)
    assert images.max() <= (1.0 if normalize else data.PIXEL_MAX)
    assert images.max() > (0.5 if normalize else 1.0)


@pytest.mark.parametrize("cost", [1, 7])
@pytest.mark.parametrize("normalize", [True, False])
def test_preprocess_cost_leaves_values_unchanged(small, cost, normalize):
    plain = PipelineOptions(batch_size=8, shuffle=False, normalize=normalize)
    costly = dataclasses.replace(plain, preprocess_cost=cost, map_parallelism=2)
    for (a, la), (b, lb) in zip(make_pipeline(small.x_train, small.y_train, plain),
                                make_pipeline(small.x_train, small.y_train, costly), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())


def _cpu_seconds_per_epoch(pipeline) -> float:
    """Best-of-N process CPU time to iterate pipeline once, after a warm-up pass."""
    for _ in pipeline:
        pass
    samples = []
    for _ in range(TIMING_REPEATS):
        start = time.process_time()
        for _ in pipeline:
            pass
        samples.append(time.process_time() - start)
    return min(samples)


def test_preprocess_cost_is_real_cpu_work():
    x, y = _indexed_arrays(64)
    cheap = _cpu_seconds_per_epoch(make_pipeline(x, y, PipelineOptions(shuffle=False)))
    options = PipelineOptions(shuffle=False, preprocess_cost=COST_FOR_TIMING)
    costly = _cpu_seconds_per_epoch(make_pipeline(x, y, options))
    assert costly > COST_SLOWDOWN_MIN * cheap, (cheap, costly)


def test_make_splits_shuffles_train_only():
    ds = Dataset("indexed", *_indexed_arrays(50), *_indexed_arrays(40))
    train, test = make_splits(ds, PipelineOptions(batch_size=16, shuffle_seed=5))
    train_indices, _, _ = _run(train)
    test_indices, _, test_sizes = _run(test)
    assert not np.array_equal(train_indices, np.arange(50))
    np.testing.assert_array_equal(np.sort(train_indices), np.arange(50))
    np.testing.assert_array_equal(test_indices, np.arange(40))
    assert test_sizes == [16, 16, 8]


def test_make_pipeline_validates_arrays(small):
    with pytest.raises(DatasetError, match=r"y_test labels must be in \[0, 10\), got min 11 and max 20"):
        make_pipeline(small.x_test, small.y_test + 11, PipelineOptions(), split="test")


@pytest.mark.parametrize("field, value, match", [
    ("batch_size", 0, "batch_size must be a positive int, got 0"),
    ("batch_size", -3, "batch_size must be a positive int, got -3"),
    ("batch_size", "8", "batch_size must be a positive int, got '8'"),
    ("batch_size", 8.0, "batch_size must be a positive int, got 8.0"),
    ("prefetch", 0, "prefetch must be None or an int >= 1 or 'autotune', got 0"),
    ("prefetch", "fast", "prefetch must be None or an int >= 1 or 'autotune', got 'fast'"),
    ("map_parallelism", -1, "map_parallelism must be None or an int >= 1 or 'autotune', got -1"),
    ("map_parallelism", True, "map_parallelism must be .* got True"),
    ("preprocess_cost", -1, "preprocess_cost must be an int >= 0, got -1"),
    ("shuffle_buffer", 0, "shuffle_buffer must be None or an int >= 1, got 0"),
    ("shuffle_seed", -2, "shuffle_seed must be an int >= 0, got -2"),
    ("normalize", 1, "normalize must be a bool, got 1"),
    ("drop_remainder", "yes", "drop_remainder must be a bool, got 'yes'"),
    ("repeat", 1, "repeat must be a bool, got 1"),
])
def test_pipeline_options_reject_bad_values(field, value, match):
    with pytest.raises(ValueError, match=re.escape(match) if ".*" not in match else match):
        PipelineOptions(**{field: value})
