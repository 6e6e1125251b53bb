"""Tests for kbench.inputs: the pipelines benchmarks feed and input-only calibration."""

import pytest

from kbench import inputs, profiles, testing
from kbench.workflows import WorkflowSpec


@pytest.fixture(scope="module")
def tiny():
    return testing.tiny_dataset()


def _input(spec, tiny):
    return inputs.training_input(spec, tiny)


def profile(min_round_s):
    return profiles.Profile("test", rounds=3, steps_per_round=4, min_round_s=min_round_s,
                            warmup_rounds=1, batch_sizes=(32,), families=("mlp",))


def test_the_training_input_is_endless_with_full_batches(tiny):
    spec = WorkflowSpec(batch_size=64)
    sizes = [int(x.shape[0]) for x, _ in _input(spec, tiny).take(3 * len(tiny.x_train) // 64)]
    assert set(sizes) == {64}  # three epochs' worth, no partial batch at an epoch boundary


def test_compute_only_input_repeats_the_same_batches(tiny):
    spec = WorkflowSpec(batch_size=64)
    cached = inputs.compute_only_input(_input(spec, tiny), steps=2)
    labels = [y.numpy().tolist() for _, y in cached.take(6)]
    assert labels[0:2] == labels[2:4] == labels[4:6]
    assert labels[0] != labels[1]


def test_calibrate_input_times_the_second_pass(tiny):
    spec = WorkflowSpec(batch_size=32)
    iterator = iter(_input(spec, tiny))
    readings = iter([10.0, 10.0 + 4 * 0.01])  # 4 steps in 0.04 s: 0.01 s a step
    assert inputs.calibrate_input(iterator, profile(min_round_s=0.5),
                                   timer=lambda: next(readings)) == 50
