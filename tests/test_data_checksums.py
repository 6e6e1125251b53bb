"""Tests for kbench.data.checksums: the published checksums, dataset_status (where a
dataset loads from, its size, its files checked).

As in tests/test_data_sources.py, tests run as if offline (its ``offline``
fixture), except those marked full_data, which read the real datasets where
they are installed.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
from test_data_sources import _readme_checksums, offline, small  # noqa: F401 (fixtures)

from kbench.data import (
    IDX_FILES,
    IMAGE_SHAPE,
    NUM_CLASSES,
    DatasetError,
    load_dataset,
    save_idx_folder,
)
from kbench.data import sources
from kbench.data.checksums import (
    PUBLISHED_CHECKSUMS,
    Checksum,
    DataStatus,
    FileCheck,
    dataset_status,
    known_checksums,
)
from kbench.data.sources import MNIST_5K_FOLDER, SYSTEM_FASHION_MNIST_FOLDER


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
