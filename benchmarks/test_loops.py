"""fit vs the custom tf.function loop, and what steps_per_execution buys in each, per model
family and batch size."""

import pytest

from kbench import inputs
from kbench.workflows import LOOPS, WorkflowSpec

# Steps per call of the compiled train function. Small models on a CPU spend
# much of a step in per-call overhead (Python, the callback hooks, launching
# the graph); the tutorials name steps_per_execution as the knob for it.
STEPS_PER_EXECUTION = (1, 8, 32)


@pytest.mark.parametrize("loop", LOOPS)
def test_loop_throughput(run_training, mnist_5k, device, family, batch_size, loop):
    spec = WorkflowSpec(family=family, loop=loop, batch_size=batch_size)
    run_training(spec, inputs.training_input(spec, mnist_5k),
                 comparison=f"loop {family} b{batch_size} {device}", variant=loop, baseline="fit")


@pytest.mark.parametrize("steps", STEPS_PER_EXECUTION, ids=lambda n: f"spe{n}")
@pytest.mark.parametrize("loop", LOOPS)
def test_steps_per_execution_throughput(run_training, mnist_5k, device, family, batch_size, loop,
                                        steps):
    spec = WorkflowSpec(family=family, loop=loop, batch_size=batch_size, steps_per_execution=steps)
    run_training(spec, inputs.training_input(spec, mnist_5k),
                 comparison=f"steps_per_execution {family} {loop} b{batch_size} {device}",
                 variant=f"steps_per_execution={steps}", baseline="steps_per_execution=1")
