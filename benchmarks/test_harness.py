"""Harness overhead: kbench's timed rounds vs a bare, hand-timed model.fit."""

from kbench import inputs, measure
from kbench.workflows import WorkflowSpec


def test_harness_overhead(run_training, benchmark, profile, mnist_5k, device, batch_size):
    spec = WorkflowSpec(batch_size=batch_size)
    result = run_training(spec, inputs.training_input(spec, mnist_5k),
                          comparison=f"harness b{batch_size} {device}", variant="kbench",
                          baseline="kbench")
    bare = measure.bare_fit_throughput(
        spec, inputs.training_input(spec, mnist_5k), device=device,
        steps=profile.rounds * result.steps_per_round,
        warmup_steps=profile.warmup_rounds * result.steps_per_round)
    measure.add_extras(benchmark, bare_fit_samples_per_s=bare)
