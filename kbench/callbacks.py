"""The Keras callbacks a workflow names (``WorkflowSpec.callbacks``), with the tutorials' settings.

A spec lists callbacks by name (:data:`kbench.workflows.CALLBACKS`); this
module is the one table that turns a name into a fresh Keras callback, so the
engine builds the same callbacks for ``fit`` and the custom loop. Callbacks
that write files (checkpoints, TensorBoard logs) write under one output
folder that the caller owns.

The settings come from the TensorFlow/Keras tutorials that use each callback:

- ``checkpoint``: ModelCheckpoint keeping the best ``val_accuracy`` only
  (``save_best_only=True``), as ``best.keras``.
- ``early_stopping``: EarlyStopping on ``val_loss``, patience
  :data:`EARLY_STOPPING_PATIENCE`, restoring the best weights.
- ``reduce_lr``: ReduceLROnPlateau on ``val_loss`` by :data:`REDUCE_LR_FACTOR`
  after :data:`REDUCE_LR_PATIENCE` epochs without improvement, down to
  :data:`REDUCE_LR_MIN`.
- ``tensorboard`` / ``tensorboard_histograms``: TensorBoard logs under
  ``logs/``; the second also writes weight histograms every epoch
  (``histogram_freq=1``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import keras

from kbench.workflows import WorkflowError, WorkflowSpec

__all__ = ["CHECKPOINT_FILE", "EARLY_STOPPING_PATIENCE", "FACTORIES", "LOG_DIR", "MONITORS",
           "REDUCE_LR_FACTOR", "REDUCE_LR_MIN", "REDUCE_LR_PATIENCE", "check_callbacks",
           "make_callbacks",
           "needs_output_dir"]

# Epochs without a better val_loss before EarlyStopping stops (the Keras
# examples use 2-5; 3 stops a plateaued 10-epoch run without ending a run
# whose validation loss only wobbles).
EARLY_STOPPING_PATIENCE = 3
# ReduceLROnPlateau: halve the learning rate after 2 flat epochs, not below 1e-5.
REDUCE_LR_FACTOR = 0.5
REDUCE_LR_PATIENCE = 2
REDUCE_LR_MIN = 1e-5
# Where the file-writing callbacks write, under the run's output folder.
CHECKPOINT_FILE = "best.keras"
LOG_DIR = "logs"

# The metric each callback watches: it needs validation data to see it.
MONITORS = MappingProxyType({"checkpoint": "val_accuracy", "early_stopping": "val_loss",
                             "reduce_lr": "val_loss"})


def _checkpoint(folder: Path) -> keras.callbacks.Callback:
    return keras.callbacks.ModelCheckpoint(str(folder / CHECKPOINT_FILE),
                                           monitor=MONITORS["checkpoint"], mode="max",
                                           save_best_only=True)


def _early_stopping(folder: Path) -> keras.callbacks.Callback:
    return keras.callbacks.EarlyStopping(monitor=MONITORS["early_stopping"],
                                         patience=EARLY_STOPPING_PATIENCE,
                                         restore_best_weights=True)


def _reduce_lr(folder: Path) -> keras.callbacks.Callback:
    return keras.callbacks.ReduceLROnPlateau(monitor=MONITORS["reduce_lr"],
                                             factor=REDUCE_LR_FACTOR,
                                             patience=REDUCE_LR_PATIENCE, min_lr=REDUCE_LR_MIN)


def _tensorboard(histogram_freq: int) -> Callable[[Path], keras.callbacks.Callback]:
    return lambda folder: keras.callbacks.TensorBoard(log_dir=str(folder / LOG_DIR),
                                                      histogram_freq=histogram_freq)


# name (kbench.workflows.CALLBACKS) -> factory(output folder) -> a fresh callback.
FACTORIES: MappingProxyType = MappingProxyType({
    "checkpoint": _checkpoint,
    "early_stopping": _early_stopping,
    "reduce_lr": _reduce_lr,
    "tensorboard": _tensorboard(0),
    "tensorboard_histograms": _tensorboard(1),
})

# The callbacks that write files under the output folder.
_WRITERS = frozenset({"checkpoint", "tensorboard", "tensorboard_histograms"})


def needs_output_dir(spec: WorkflowSpec) -> bool:
    """Whether any of the spec's callbacks writes files."""
    return any(name in _WRITERS for name in spec.callbacks)


def check_callbacks(spec: WorkflowSpec, *, validation: bool) -> None:
    """Refuse callbacks that watch a validation metric in a run that does not validate.

    Raises:
        WorkflowError: naming the callbacks and the metrics they watch.
    """
    blind = [name for name in spec.callbacks if name in MONITORS and not validation]
    if blind:
        raise WorkflowError(
            f"callbacks {blind} of {spec.name} watch "
            f"{sorted({MONITORS[name] for name in blind})}, but the run does not validate; "
            "train with validation")


def make_callbacks(spec: WorkflowSpec, output_dir: str | Path | None, *,
                   validation: bool) -> list[keras.callbacks.Callback]:
    """Fresh Keras callbacks for the spec's ``callbacks``, in the spec's order.

    Args:
        spec: the workflow.
        output_dir: the folder checkpoints and logs go under (created if
            missing); may be None only if no callback writes files.
        validation: whether the run validates after each epoch; the
            callbacks in :data:`MONITORS` watch a validation metric.

    Raises:
        WorkflowError: a callback watches a validation metric the run will
            not have, or writes files and no output_dir was given.
    """
    check_callbacks(spec, validation=validation)
    if needs_output_dir(spec):
        if output_dir is None:
            raise WorkflowError(f"callbacks {list(spec.callbacks)} of {spec.name} write files: "
                                "give an output_dir")
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = Path(output_dir) if output_dir is not None else Path()
    return [FACTORIES[name](folder) for name in spec.callbacks]
