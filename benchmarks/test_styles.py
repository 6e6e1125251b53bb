"""Sequential vs Functional vs subclassed models under fit."""

import pytest

from kbench import inputs
from kbench.workflows import STYLES, WorkflowSpec


@pytest.mark.parametrize("style", STYLES)
def test_style_throughput(run_training, mnist_5k, device, family, batch_size, style):
    spec = WorkflowSpec(family=family, style=style, batch_size=batch_size)
    run_training(spec, inputs.training_input(spec, mnist_5k),
                 comparison=f"style {family} b{batch_size} {device}", variant=style,
                 baseline="functional")
