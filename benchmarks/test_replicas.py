"""1 vs 2 replicas of MirroredStrategy, in both loops: does a second replica pay?

Replicas mirror over GPUs where TensorFlow sees them, else over the logical
CPUs the conftest splits the CPU into. On a CPU the two logical devices share
one pool of cores, so little or no speed-up is expected; the suite is there
to measure scaling where real devices exist. The global batch stays the same:
each of N replicas gets batch_size / N examples a step.
"""

import pytest

from kbench import distribute, inputs
from kbench.workflows import LOOPS, WorkflowSpec


# Replicas go where MirroredStrategy puts them, not where the other suites'
# `device` parameter says: it is overridden with the first replica device.
_FIRST = distribute.replica_devices()[0]
_KIND = "gpu" if "GPU" in _FIRST.upper() else "cpu"


@pytest.mark.parametrize("device", [_FIRST], ids=[_KIND])
@pytest.mark.parametrize("replicas", [1, 2], ids=lambda n: f"{n}replica")
@pytest.mark.parametrize("loop", LOOPS)
def test_replica_throughput(run_training, mnist_5k, family, batch_size, loop, replicas):
    available = distribute.replica_devices()
    if len(available) < replicas:
        pytest.skip(f"{replicas} replicas need {replicas} devices; TensorFlow sees {available} "
                    "(the CPU is split only if TensorFlow had not started yet)")
    spec = WorkflowSpec(family=family, loop=loop, strategy="mirrored", replicas=replicas,
                        batch_size=batch_size)
    run_training(spec, inputs.training_input(spec, mnist_5k),
                 comparison=f"replicas {family} {loop} b{batch_size} {_KIND}",
                 variant=f"{replicas} replica(s)", baseline="1 replica(s)")
