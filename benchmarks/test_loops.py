"""fit vs the custom tf.function loop, and what steps_per_execution buys in each, per model
family and batch size. Each comparison group runs in lockstep (kbench.interleaved)."""

import pytest

from kbench import inputs
from kbench.interleaved import Training
from kbench.workflows import LOOPS, WorkflowSpec

# Steps per call of the compiled train function. Small models on a CPU spend
# much of a step in per-call overhead (Python, the callback hooks, launching
# the graph); the tutorials name steps_per_execution as the knob for it.
STEPS_PER_EXECUTION = (1, 8, 32)
# custom/fit of the MLP is the ratio users ask about first ("is my loop slower
# than fit?"), so its group aims for a CI of +-3% (issue 11's bar), with the
# time that takes (kbench.interleaved.TIGHT_GROUP_MAX_SCALE).
MLP_LOOP_TARGET_CI = 0.03


@pytest.mark.parametrize("loop", LOOPS)
def test_loop_throughput(lockstep_group, mnist_5k, device, family, batch_size, loop):
    def variant(loop):
        spec = WorkflowSpec(family=family, loop=loop, batch_size=batch_size)
        return Training(loop, spec, inputs.training_input(spec, mnist_5k))

    lockstep_group(variant, vary="loop", comparison=f"loop {family} b{batch_size} {device}",
                   baseline="fit", target_ci=MLP_LOOP_TARGET_CI if family == "mlp" else None)


@pytest.mark.parametrize("steps", STEPS_PER_EXECUTION, ids=lambda n: f"spe{n}")
@pytest.mark.parametrize("loop", LOOPS)
def test_steps_per_execution_throughput(lockstep_group, mnist_5k, device, family, batch_size,
                                        loop, steps):
    def variant(steps):
        spec = WorkflowSpec(family=family, loop=loop, batch_size=batch_size,
                            steps_per_execution=steps)
        return Training(f"steps_per_execution={steps}", spec,
                        inputs.training_input(spec, mnist_5k))

    lockstep_group(variant, vary="steps",
                   comparison=f"steps_per_execution {family} {loop} b{batch_size} {device}",
                   baseline="steps_per_execution=1")
