"""Save and load kbench models in every format Keras/TF users rely on, without losing data.

Formats are data: :data:`FORMATS` maps a name to a :class:`Format` record
(suffix, writer, reader, what a load gives back). :func:`save` infers the
format from the path's suffix, writes to a temporary name in the same folder
and renames it into place only when the write succeeded, so an exception or a
kill mid-save leaves the previous file as it was. :func:`load` checks the file
first (exists, right kind of content, complete archive) and turns any failure
into a :class:`LoadError` that names the file and the cause.

Where plain Keras 3.15 / TF 2.21 get a round trip wrong, ``save``/``load``
work around it, and :data:`KNOWN_SAVE_ISSUES` records each upstream bug with
the error plain Keras raises, so the tests notice when a release fixes it:

- ``.keras``: a Sequential/Functional model does not save its own dtype
  policy, so under another global policy its optimizer state is skipped;
  ``load`` loads under the policy recorded in the file's layer configs.
- legacy ``.h5``: loss aliases such as ``"mse"`` do not deserialize, the
  restored optimizer is built over no variables (training cannot continue),
  and a registered subclassed model is stored under its bare class name with
  no build config; ``load`` compiles from the file's training config itself
  and builds kbench's subclassed model.
- SavedModel: a subclassed model under ``mixed_float16`` gets a float16
  serving signature; ``save`` exports it with float32 inputs like the others.

Random state: Keras saves no dropout ``SeedGenerator`` state in ``.keras``,
``.h5`` or ``.weights.h5`` files (keras-team/keras#19796, by design), so
training continued after such a load draws other dropout masks.
:func:`make_checkpoint` includes that state, which is what makes
:func:`train_resumable` bitwise-reproducible.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import h5py
import keras
import numpy as np
import tensorflow as tf

from kbench import _files
from kbench import data as kdata
from kbench import models, training
from kbench import workflows as wf


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

# Checkpoints a CheckpointManager keeps (it deletes older ones): the newest
# plus two to fall back on if the newest turns out to be bad.
CHECKPOINTS_KEPT = 3

# The precisions of the save/load matrix (the issue's float32 and mixed_float16).
MATRIX_PRECISIONS = ("float32", "mixed_float16")


def _write_model(model: keras.Model, path: Path) -> None:
    model.save(path)  # Keras picks .keras or legacy HDF5 from the suffix


def _write_weights(model: keras.Model, path: Path) -> None:
    model.save_weights(path)


def _write_savedmodel(model: keras.Model, path: Path) -> None:
    model.export(path, format="tf_saved_model", input_signature=_serving_signature(model),
                 verbose=False)


def _write_checkpoint(model: keras.Model, directory: Path) -> None:
    manager = checkpoint_manager(make_checkpoint(model), directory)
    manager.save(checkpoint_number=_checkpoint_number(manager.latest_checkpoint) + 1)


def _serving_signature(model: keras.Model) -> list[tf.TensorSpec] | None:
    """Float32 inputs for a model without symbolic inputs; None lets Keras infer them.

    Keras infers a subclassed model's serving dtype from its compute dtype, so
    under mixed_float16 the endpoint would reject float32 images (KNOWN_SAVE_ISSUES).
    """
    if getattr(model, "inputs", None):
        return None
    image_shape = getattr(model, "image_shape", None)
    return None if image_shape is None else [tf.TensorSpec((None, *image_shape), tf.float32)]


def _read_keras(path: Path, *, model, compile: bool, custom_objects) -> keras.Model:
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    with _saved_policy_scope(config):
        return keras.saving.load_model(path, custom_objects=custom_objects, compile=compile)


def _read_h5(path: Path, *, model, compile: bool, custom_objects) -> keras.Model:
    with h5py.File(path, "r") as f:
        config = json.loads(_text(f.attrs["model_config"]))
        training_config, optimizer_values = _h5_training_state(f)
    objects = {**_LEGACY_H5_CLASSES, **(custom_objects or {})}
    with _saved_policy_scope(config), keras.saving.custom_object_scope(objects):
        loaded = keras.saving.load_model(path, custom_objects=objects, compile=False)
        if compile and training_config is not None:
            _compile_like_saved(loaded, training_config, optimizer_values)
    return loaded


def _read_weights(path: Path, *, model, **_) -> keras.Model:
    if getattr(model, "optimizer", None) is not None:
        _build_optimizer(model)  # Keras saves the optimizer's variables with the weights
    model.load_weights(path)
    return model


def _read_savedmodel(path: Path, **_):
    return tf.saved_model.load(str(path))


def _read_checkpoint(path: Path, *, model, **_) -> keras.Model:
    restore_latest(make_checkpoint(model), path)
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
               restores_rng=False, kbench_atomic=True, write=_write_model, read=_read_keras,
               check=_check_keras_file),
        Format("h5", ".h5", directory=False, whole_model=True, restores_optimizer=True,
               restores_rng=False, kbench_atomic=True, write=_write_model, read=_read_h5,
               check=_check_hdf5_file),
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


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _policy_names(config) -> Iterator[str]:
    """Every dtype-policy name in a saved Keras config."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy":
            yield config["config"]["name"]
        for value in config.values():
            yield from _policy_names(value)
    elif isinstance(config, list):
        for item in config:
            yield from _policy_names(item)


