"""fit vs the custom tf.function loop, per model family and batch size."""

import pytest

from kbench import inputs
from kbench.workflows import LOOPS, WorkflowSpec


@pytest.mark.parametrize("loop", LOOPS)
def test_loop_throughput(run_training, mnist_5k, device, family, batch_size, loop):
    spec = WorkflowSpec(family=family, loop=loop, batch_size=batch_size)
    run_training(spec, inputs.training_input(spec, mnist_5k),
                 comparison=f"loop {family} b{batch_size} {device}", variant=loop, baseline="fit")
