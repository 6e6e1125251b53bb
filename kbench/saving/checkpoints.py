"""Checkpoints: the model, its optimizer and its dropout random state, in a
``tf.train.CheckpointManager`` directory.

Keras saves no dropout ``SeedGenerator`` state in ``.keras``, ``.h5`` or
``.weights.h5`` files (keras-team/keras#19796, by design), so training
continued after such a load draws other dropout masks. :func:`make_checkpoint`
includes that state, which is what makes :func:`kbench.resume.train_resumable`
bitwise-reproducible.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Checkpoints a CheckpointManager keeps (it deletes older ones): the newest
# plus two to fall back on if the newest turns out to be bad.
CHECKPOINTS_KEPT = 3


def rng_state(model: keras.Model) -> list:
    """The model's random state: variables Keras tracks but saves as no weight
    (the dropout layers' SeedGenerator states)."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def build_optimizer(model: keras.Model) -> None:
    """Create the optimizer's slots, so a checkpoint can restore them (LossScaleOptimizer
    must not be built twice: its build() re-creates its variables)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def make_checkpoint(model: keras.Model, epoch: tf.Variable | None = None) -> tf.train.Checkpoint:
    """A tf.train.Checkpoint of the model, its random state, its optimizer (if compiled;
    built here) and an epoch counter (if given)."""
    parts = {"model": model, "rng": rng_state(model)}
    if getattr(model, "optimizer", None) is not None:
        build_optimizer(model)
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


def checkpoint_number(prefix: str | None) -> int:
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
