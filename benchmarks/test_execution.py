"""Eager vs tf.function vs XLA, and float32 vs mixed precision, in both loops; each
comparison group in lockstep (kbench.interleaved)."""

import pytest

from kbench import inputs
from kbench.interleaved import Training
from kbench.workflows import EXECUTIONS, LOOPS, PRECISIONS, WorkflowSpec


@pytest.mark.parametrize("execution", EXECUTIONS)
@pytest.mark.parametrize("loop", LOOPS)
def test_execution_throughput(lockstep_group, mnist_5k, device, family, batch_size, loop,
                              execution):
    def variant(execution):
        spec = WorkflowSpec(family=family, loop=loop, execution=execution, batch_size=batch_size)
        return Training(execution, spec, inputs.training_input(spec, mnist_5k))

    lockstep_group(variant, vary="execution",
                   comparison=f"execution {family} {loop} b{batch_size} {device}",
                   baseline="function")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("loop", LOOPS)
def test_precision_throughput(lockstep_group, mnist_5k, device, family, batch_size, loop,
                              precision):
    def variant(precision):
        spec = WorkflowSpec(family=family, loop=loop, precision=precision, batch_size=batch_size)
        return Training(precision, spec, inputs.training_input(spec, mnist_5k))

    lockstep_group(variant, vary="precision",
                   comparison=f"precision {family} {loop} b{batch_size} {device}",
                   baseline="float32")
