"""Tests for kbench._files: atomic writes of files and directories."""

import os

import pytest

from kbench import _files


def current_umask() -> int:
    umask = os.umask(0o022)  # the only way to read the umask is to set it
    os.umask(umask)
    return umask


def interrupt(fd):
    raise KeyboardInterrupt


def test_atomic_write_bytes_writes_with_the_usual_file_mode_and_leaves_nothing_else(tmp_path):
    path = _files.atomic_write_bytes(tmp_path / "new" / "run.json", b"{}")
    assert path.read_bytes() == b"{}"
    assert os.listdir(path.parent) == ["run.json"]
    # Readable like any file open() creates (a mkstemp temporary would be 0600).
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()


def test_an_interrupted_replace_keeps_the_old_bytes_and_no_temporary(tmp_path):
    path = _files.atomic_write_bytes(tmp_path / "run.json", b"old")
    with pytest.raises(KeyboardInterrupt):
        _files.atomic_write_bytes(path, b"new", fsync=interrupt)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["run.json"]


def test_the_temporary_keeps_the_suffix_and_is_removed_on_error(tmp_path):
    target = tmp_path / "best.weights.h5"
    with pytest.raises(ValueError, match="boom"):
        with _files.atomic_write(target, suffix=".weights.h5") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".best.tmp-")
            assert tmp.name.endswith(".weights.h5")
            tmp.write_bytes(b"partial")
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_block_that_writes_nothing_is_an_error_naming_the_target(tmp_path):
    target = tmp_path / "model.keras"
    with pytest.raises(_files.NothingWrittenError, match=r"wrote nothing .*model\.keras"):
        with _files.atomic_write(target):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_directory_is_swapped_in_whole(tmp_path):
    target = tmp_path / "export"
    for version in ("1", "2"):
        with _files.atomic_write(target, suffix="", directory=True) as tmp:
            tmp.mkdir()
            (tmp / "saved_model.pb").write_text(version)
    assert (target / "saved_model.pb").read_text() == "2"
    assert os.listdir(tmp_path) == ["export"]  # no old version or temporary left
