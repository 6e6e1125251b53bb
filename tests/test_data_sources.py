"""Tests for kbench.data.sources: the source table, load_dataset, local_source, dataset_status.

Tests run as if offline, on no machine's data (:func:`make_offline`), except those
marked full_data, which read the real datasets where they are installed.
"""

from __future__ import annotations

import dataclasses
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
    PUBLISHED_CHECKSUMS,
    SOURCES,
    SYSTEM_FASHION_MNIST_FOLDER,
    Checksum,
    DataStatus,
    FileCheck,
    Source,
    dataset_status,
    known_checksums,
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



# --------------------------------------------------------------------------
# dataset_status: where it loads from, its size, its checksums
# --------------------------------------------------------------------------

def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def publish(monkeypatch, name: str, folder: Path, *, content: bool = True) -> dict[str, Checksum]:
    """Make the files now in folder the published ones of dataset name (their content too)."""
    checksums = {}
    for gz_name in IDX_FILES.values():
        raw = (folder / gz_name).read_bytes()
        checksums[gz_name] = Checksum("md5", md5_of(raw),
                                      md5_of(gzip.decompress(raw)) if content else None)
    monkeypatch.setitem(PUBLISHED_CHECKSUMS, name, checksums)
    return checksums


def statuses(status: DataStatus) -> dict[str, tuple[str, str]]:
    return {Path(check.path).name: (check.status, check.detail) for check in status.files}


def test_published_files_are_ok_with_their_size(offline, tmp_path, small, monkeypatch):
    folder = save_idx_folder(small, tmp_path / "mine")
    publish(monkeypatch, "fashion_mnist", folder)
    status = dataset_status("fashion_mnist", data_dir=folder)
    assert (status.source, status.place, status.status, status.hints) == ("data_dir", str(folder), "ok", ())
    assert status.size_bytes == sum(p.stat().st_size for p in folder.iterdir())
    assert set(statuses(status).values()) == {("ok", "md5 matches")}


def test_a_recompressed_archive_is_ok_by_its_content(offline, small, monkeypatch):
    system = save_idx_folder(small, sources.SYSTEM_FASHION_MNIST_FOLDER)
    publish(monkeypatch, "fashion_mnist", system)
    labels = system / IDX_FILES["train_labels"]
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes()), mtime=1591347949))
    status = dataset_status("fashion_mnist")
    assert (status.source, status.status) == ("system package", "ok")
    assert statuses(status)[labels.name] == (
        "ok", "decompressed content md5 matches (the archive was recompressed)")


def test_changed_content_is_a_mismatch_naming_the_file_and_both_hashes(offline, tmp_path, small,
                                                                       monkeypatch):
    folder = save_idx_folder(small, tmp_path / "mine")
    published = publish(monkeypatch, "mnist", folder)
    images = folder / IDX_FILES["test_images"]
    changed = gzip.decompress(images.read_bytes())[:-1] + b"\x01"
    images.write_bytes(gzip.compress(changed))
    status = dataset_status("mnist", data_dir=folder)
    assert status.status == "mismatch"
    assert statuses(status)[images.name] == (
        "mismatch", f"decompressed content md5 {md5_of(changed)}, "
                    f"published {published[images.name].content}")


def test_an_archive_without_a_published_content_checksum_must_match_itself(offline, tmp_path, small,
                                                                            monkeypatch):
    folder = save_idx_folder(small, tmp_path / "mine")
    published = publish(monkeypatch, "mnist", folder, content=False)
    labels = folder / IDX_FILES["train_labels"]
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes()), mtime=1))
    status = dataset_status("mnist", data_dir=folder)
    assert statuses(status)[labels.name] == (
        "mismatch", f"md5 {md5_of(labels.read_bytes())}, published {published[labels.name].file}")


def test_uncompressed_files_are_checked_by_content_where_it_is_published(offline, tmp_path, small,
                                                                         monkeypatch):
    gz_folder = save_idx_folder(small, tmp_path / "gz")
    folder = save_idx_folder(small, tmp_path / "raw", compress=False)
    publish(monkeypatch, "mnist", gz_folder)
    status = dataset_status("mnist", data_dir=folder)
    assert status.status == "ok"
    assert set(statuses(status).values()) == {("ok", "uncompressed file md5 matches")}
    publish(monkeypatch, "mnist", gz_folder, content=False)
    status = dataset_status("mnist", data_dir=folder)
    assert status.status == "not checked"
    assert set(statuses(status).values()) == {
        ("not checked", "uncompressed: no published checksum of the decompressed file")}


