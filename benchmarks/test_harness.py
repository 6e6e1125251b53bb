"""Harness overhead: kbench's probed rounds vs the same model.fit with no batch-level kbench
code (only an epoch-boundary gate), interleaved in lockstep. The kbench variant fails when
the whole CI of its overhead lies above 3% (kbench.compare.HARNESS_CHECK)."""

import pytest

from kbench import compare, inputs
from kbench.interleaved import BareFit, Training
from kbench.workflows import WorkflowSpec

HARNESSES = {"kbench": Training, "bare fit": BareFit}


@pytest.mark.parametrize("harness", HARNESSES)
def test_harness_overhead(lockstep_group, mnist_5k, device, batch_size, harness):
    def variant(harness):
        spec = WorkflowSpec(batch_size=batch_size)
        return HARNESSES[harness](harness, spec, inputs.training_input(spec, mnist_5k))

    lockstep_group(variant, vary="harness", comparison=f"harness b{batch_size} {device}",
                   baseline="bare fit")
    if harness == "kbench":
        members = lockstep_group.records
        verdict = compare.check_pair(compare.HARNESS_CHECK, members["kbench"],
                                     members["bare fit"])
        assert verdict.status != "failed", f"{verdict}: {compare.HARNESS_CHECK.why}"
