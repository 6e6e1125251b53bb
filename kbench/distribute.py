"""Which tf.distribute strategy a workflow runs under, and on which devices.

kbench does not distribute anything itself: a spec's ``strategy`` field names
one of TensorFlow's strategies and :func:`make_strategy` builds it.

- ``default``: TF's default strategy (one replica, no distribution).
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over this process's GPUs,
  or, with no GPU, over its logical CPU devices (see
  :func:`configure_logical_cpus`, which must run before TF initialises). The
  spec's ``replicas`` picks the first N of them; None takes all.
- ``multi_worker_mirrored``: ``tf.distribute.MultiWorkerMirroredStrategy``,
  one process per worker, the cluster read from ``TF_CONFIG`` (see
  :mod:`kbench.cluster` to start local workers). Its collectives get a
  timeout, so a worker whose peer died fails instead of waiting forever.

A spec's ``batch_size`` is the GLOBAL batch: each of N replicas gets
``batch_size / N`` examples a step, so a run with more replicas takes the
same optimizer steps over the same examples as a single-device run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os

import tensorflow as tf

from kbench._validate import check_positive_int
from kbench.workflows import WorkflowSpec

# How long a collective (the all-reduce of one step's gradients) may wait for
# its peers before the worker fails. A step of the reference workflows takes
# milliseconds; the first one waits for every worker to start and trace
# (~10-20 s on a loaded 2-core CPU). 60 s leaves room for that and still ends
# a job whose peer was killed well inside a CI budget.
COLLECTIVE_TIMEOUT_S = 60.0


class DistributeError(RuntimeError):
    """The devices or cluster a spec's strategy needs are not there."""


def configure_logical_cpus(count: int) -> list[str]:
    """Split the physical CPU into ``count`` logical devices; return their names.

    Must run before TensorFlow initialises its devices (before any op runs).
    If they are already initialised with ``count`` logical CPUs this is a
    no-op; otherwise it raises, naming what is there.

    Raises:
        ValueError: ``count`` is not a positive int.
        DistributeError: TF already initialised with another layout.
    """
    check_positive_int("count", count)
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as err:  # "Virtual devices cannot be modified after being initialized"
        present = cpu_devices()
        if len(present) != count:
            raise DistributeError(
                f"cannot make {count} logical CPUs: TensorFlow already initialised with "
                f"{len(present)} ({present}). Configure them before any TF op runs, "
                f"e.g. in a fresh process ({err})") from None
    return cpu_devices()


# Benchmarks compare 1 and 2 replicas; without GPUs the CPU is split in two.
BENCHMARK_LOGICAL_CPUS = 2


def split_cpu_unless_gpu(count: int = BENCHMARK_LOGICAL_CPUS) -> list[str]:
    """Where no GPU is installed, split the CPU into ``count`` logical devices for
    MirroredStrategy; return the devices replicas would mirror over.

    Call before TensorFlow initialises (any op, or listing logical devices).
    If it has already started (e.g. a benchmark session run inside another
    pytest), the layout stays as it is and fewer devices are returned; suites
    that need more skip, naming the devices they found. Ops placed without a
    strategy still run on CPU:0, which shares the process's thread pools with
    the other logical CPUs.
    """
    if not tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(DistributeError):
            configure_logical_cpus(count)
    return replica_devices()


def cpu_devices() -> list[str]:
    """This process's logical CPU devices, e.g. ['/device:CPU:0', '/device:CPU:1']."""
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def gpu_devices() -> list[str]:
    """This process's logical GPU devices, e.g. ['/device:GPU:0']."""
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def replica_devices(replicas: int | None = None) -> list[str]:
    """The devices MirroredStrategy mirrors over: GPUs if any, else logical CPUs.

    Raises:
        DistributeError: fewer devices than ``replicas`` are visible.
    """
    devices = gpu_devices() or cpu_devices()
    if replicas is None:
        return devices
    if replicas > len(devices):
        raise DistributeError(
            f"replicas={replicas} but this process has {len(devices)} device(s) to mirror "
            f"over: {devices}. Without a GPU, split the CPU first with "
            "kbench.distribute.configure_logical_cpus (before TF initialises)")
    return devices[:replicas]


def tf_config() -> dict | None:
    """The parsed ``TF_CONFIG`` of this process, or None if it is not set.

    Raises:
        DistributeError: it is set but is not a JSON object with a cluster and a task.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DistributeError(f"TF_CONFIG is not JSON ({err}): {raw!r:.200}") from None
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise DistributeError(f"TF_CONFIG needs 'cluster' and 'task', got {raw!r:.200}")
    return config


def is_chief(config: dict | None = None) -> bool:
    """Whether this process is the cluster's chief: worker 0 when there is no 'chief' task."""
    config = tf_config() if config is None else config
    if config is None:
        return True
    task = config["task"]
    if "chief" in config["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and int(task["index"]) == 0


@functools.cache
def _multi_worker_strategy() -> tf.distribute.Strategy:
    # One per process: TF sets up the cluster's collectives once, at creation,
    # and refuses a second strategy over the same cluster.
    if tf_config() is None:
        raise DistributeError(
            "strategy='multi_worker_mirrored' needs TF_CONFIG (the cluster and this "
            "worker's task); start workers with kbench.cluster.LocalCluster")
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=COLLECTIVE_TIMEOUT_S)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _default(spec: WorkflowSpec) -> tf.distribute.Strategy:
    return tf.distribute.get_strategy()


@functools.cache
def _mirrored_over(devices: tuple[str, ...]) -> tf.distribute.Strategy:
    # One per device set and process: two MirroredStrategy instances over the
    # same devices number their collectives alike, and a run under the second
    # fails with "Shape mismatch in the collective instance" (TF 2.21).
    return tf.distribute.MirroredStrategy(list(devices))


def _mirrored(spec: WorkflowSpec) -> tf.distribute.Strategy:
    return _mirrored_over(tuple(replica_devices(spec.replicas)))


def _multi_worker_mirrored(spec: WorkflowSpec) -> tf.distribute.Strategy:
    strategy = _multi_worker_strategy()
    if spec.replicas is not None and spec.replicas != strategy.num_replicas_in_sync:
        raise DistributeError(
            f"replicas={spec.replicas} but the TF_CONFIG cluster has "
            f"{strategy.num_replicas_in_sync} replica(s)")
    return strategy


STRATEGY_FACTORIES = {
    "default": _default,
    "mirrored": _mirrored,
    "multi_worker_mirrored": _multi_worker_mirrored,
}


def make_strategy(spec: WorkflowSpec) -> tf.distribute.Strategy:
    """The tf.distribute strategy ``spec.strategy`` names, with ``spec.replicas`` replicas.

    Raises:
        DistributeError: the devices or cluster it needs are missing, or the
            cluster has another number of replicas than ``spec.replicas``.
    """
    return STRATEGY_FACTORIES[spec.strategy](spec)


def sync_devices() -> None:
    """Block until every device has finished its queued work (no-op where unsupported)."""
    sync = getattr(getattr(tf.test, "experimental", None), "sync_devices", None)
    if sync is not None:
        sync()
