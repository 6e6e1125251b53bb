"""Tests for kbench.callbacks: each named callback with the tutorials' settings, and refusals."""

import keras
import pytest

from kbench import callbacks as kcallbacks
from kbench import workflows as wf
from kbench.workflows import WorkflowError, WorkflowSpec

EVERY = ("checkpoint", "early_stopping", "reduce_lr", "tensorboard")


def test_every_name_has_a_factory():
    assert set(kcallbacks.FACTORIES) == set(wf.CALLBACKS)


def test_callbacks_come_in_the_specs_order_with_the_tutorials_settings(tmp_path):
    spec = WorkflowSpec(callbacks=EVERY)
    made = kcallbacks.make_callbacks(spec, tmp_path / "run", validation=True)
    checkpoint, stop, reduce, board = made
    assert isinstance(checkpoint, keras.callbacks.ModelCheckpoint)
    assert checkpoint.save_best_only and checkpoint.monitor == "val_accuracy"
    assert checkpoint.filepath == str(tmp_path / "run" / kcallbacks.CHECKPOINT_FILE)
    assert (stop.monitor, stop.patience, stop.restore_best_weights) == (
        "val_loss", kcallbacks.EARLY_STOPPING_PATIENCE, True)
    assert (reduce.monitor, reduce.factor, reduce.patience, reduce.min_lr) == (
        "val_loss", kcallbacks.REDUCE_LR_FACTOR, kcallbacks.REDUCE_LR_PATIENCE,
        kcallbacks.REDUCE_LR_MIN)
    assert isinstance(board, keras.callbacks.TensorBoard) and board.histogram_freq == 0
    assert (tmp_path / "run").is_dir()


def test_histogram_logging_is_its_own_name(tmp_path):
    (board,) = kcallbacks.make_callbacks(WorkflowSpec(callbacks=("tensorboard_histograms",)),
                                         tmp_path, validation=False)
    assert board.histogram_freq == 1 and board.log_dir == str(tmp_path / kcallbacks.LOG_DIR)


def test_only_file_writers_need_an_output_dir():
    assert not kcallbacks.needs_output_dir(WorkflowSpec(callbacks=("early_stopping",)))
    assert kcallbacks.needs_output_dir(WorkflowSpec(callbacks=("reduce_lr", "checkpoint")))
    made = kcallbacks.make_callbacks(WorkflowSpec(callbacks=("reduce_lr",)), None,
                                     validation=True)
    assert isinstance(made[0], keras.callbacks.ReduceLROnPlateau)


def test_a_file_writer_without_an_output_dir_is_refused():
    with pytest.raises(WorkflowError, match=r"callbacks \['tensorboard'\] of .* write files"):
        kcallbacks.make_callbacks(WorkflowSpec(callbacks=("tensorboard",)), None,
                                  validation=True)


def test_callbacks_watching_validation_are_refused_in_a_run_without_it():
    spec = WorkflowSpec(callbacks=("checkpoint", "reduce_lr", "tensorboard"))
    with pytest.raises(WorkflowError, match=r"\['checkpoint', 'reduce_lr'\] .* watch "
                                            r"\['val_accuracy', 'val_loss'\]"):
        kcallbacks.check_callbacks(spec, validation=False)
    kcallbacks.check_callbacks(WorkflowSpec(callbacks=("tensorboard",)), validation=False)
