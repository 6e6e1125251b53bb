"""Atomic writes: a failed or killed write never leaves a half-written file at its final name.

One mechanism for everything kbench writes: saved models (kbench.saving),
stored benchmark runs (kbench.results) and reports (kbench.report). Pure
standard library, no TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path


class NothingWrittenError(RuntimeError):
    """The block of :func:`atomic_write` finished without writing its temporary path."""


def _temporary_sibling(path: Path, suffix: str, tag: str = "tmp") -> Path:
    """A fresh hidden name in ``path``'s folder, still ending in ``suffix`` (Keras checks it)."""
    name = path.name
    stem = name[:-len(suffix)] if suffix and name.endswith(suffix) else name
    return path.with_name(f".{stem}.{tag}-{secrets.token_hex(4)}{suffix}")


def _fsync_path(path: Path, fsync: Callable[[int], None] = os.fsync) -> None:
    """Flush a file (or, where the OS allows, a directory entry) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # e.g. a folder on a system that cannot open one
    try:
        with contextlib.suppress(OSError):
            fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _replace_file(tmp: Path, path: Path, fsync: Callable[[int], None]) -> None:
    _fsync_path(tmp, fsync)
    os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    _fsync_path(path.parent)


def _replace_directory(tmp: Path, path: Path, fsync: Callable[[int], None]) -> None:
    """Swap a finished directory into place.

    A directory cannot be atomically replaced by rename(2), so the old one is
    renamed aside first: between the two renames (microseconds) ``path`` does
    not exist, and a kill in that window leaves the old version at
    ``.<name>.old-<hex>`` next to it. No version is ever half-written at ``path``.
    """
    if not path.exists():
        os.replace(tmp, path)
        return
    aside = _temporary_sibling(path, "", tag="old")
    os.replace(path, aside)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def atomic_write(path, *, suffix: str | None = None, directory: bool = False,
                 fsync: Callable[[int], None] = os.fsync) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    On any exception (KeyboardInterrupt included) the temporary is deleted and
    ``path`` is untouched. A kill leaves a stray ``.<name>.tmp-<hex><suffix>``
    behind, never a half-written ``path``. The folder is created if needed.

    Args:
        path: the file (or directory) to write.
        suffix: kept at the end of the temporary name; default ``path``'s last suffix.
        directory: the block writes a directory, swapped in by :func:`_replace_directory`.
        fsync: ``os.fsync``-like, applied to the finished file before the rename;
            a seam for tests.

    Raises:
        NothingWrittenError: the block wrote nothing at the temporary path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path, path.suffix if suffix is None else suffix)
    try:
        yield tmp
        if not tmp.exists():
            raise NothingWrittenError(
                f"the writer wrote nothing at {str(tmp)!r} (for {str(path)!r})")
        (_replace_directory if directory else _replace_file)(tmp, path, fsync)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_bytes(path, data: bytes, *, suffix: str = ".tmp",
                       fsync: Callable[[int], None] = os.fsync) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_write`; return ``path``.

    The temporary file ends in ``suffix`` (default ``.tmp``), so readers that
    glob for the final suffix (e.g. ``*.json``) never see a write in progress.
    It is created by ``open``, so it gets the process's usual file mode.
    """
    path = Path(path)
    with atomic_write(path, suffix=suffix, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return path
