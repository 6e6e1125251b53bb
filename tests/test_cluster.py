"""Distributed training in worker processes, fault tolerance and distributed upstream bugs.

Every test here starts fresh Python processes (kbench.cluster): two logical
CPUs for MirroredStrategy, or two local workers on 127.0.0.1 for
MultiWorkerMirroredStrategy. Each wait is bounded and every process is killed
on the way out; ``assert_no_survivors`` checks that none is left.
"""

import dataclasses
import math
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from kbench import cluster, distribute, testing, training, worker
from kbench import workflows as wf
from kbench.workflows import WorkflowSpec

# Distributed runs train the MLP for 2 epochs (a step under two local workers
# costs ~50-150 ms of gRPC all-reduce on this 2-core machine, so 5 epochs would
# take a minute each). 2-epoch MLP accuracy on mnist_5k, measured: single
# device 0.900-0.911 (fit and custom loop, seeds 0 and 1), mirrored on two
# logical CPUs 0.906-0.909, two MWMS workers 0.906-0.911. The floor is the
# suite's 2-epoch MLP floor (tests/test_training.py), 4-5 standard errors
# below them.
DISTRIBUTED_EPOCHS = 2
DISTRIBUTED_ACCURACY_FLOOR = 0.86
# |distributed - single device| test accuracy. Replicas split each global
# batch and draw their own dropout masks, so runs differ from the single
# device like two seeds do: measured differences 0.000-0.005; one standard
# error on 1,000 test digits is ~0.009, so 0.03 is ~3 of them.
REPLICA_ACCURACY_TOLERANCE = 0.03
# How long the job may take to fail after one MWMS worker is SIGKILLed.
# Measured: the survivor stops within ~10 s (TF's coordination service misses
# the dead task's heartbeats and aborts its collectives). The bound leaves
# room for a loaded CI machine and stays far below kbench.distribute's
# collective timeout plus start-up, so a hang cannot pass.
SURVIVOR_FAILS_WITHIN_S = 45.0
# Start-up of two workers plus the training above, with a wide margin.
JOB_TIMEOUT_S = 240.0
# Where fault tests kill a worker: after batch 10 of epoch 1 (epoch 0 is done
# and durable, epoch 1 is half-way).
KILL_AT = (1, 10)
# TensorFlow's errors for collectives whose peer went away.
PEER_LOST_ERRORS = ("UnavailableError", "DeadlineExceededError", "AbortedError",
                    "CancelledError", "InternalError")

BASE = WorkflowSpec(epochs=DISTRIBUTED_EPOCHS)
# A worker's result: the engine's record (TrainResult.to_dict()) and what the cluster adds.
ENGINE_RECORD = {f.name for f in dataclasses.fields(training.TrainResult)} - {"model"}
CLUSTER_FIELDS = {"kbench_worker_schema", "task", "chief", "replicas", "error"}
# Optimizer steps of one mnist_5k epoch (4,000 examples) at BASE's global batch, by hand.
EPOCH_STEPS = math.ceil(4000 / BASE.batch_size)
pytestmark = pytest.mark.slow


def assert_no_survivors(pids) -> None:
    alive = [pid for pid in pids if testing.process_alive(pid)]
    assert not alive, f"worker processes left running: {alive}"


def assert_engine_record(result: dict, epochs_run: int) -> None:
    """The worker returned the engine's own record, its steps counted as global steps."""
    assert set(result) == ENGINE_RECORD | CLUSTER_FIELDS
    assert result["error"] is None and result["epochs_run"] == epochs_run
    assert result["steps"] == epochs_run * EPOCH_STEPS
    assert result["samples_seen"] == epochs_run * 4000


def assert_trained_like_single_device(result: dict, single_device_accuracy: float) -> None:
    accuracy = result["test_accuracy"]
    assert accuracy >= DISTRIBUTED_ACCURACY_FLOOR, (
        f"{result['spec']['name']} under {result['spec']['strategy']}: test accuracy "
        f"{accuracy:.3f} < floor {DISTRIBUTED_ACCURACY_FLOOR}")
    assert abs(accuracy - single_device_accuracy) <= REPLICA_ACCURACY_TOLERANCE, (
        f"{result['spec']['strategy']}: {accuracy:.3f} vs single device "
        f"{single_device_accuracy:.3f}, beyond {REPLICA_ACCURACY_TOLERANCE}")
    losses = result["history"]["loss"]
    assert losses[-1] < losses[0], f"loss did not fall: {losses}"


