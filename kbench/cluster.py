"""Training in worker processes: logical devices, local multi-worker clusters, faults.

Some runs cannot happen in the calling process: a logical device layout can
only be set before TensorFlow initialises, and MultiWorkerMirroredStrategy
needs one process per worker. This module runs the engine in fresh Python
processes (``python -m kbench.cluster``) and manages them:

- :class:`WorkerJob` is what one worker does (the spec, its logical CPUs,
  backups or checkpoints, where its result goes). Its ``argv()`` is the
  command line; :func:`main` in the worker reads it back.
- :class:`LocalCluster` starts N workers on 127.0.0.1, each with its own
  ``TF_CONFIG`` and free port, each in its own process group, with stdout and
  stderr in log files. Waits are bounded; a worker still running when its
  time is up, or when the cluster is left, is killed with its children, so
  nothing is orphaned.
- Fault injection: a job's ``hold_at=(epoch, batch)`` makes the worker write
  a marker file after that batch and then wait to be killed, so a test can
  SIGKILL it mid-epoch at a known point.

Every worker writes a JSON result (atomically) with its history, test
accuracy, the epoch it resumed from, or the error it failed with.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from kbench import workflows
from kbench._files import atomic_write_bytes

LOOPBACK = "127.0.0.1"
# Bounds on waiting for workers. Starting a worker (Python, TensorFlow, the
# data) takes 5-10 s on this 2-core machine, two at once about twice that.
DEFAULT_TIMEOUT_S = 300.0
# How often a wait looks at the workers again.
POLL_S = 0.1
# Result file schema history:
#   1: spec, task, chief, replicas, history, test_loss, test_accuracy,
#      resumed_from, epochs_done, error.
RESULT_SCHEMA_VERSION = 1


class ClusterError(RuntimeError):
    """Workers could not be started, or did not finish in time."""


@dataclasses.dataclass(frozen=True)
class WorkerJob:
    """What one worker process trains, and how.

    Args:
        spec: the workflow (its ``strategy`` decides how replicas are made).
        result: where the worker writes its JSON result.
        logical_cpus: split the CPU into this many logical devices first
            (for ``mirrored`` without GPUs); None leaves the layout alone.
        backup_dir: add ``keras.callbacks.BackupAndRestore`` with this backup
            directory (resumes an interrupted run from its last epoch).
        checkpoint_dir: train with :func:`kbench.saving.train_resumable`,
            checkpointing every epoch here (the chief's directory; other
            workers write to temporary directories, as TF's multi-worker
            guide does) and resuming from its newest checkpoint.
        epoch_log: append one CSV row per finished epoch (chief only).
        hold_at: (epoch, batch): after that batch, write ``<result>.held`` and
            wait to be killed. For fault-injection tests.
        allow_known_issue: run a spec that hits a known upstream bug.
    """

    spec: workflows.WorkflowSpec
    result: Path
    logical_cpus: int | None = None
    backup_dir: Path | None = None
    checkpoint_dir: Path | None = None
    epoch_log: Path | None = None
    hold_at: tuple[int, int] | None = None
    allow_known_issue: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.spec, workflows.WorkflowSpec):
            raise TypeError(f"spec must be a WorkflowSpec, got {self.spec!r:.80}")
        if self.backup_dir is not None and self.checkpoint_dir is not None:
            raise ValueError("backup_dir (fit's BackupAndRestore) and checkpoint_dir "
                             "(train_resumable) are two ways to resume; pass one")
        if self.hold_at is not None and (
                len(self.hold_at) != 2 or any(isinstance(v, bool) or not isinstance(v, int)
                                              or v < 0 for v in self.hold_at)):
            raise ValueError(f"hold_at must be (epoch, batch) of ints >= 0, got {self.hold_at!r}")

    @property
    def held_marker(self) -> Path:
        """The file the worker writes when it reaches ``hold_at``."""
        return Path(f"{self.result}.held")

    def argv(self) -> list[str]:
        """The worker's command line."""
        spec = {k: v for k, v in self.spec.to_dict().items() if k != "name"}
        argv = [sys.executable, "-m", "kbench.cluster", "--spec", json.dumps(spec),
                "--result", str(self.result)]
        for flag, value in (("--logical-cpus", self.logical_cpus),
                            ("--backup-dir", self.backup_dir),
                            ("--checkpoint-dir", self.checkpoint_dir),
                            ("--epoch-log", self.epoch_log)):
            if value is not None:
                argv += [flag, str(value)]
        if self.hold_at is not None:
            argv += ["--hold-at", f"{self.hold_at[0]}:{self.hold_at[1]}"]
        if self.allow_known_issue:
            argv.append("--allow-known-issue")
        return argv