def saved_policy(config: Mapping) -> str | None:
    """The precision a model was saved in, from its config: a mixed policy if any layer
    has one, else float32 if a layer records it, else None (unknown)."""
    names = set(_policy_names(config))
    mixed = sorted(n for n in names if n.startswith("mixed_"))
    if mixed:
        return mixed[0]
    return "float32" if "float32" in names else None


def _saved_policy_scope(config: Mapping):
    """Load under the saved policy: Sequential/Functional models do not save their own,
    and compile() wraps the optimizer in a LossScaleOptimizer only under mixed_float16."""
    policy = saved_policy(config)
    return training.precision_policy(policy) if policy else contextlib.nullcontext()


def _built_kbench_model(**config) -> models.KBenchModel:
    """A KBenchModel from a legacy .h5 config, built (legacy .h5 stores no build config)."""
    model = models.KBenchModel.from_config(config)
    model.build((None, *model.image_shape))
    return model


# Legacy .h5 stores a model's bare class name ("KBenchModel"), not its
# registered name ("kbench>KBenchModel"); see KNOWN_SAVE_ISSUES.
_LEGACY_H5_CLASSES = MappingProxyType({models.KBenchModel.__name__: _built_kbench_model})


def _h5_training_state(f: h5py.File) -> tuple[dict | None, list[np.ndarray]]:
    """The training config of a legacy .h5 file and its optimizer values, in saved order."""
    raw = f.attrs.get("training_config")
    if raw is None:
        return None, []
    group = f.get("optimizer_weights")
    names = [] if group is None else [_text(n) for n in group.attrs["weight_names"]]
    return json.loads(_text(raw)), [np.asarray(group[name]) for name in names]


def _compile_argument(get: Callable, config):
    """A saved loss/metrics structure as compile() takes it.

    Strings stay strings: compile() resolves aliases such as "mse" itself,
    where keras.losses.deserialize fails on them (KNOWN_SAVE_ISSUES).
    """
    if config is None or isinstance(config, str):
        return config
    if isinstance(config, dict) and "class_name" in config:
        return get(config)
    if isinstance(config, dict):
        return {key: _compile_argument(get, value) for key, value in config.items()}
    return [_compile_argument(get, item) for item in config]


def _assign(variables: Sequence, values: Sequence[np.ndarray]) -> None:
    if len(variables) != len(values):
        raise ValueError(f"the file holds {len(values)} optimizer values but the optimizer "
                         f"has {len(variables)} variables")
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"optimizer variable {variable.path} has shape "
                             f"{tuple(variable.shape)}, the file's value {value.shape}")
        variable.assign(value)


def _compile_like_saved(model: keras.Model, config: dict, optimizer_values: list) -> None:
    """Compile from a legacy .h5 training config and set the saved optimizer state.

    Keras's own route builds the optimizer over ``model._trainable_variables``
    (empty for a Model), dropping its state (KNOWN_SAVE_ISSUES); this builds it
    over the model's trainable variables, in the order the file lists them.
    """
    optimizer = keras.optimizers.deserialize(config["optimizer_config"])
    model.compile(
        optimizer=optimizer,
        loss=_compile_argument(keras.losses.get, config.get("loss")),
        metrics=_compile_argument(keras.metrics.get, config.get("metrics")),
        weighted_metrics=_compile_argument(keras.metrics.get, config.get("weighted_metrics")),
        loss_weights=config.get("loss_weights"),
    )
    if optimizer_values:
        optimizer.build(model.trainable_variables)
        _assign(optimizer.variables, optimizer_values)


