"""Training in worker processes: logical devices, local multi-worker clusters, faults.

Some runs cannot happen in the calling process: a logical device layout can
only be set before TensorFlow initialises, and MultiWorkerMirroredStrategy
needs one process per worker. This module starts fresh Python processes that
run the engine (``python -m kbench.worker``, :mod:`kbench.worker`) and
manages them, without importing TensorFlow itself:

- :class:`WorkerJob` is what one worker does (the spec, its logical CPUs,
  backups or checkpoints, where its result goes). Its ``argv()`` is the
  command line; :meth:`WorkerJob.from_argv` in the worker reads it back.
- :class:`LocalCluster` starts N workers on 127.0.0.1, each with its own
  ``TF_CONFIG`` and free port, each in its own process group, with stdout and
  stderr in log files. Waits are bounded; a worker still running when its
  time is up, or when the cluster is left, is killed with its children, so
  nothing is orphaned.
- Fault injection: a job's ``hold_at=(epoch, batch)`` makes the worker write
  a marker file after that batch and then wait to be killed, so a test can
  SIGKILL it mid-epoch at a known point.

Every worker writes a JSON result (atomically): the engine's own record
(:meth:`kbench.training.TrainResult.to_dict`) plus its task and replica
count, or the error it failed with.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kbench import workflows
from kbench._validate import is_int

LOOPBACK = "127.0.0.1"
# Bounds on waiting for workers. Starting a worker (Python, TensorFlow, the
# data) takes 5-10 s on this 2-core machine, two at once about twice that.
DEFAULT_TIMEOUT_S = 300.0
# How often a wait looks at the workers again.
POLL_S = 0.1
# Result file schema history:
#   1: spec, task, chief, replicas, history, test_loss, test_accuracy,
#      resumed_from, epochs_done, error.
#   2: TrainResult.to_dict() for plain and resumable runs alike (adds
#      epochs_run, steps, samples_seen, wall_time_s; drops epochs_done, which
#      is resumed_from + epochs_run), plus task, chief, replicas, error.
RESULT_SCHEMA_VERSION = 2


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
        checkpoint_dir: train with :func:`kbench.resume.train_resumable`,
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
                len(self.hold_at) != 2 or not all(is_int(v) and v >= 0 for v in self.hold_at)):
            raise ValueError(f"hold_at must be (epoch, batch) of ints >= 0, got {self.hold_at!r}")

    @property
    def held_marker(self) -> Path:
        """The file the worker writes when it reaches ``hold_at``."""
        return Path(f"{self.result}.held")

    def argv(self) -> list[str]:
        """The worker's command line (:func:`main` parses it back)."""
        argv = [sys.executable, "-m", "kbench.worker", "--spec", json.dumps(self.spec.to_dict()),
                "--result", str(self.result)]
        for field in _OPTIONS:
            value = getattr(self, field)
            if value is not None:
                argv += [_flag(field), ":".join(map(str, value)) if field == "hold_at"
                         else str(value)]
        return argv + (["--allow-known-issue"] if self.allow_known_issue else [])

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> "WorkerJob":
        """The job a worker's command line describes (``argv()`` without the interpreter).

        Raises:
            ValueError: a bad ``--spec`` (quoted) or job field.
            SystemExit: argparse's exit 2 on a malformed command line.
        """
        args = _parser().parse_args(argv)
        try:
            spec = workflows.WorkflowSpec.from_dict(json.loads(args.spec))
        except (json.JSONDecodeError, workflows.WorkflowError) as err:
            raise ValueError(f"bad --spec {args.spec!r}: {err}") from None
        return cls(spec=spec, result=args.result, allow_known_issue=args.allow_known_issue,
                   **{field: getattr(args, field) for field in _OPTIONS})


def _parse_hold(text: str) -> tuple[int, int]:
    try:
        epoch, batch = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hold-at must be EPOCH:BATCH, got {text!r}") from None
    return epoch, batch


# The WorkerJob fields a worker's command line carries as --flags, and their parsers.
_OPTIONS = {"logical_cpus": int, "backup_dir": Path, "checkpoint_dir": Path, "epoch_log": Path,
            "hold_at": _parse_hold}


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kbench.worker",
                                     description="Run one kbench worker (see kbench.cluster).")
    parser.add_argument("--spec", required=True, help="WorkflowSpec fields as a JSON object")
    parser.add_argument("--result", required=True, type=Path)
    for field, parse in _OPTIONS.items():
        parser.add_argument(_flag(field), type=parse)
    parser.add_argument("--allow-known-issue", action="store_true")
    return parser


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
        return _tail(self.log, lines) if self.log.exists() else "(no log)"


def _tail(path: Path, lines: int) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
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
            parts.append(f"--- worker {i} ({state}), {self.log_path(i)}:\n"
                         f"{_tail(self.log_path(i), lines)}")
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
