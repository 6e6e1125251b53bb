"""Model formats as data, and the atomic :func:`save` and checked :func:`load` over them.

:data:`FORMATS` maps a name to a :class:`Format` record (suffix, writer, reader,
what a load gives back). :func:`save` infers the format from the path's
suffix, writes to a temporary name in the same folder and renames it into
place only when the write succeeded, so an exception or a kill mid-save leaves
the previous file as it was. :func:`load` checks the file first (exists, right
kind of content, complete archive) and turns any failure into a
:class:`LoadError` that names the file and the cause.
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import keras
import tensorflow as tf

from kbench import _files
from kbench.saving import checkpoints, workarounds


class SaveError(ValueError):
    """A save kbench refuses before writing anything (unknown format, wrong suffix)."""


class LoadError(ValueError):
    """A file kbench could not load; the message names the file and the cause."""

    def __init__(self, path, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"cannot load {self.path!r}: {cause}")


class MissingFileError(LoadError, FileNotFoundError):
    """The file or directory to load does not exist."""


# --------------------------------------------------------------------------- formats


@dataclasses.dataclass(frozen=True)
class Format:
    """One way to put a model on disk.

    Attributes:
        name: its key in FORMATS.
        suffix: what the path ends with; "" is a directory without a suffix,
            as SavedModel export directories are (``export/1``).
        directory: the format is a directory rather than one file.
        whole_model: ``load`` rebuilds the model from the file; otherwise it
            loads into a built model passed as ``model=``.
        restores_optimizer: ``load`` gives back the optimizer state (whole-model
            formats with compile=True; the others into a compiled ``model``).
        restores_rng: ``load`` gives back the dropout random state.
        kbench_atomic: ``save`` writes a temporary and renames it into place;
            False where the format's own writer already does (tf.train.CheckpointManager).
        write: ``write(model, path)`` writes the format at ``path``.
        read: ``read(path, *, model, compile, custom_objects)`` returns the loaded
            model (a ``tf.saved_model.load`` object for SavedModel).
        check: ``check(path)`` raises LoadError if ``path`` cannot be this format.
    """

    name: str
    suffix: str
    directory: bool
    whole_model: bool
    restores_optimizer: bool
    restores_rng: bool
    kbench_atomic: bool
    write: Callable[[keras.Model, Path], None] = dataclasses.field(repr=False)
    read: Callable[..., Any] = dataclasses.field(repr=False)
    check: Callable[[Path], None] = dataclasses.field(repr=False)


# Leading bytes of the file formats: .keras files are zip archives, .h5 and
# .weights.h5 files HDF5.
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_CONTENT_KINDS = ((ZIP_MAGIC, "a zip archive, as .keras files are"),
                  (HDF5_MAGIC, "an HDF5 file, as .h5 and .weights.h5 files are"))


def _write_model(model: keras.Model, path: Path) -> None:
    model.save(path)  # Keras picks .keras or legacy HDF5 from the suffix


def _write_weights(model: keras.Model, path: Path) -> None:
    model.save_weights(path)


def _write_savedmodel(model: keras.Model, path: Path) -> None:
    model.export(path, format="tf_saved_model",
                 input_signature=workarounds.serving_signature(model), verbose=False)


def _write_checkpoint(model: keras.Model, directory: Path) -> None:
    manager = checkpoints.checkpoint_manager(checkpoints.make_checkpoint(model), directory)
    manager.save(checkpoint_number=checkpoints.checkpoint_number(manager.latest_checkpoint) + 1)


def _read_weights(path: Path, *, model, **_) -> keras.Model:
    if getattr(model, "optimizer", None) is not None:
        # Keras saves the optimizer's variables with the weights.
        checkpoints.build_optimizer(model)
    model.load_weights(path)
    return model


def _read_savedmodel(path: Path, **_):
    return tf.saved_model.load(str(path))


def _read_checkpoint(path: Path, *, model, **_) -> keras.Model:
    checkpoints.restore_latest(checkpoints.make_checkpoint(model), path)
    return model


def _check_content(path: Path, magic: bytes) -> None:
    """Raise LoadError unless the file starts with ``magic``, saying what it looks like instead."""
    with open(path, "rb") as f:
        head = f.read(len(magic))
    if head == magic:
        return
    kind = next((text for m, text in _CONTENT_KINDS
                 if head and (head.startswith(m) or m.startswith(head))), None)
    found = kind or ("an empty file" if not head else f"unrecognised content starting {head!r}")
    raise LoadError(path, f"the suffix says {path.name!r} holds {dict(_CONTENT_KINDS)[magic]}, "
                          f"but it is {found}: wrong extension, or not a model file")


def _check_keras_file(path: Path) -> None:
    _check_content(path, ZIP_MAGIC)
    try:
        with zipfile.ZipFile(path) as archive:
            bad_member = archive.testzip()
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise LoadError(path, f"truncated or corrupted zip archive ({err})") from err
    if bad_member is not None:
        raise LoadError(path, f"corrupted zip archive: member {bad_member!r} fails its CRC check")


def _check_hdf5_file(path: Path) -> None:
    _check_content(path, HDF5_MAGIC)


def _check_savedmodel_dir(path: Path) -> None:
    if not (path / "saved_model.pb").is_file():
        raise LoadError(path, "not a SavedModel directory: it has no saved_model.pb")


def _check_checkpoint_dir(path: Path) -> None:
    if tf.train.latest_checkpoint(str(path)) is None:
        raise LoadError(path, "no checkpoint in this directory (no 'checkpoint' index file "
                              "naming a complete checkpoint)")


FORMATS: Mapping[str, Format] = MappingProxyType({
    fmt.name: fmt for fmt in (
        Format("keras", ".keras", directory=False, whole_model=True, restores_optimizer=True,
               restores_rng=False, kbench_atomic=True, write=_write_model,
               read=workarounds.read_keras, check=_check_keras_file),
        Format("h5", ".h5", directory=False, whole_model=True, restores_optimizer=True,
               restores_rng=False, kbench_atomic=True, write=_write_model,
               read=workarounds.read_h5, check=_check_hdf5_file),
        Format("weights", ".weights.h5", directory=False, whole_model=False,
               restores_optimizer=True, restores_rng=False, kbench_atomic=True,
               write=_write_weights, read=_read_weights, check=_check_hdf5_file),
        Format("savedmodel", "", directory=True, whole_model=True, restores_optimizer=False,
               restores_rng=False, kbench_atomic=True, write=_write_savedmodel,
               read=_read_savedmodel, check=_check_savedmodel_dir),
        Format("checkpoint", ".ckpt", directory=True, whole_model=False, restores_optimizer=True,
               restores_rng=True, kbench_atomic=False, write=_write_checkpoint,
               read=_read_checkpoint, check=_check_checkpoint_dir),
    )
})

# Longest suffix first, so "m.weights.h5" is weights, not h5.
_BY_SUFFIX = sorted((f for f in FORMATS.values() if f.suffix), key=lambda f: -len(f.suffix))


def format_for(path) -> Format | None:
    """The format a path's suffix names; no suffix means a SavedModel directory; None if unknown."""
    name = Path(path).name
    for fmt in _BY_SUFFIX:
        if name.endswith(fmt.suffix) and len(name) > len(fmt.suffix):
            return fmt
    return FORMATS["savedmodel"] if not Path(path).suffix else None