# --------------------------------------------------------------------------- checkpoints


def rng_state(model: keras.Model) -> list:
    """The model's random state: variables Keras tracks but saves as no weight
    (the dropout layers' SeedGenerator states)."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _build_optimizer(model: keras.Model) -> None:
    """Create the optimizer's slots, so a checkpoint can restore them (LossScaleOptimizer
    must not be built twice: its build() re-creates its variables)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def make_checkpoint(model: keras.Model, epoch: tf.Variable | None = None) -> tf.train.Checkpoint:
    """A tf.train.Checkpoint of the model, its random state, its optimizer (if compiled;
    built here) and an epoch counter (if given)."""
    parts = {"model": model, "rng": rng_state(model)}
    if getattr(model, "optimizer", None) is not None:
        _build_optimizer(model)
        parts["optimizer"] = model.optimizer
    if epoch is not None:
        parts["epoch"] = epoch
    return tf.train.Checkpoint(**parts)


def checkpoint_manager(checkpoint: tf.train.Checkpoint, directory,
                       max_to_keep: int = CHECKPOINTS_KEPT) -> tf.train.CheckpointManager:
    """A CheckpointManager in ``directory``.

    Its saves are atomic on their own: TF writes each checkpoint's shards under
    a temporary prefix, renames them into place, and only then rewrites the
    ``checkpoint`` index file (atomically), so an interrupted save leaves the
    previous checkpoint the latest.
    """
    return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=max_to_keep)


def _checkpoint_number(prefix: str | None) -> int:
    """N of a ``.../ckpt-N`` prefix; 0 for None."""
    return 0 if prefix is None else int(prefix.rsplit("-", 1)[1])


def restore_latest(checkpoint: tf.train.Checkpoint, directory) -> str | None:
    """Restore the newest checkpoint in ``directory``; return its prefix, or None if there is none.

    Raises:
        AssertionError: an object of ``checkpoint`` (model, optimizer, ...) has
            no values in the saved checkpoint, e.g. another architecture.
    """
    latest = tf.train.latest_checkpoint(str(directory))
    if latest is None:
        return None
    status = checkpoint.restore(latest)
    status.assert_existing_objects_matched()
    status.expect_partial()  # e.g. optimizer values when restoring into an uncompiled model
    return latest


@dataclasses.dataclass(frozen=True)
class ResumableRun:
    """What :func:`train_resumable` did.

    Attributes:
        model: the trained model.
        resumed_from: epochs already done (checkpointed) when the call started; 0 = fresh.
        epochs_done: epochs done in total, all checkpointed.
        history: per-epoch metrics of the epochs this call ran.
    """

    model: keras.Model = dataclasses.field(repr=False)
    resumed_from: int
    epochs_done: int
    history: dict[str, list[float]]


def train_resumable(spec: wf.WorkflowSpec, directory, *, dataset: kdata.Dataset | None = None,
                    epochs: int | None = None,
                    callbacks: Sequence[keras.callbacks.Callback] = (),
                    max_to_keep: int = CHECKPOINTS_KEPT, write_directory=None,
                    on_epoch_end: Callable[[int, dict], None] | None = None) -> ResumableRun:
    """Train ``spec`` to ``epochs`` in total, checkpointing after every epoch and resuming
    from the newest checkpoint in ``directory``.

    The engine's loop runs one epoch at a time. Epoch ``e`` reads the training
    split shuffled with seed ``spec.seed + e``, so the data order depends on the
    epoch number only: a run resumed after epoch k sees the batches an
    uninterrupted run sees, and with ``spec.deterministic`` ends bitwise equal
    to it on CPU. (``training.train`` reshuffles one dataset across epochs, so
    its epochs after the first see other orders than these.)

    Args:
        spec: the workflow; its known upstream bugs are refused as in training.train.
        directory: the checkpoint directory (created if needed).
        dataset: data to use instead of loading ``spec.dataset``.
        epochs: total epochs; default ``spec.epochs``.
        callbacks: Keras callbacks for each epoch's ``run`` (epoch numbers are
            the absolute ones, as in ``fit(initial_epoch=...)``).
        max_to_keep: checkpoints kept.
        write_directory: where checkpoints are written, if not ``directory``
            (the checkpoints are always read from ``directory``). Under
            MultiWorkerMirroredStrategy every worker must save; workers other
            than the chief save into a throw-away directory.
        on_epoch_end: called with (epoch, logs) after each epoch's checkpoint
            is saved: a completed epoch is reported only once it is durable.
    """
    training.check_supported(spec)
    write_directory = directory if write_directory is None else write_directory
    epochs = spec.epochs if epochs is None else epochs
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if dataset is None:
        dataset = kdata.load_dataset(spec.dataset, seed=spec.seed)
    with training.precision_policy(spec.precision), training.op_determinism(spec.deterministic):
        keras.utils.set_random_seed(spec.seed)
        model = training.build_compiled_model(spec)
        # The loop first: the custom loop builds the optimizer, the checkpoint must not rebuild it.
        loop = training.make_loop(model, spec)
        with model.distribute_strategy.scope():
            epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
            checkpoint = make_checkpoint(model, epoch)
        manager = checkpoint_manager(checkpoint, write_directory, max_to_keep)
        restore_latest(checkpoint, directory)
        start, history = int(epoch.numpy()), {}
        for index in range(start, epochs):
            logs = _run_epoch(loop, spec, dataset, index, callbacks, history)
            epoch.assign(index + 1)
            manager.save(checkpoint_number=index + 1)
            if on_epoch_end is not None:
                on_epoch_end(index, logs)
    return ResumableRun(model=model, resumed_from=start, epochs_done=max(start, epochs),
                        history=history)


