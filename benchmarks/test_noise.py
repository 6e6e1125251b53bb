"""A/A: one workflow against itself, in lockstep. Its ratio is the harness's own error bar.

Both variants are the same spec, built as two models; any ratio away from
1.00 beyond its CI is bias in the interleaving (order, build order), not a
difference between workflows. The summary says so when it happens
(kbench.report.A_A_PREFIX).
"""

import pytest

from kbench import inputs
from kbench.interleaved import Training
from kbench.report import A_A_PREFIX
from kbench.workflows import WorkflowSpec


@pytest.mark.parametrize("side", ["A", "B"])
def test_a_a(lockstep_group, mnist_5k, device, batch_size, side):
    def variant(side):
        spec = WorkflowSpec(batch_size=batch_size)
        return Training(side, spec, inputs.training_input(spec, mnist_5k))

    lockstep_group(variant, vary="side", comparison=f"{A_A_PREFIX}mlp fit b{batch_size} {device}",
                   baseline="A")
