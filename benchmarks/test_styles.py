"""Sequential vs Functional vs subclassed models under fit, in lockstep."""

import pytest

from kbench import inputs
from kbench.interleaved import Training
from kbench.workflows import STYLES, WorkflowSpec


@pytest.mark.parametrize("style", STYLES)
def test_style_throughput(lockstep_group, mnist_5k, device, family, batch_size, style):
    def variant(style):
        spec = WorkflowSpec(family=family, style=style, batch_size=batch_size)
        return Training(style, spec, inputs.training_input(spec, mnist_5k))

    lockstep_group(variant, vary="style", comparison=f"style {family} b{batch_size} {device}",
                   baseline="functional")