def _run_epoch(loop, spec: wf.WorkflowSpec, dataset: kdata.Dataset, index: int,
               callbacks: Sequence, history: dict[str, list[float]]) -> dict[str, float]:
    options = training.pipeline_options(spec, shuffle_seed=spec.seed + index)
    train_ds, _ = kdata.make_splits(dataset, options)
    epoch_history = loop.run(train_ds, epochs=index + 1, initial_epoch=index, callbacks=callbacks)
    for key, values in epoch_history.items():
        history.setdefault(key, []).extend(values)
    return {key: values[-1] for key, values in epoch_history.items()}


# --------------------------------------------------------------------------- known upstream bugs

# SaveCase.loss for the loss kbench compiles with (training.make_loss()).
KBENCH_LOSS = "kbench"


@dataclasses.dataclass(frozen=True)
class SaveCase:
    """One cell of the save/load matrix: a format and the model saved in it.

    ``loss`` is KBENCH_LOSS for the engine's loss object, else a Keras loss
    identifier the model was compiled with (e.g. "mse").
    """

    format: str
    family: str = "mlp"
    style: str = "functional"
    precision: str = "float32"
    loss: str = KBENCH_LOSS

    def __post_init__(self) -> None:
        choices = {"format": tuple(FORMATS), "family": models.FAMILIES,
                   "style": models.STYLES, "precision": wf.PRECISIONS}
        for field, allowed in choices.items():
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(f"{field} must be one of {allowed}, got {value!r}")
        if not isinstance(self.loss, str) or not self.loss:
            raise ValueError(f"loss must be a non-empty str, got {self.loss!r}")

    @property
    def name(self) -> str:
        parts = [self.format, self.family, self.style, wf.PRECISION_TAGS[self.precision]]
        return "-".join(parts if self.loss == KBENCH_LOSS else [*parts, self.loss])

    @property
    def known_issue(self) -> "SaveIssue | None":
        """The first known upstream bug plain Keras hits on this case, if any."""
        return next((issue for issue in KNOWN_SAVE_ISSUES if issue.applies_to(self)), None)


def save_matrix() -> tuple[SaveCase, ...]:
    """Every format x family x style x MATRIX_PRECISIONS, with the engine's loss."""
    return tuple(SaveCase(fmt, family, style, precision)
                 for fmt in FORMATS for family in models.FAMILIES
                 for style in models.STYLES for precision in MATRIX_PRECISIONS)


@dataclasses.dataclass(frozen=True)
class SaveIssue(wf.KnownIssue):
    """A known upstream bug on a plain Keras save/load route that kbench works around.

    ``when`` is over SaveCase fields; a tuple value matches any of its items.
    ``workaround`` says what kbench.saving does instead.
    """

    def __post_init__(self) -> None:
        unknown = sorted(set(self.when) - {f.name for f in dataclasses.fields(SaveCase)})
        if unknown:
            raise wf.WorkflowError(
                f"SaveIssue {self.reference}: unknown SaveCase field(s) {unknown}")
        re.compile(self.error_match)

    def applies_to(self, case) -> bool:
        return all(getattr(case, k) in (v if isinstance(v, tuple) else (v,))
                   for k, v in self.when.items())