def _known_suffixes() -> str:
    return ", ".join(f"{f.suffix or '<no suffix>'} ({f.name})" for f in FORMATS.values())


def _resolve_format(path: Path, name: str | None) -> Format | str:
    """The Format for ``path`` (or the named one), or the reason there is none."""
    if name is None:
        fmt = format_for(path)
        return fmt or (f"unknown suffix {path.suffix!r}; known: {_known_suffixes()}; or pass "
                       f"format= one of {tuple(FORMATS)}")
    if name not in FORMATS:
        return f"format must be one of {tuple(FORMATS)}, got {name!r}"
    fmt = FORMATS[name]
    if fmt.suffix and not path.name.endswith(fmt.suffix):
        return f"format {name!r} needs a path ending in {fmt.suffix!r}"
    return fmt


# --------------------------------------------------------------------------- atomic writes


atomic_write = _files.atomic_write  # re-exported: saving's public API


def _kind(is_directory: bool) -> str:
    return "directory" if is_directory else "file"


def _check_target_kind(path: Path, fmt: Format) -> str | None:
    if path.exists() and path.is_dir() != fmt.directory:
        return (f"it exists as a {_kind(path.is_dir())}, but format {fmt.name!r} writes a "
                f"{_kind(fmt.directory)}")
    return None


