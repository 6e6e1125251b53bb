"""Tests for kbench.data.sources: the source table, load_dataset, local_source
(dataset_status and the checksums: tests/test_data_checksums.py).

Tests run as if offline, on no machine's data (:func:`make_offline`), except those
marked full_data, which read the real datasets where they are installed.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import socket
from pathlib import Path

import numpy as np
import pytest

from kbench.data import (
    DOWNLOAD_TIMEOUT_S,
    IDX_FILES,
    IMAGE_SHAPE,
    KBENCH_DATA_DIR_ENV,
    NUM_CLASSES,
    Dataset,
    DatasetError,
    load_dataset,
    local_source,
    save_idx_folder,
)
from kbench.data import sources
from kbench.data.sources import (
    MNIST_5K_FOLDER,
    SOURCES,
    SYSTEM_FASHION_MNIST_FOLDER,
    Source,
    resolve_source,
)
from kbench.data.synthetic import make_synthetic
from kbench.testing import tiny_dataset
from kbench.workflows import DATASETS


def _readme_checksums() -> dict[str, tuple[int, str]]:
    """Parse {file: (records, sha256)} from the bundled README table."""
    text = (MNIST_5K_FOLDER / "README.md").read_text()
    rows = re.findall(r"^\| (\S+\.gz) \| (\d+) \| ([0-9a-f]{64}) \|$", text, flags=re.MULTILINE)
    return {name: (int(records), sha) for name, records, sha in rows}


@pytest.fixture
def small() -> Dataset:
    return tiny_dataset(n_train=30, n_test=10)


def make_offline(monkeypatch, tmp_path) -> Path:
    """No KBENCH_DATA_DIR, no system package, an empty Keras home; returns the Keras home.

    The system package's folder becomes ``tmp_path/system``, absent until a test fills it.
    """
    keras_home = tmp_path / "keras_home"
    keras_home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.delenv(KBENCH_DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(sources, "SYSTEM_FASHION_MNIST_FOLDER", tmp_path / "system")
    return keras_home


@pytest.fixture
def offline(monkeypatch, tmp_path) -> Path:
    return make_offline(monkeypatch, tmp_path)


# --------------------------------------------------------------------------
# The source table
# --------------------------------------------------------------------------

def test_every_dataset_has_a_source():
    assert {name for source in SOURCES for name in source.datasets} == set(DATASETS)


@pytest.mark.parametrize("datasets, match", [
    (("cifar10",), r"Source 'mine': dataset must be one of .* got 'cifar10'"),
    ((), r"Source 'mine': datasets must be a non-empty tuple, got \(\)"),
    (["mnist"], r"Source 'mine': datasets must be a non-empty tuple, got \['mnist'\]"),
])
def test_source_validates_on_construction(datasets, match):
    with pytest.raises(DatasetError, match=match):
        Source("mine", datasets, where=None, applies=lambda place, request: True,
               load=lambda place, request: None)


def test_the_system_package_serves_fashion_mnist_after_the_user_folders_before_keras(
    offline, tmp_path, small, monkeypatch
):
    system = sources.SYSTEM_FASHION_MNIST_FOLDER
    assert SYSTEM_FASHION_MNIST_FOLDER == Path("/usr/share/datasets/fashion-mnist")
    order = [source.name for source in SOURCES if "fashion_mnist" in source.datasets]
    assert order == ["data_dir", KBENCH_DATA_DIR_ENV, "system package", "Keras cache",
                     "Keras download"]
    looked = (rf"{KBENCH_DATA_DIR_ENV} is unset, system package {re.escape(str(system))}, "
              "Keras cache ")
    with pytest.raises(DatasetError, match=looked):
        load_dataset("fashion_mnist", download=False)
    with pytest.raises(DatasetError, match=r"looked in: [^)]*\)") as mnist_error:
        load_dataset("mnist", download=False)
    assert "system package" not in str(mnist_error.value)
    assert local_source("fashion_mnist") is None
    save_idx_folder(small, system)
    save_idx_folder(tiny_dataset(seed=1, n_train=30, n_test=10), offline / "datasets" / "fashion-mnist")
    assert local_source("fashion_mnist") == str(system)
    np.testing.assert_equal(vars(load_dataset("fashion_mnist", download=False)),
                            vars(small) | {"name": "fashion_mnist"})
    # The user's folders still come first.
    other = save_idx_folder(tiny_dataset(seed=2, n_train=30, n_test=10), tmp_path / "env" / "fashion_mnist")
    monkeypatch.setenv(KBENCH_DATA_DIR_ENV, str(tmp_path / "env"))
    assert local_source("fashion_mnist") == str(other)
    assert local_source("fashion_mnist", data_dir=tmp_path / "mine") is None


def test_an_incomplete_system_folder_falls_through_to_the_keras_cache(offline, small):
    system = sources.SYSTEM_FASHION_MNIST_FOLDER
    save_idx_folder(small, system)
    (system / IDX_FILES["test_labels"]).unlink()
    cache = save_idx_folder(small, offline / "datasets" / "fashion-mnist")
    assert local_source("fashion_mnist") == str(cache)


def test_resolve_source_names_the_row_and_the_place_local_source_reports(offline, tmp_path, small):
    folder = save_idx_folder(small, tmp_path / "mine")
    source, place = resolve_source("fashion_mnist", folder)
    assert (source.name, place) == ("data_dir", folder)
    assert resolve_source("mnist") is None
    source, place = resolve_source("mnist", download=True)
    assert (source.name, place) == ("Keras download", None)
    source, place = resolve_source("mnist_5k")
    assert (source.name, place, local_source("mnist_5k")) == ("bundled", MNIST_5K_FOLDER, "bundled")
    with pytest.raises(DatasetError, match="got 'cifar10'"):
        resolve_source("cifar10")


def test_synthetic_is_generated():
    assert local_source("synthetic") == "generated"
    np.testing.assert_equal(vars(load_dataset("synthetic", seed=2)), vars(make_synthetic(seed=2)))
    np.testing.assert_equal(vars(load_dataset("synthetic", seed=2, n_train=50, n_test=20)),
                            vars(make_synthetic(50, 20, seed=2)))


# --------------------------------------------------------------------------
# Bundled mnist_5k
# --------------------------------------------------------------------------

def test_bundled_files_match_readme_checksums():
    checksums = _readme_checksums()
    assert sorted(checksums) == sorted(IDX_FILES.values())
    for file_name, (records, sha256) in checksums.items():
        raw = (MNIST_5K_FOLDER / file_name).read_bytes()
        assert hashlib.sha256(raw).hexdigest() == sha256, file_name
        assert int.from_bytes(gzip.decompress(raw)[4:8], "big") == records, file_name


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
    ({"n_train": 0}, "n_train must be a positive int, got 0"),
    ({"n_test": -1}, "n_test must be a positive int, got -1"),
    ({"n_train": 1.5}, "n_train must be a positive int, got 1.5"),
    ({"n_train": True}, "n_train must be a positive int, got True"),
    ({"n_train": 4001}, "n_train=4001 exceeds the 4000 records available"),
    ({"n_test": 1001}, "n_test=1001 exceeds the 1000 records available"),
])
def test_bad_record_counts_are_rejected(kwargs, match):
    with pytest.raises(DatasetError, match=match):
        load_dataset("mnist_5k", **kwargs)


def test_unknown_dataset_name_lists_valid_names():
    message = f"dataset must be one of {DATASETS}, got 'mnits'"
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
    other = tiny_dataset(seed=1, n_train=30, n_test=10)
    save_idx_folder(other, tmp_path / "env" / name)
    monkeypatch.setenv(KBENCH_DATA_DIR_ENV, str(tmp_path / "env"))
    folder = save_idx_folder(small, tmp_path / "explicit")
    loaded = load_dataset(name, data_dir=folder, downloader=FakeDownloader(error=AssertionError("no")))
    np.testing.assert_equal(vars(loaded), vars(small) | {"name": name})
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
    np.testing.assert_equal(vars(load_dataset(name, download=False)), vars(small) | {"name": name})


def test_kbench_data_dir_without_the_subfolder_falls_through(offline, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv(KBENCH_DATA_DIR_ENV, str(tmp_path / "data"))
    assert local_source("mnist") is None
    with pytest.raises(DatasetError, match=rf"{KBENCH_DATA_DIR_ENV} {re.escape(str(tmp_path / 'data' / 'mnist'))}"):
        load_dataset("mnist", download=False)


def test_keras_mnist_cache_is_read_without_network(offline, small):
    cache = offline / "datasets" / "mnist.npz"
    cache.parent.mkdir()
    np.savez(cache, x_train=small.x_train, y_train=small.y_train, x_test=small.x_test, y_test=small.y_test)
    assert local_source("mnist") == str(cache)
    fake = FakeDownloader(error=AssertionError("must not download"))
    np.testing.assert_equal(vars(load_dataset("mnist", downloader=fake)), vars(small) | {"name": "mnist"})
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
    np.testing.assert_equal(vars(load_dataset("fashion_mnist", download=False)),
                            vars(small) | {"name": "fashion_mnist"})


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
