"""What tf.data prefetch and parallel map buy, against the ideal overlap bound.

The pipeline does real per-sample CPU work (``preprocess_cost``) and is not
cached, so input costs time every step. Input-only (iterate the pipeline) and
compute-only (train on batches cached in memory) give the two bounds: fully
serial input+compute, and perfect overlap max(input, compute). The summary
reports how much of the possible gain each setting achieved.
"""

import pytest

from kbench import data, inputs, measure
from kbench.record import BenchmarkRecord
from kbench.workflows import LOOPS, WorkflowSpec

# Per-sample preprocessing work units. Measured here (2-core CPU, sequential
# map, uncached): 28 us per sample with cost 0 (tf.data's per-element map
# overhead), 68 us with cost 3, 300 us with cost 30. Cost 3 makes the input
# about as long as the MLP's compute at batch 64 (~70 us per sample), where
# overlapping the two matters most.
PREFETCH_PREPROCESS_COST = 3
PREFETCH = {"off": None, "1": 1, "autotune": data.AUTOTUNE}
MAP_PARALLELISM = {"off": None, "autotune": data.AUTOTUNE}


def costly_input(spec, dataset, prefetch="off", parallel="off"):
    return inputs.training_input(spec, dataset, cache=False, prefetch=PREFETCH[prefetch],
                                  map_parallelism=MAP_PARALLELISM[parallel],
                                  preprocess_cost=PREFETCH_PREPROCESS_COST)


@pytest.mark.parametrize("parallel", MAP_PARALLELISM)
@pytest.mark.parametrize("prefetch", PREFETCH)
@pytest.mark.parametrize("loop", LOOPS)
def test_prefetch_training(run_training, mnist_5k, device, batch_size, loop, prefetch, parallel):
    spec = WorkflowSpec(loop=loop, batch_size=batch_size)
    run_training(spec, costly_input(spec, mnist_5k, prefetch, parallel), suite="prefetch",
                 comparison=f"prefetch {loop} b{batch_size} {device}",
                 variant=f"prefetch={prefetch} map={parallel}", baseline="prefetch=off map=off")


@pytest.mark.parametrize("loop", LOOPS)
def test_compute_only(run_training, mnist_5k, device, batch_size, loop, profile):
    spec = WorkflowSpec(loop=loop, batch_size=batch_size)
    cached = inputs.compute_only_input(costly_input(spec, mnist_5k), profile.steps_per_round)
    run_training(spec, cached, suite="prefetch", comparison=f"prefetch {loop} b{batch_size} {device}",
                 variant="compute-only", baseline="prefetch=off map=off")


def test_input_only(benchmark, profile, mnist_5k, batch_size):
    """The pipeline alone (tf.data runs on the host, whatever the training device)."""
    spec = WorkflowSpec(batch_size=batch_size)
    iterator = iter(costly_input(spec, mnist_5k))
    steps = inputs.calibrate_input(iterator, profile)
    benchmark.group = f"prefetch input b{batch_size}"
    benchmark.pedantic(inputs.consume, args=(iterator, steps), rounds=profile.rounds,
                       iterations=1)
    round_s = tuple(benchmark.stats.stats.data)
    measure.write_record(benchmark, BenchmarkRecord(
        samples_per_s=tuple(batch_size * steps / s for s in round_s), batch_size=batch_size,
        spec=spec, device="host", steps_per_round=steps, round_s=round_s, profile=profile.name,
        suite="prefetch", variant="input-only"))