@pytest.fixture(scope="module")
def single_device_accuracy():
    """Test accuracy of BASE on one device, per loop, trained in this process."""
    cache = {}

    def accuracy(loop: str) -> float:
        if loop not in cache:
            cache[loop] = training.train(BASE.replace(loop=loop)).test_accuracy
        return cache[loop]

    return accuracy


# --------------------------------------------------------------------------- workflows


@pytest.mark.parametrize("loop", wf.LOOPS)
def test_mirrored_on_two_logical_cpus_trains_like_one_device(loop, tmp_path,
                                                             single_device_accuracy):
    job = cluster.WorkerJob(BASE.replace(loop=loop, strategy="mirrored"),
                            tmp_path / "result.json", logical_cpus=2)
    result = cluster.run_job(job, tmp_path / "logs", timeout_s=JOB_TIMEOUT_S)
    assert result["replicas"] == 2
    assert_engine_record(result, DISTRIBUTED_EPOCHS)
    assert_trained_like_single_device(result, single_device_accuracy(loop))


def test_multi_worker_custom_loop_trains_on_two_local_workers(tmp_path, single_device_accuracy):
    spec = BASE.replace(loop="custom", strategy="multi_worker_mirrored", replicas=2)
    jobs = [cluster.WorkerJob(spec, tmp_path / f"worker-{i}.json") for i in range(2)]
    chief, other = cluster.run_cluster(jobs, tmp_path / "logs", timeout_s=JOB_TIMEOUT_S)
    assert (chief["chief"], other["chief"]) == (True, False)
    assert chief["replicas"] == other["replicas"] == 2
    assert_engine_record(chief, DISTRIBUTED_EPOCHS)
    # One model, mirrored: both workers saw the same global metrics every epoch.
    assert chief["history"] == other["history"]
    assert chief["test_accuracy"] == other["test_accuracy"]
    assert_trained_like_single_device(chief, single_device_accuracy("custom"))


# --------------------------------------------------------------------------- known upstream bugs


class StillFailsUpstream(Exception):
    """The real combination failed in a worker exactly as the known issue says."""


DISTRIBUTED_ISSUES = [i for i in wf.KNOWN_ISSUES if i.when.get("strategy", "default") != "default"]


def _issue_jobs(issue: wf.KnownIssue, tmp_path) -> list[cluster.WorkerJob]:
    spec = issue.example(epochs=1)
    workers = 2 if spec.strategy == "multi_worker_mirrored" else 1
    logical_cpus = 2 if spec.strategy == "mirrored" else None
    return [cluster.WorkerJob(spec, tmp_path / f"worker-{i}.json", logical_cpus=logical_cpus,
                              allow_known_issue=True) for i in range(workers)]


@pytest.mark.parametrize("issue", [
    pytest.param(issue, id=issue.reference, marks=pytest.mark.xfail(
        strict=True, raises=StillFailsUpstream,
        reason=f"known upstream bug {issue.reference}; an XPASS means it is fixed: "
               "remove the entry from kbench.workflows.KNOWN_ISSUES"))
    for issue in DISTRIBUTED_ISSUES])
def test_distributed_known_issue_still_fails_upstream(issue, tmp_path):
    """Runs the real combination in workers: a release that fixes it turns this red (XPASS)."""
    jobs = _issue_jobs(issue, tmp_path)
    with cluster.LocalCluster(jobs, tmp_path / "logs") as workers:
        workers.wait(JOB_TIMEOUT_S)
    error = cluster.read_result(jobs[0].result)["error"]
    if error is None:
        return  # it trained: the bug is fixed (XPASS)
    assert error["type"] == issue.error_name and re.search(issue.error_match, error["message"]), (
        f"failed differently: {error['type']}: {error['message'][:500]}")
    raise StillFailsUpstream(f"{error['type']}: {error['message'][:200]}")


# --------------------------------------------------------------------------- fault tolerance


def _kill_when_held(jobs, index: int, log_dir):
    """Start the jobs, SIGKILL worker ``index`` once it holds; the cluster's exits and
    seconds from the kill until every worker had exited."""
    with cluster.LocalCluster(jobs, log_dir) as workers:
        workers.wait_for_file(jobs[index].held_marker, JOB_TIMEOUT_S)
        workers.kill(index)
        killed_at = time.monotonic()
        exits = workers.wait(SURVIVOR_FAILS_WITHIN_S)
        waited = time.monotonic() - killed_at
        pids = workers.pids
    assert_no_survivors(pids)
    return exits, waited