_LEGACY_H5 = "keras/src/legacy/saving"

# Found by running save_matrix() through plain Keras (save, load under the
# default float32 policy, predict, one training step) on TF 2.21 / Keras 3.15.
# Order matters: a case reports the first entry that applies. Keep each entry
# until its strict xfail in tests/test_saving.py turns XPASS.
KNOWN_SAVE_ISSUES: tuple[SaveIssue, ...] = (
    SaveIssue(
        reference="keras-team/keras#21429 (alias lookup in keras/src/saving/serialization_lib.py)",
        summary=(
            "Loading a legacy .h5 model compiled with a loss alias fails: keras.losses."
            "deserialize('mse') pairs the alias with the module of the canonical function, "
            "keras.metrics, which has no 'mse', and the module lookup added by #21429 reports "
            "that as 'not a KerasSaveable subclass'. Every alias fails (mse, mae, mape, msle, "
            "kld, bce); compile=False loads."
        ),
        when={"format": "h5", "loss": "mse"},
        error_type=ValueError,
        error_match=r"Could not deserialize 'keras\.metrics\.mse' because it is not a "
                    r"KerasSaveable subclass",
        workaround="kbench.saving.load compiles .h5 models itself, handing saved loss strings "
                   "to compile(), which resolves aliases; plain Keras: compile=False, then "
                   "compile.",
    ),
    SaveIssue(
        reference=f"{_LEGACY_H5}/saving_utils.py:101 model_metadata (no upstream issue found)",
        summary=(
            "Legacy .h5 records a model's class as model.__class__.__name__ ('KBenchModel') "
            "while registered classes are looked up as 'package>Name' ('kbench>KBenchModel'), "
            "and it stores no build config, so even with custom_objects the subclassed model "
            "is not built and its weights do not load ('Layer count mismatch')."
        ),
        when={"format": "h5", "style": "subclassed"},
        error_type=ValueError,
        error_match=r"Unknown layer: 'KBenchModel'",
        workaround="kbench.saving.load maps kbench's bare class names to builders that "
                   "construct and build the model; plain Keras: use .keras.",
    ),
    SaveIssue(
        reference=f"{_LEGACY_H5}/legacy_h5_format.py:175 (no upstream issue found)",
        summary=(
            "load_model_from_hdf5 builds the restored optimizer over model._trainable_variables, "
            "which is empty for a Model: the slots are dropped, only the iteration count is "
            "set, and the next training step fails."
        ),
        when={"format": "h5", "style": ("sequential", "functional")},
        error_type=ValueError,
        error_match=r"Unknown variable: .*This optimizer can only be called for the variables "
                    r"it was originally built with",
        workaround="kbench.saving.load compiles from the file's training config and sets the "
                   "saved optimizer values on an optimizer built over the model's variables.",
    ),
    SaveIssue(
        reference="keras/src/trainers/trainer.py:178 compile + Functional config without dtype "
                  "(no upstream issue found)",
        summary=(
            "A Sequential/Functional model does not save its own dtype policy, so it reloads "
            "under the global one; under float32, compile_from_config does not wrap the "
            "optimizer in LossScaleOptimizer and the saved mixed_float16 optimizer state is "
            "skipped with only a warning."
        ),
        when={"format": "keras", "style": ("sequential", "functional"),
              "precision": "mixed_float16"},
        error_type=UserWarning,
        error_match=r"Skipping variable loading for optimizer",
        workaround="kbench.saving.load loads under the policy recorded in the file's layer "
                   "configs (saved_policy).",
    ),
    SaveIssue(
        reference="keras/src/export/export_utils.py:64 input_dtype (no upstream issue found)",
        summary=(
            "model.export infers a subclassed model's serving signature from its input dtype, "
            "which under mixed_float16 is the compute dtype float16, so the endpoint rejects "
            "the float32 images the Sequential/Functional exports take."
        ),
        when={"format": "savedmodel", "style": "subclassed", "precision": "mixed_float16"},
        error_type=TypeError,
        error_match=r"Can not cast TensorSpec\(.*dtype=tf\.float32.*\) to "
                    r"TensorSpec\(.*dtype=tf\.float16",
        workaround="kbench.saving.save exports models without symbolic inputs with an explicit "
                   "float32 input_signature.",
    ),
)
