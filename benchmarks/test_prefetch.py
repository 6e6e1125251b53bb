"""What tf.data prefetch and parallel map buy, against the bounds of ideal overlap.

The pipeline does real per-sample CPU work (``preprocess_cost``) and is not
cached, so input costs time every step. Variants bound the others:
input-only (the pipeline alone, pulled inside a tf.function one batch per
call, as fit pulls it; once with a sequential map, once with the parallel
map, each bounding the settings with its map) and compute-only (training on
batches cached in memory). Serial input + compute and perfect overlap
max(input, compute) span what a setting can achieve; the summary reports
each setting's share of that gain with a CI, the CPU work both sides need,
and which resource bounds the setting. All variants of a loop's group,
bounds included, run in lockstep (kbench.interleaved), every round timed
from a quiet process to a quiet process (full prefetch buffers to full
buffers, kbench.telemetry.wait_quiet), so no setting is credited with what
its buffer produced between rounds.
"""

import pytest

from kbench import data, inputs
from kbench.interleaved import InputOnly, Remote, Training
from kbench.report import COMPUTE_ONLY, INPUT_BOUND, INPUT_ONLY
from kbench.workflows import LOOPS, WorkflowSpec

# Per-sample preprocessing work units. Measured here (2-core CPU, sequential
# map, uncached): 28 us per sample with cost 0 (tf.data's per-element map
# overhead), 68 us with cost 3, 300 us with cost 30. Cost 3 makes the input
# about as long as the MLP's compute at batch 64 (~70 us per sample), where
# overlapping the two matters most.
PREFETCH_PREPROCESS_COST = 3
PREFETCH = {"off": None, "1": 1, "autotune": data.AUTOTUNE}
MAP_PARALLELISM = {"off": None, "autotune": data.AUTOTUNE}
SETTINGS = {f"prefetch={p} map={m}": (p, m) for p in PREFETCH for m in MAP_PARALLELISM}
# On a 2-core CPU the model's intra-op threads take both cores, so the
# pipeline's threads compete with them instead of overlapping. This variant
# runs the best setting with the model on one intra-op thread (a per-process
# TensorFlow setting, so in a child process, still in lockstep), leaving the
# pipeline a core of its own.
ONE_THREAD = "prefetch=autotune map=autotune, model on 1 thread"
# The input-only bound of the settings with a parallel map.
INPUT_ONLY_PARALLEL = f"{INPUT_ONLY} map=autotune"
PIPELINES = (*SETTINGS, ONE_THREAD, COMPUTE_ONLY, INPUT_ONLY, INPUT_ONLY_PARALLEL)


def input_bound(map_parallelism: str) -> dict:
    """A setting's record extras: the input-only variant that bounds it."""
    return {INPUT_BOUND: INPUT_ONLY_PARALLEL if MAP_PARALLELISM[map_parallelism] else INPUT_ONLY}


def pipeline_options(prefetch="off", parallel="off") -> dict:
    """The costly pipeline's options (kbench.inputs.training_input keywords)."""
    return {"cache": False, "prefetch": PREFETCH[prefetch],
            "map_parallelism": MAP_PARALLELISM[parallel],
            "preprocess_cost": PREFETCH_PREPROCESS_COST}


def costly_input(spec, dataset, prefetch="off", parallel="off"):
    return inputs.training_input(spec, dataset, **pipeline_options(prefetch, parallel))


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("loop", LOOPS)
def test_prefetch(lockstep_group, train_dataset, dataset_name, on_dataset, device, batch_size,
                  profile, loop, pipeline):
    def variant(pipeline):
        spec = WorkflowSpec(loop=loop, batch_size=batch_size, dataset=dataset_name)
        if pipeline == INPUT_ONLY:
            return InputOnly(pipeline, spec, costly_input(spec, train_dataset))
        if pipeline == INPUT_ONLY_PARALLEL:
            return InputOnly(pipeline, spec,
                             costly_input(spec, train_dataset, parallel="autotune"))
        if pipeline == ONE_THREAD:  # the child process loads the spec's dataset itself
            return Remote(pipeline, spec, pipeline_options("autotune", "autotune"),
                          intra_op_threads=1, extras=input_bound("autotune"))
        if pipeline == COMPUTE_ONLY:
            cached = inputs.compute_only_input(costly_input(spec, train_dataset),
                                               profile.steps_per_round)
            return Training(pipeline, spec, cached)
        prefetch, parallel = SETTINGS[pipeline]
        return Training(pipeline, spec, costly_input(spec, train_dataset, prefetch, parallel),
                        extras=input_bound(parallel))

    lockstep_group(variant, vary="pipeline", suite="prefetch",
                   comparison=f"prefetch {loop} b{batch_size} {device}{on_dataset}",
                   baseline="prefetch=off map=off")