def save(model: keras.Model, path, format: str | None = None, *,
         writer: Callable[[keras.Model, Path], None] | None = None) -> Path:
    """Save ``model`` at ``path``; a failed or interrupted save leaves the previous version intact.

    Args:
        model: a built Keras model.
        path: where to save; its suffix names the format (see FORMATS): ``.keras``,
            ``.h5``, ``.weights.h5``, ``.ckpt`` (checkpoint directory), none
            (SavedModel directory).
        format: a FORMATS key, when the suffix does not say.
        writer: seam for tests: writes instead of the format's writer.

    Returns:
        The path saved to.

    Raises:
        SaveError: unknown format or suffix, or a file/directory mismatch; nothing is written.
    """
    path = Path(path)
    fmt = _resolve_format(path, format)
    problem = fmt if isinstance(fmt, str) else _check_target_kind(path, fmt)
    if problem:
        raise SaveError(f"cannot save to {str(path)!r}: {problem}")
    write = writer or fmt.write
    if not fmt.kbench_atomic:
        write(model, path)
        return path
    with atomic_write(path, suffix=fmt.suffix, directory=fmt.directory) as tmp:
        write(model, tmp)
    return path


# --------------------------------------------------------------------------- loading


_UNREGISTERED = ("the class {name!r} is not registered with Keras: decorate it with "
                 "@keras.saving.register_keras_serializable() and import its module before "
                 "loading, or pass custom_objects={{{name!r}: {name}}}")

# What the underlying loaders' errors mean, first match wins:
# (pattern, cause template filled from the match's named groups).
_CAUSES = (
    (r"Could not locate class '(?P<name>[^']+)'", _UNREGISTERED),
    (r"Unknown layer: '(?P<name>[^']+)'", _UNREGISTERED),
    (r"truncated file", "the HDF5 file is truncated (an interrupted write or copy?)"),
    (r"can't locate attribute: 'model_config'",
     "the HDF5 file holds no model config: weights only? Name it .weights.h5 and load it "
     "into a model"),
    (r"Unable to (?:synchronously )?open file \((?P<detail>[^)]*)\)",
     "corrupted HDF5 file ({detail})"),
    (r"Wire format was corrupt|Error parsing message", "corrupted SavedModel (saved_model.pb)"),
)


def _describe(err: BaseException) -> str:
    """A short cause for a loader's error; the original stays chained as __cause__."""
    message = str(err)
    for pattern, template in _CAUSES:
        match = re.search(pattern, message)
        if match:
            return template.format(**match.groupdict())
    first_line = message.strip().splitlines()[0] if message.strip() else ""
    return f"{type(err).__name__}: {first_line}"


def _check_model_argument(fmt: Format, model) -> None:
    if fmt.whole_model and model is not None:
        raise TypeError(f"format {fmt.name!r} rebuilds the model from the file; do not pass "
                        f"model= (got {model!r:.80})")
    if not fmt.whole_model and not isinstance(model, keras.Model):
        raise TypeError(f"format {fmt.name!r} loads into an existing model: pass model=<a "
                        f"built model of the same spec>, got {model!r:.80}")


def _check_present(path: Path, fmt: Format) -> None:
    if not path.exists():
        raise MissingFileError(path, f"no such {_kind(fmt.directory)}")
    if path.is_dir() != fmt.directory:
        raise LoadError(path, f"format {fmt.name!r} is a {_kind(fmt.directory)}, but this is a "
                              f"{_kind(path.is_dir())}")


def load(path, format: str | None = None, *, model: keras.Model | None = None,
         compile: bool = True, custom_objects: Mapping[str, Any] | None = None):
    """Load what :func:`save` wrote (or Keras/TF wrote in the same format).

    Args:
        path: the file or directory; its suffix names the format (see :func:`save`).
        format: a FORMATS key, when the suffix does not say.
        model: for ``weights`` and ``checkpoint``: the built (for the optimizer
            state: compiled) model to load into, of the same spec.
        compile: whole-model formats: compile as saved, restoring the optimizer state.
        custom_objects: Keras custom objects for classes that are not registered.

    Returns:
        The model (for ``savedmodel``, the ``tf.saved_model.load`` object with
        its ``serve`` endpoint and ``signatures``).

    Raises:
        LoadError: naming the file and the cause (MissingFileError, also a
            FileNotFoundError, when it does not exist).
    """
    path = Path(path)
    fmt = _resolve_format(path, format)
    if isinstance(fmt, str):
        raise LoadError(path, fmt)
    _check_model_argument(fmt, model)
    _check_present(path, fmt)
    fmt.check(path)
    try:
        return fmt.read(path, model=model, compile=compile, custom_objects=custom_objects)
    except Exception as err:
        raise LoadError(path, _describe(err)) from err

