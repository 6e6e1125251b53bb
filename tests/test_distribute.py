"""Strategies and devices in this process (one physical CPU, TF initialised).

Runs that need another device layout or several workers are in
tests/test_cluster.py, in worker processes.
"""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from kbench import distribute
from kbench.workflows import WorkflowSpec


def test_default_strategy_is_tensorflows_default():
    strategy = distribute.make_strategy(WorkflowSpec())
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1


def test_mirrored_strategy_is_made_once_per_device_set():
    # Two MirroredStrategy objects over the same devices clash in their collectives.
    spec = WorkflowSpec(strategy="mirrored", replicas=1)
    first = distribute.make_strategy(spec)
    assert first is distribute.make_strategy(spec)
    assert isinstance(first, tf.distribute.MirroredStrategy)
    (device,) = first.extended.worker_devices
    assert device.endswith(distribute.replica_devices(1)[0])


def test_more_replicas_than_devices_is_refused_naming_them():
    devices = distribute.replica_devices()
    with pytest.raises(distribute.DistributeError,
                       match=rf"replicas={len(devices) + 1} but this process has {len(devices)} "
                             r"device\(s\).*configure_logical_cpus"):
        distribute.make_strategy(WorkflowSpec(strategy="mirrored", replicas=len(devices) + 1,
                                              batch_size=32 * (len(devices) + 1)))


def test_logical_cpus_cannot_change_after_tensorflow_started():
    present = len(distribute.cpu_devices())
    assert distribute.configure_logical_cpus(present) == distribute.cpu_devices()  # no-op
    with pytest.raises(distribute.DistributeError,
                       match=rf"cannot make {present + 1} logical CPUs: TensorFlow already "
                             rf"initialised with {present}"):
        distribute.configure_logical_cpus(present + 1)


@pytest.mark.parametrize("count", [0, -1, 1.5, True, "2"])
def test_logical_cpu_count_must_be_a_positive_int(count):
    with pytest.raises(ValueError, match=f"count must be a positive int, got {count!r}"):
        distribute.configure_logical_cpus(count)


def test_multi_worker_without_tf_config_says_how_to_start_workers(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(distribute.DistributeError, match="needs TF_CONFIG.*LocalCluster"):
        distribute.make_strategy(WorkflowSpec(loop="custom", strategy="multi_worker_mirrored"))


@pytest.mark.parametrize("raw, message", [
    ("{not json", "TF_CONFIG is not JSON"),
    ('{"cluster": {}}', "TF_CONFIG needs 'cluster' and 'task'"),
    ("[1, 2]", "TF_CONFIG needs 'cluster' and 'task'"),
])
def test_bad_tf_config_is_refused_quoting_it(raw, message, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(distribute.DistributeError, match=message) as info:
        distribute.tf_config()
    assert raw in str(info.value)


@pytest.mark.parametrize("config, chief", [
    (None, True),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "worker", "index": 0}}, False),
    ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "chief", "index": 0}}, True),
])
def test_chief_is_the_chief_task_or_else_worker_0(config, chief, monkeypatch):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert distribute.is_chief() is chief


def test_device_lists_name_devices_tensorflow_places_ops_on():
    gpus, cpus = distribute.gpu_devices(), distribute.cpu_devices()
    assert len(gpus) == len(tf.config.list_physical_devices("GPU"))  # tests make no virtual GPUs
    assert cpus, "TensorFlow always has a CPU"
    for kind, names in (("GPU", gpus), ("CPU", cpus)):
        assert names == [f"/device:{kind}:{i}" for i in range(len(names))]
        for name in names:
            with tf.device(name):
                assert tf.identity(tf.constant(0.0)).device.endswith(name.lstrip("/"))


def test_splitting_after_tensorflow_started_keeps_the_layout():
    # This process initialised TF long ago; a benchmark session inside it must still run.
    kind = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    present = tf.config.list_logical_devices(kind)
    devices = distribute.split_cpu_unless_gpu(len(distribute.cpu_devices()) + 1)
    assert devices == [f"/device:{kind}:{i}" for i in range(len(present))]


SPLIT_IN_A_FRESH_PROCESS = """
import json
import tensorflow as tf
from kbench import distribute
split = distribute.split_cpu_unless_gpu(2)
print(json.dumps([split, [d.name for d in tf.config.list_logical_devices("CPU")]]))
"""


def test_splitting_before_tensorflow_starts_makes_two_logical_cpus():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("with a GPU the CPU is not split; the replicas are the GPUs")
    done = subprocess.run([sys.executable, "-c", SPLIT_IN_A_FRESH_PROCESS], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    split, logical = json.loads(done.stdout.strip().splitlines()[-1])
    assert split == logical == ["/device:CPU:0", "/device:CPU:1"]