def _epochs_logged(path) -> list[int]:
    return [row["epoch"] for row in worker.read_epoch_log(path)]


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_fit_resumes_from_backup_after_sigkill(strategy, tmp_path):
    """BackupAndRestore: a run killed mid-epoch resumes at that epoch; no epoch lost or repeated."""
    spec = BASE.replace(strategy=strategy, epochs=3)
    common = {"backup_dir": tmp_path / "backup", "epoch_log": tmp_path / "epochs.csv",
              "logical_cpus": 2 if strategy == "mirrored" else None}
    first = cluster.WorkerJob(spec, tmp_path / "first.json", hold_at=KILL_AT, **common)
    (killed,), _ = _kill_when_held([first], 0, tmp_path / "logs-first")
    assert killed.returncode == -signal.SIGKILL
    assert not first.result.exists()
    assert _epochs_logged(common["epoch_log"]) == [0]  # done before the kill

    second = cluster.WorkerJob(spec, tmp_path / "second.json", **common)
    result = cluster.run_job(second, tmp_path / "logs-second", timeout_s=JOB_TIMEOUT_S)
    assert result["resumed_from"] == KILL_AT[0]
    assert len(result["history"]["loss"]) == spec.epochs - KILL_AT[0]
    assert_engine_record(result, spec.epochs - KILL_AT[0])
    assert _epochs_logged(common["epoch_log"]) == list(range(spec.epochs))
    assert result["test_accuracy"] >= DISTRIBUTED_ACCURACY_FLOOR


def test_multi_worker_checkpoints_survive_a_killed_worker(tmp_path):
    """Kill one MWMS worker: the job fails in bounded time; restarted, it resumes from the
    chief's last checkpoint with no completed epoch lost."""
    spec = BASE.replace(loop="custom", strategy="multi_worker_mirrored")
    checkpoints, epoch_log = tmp_path / "checkpoints", tmp_path / "epochs.csv"

    def jobs(tag, hold_worker=None):
        return [cluster.WorkerJob(spec, tmp_path / f"{tag}-{i}.json", checkpoint_dir=checkpoints,
                                  epoch_log=epoch_log, hold_at=KILL_AT if i == hold_worker else None)
                for i in range(2)]

    first = jobs("first", hold_worker=1)
    (survivor, killed), waited = _kill_when_held(first, 1, tmp_path / "logs-first")
    assert killed.returncode == -signal.SIGKILL
    assert not survivor.killed_by_cluster, (
        f"the chief did not fail by itself within {SURVIVOR_FAILS_WITHIN_S} s of its peer's "
        f"death and was killed:\n{survivor.log_tail()}")
    assert survivor.returncode == 1 and waited <= SURVIVOR_FAILS_WITHIN_S
    error = cluster.read_result(first[0].result)["error"]
    assert error["type"] in PEER_LOST_ERRORS, error
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith(f"ckpt-{KILL_AT[0]}")
    assert _epochs_logged(epoch_log) == list(range(KILL_AT[0]))

    results = cluster.run_cluster(jobs("second"), tmp_path / "logs-second",
                                  timeout_s=JOB_TIMEOUT_S)
    for result in results:
        assert result["resumed_from"] == KILL_AT[0]
        assert_engine_record(result, spec.epochs - KILL_AT[0])
    assert _epochs_logged(epoch_log) == list(range(spec.epochs))
    assert results[0]["test_accuracy"] == results[1]["test_accuracy"]
    assert results[0]["test_accuracy"] >= DISTRIBUTED_ACCURACY_FLOOR


# --------------------------------------------------------------------------- the process manager


class _Command:
    """A job-like object: LocalCluster only needs argv()."""

    def __init__(self, *argv):
        self._argv = [sys.executable, "-c", *argv]

    def argv(self):
        return self._argv


