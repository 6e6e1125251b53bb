"""Eager vs tf.function vs XLA, and float32 vs mixed precision, in both loops."""

import pytest

from kbench import inputs
from kbench.workflows import EXECUTIONS, LOOPS, PRECISIONS, WorkflowSpec


@pytest.mark.parametrize("execution", EXECUTIONS)
@pytest.mark.parametrize("loop", LOOPS)
def test_execution_throughput(run_training, mnist_5k, device, family, batch_size, loop, execution):
    spec = WorkflowSpec(family=family, loop=loop, execution=execution, batch_size=batch_size)
    run_training(spec, inputs.training_input(spec, mnist_5k),
                 comparison=f"execution {family} {loop} b{batch_size} {device}",
                 variant=execution, baseline="function")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("loop", LOOPS)
def test_precision_throughput(run_training, mnist_5k, device, family, batch_size, loop, precision):
    spec = WorkflowSpec(family=family, loop=loop, precision=precision, batch_size=batch_size)
    run_training(spec, inputs.training_input(spec, mnist_5k),
                 comparison=f"precision {family} {loop} b{batch_size} {device}",
                 variant=precision, baseline="float32")
