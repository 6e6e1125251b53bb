"""1 vs 2 replicas of MirroredStrategy, in both loops: does a second replica pay?

Replicas mirror over GPUs where TensorFlow sees them, else over the logical
CPUs the conftest splits the CPU into. On a CPU the two logical devices share
one pool of cores, so little or no speed-up is expected; the suite is there
to measure scaling where real devices exist. The global batch stays the same:
each of N replicas gets batch_size / N examples a step.
"""

import pytest

from kbench import distribute, inputs
from kbench.interleaved import Training
from kbench.workflows import LOOPS, WorkflowSpec


# Replicas go where MirroredStrategy puts them, not where the other suites'
# `device` parameter says: it is overridden with the first replica device.
_FIRST = distribute.replica_devices()[0]
_KIND = "gpu" if "GPU" in _FIRST.upper() else "cpu"


def _enough(replicas: int) -> bool:
    return len(distribute.replica_devices()) >= replicas


@pytest.mark.parametrize("device", [_FIRST], ids=[_KIND])
@pytest.mark.parametrize("replicas", [1, 2], ids=lambda n: f"{n}replica")
@pytest.mark.parametrize("loop", LOOPS)
def test_replica_throughput(lockstep_group, mnist_5k, family, batch_size, loop, replicas):
    if not _enough(replicas):
        pytest.skip(f"{replicas} replicas need {replicas} devices; TensorFlow sees "
                    f"{distribute.replica_devices()} (the CPU is split only if TensorFlow had "
                    "not started yet)")

    def variant(replicas):
        if not _enough(replicas):
            return None  # that test skips itself
        spec = WorkflowSpec(family=family, loop=loop, strategy="mirrored", replicas=replicas,
                            batch_size=batch_size)
        return Training(f"{replicas} replica(s)", spec, inputs.training_input(spec, mnist_5k))

    lockstep_group(variant, vary="replicas",
                   comparison=f"replicas {family} {loop} b{batch_size} {_KIND}",
                   baseline="1 replica(s)")