# Starts a grandchild that sleeps, records both pids, then sleeps itself.
SPAWNING_SLEEPER = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(f"{os.getpid()} {child.pid}")
time.sleep(600)
"""


@pytest.mark.parametrize("how", ["timeout", "leaving the block"])
def test_cluster_kills_workers_and_their_children(how, tmp_path):
    marker = tmp_path / "pids"
    with cluster.LocalCluster([_Command(SPAWNING_SLEEPER, str(marker))], tmp_path) as workers:
        workers.wait_for_file(marker, timeout_s=60)
        time.sleep(0.2)  # the pids are written before the file is closed
        if how == "timeout":
            (exit_,) = workers.wait(timeout_s=0.5)
            assert exit_.killed_by_cluster and exit_.returncode == -signal.SIGKILL
    pids = [int(p) for p in marker.read_text().split()]
    deadline = time.monotonic() + 10  # the orphaned grandchild is reaped by init
    while any(testing.process_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert_no_survivors(pids)


def test_wait_for_file_reports_workers_that_exited(tmp_path):
    with cluster.LocalCluster([_Command("import sys; print('boom'); sys.exit(3)")],
                              tmp_path) as workers:
        with pytest.raises(cluster.ClusterError, match=r"(?s)never.json.*exit 3.*boom"):
            workers.wait_for_file(tmp_path / "never.json", timeout_s=60)


def test_run_job_names_the_failure_and_its_log(tmp_path):
    job = cluster.WorkerJob(WorkflowSpec(dataset="synthetic", epochs=1,
                                         strategy="multi_worker_mirrored"),
                            tmp_path / "result.json")
    with pytest.raises(cluster.ClusterError, match=r"(?s)exit codes \{0: 1\}.*needs TF_CONFIG"):
        cluster.run_job(job, tmp_path / "logs", timeout_s=JOB_TIMEOUT_S)


@pytest.mark.parametrize("spec, expected", [
    ('{"loop": "sideways"}', "loop must be one of"),
    ("{not json", "bad --spec"),
    ('{"colour": "red"}', "colour"),
])
def test_worker_rejects_a_bad_spec(spec, expected, tmp_path):
    done = subprocess.run([sys.executable, "-m", "kbench.worker", "--spec", spec,
                           "--result", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert expected in done.stderr and spec in done.stderr
    assert not (tmp_path / "r.json").exists()


# --------------------------------------------------------------------------- jobs and clusters


@pytest.mark.parametrize("options", [
    {"logical_cpus": 2, "checkpoint_dir": "c", "epoch_log": "e.csv", "hold_at": (1, 10),
     "allow_known_issue": True},
    {"backup_dir": "b"},
    {},
])
def test_job_argv_round_trips_through_the_worker_parser(options, tmp_path):
    paths = {k: tmp_path / v for k, v in options.items() if k.endswith(("_dir", "_log"))}
    job = cluster.WorkerJob(WorkflowSpec(loop="custom", strategy="mirrored", replicas=2),
                            tmp_path / "r.json", **{**options, **paths})
    assert job.argv()[1:3] == ["-m", "kbench.worker"]
    assert cluster.WorkerJob.from_argv(job.argv()[3:]) == job


@pytest.mark.parametrize("kwargs, message", [
    ({"spec": "mlp"}, "spec must be a WorkflowSpec, got 'mlp'"),
    ({"backup_dir": "b", "checkpoint_dir": "c"}, "pass one"),
    ({"hold_at": (1,)}, r"hold_at must be \(epoch, batch\) of ints >= 0, got \(1,\)"),
    ({"hold_at": (1, -2)}, r"got \(1, -2\)"),
])
def test_bad_jobs_are_refused(kwargs, message, tmp_path):
    kwargs = {"spec": WorkflowSpec(), "result": tmp_path / "r.json", **kwargs}
    with pytest.raises((TypeError, ValueError), match=message):
        cluster.WorkerJob(**kwargs)


def test_tf_configs_describe_one_loopback_cluster():
    configs = cluster.tf_configs(3)
    workers = configs[0]["cluster"]["worker"]
    assert all(c["cluster"]["worker"] == workers for c in configs)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(w.startswith("127.0.0.1:") for w in workers)
    assert len(set(workers)) == 3
    assert [distribute.is_chief(c) for c in configs] == [True, False, False]


@pytest.mark.parametrize("content, message", [
    (None, "no readable worker result"),
    ("{", "no readable worker result"),
    ('{"kbench_worker_schema": 99}', "unknown worker result schema 99"),
])
def test_read_result_refuses_what_is_not_a_result(content, message, tmp_path):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(cluster.ClusterError, match=message):
        cluster.read_result(path)