def test_missing_files_and_folders_say_which_and_how_to_get_them(offline, tmp_path, small):
    folder = save_idx_folder(small, tmp_path / "mine")
    (folder / IDX_FILES["train_images"]).unlink()
    status = dataset_status("fashion_mnist", data_dir=folder)
    assert status.status == "missing"
    [missing] = [check for check in status.files if check.status == "missing"]
    assert (missing.path, missing.status, missing.detail) == (
        str(folder / "train-images-idx3-ubyte.gz"), "missing", "not found (nor without .gz)")
    assert "apt-get install dataset-fashion-mnist (Debian/Ubuntu)" in status.hints
    absent = tmp_path / "absent"
    status = dataset_status("mnist", data_dir=absent)
    assert (status.source, status.status, status.size_bytes) == ("data_dir", "missing", 0)
    assert [(c.path, c.detail) for c in status.files] == [
        (str(absent), "does not exist or is not a folder")]


def test_a_corrupt_archive_is_a_mismatch(offline, tmp_path, small, monkeypatch):
    folder = save_idx_folder(small, tmp_path / "mine")
    publish(monkeypatch, "mnist", folder)
    labels = folder / IDX_FILES["test_labels"]
    labels.write_bytes(labels.read_bytes()[:20])
    status, detail = statuses(dataset_status("mnist", data_dir=folder))[labels.name]
    assert status == "mismatch" and detail.startswith("not a valid gzip stream: ")


def test_nothing_local_is_missing_with_the_download_and_the_hints(offline):
    status = dataset_status("mnist")
    assert (status.source, status.place, status.status, status.files) == (
        "Keras download", None, "missing", ())
    assert status.hints[0] == "no Debian/Ubuntu package ships mnist"
    assert "keras.datasets.mnist.load_data()" in status.hints[-1]


def test_the_keras_mnist_cache_is_checked_against_the_keras_file_hash(offline, small, monkeypatch):
    cache = offline / "datasets" / "mnist.npz"
    cache.parent.mkdir()
    np.savez(cache, x_train=small.x_train, y_train=small.y_train, x_test=small.x_test, y_test=small.y_test)
    sha256 = hashlib.sha256(cache.read_bytes()).hexdigest()
    published = PUBLISHED_CHECKSUMS["mnist"]["mnist.npz"].file
    status = dataset_status("mnist")
    assert (status.source, status.place, status.size_bytes) == ("Keras cache", str(cache),
                                                                cache.stat().st_size)
    assert statuses(status) == {"mnist.npz": ("mismatch", f"sha256 {sha256}, published {published}")}
    monkeypatch.setitem(PUBLISHED_CHECKSUMS, "mnist", {"mnist.npz": Checksum("sha256", sha256)})
    assert dataset_status("mnist").status == "ok"


def test_bundled_and_generated_datasets():
    assert known_checksums("mnist_5k") == {
        name: Checksum("sha256", sha256) for name, (_, sha256) in _readme_checksums().items()}
    bundled = dataset_status("mnist_5k")
    assert (bundled.source, bundled.place, bundled.status) == ("bundled", str(MNIST_5K_FOLDER), "ok")
    assert bundled.size_bytes == sum((MNIST_5K_FOLDER / name).stat().st_size for name in IDX_FILES.values())
    generated = dataset_status("synthetic")
    assert (generated.source, generated.place, generated.status) == ("generated", None, "not checked")
    assert known_checksums("synthetic") == {}


def test_published_checksums_cover_the_files_of_both_downloadable_datasets():
    for name in ("mnist", "fashion_mnist"):
        assert set(IDX_FILES.values()) <= set(PUBLISHED_CHECKSUMS[name])
        for checksum in PUBLISHED_CHECKSUMS[name].values():
            assert len(checksum.file) == hashlib.new(checksum.algorithm).digest_size * 2


@pytest.mark.parametrize("record, match", [
    (lambda: FileCheck("a.gz", "fine", ""), r"FileCheck 'a.gz': status must be one of .* got 'fine'"),
    (lambda: DataStatus("mnist", "x", None, 0, "OK", (), ()),
     r"DataStatus 'mnist': status must be one of .* got 'OK'"),
])
def test_status_records_validate_their_status(record, match):
    with pytest.raises(DatasetError, match=match):
        record()


def test_status_records_are_plain_data():
    status = dataset_status("mnist_5k")
    assert dataclasses.asdict(status)["files"][0]["status"] == "ok"


@pytest.mark.full_data
def test_the_installed_debian_package_holds_the_published_fashion_mnist():
    if not SYSTEM_FASHION_MNIST_FOLDER.is_dir():
        pytest.skip(f"{SYSTEM_FASHION_MNIST_FOLDER} is absent: apt-get install dataset-fashion-mnist")
    status = dataset_status("fashion_mnist", data_dir=SYSTEM_FASHION_MNIST_FOLDER)
    assert status.status == "ok", status.files
    ds = load_dataset("fashion_mnist", data_dir=SYSTEM_FASHION_MNIST_FOLDER)
    assert (ds.x_train.shape, ds.x_test.shape) == ((60000, *IMAGE_SHAPE), (10000, *IMAGE_SHAPE))
    np.testing.assert_array_equal(np.bincount(ds.y_test, minlength=NUM_CLASSES), [1000] * NUM_CLASSES)