# --------------------------------------------------------------------------- the cluster


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct TCP ports that are free on ``host`` right now.

    All are held open until each is found, so they differ; another process
    could still take one before a worker binds it (then the worker fails to
    start and says so in its log).
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                   for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]


def tf_configs(count: int, host: str = LOOPBACK) -> list[dict]:
    """A ``TF_CONFIG`` per worker of a ``count``-worker cluster on ``host``."""
    workers = [f"{host}:{port}" for port in free_ports(count, host)]
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}
            for i in range(count)]


@dataclasses.dataclass(frozen=True)
class WorkerExit:
    """How one worker ended.

    Attributes:
        index: the worker's index.
        returncode: its exit code; negative: killed by that signal.
        killed_by_cluster: True if LocalCluster killed it (timeout or ``kill``).
        seconds: from start to exit.
        log: the worker's combined stdout and stderr file.
    """

    index: int
    returncode: int
    killed_by_cluster: bool
    seconds: float
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the worker's log."""
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class LocalCluster:
    """Worker processes on this machine; a context manager that never leaks them.

    Each worker runs ``jobs[i].argv()`` in its own process group, with
    ``TF_CONFIG`` for worker i when ``multi_worker`` is True (and none
    otherwise), and its output in ``log_dir/worker-<i>.log``.
    """

    def __init__(self, jobs: Sequence[WorkerJob], log_dir, *, multi_worker: bool | None = None,
                 env: Mapping[str, str] | None = None, clock=time.monotonic):
        if not jobs:
            raise ValueError("a cluster needs at least one job, got none")
        self.jobs = list(jobs)
        self.log_dir = Path(log_dir)
        self.multi_worker = len(self.jobs) > 1 if multi_worker is None else multi_worker
        self.env = dict(os.environ if env is None else env)
        self.env.pop("TF_CONFIG", None)  # never inherit another cluster
        self.clock = clock
        self._procs: list[subprocess.Popen] = []
        self._started: list[float] = []
        self._killed: set[int] = set()
        self._exits: dict[int, WorkerExit] = {}

    def __enter__(self) -> "LocalCluster":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        configs = tf_configs(len(self.jobs)) if self.multi_worker else [None] * len(self.jobs)
        try:
            for i, (job, config) in enumerate(zip(self.jobs, configs)):
                self._start(i, job, config)
        except BaseException:
            self.kill_all()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.kill_all()

    def _start(self, index: int, job: WorkerJob, config: dict | None) -> None:
        env = dict(self.env)
        if config is not None:
            env["TF_CONFIG"] = json.dumps(config)
        with open(self.log_path(index), "wb") as log:
            self._procs.append(subprocess.Popen(
                job.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True))
        self._started.append(self.clock())

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (each is also its process group id)."""
        return [proc.pid for proc in self._procs]

    def log_path(self, index: int) -> Path:
        return self.log_dir / f"worker-{index}.log"

    def _reap(self, index: int) -> WorkerExit | None:
        if index not in self._exits:
            code = self._procs[index].poll()
            if code is None:
                return None
            self._exits[index] = WorkerExit(index, code, index in self._killed,
                                            self.clock() - self._started[index],
                                            self.log_path(index))
        return self._exits[index]

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to worker ``index`` and its children (no-op if it has exited)."""
        proc = self._procs[index]
        if proc.poll() is None:
            self._killed.add(index)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    def kill_all(self) -> None:
        """SIGKILL every worker still running and reap it."""
        for index, proc in enumerate(self._procs):
            self.kill(index)
            proc.wait()
            self._reap(index)

    def wait(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[WorkerExit]:
        """Wait until every worker has exited; kill those still running after ``timeout_s``."""
        deadline = self.clock() + timeout_s
        while self.clock() < deadline:
            if all(self._reap(i) is not None for i in range(len(self._procs))):
                break
            time.sleep(POLL_S)
        self.kill_all()
        return [self._exits[i] for i in range(len(self._procs))]

    def wait_for_file(self, path, timeout_s: float = DEFAULT_TIMEOUT_S) -> float:
        """Wait until ``path`` exists; return the seconds waited.

        Raises:
            ClusterError: it did not appear in time, or every worker exited
                first; the message carries the workers' log tails.
        """
        start = self.clock()
        path = Path(path)
        while not path.exists():
            exits = [self._reap(i) for i in range(len(self._procs))]
            if all(e is not None for e in exits) or self.clock() - start > timeout_s:
                raise ClusterError(f"{path} did not appear within {timeout_s:.0f} s\n"
                                   + self.describe())
            time.sleep(POLL_S)
        return self.clock() - start

    def describe(self, lines: int = 15) -> str:
        """Every worker's state and log tail, for error messages."""
        parts = []
        for i in range(len(self._procs)):
            exit_ = self._reap(i)
            state = "running" if exit_ is None else f"exit {exit_.returncode}"
            text = self.log_path(i).read_text(errors="replace") if self.log_path(i).exists() else ""
            tail = "\n".join(text.splitlines()[-lines:])
            parts.append(f"--- worker {i} ({state}), {self.log_path(i)}:\n{tail}")
        return "\n".join(parts)


def read_result(path) -> dict:
    """A worker's result file.

    Raises:
        ClusterError: it is missing or not a result of a known schema.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ClusterError(f"no readable worker result at {path}: {err}") from None
    if record.get("kbench_worker_schema") != RESULT_SCHEMA_VERSION:
        raise ClusterError(f"{path}: unknown worker result schema "
                           f"{record.get('kbench_worker_schema')!r}")
    return record


def run_cluster(jobs: Sequence[WorkerJob], log_dir, *, multi_worker: bool | None = None,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> list[dict]:
    """Run the workers (a TF_CONFIG cluster if more than one) to the end; their results.

    Raises:
        ClusterError: a worker failed or timed out, with every worker's log tail.
    """
    with LocalCluster(jobs, log_dir, multi_worker=multi_worker) as cluster:
        exits = cluster.wait(timeout_s)
        if not all(exit_.ok for exit_ in exits):
            codes = {e.index: e.returncode for e in exits}
            raise ClusterError(f"workers failed or timed out after {timeout_s:.0f} s "
                               f"(exit codes {codes}):\n{cluster.describe()}")
    return [read_result(job.result) for job in jobs]


def run_job(job: WorkerJob, log_dir, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    """Run one worker process (no cluster) to the end and return its result."""
    return run_cluster([job], log_dir, timeout_s=timeout_s)[0]


# --------------------------------------------------------------------------- in the worker


def _hold_callback(keras, epoch: int, batch: int, marker: Path):
    class HoldAt(keras.callbacks.Callback):
        """After batch ``batch`` of epoch ``epoch``: write ``marker``, then wait to be killed."""

        def __init__(self):
            super().__init__()
            self.epoch = None

        def on_epoch_begin(self, epoch_, logs=None):
            self.epoch = epoch_

        def on_train_batch_end(self, batch_, logs=None):
            if (self.epoch, batch_) == (epoch, batch):
                atomic_write_bytes(marker, str(os.getpid()).encode())
                while True:
                    time.sleep(1)

    return HoldAt()


class _EpochLog:
    """Appends ``epoch`` (absolute) and the epoch's logs to a CSV file, one row per epoch."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, epoch: int, logs: Mapping[str, float]) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", *sorted(logs)])
            writer.writerow([epoch, *(logs[k] for k in sorted(logs))])
            f.flush()
            os.fsync(f.fileno())


def read_epoch_log(path) -> list[dict]:
    """Rows of an epoch log: {'epoch': int, metric: float, ...}."""
    with open(path, newline="") as f:
        return [{k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


def _epoch_log_callback(keras, log: _EpochLog, offset=lambda: 0):
    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            log.append(offset() + epoch, {k: float(v) for k, v in (logs or {}).items()})

    return EpochLog()


def _train(job: WorkerJob, chief: bool) -> dict:
    import keras

    from kbench import training

    callbacks = []
    if job.hold_at is not None:
        callbacks.append(_hold_callback(keras, *job.hold_at, job.held_marker))
    if job.checkpoint_dir is not None:
        return _train_resumable(job, chief, callbacks)
    if job.backup_dir is not None:
        callbacks.insert(0, keras.callbacks.BackupAndRestore(str(job.backup_dir)))
    if job.epoch_log is not None and chief:
        # fit numbers epochs from the backup's epoch on; so does the log.
        callbacks.append(_epoch_log_callback(keras, _EpochLog(job.epoch_log)))
    result = training.train(job.spec, callbacks=callbacks,
                            allow_known_issue=job.allow_known_issue)
    resumed_from = int(getattr(result.model, "_initial_epoch", None) or 0)
    record = result.to_dict()
    record.update(resumed_from=resumed_from, epochs_done=resumed_from + result.epochs_run,
                  replicas=result.model.distribute_strategy.num_replicas_in_sync)
    return record


def _train_resumable(job: WorkerJob, chief: bool, callbacks: list) -> dict:
    from kbench import data as kdata
    from kbench import saving, training

    epoch_log = _EpochLog(job.epoch_log) if job.epoch_log is not None and chief else None
    dataset = kdata.load_dataset(job.spec.dataset, seed=job.spec.seed)
    with contextlib.ExitStack() as stack:
        # Only the chief writes the real checkpoints; the others must still
        # save (saving reads distributed variables), into throw-away folders.
        write_dir = (job.checkpoint_dir if chief else
                     Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kbench-worker-"))))
        run = saving.train_resumable(job.spec, job.checkpoint_dir, dataset=dataset,
                                     write_directory=write_dir, callbacks=callbacks,
                                     on_epoch_end=epoch_log.append if epoch_log else None)
    _, test_ds = kdata.make_splits(dataset, training.pipeline_options(job.spec))
    test = training.make_loop(run.model, job.spec).evaluate(test_ds)
    return {"spec": job.spec.to_dict(), "history": run.history,
            "resumed_from": run.resumed_from, "epochs_done": run.epochs_done,
            "test_loss": test["loss"], "test_accuracy": test["accuracy"],
            "replicas": run.model.distribute_strategy.num_replicas_in_sync}


def _parse_hold(text: str) -> tuple[int, int]:
    try:
        epoch, batch = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hold-at must be EPOCH:BATCH, got {text!r}") from None
    return epoch, batch


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kbench.cluster",
                                     description="Run one kbench worker (see kbench.cluster).")
    parser.add_argument("--spec", required=True, help="WorkflowSpec fields as a JSON object")
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--logical-cpus", type=int)
    parser.add_argument("--backup-dir", type=Path)
    parser.add_argument("--checkpoint-dir", type=Path)
    parser.add_argument("--epoch-log", type=Path)
    parser.add_argument("--hold-at", type=_parse_hold)
    parser.add_argument("--allow-known-issue", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The worker: train the job, write its result (or its error); 0 on success, 1 on error."""
    args = _parser().parse_args(argv)
    try:
        spec = workflows.WorkflowSpec(**json.loads(args.spec))
    except (json.JSONDecodeError, TypeError, workflows.WorkflowError) as err:
        print(f"kbench worker: bad --spec {args.spec!r}: {err}", file=sys.stderr)
        return 2
    from kbench import distribute  # imports TensorFlow: set devices up before any op runs

    if args.logical_cpus is not None:
        distribute.configure_logical_cpus(args.logical_cpus)
    if spec.strategy == "multi_worker_mirrored":
        # TF configures collectives once, before the first op; make_strategy caches it.
        distribute.make_strategy(spec)
    job = WorkerJob(spec=spec, result=args.result, logical_cpus=args.logical_cpus,
                    backup_dir=args.backup_dir, checkpoint_dir=args.checkpoint_dir,
                    epoch_log=args.epoch_log, hold_at=args.hold_at,
                    allow_known_issue=args.allow_known_issue)
    config = distribute.tf_config()
    chief = distribute.is_chief(config)
    record = {"kbench_worker_schema": RESULT_SCHEMA_VERSION,
              "task": None if config is None else config["task"], "chief": chief}
    try:
        record.update(_train(job, chief))
        record["error"] = None
        code = 0
    except Exception as err:  # reported in the result, for the parent to assert on
        traceback.print_exc()
        record.update(spec=spec.to_dict(), error={"type": type(err).__name__,
                                                  "module": type(err).__module__,
                                                  "message": str(err)})
        code = 1
    atomic_write_bytes(job.result, json.dumps(record, indent=1).encode())
    return code


if __name__ == "__main__":
    sys.exit(main())
