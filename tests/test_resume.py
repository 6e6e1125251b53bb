"""Tests for kbench.resume: a run killed mid-epoch resumes from its newest checkpoint and
ends bitwise equal to an uninterrupted one; checkpoints are numbered by epoch and pruned."""

import math
import re
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from kbench import resume, testing
from kbench import workflows as wf
from kbench.testing import assert_weights_equal
from kbench.workflows import WorkflowSpec

# The uninterrupted run's length, and the epoch the other run is killed in.
RESUME_EPOCHS = 3
CRASH_IN_EPOCH = 1


@pytest.fixture(scope="module")
def tiny():
    """Learnable synthetic data: 4 steps an epoch at batch 64."""
    return testing.tiny_dataset(seed=0)


class _CrashAfter(keras.callbacks.Callback):
    """Raises after ``batches`` training batches in all: a run killed mid-epoch."""

    def __init__(self, batches: int):
        super().__init__()
        self.left = batches

    def on_train_batch_end(self, batch, logs=None):
        self.left -= 1
        if self.left == 0:
            raise RuntimeError("injected crash mid-epoch")


@pytest.mark.parametrize("loop, precision", [("fit", "float32"), ("custom", "mixed_float16")])
def test_resuming_after_a_crash_matches_an_uninterrupted_run(loop, precision, tiny, tmp_path):
    spec = WorkflowSpec(loop=loop, precision=precision, epochs=RESUME_EPOCHS, deterministic=True,
                        dataset="synthetic")
    steps = math.ceil(len(tiny.x_train) / spec.batch_size)
    straight = resume.train_resumable(spec, tmp_path / "straight", dataset=tiny)
    with pytest.raises(RuntimeError, match="injected crash"):
        resume.train_resumable(spec, tmp_path / "resumed", dataset=tiny,
                               callbacks=[_CrashAfter(CRASH_IN_EPOCH * steps + 2)])
    resumed = resume.train_resumable(spec, tmp_path / "resumed", dataset=tiny)
    assert (straight.resumed_from, resumed.resumed_from) == (0, CRASH_IN_EPOCH)
    assert straight.epochs_done == resumed.epochs_done == RESUME_EPOCHS
    assert len(resumed.history["loss"]) == resumed.epochs_run == RESUME_EPOCHS - CRASH_IN_EPOCH
    # 256 examples in batches of 64: 4 steps an epoch, counted from the restored optimizer.
    assert (straight.steps, resumed.steps) == (RESUME_EPOCHS * 4,
                                               (RESUME_EPOCHS - CRASH_IN_EPOCH) * 4)
    assert resumed.samples_seen == (RESUME_EPOCHS - CRASH_IN_EPOCH) * 256
    assert_weights_equal(resumed.model.get_weights(), straight.model.get_weights())
    assert_weights_equal(resumed.model.optimizer.variables, straight.model.optimizer.variables)
    assert resumed.test_accuracy == straight.test_accuracy
    again = resume.train_resumable(spec, tmp_path / "resumed", dataset=tiny)
    assert (again.resumed_from, again.epochs_run, again.steps) == (RESUME_EPOCHS, 0, 0)
    assert again.history == {}
    assert_weights_equal(again.model.get_weights(), straight.model.get_weights())


def test_checkpoints_are_numbered_by_epoch_and_pruned(tiny, tmp_path):
    spec = WorkflowSpec(epochs=RESUME_EPOCHS, dataset="synthetic")
    resume.train_resumable(spec, tmp_path, dataset=tiny, max_to_keep=2)
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [Path(p).name for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-3"]


def test_train_resumable_refuses_bad_epochs(tiny, tmp_path):
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        resume.train_resumable(WorkflowSpec(), tmp_path, dataset=tiny, epochs=0)


def test_train_resumable_refuses_a_known_upstream_bug_before_building(tiny, tmp_path):
    issue = wf.KNOWN_ISSUES[0]
    with pytest.raises(wf.UpstreamBugError, match=re.escape(issue.reference)):
        resume.train_resumable(issue.example(epochs=1), tmp_path, dataset=tiny)
    assert list(tmp_path.iterdir()) == []
