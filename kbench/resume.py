"""Resumable training: a checkpoint after every epoch, a restart resumes from the newest.

:func:`train_resumable` runs the engine (:func:`kbench.training.prepare`) one
epoch at a time and checkpoints the model, its optimizer, its dropout random
state and the epoch counter (:mod:`kbench.saving.checkpoints`). Epoch ``e``
reads the training split shuffled with seed ``spec.seed + e``, so the data
order depends on the epoch number only: a run resumed after epoch k sees the
batches an uninterrupted run sees, and with ``spec.deterministic`` ends
bitwise equal to it on CPU. (``training.train`` reshuffles one dataset across
epochs, so its epochs after the first see other orders than these.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from kbench import data as kdata
from kbench import training
from kbench._validate import check_positive_int
from kbench.saving import checkpoints
from kbench.workflows import WorkflowSpec


def train_resumable(spec: WorkflowSpec, directory, *, dataset: kdata.Dataset | None = None,
                    epochs: int | None = None,
                    callbacks: Sequence[keras.callbacks.Callback] = (),
                    max_to_keep: int = checkpoints.CHECKPOINTS_KEPT, write_directory=None,
                    on_epoch_end: Callable[[int, dict], None] | None = None,
                    allow_known_issue: bool = False,
                    timer: Callable[[], float] = time.perf_counter) -> training.TrainResult:
    """Train ``spec`` to ``epochs`` in total, checkpointing after every epoch and resuming
    from the newest checkpoint in ``directory``; then evaluate on the test split.

    Args:
        spec: the workflow; its known upstream bugs are refused (unless
            ``allow_known_issue``) as in training.train.
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
        timer: clock for ``wall_time_s`` (the epochs and their checkpoints).

    Returns:
        The engine's record of this call: ``resumed_from`` the epochs the
        checkpoint held, ``history`` and ``steps`` of the epochs it ran.
    """
    epochs = check_positive_int("epochs", spec.epochs if epochs is None else epochs)
    engine = training.prepare(spec, allow_known_issue=allow_known_issue)
    if dataset is None:
        dataset = kdata.load_dataset(spec.dataset, seed=spec.seed)
    write_directory = directory if write_directory is None else write_directory
    options = training.pipeline_options(spec)
    counter = training.RunCounter(len(dataset.x_train), options)
    with engine.settings():
        with engine.strategy.scope():
            epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
            # The engine's custom loop built the optimizer; the checkpoint must not rebuild it.
            checkpoint = checkpoints.make_checkpoint(engine.model, epoch)
        manager = checkpoints.checkpoint_manager(checkpoint, write_directory, max_to_keep)
        checkpoints.restore_latest(checkpoint, directory)
        start, history = int(epoch.numpy()), {}
        began = timer()
        for index in range(start, epochs):
            logs = _run_epoch(engine, dataset, index, [*callbacks, counter], history)
            epoch.assign(index + 1)
            manager.save(checkpoint_number=index + 1)
            if on_epoch_end is not None:
                on_epoch_end(index, logs)
        wall_time_s = timer() - began
        _, test_ds = kdata.make_splits(dataset, options)
        return engine.result(counter, history, test_ds, wall_time_s=wall_time_s,
                             resumed_from=start)


def _run_epoch(engine: training.Engine, dataset: kdata.Dataset, index: int,
               callbacks: Sequence, history: dict[str, list[float]]) -> dict[str, float]:
    """Epoch ``index`` on the split shuffled for it; its logs, appended to ``history``."""
    spec = engine.spec
    options = training.pipeline_options(spec, shuffle_seed=spec.seed + index)
    train_ds, _ = kdata.make_splits(dataset, options)
    epoch_history = engine.loop.run(train_ds, epochs=index + 1, initial_epoch=index,
                                    callbacks=callbacks)
    for key, values in epoch_history.items():
        history.setdefault(key, []).extend(values)
    return {key: values[-1] for key, values in epoch_history.items()}
