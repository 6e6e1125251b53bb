"""Memory checks of workflows, each in fresh processes: peak memory and leaks, stored and gated.

``kbench memory`` runs, for each workflow, two fresh Python processes
(``python -m kbench.memcheck``), one without and one with
``keras.backend.clear_session()`` between calls. Each:

1. imports TensorFlow and loads the data (``examples`` training digits of
   ``dataset``), then trains the workflow once (one epoch) and measures that
   run's peak memory (:func:`kbench.memory.measure_peak`: the RSS high-water
   mark above the RSS it started from; a fresh process, because in one that
   trained before the allocator reuses what it kept and the peak reads
   smaller by however much was left free);
2. then trains a fresh model ``calls`` more times, the leak check
   (:func:`kbench.memory.leak_check`: models left alive, exactly, and the RSS
   slope per call).

So each workflow's peak is measured twice (the two processes do the same
first run); the larger is the one gated. The results are a typed, versioned
document (:class:`MemoryRun`, ``kbench_memory_schema``) stored at
``<folder>/<tf-version>/<machine-key>/<UTC time>.json`` (default folder
``reports/memory``: apart from the benchmark runs' store, whose readers
take every JSON file below it for a benchmark session).

:func:`gate` compares a run with a baseline run: a peak that grew by more
than ``max_growth`` (MAX_PEAK_GROWTH, measured below), a model left alive or
an RSS slope beyond kbench.memory.LEAK_MAX_BYTES_PER_CALL fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kbench import _files, _validate
from kbench.memory import LeakError, LeakResult, PeakMemory

__all__ = ["CHILD_TIMEOUT_S", "DEFAULT_FOLDER", "DEFAULT_WORKFLOWS", "MAX_PEAK_GROWTH",
           "MEMORY_SCHEMA_VERSION", "MemoryCheckError", "MemoryRun", "ProcessResult", "Settings",
           "WorkflowMemory", "Verdict", "check_workflows", "gate", "read_run", "run_path",
           "write_run"]

MEMORY_SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)
SCHEMA_FIELD = "kbench_memory_schema"
DEFAULT_FOLDER = "reports/memory"
# The loops and model families a TF upgrade's memory changes would show in.
DEFAULT_WORKFLOWS = ("mlp-sequential-fit-function-fp32", "mlp-sequential-custom-function-fp32",
                     "cnn-functional-fit-function-fp32", "cnn-functional-custom-function-fp32")
# How long one child (TensorFlow's import, 1 + calls trainings) may take.
CHILD_TIMEOUT_S = 600.0
STDERR_TAIL_LINES = 15
# The peak's gate: how much a workflow's fresh-process peak RSS may grow over the
# baseline run's before the check fails. Measured here (TF 2.21, the 2-core VM,
# `kbench memory` with its defaults): the two processes of one run peaked 0.0-1.4%
# apart (MLP 695 MB, CNN 755-762 MB, 651 MB of it TensorFlow and the data), and a
# second run's gated peaks -0.2% to +0.6% from the first's. 10% is 7x the widest
# spread and catches a doubled CNN step.
MAX_PEAK_GROWTH = 0.10


class MemoryCheckError(ValueError):
    """Bad input to a memory check, a child that failed, or a malformed stored run; the
    message quotes the value (and a child's stderr)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every process of a memory check trains on, and how often.

    Attributes:
        dataset: the dataset's name (kbench.data).
        examples: training examples each call trains one epoch on.
        calls: trainings of the leak check after the peak's run.
        warmup_calls: the first of them the slope leaves out.
        device: the TF device whose allocator peak is read beside the RSS (a GPU's;
            TensorFlow places the training as it does by default).
    """

    dataset: str = "mnist_5k"
    examples: int = 640
    calls: int = 10
    warmup_calls: int = 3
    device: str = "/CPU:0"

    def __post_init__(self) -> None:
        where = "memory settings"
        _validate.check_str("dataset", self.dataset, error=MemoryCheckError, where=where)
        _validate.check_positive_int("examples", self.examples, error=MemoryCheckError,
                                     where=where)
        _validate.check_positive_int("calls", self.calls, error=MemoryCheckError, where=where)
        _validate.check_int("warmup_calls", self.warmup_calls, minimum=0,
                            error=MemoryCheckError, where=where)
        if self.calls - self.warmup_calls < 3:
            raise MemoryCheckError(f"{where}: a slope needs at least 3 calls past the warm-up, "
                                   f"got calls={self.calls!r} and warmup_calls="
                                   f"{self.warmup_calls!r}")
        _validate.check_str("device", self.device, error=MemoryCheckError, where=where)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ProcessResult:
    """What one fresh process measured: its first run's peak, then the leak check."""

    clear_session: bool
    peak: PeakMemory
    leak: LeakResult

    def to_dict(self) -> dict:
        return {"clear_session": self.clear_session, "peak": self.peak.to_dict(),
                "leak": self.leak.to_dict()}

    @classmethod
    def from_dict(cls, value: Any, where: str) -> "ProcessResult":
        if not isinstance(value, Mapping) or set(value) != {"clear_session", "peak", "leak"}:
            raise MemoryCheckError(f"{where}: a process must be an object with clear_session, "
                                   f"peak and leak, got {value!r:.120}")
        try:
            return cls(_validate.check_bool("clear_session", value["clear_session"],
                                            error=MemoryCheckError, where=where),
                       PeakMemory.from_dict(value["peak"], where),
                       LeakResult.from_dict(value["leak"], where))
        except LeakError as err:
            raise MemoryCheckError(str(err)) from None


@dataclasses.dataclass(frozen=True)
class WorkflowMemory:
    """A workflow's memory check: one ProcessResult per process."""

    workflow: str
    processes: tuple[ProcessResult, ...]

    def __post_init__(self) -> None:
        _validate.check_str("workflow", self.workflow, error=MemoryCheckError,
                            where="memory check")
        if not self.processes:
            raise MemoryCheckError(f"memory check of {self.workflow}: no process result")

    @property
    def peak(self) -> PeakMemory:
        """The largest of the processes' peaks (they ran the same first training)."""
        return max((p.peak for p in self.processes), key=lambda peak: peak.peak_bytes)

    @property
    def peak_spread(self) -> float:
        """How far the processes' peaks lie apart, as a share of the smallest."""
        peaks = [p.peak.peak_bytes for p in self.processes]
        return max(peaks) / min(peaks) - 1

    def leak_failures(self) -> list[str]:
        return [f for p in self.processes if (f := p.leak.failure(self.workflow))]

    def to_dict(self) -> dict:
        return {"workflow": self.workflow, "processes": [p.to_dict() for p in self.processes]}


@dataclasses.dataclass(frozen=True)
class MemoryRun:
    """One ``kbench memory`` run: when, where (the machine fingerprint), on what, and each
    workflow's WorkflowMemory."""

    datetime: str
    fingerprint: Mapping
    settings: Settings
    workflows: tuple[WorkflowMemory, ...]
    schema_version: int = MEMORY_SCHEMA_VERSION

    @property
    def tf_version(self) -> str | None:
        software = self.fingerprint.get("software")
        return software.get("tensorflow") if isinstance(software, Mapping) else None

    @property
    def label(self) -> str:
        """A short name: ``tf<version> <machine key> <datetime to the second>``, as a
        benchmark run's (kbench.results.Run.label)."""
        return f"tf{self.tf_version} {self.fingerprint.get('machine_key')} {self.datetime[:19]}"

    def by_workflow(self) -> dict[str, WorkflowMemory]:
        return {w.workflow: w for w in self.workflows}

    def to_json(self) -> dict:
        return {SCHEMA_FIELD: MEMORY_SCHEMA_VERSION, "datetime": self.datetime,
                "fingerprint": dict(self.fingerprint), "settings": self.settings.to_dict(),
                "workflows": [w.to_dict() for w in self.workflows]}

    @classmethod
    def from_json(cls, document: Any, where: str = "memory run") -> "MemoryRun":
        if not isinstance(document, Mapping) or SCHEMA_FIELD not in document:
            raise MemoryCheckError(f"{where}: not a kbench memory run (no {SCHEMA_FIELD!r} "
                                   f"field), got {str(document)[:80]!r}")
        version = _validate.check_version(SCHEMA_FIELD, document[SCHEMA_FIELD],
                                          SUPPORTED_SCHEMA_VERSIONS, error=MemoryCheckError,
                                          where=where)
        missing = {"datetime", "fingerprint", "settings", "workflows"} - set(document)
        if missing:
            raise MemoryCheckError(f"{where}: missing field(s) {sorted(missing)}")
        if not isinstance(document["fingerprint"], Mapping):
            raise MemoryCheckError(f"{where}: fingerprint must be an object, got "
                                   f"{document['fingerprint']!r:.80}")
        settings = _validate.from_mapping(Settings, "settings", document["settings"],
                                          error=MemoryCheckError, where=where)
        entries = document["workflows"]
        if not isinstance(entries, list):
            raise MemoryCheckError(f"{where}: workflows must be a list, got {entries!r:.80}")
        workflows = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("processes"), list):
                raise MemoryCheckError(f"{where}: workflows[{i}] must be an object with a "
                                       f"processes list, got {entry!r:.80}")
            name = entry.get("workflow")
            processes = tuple(ProcessResult.from_dict(p, f"{where}: {name}")
                              for p in entry["processes"])
            workflows.append(WorkflowMemory(name, processes))
        return cls(document["datetime"], document["fingerprint"], settings, tuple(workflows),
                   version)


def run_path(folder: str | os.PathLike, run: MemoryRun) -> Path:
    """``<folder>/<tf-version>/<machine-key>/<UTC time>.json``, as the benchmark store."""
    from kbench import results

    try:
        return results.run_path(folder, run.fingerprint, run.datetime)
    except results.ResultsError as err:
        raise MemoryCheckError(f"memory run: {err}") from None


def write_run(run: MemoryRun, folder: str | os.PathLike = DEFAULT_FOLDER) -> Path:
    """Store ``run`` atomically at :func:`run_path`; return the file."""
    path = run_path(folder, run)
    data = (json.dumps(run.to_json(), indent=2, sort_keys=True) + "\n").encode("ascii")
    return _files.atomic_write_bytes(path, data)


def read_run(path: str | os.PathLike) -> MemoryRun:
    """The memory run stored in ``path``.

    Raises:
        MemoryCheckError: naming the file: unreadable, not JSON, or not a memory run.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise MemoryCheckError(f"{path}: cannot read it: {err}") from None
    except json.JSONDecodeError as err:
        raise MemoryCheckError(f"{path}: not JSON: {err}") from None
    return MemoryRun.from_json(document, where=str(path))


# --- running the checks ------------------------------------------------------------------


def child_command(python: str, workflow: str, settings: Settings,
                  clear_session: bool) -> list[str]:
    """The command line of one fresh process of the check."""
    command = [python, "-m", "kbench.memcheck", "--workflow", workflow,
               "--dataset", settings.dataset, "--examples", str(settings.examples),
               "--calls", str(settings.calls), "--warmup-calls", str(settings.warmup_calls),
               "--device", settings.device]
    return command + (["--clear-session"] if clear_session else [])


def _describe(command: Sequence[str]) -> str:
    """``"W, with clear_session"``: which child a command line starts."""
    args = list(command)
    name = args[args.index("--workflow") + 1] if "--workflow" in args[:-1] else " ".join(args)
    return f"{name}, {'with' if '--clear-session' in args else 'without'} clear_session"


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-STDERR_TAIL_LINES:])


def run_child(command: Sequence[str], *, timeout_s: float = CHILD_TIMEOUT_S,
              popen: Callable[..., subprocess.Popen] = subprocess.Popen) -> ProcessResult:
    """Run one child to its end (in its own process group, killed with its group on a
    timeout, an error or Ctrl-C) and read its result, the last line of its stdout.

    Raises:
        MemoryCheckError: it could not start, timed out, failed (quoting its stderr's
            tail) or printed no result.
    """
    what = _describe(command)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    try:
        proc = popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     env=env, start_new_session=True)
    except OSError as err:
        raise MemoryCheckError(f"cannot start {command[0]!r} for the memory check: "
                               f"{err}") from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise MemoryCheckError(f"memory check ({what}) took over {timeout_s:.0f} s; "
                               "killed") from None
    finally:
        if proc.poll() is None:
            try:  # its whole group: whatever it started dies with it
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise MemoryCheckError(f"memory check ({what}) failed, exit {proc.returncode}, in "
                               f"{command[0]!r}:\n{_tail(stderr)}")
    lines = stdout.strip().splitlines()
    try:
        return ProcessResult.from_dict(json.loads(lines[-1]), f"memory check ({what})")
    except (IndexError, json.JSONDecodeError):
        raise MemoryCheckError(f"memory check ({what}) printed no result; its stdout ended "
                               f"{stdout[-200:]!r}") from None


def check_workflows(workflows: Sequence[str], settings: Settings, *,
                    python: str = sys.executable,
                    run: Callable[[list[str]], ProcessResult] = run_child,
                    on_process: Callable[[str, ProcessResult], None] | None = None,
                    ) -> tuple[WorkflowMemory, ...]:
    """Check each workflow in two fresh processes (without, then with clear_session),
    one at a time."""
    checked = []
    for workflow in workflows:
        processes = []
        for clear_session in (False, True):
            result = run(child_command(python, workflow, settings, clear_session))
            processes.append(result)
            if on_process is not None:
                on_process(workflow, result)
        checked.append(WorkflowMemory(workflow, tuple(processes)))
    return tuple(checked)


def new_run(workflows: tuple[WorkflowMemory, ...], settings: Settings, fingerprint: Mapping,
            now: _dt.datetime | None = None) -> MemoryRun:
    moment = now or _dt.datetime.now(_dt.timezone.utc)
    return MemoryRun(moment.isoformat(), fingerprint, settings, workflows)


# --- the gate ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One workflow's memory against the baseline run's.

    Attributes:
        workflow: its name.
        baseline, candidate: the two runs' gated peaks (None: not in that run).
        growth: candidate / baseline peak - 1 (None without both).
        failures: why it fails (empty: it passes).
    """

    workflow: str
    baseline: PeakMemory | None
    candidate: PeakMemory | None
    growth: float | None
    failures: tuple[str, ...]


def gate(baseline: MemoryRun, candidate: MemoryRun,
         max_growth: float = MAX_PEAK_GROWTH) -> list[Verdict]:
    """Each workflow of ``candidate`` against ``baseline``: a peak beyond ``max_growth``,
    or any leak, fails. A workflow only one run has is shown, and fails only on leaks."""
    _validate.check_number("max_growth", max_growth, low=0, error=MemoryCheckError)
    before = baseline.by_workflow()
    verdicts = []
    for name, now in candidate.by_workflow().items():
        failures = now.leak_failures()
        then = before.get(name)
        growth = None
        if then is not None:
            growth = now.peak.peak_bytes / then.peak.peak_bytes - 1
            if growth > max_growth:
                failures.append(
                    f"{name}: its peak RSS grew {growth:+.1%}, from "
                    f"{then.peak.peak_bytes / 1e6:.0f} MB to {now.peak.peak_bytes / 1e6:.0f} MB "
                    f"(the limit is {max_growth:+.0%}, MAX_PEAK_GROWTH)")
        verdicts.append(Verdict(name, then.peak if then else None, now.peak, growth,
                                tuple(failures)))
    return verdicts


# --- the child ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kbench.memcheck",
                                     description="One fresh process of a kbench memory check.")
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--dataset", default=Settings.dataset)
    parser.add_argument("--examples", type=int, default=Settings.examples)
    parser.add_argument("--calls", type=int, default=Settings.calls)
    parser.add_argument("--warmup-calls", type=int, default=Settings.warmup_calls)
    parser.add_argument("--device", default=Settings.device)
    parser.add_argument("--clear-session", action="store_true")
    return parser


def measure_in_this_process(workflow: str, settings: Settings,
                            clear_session: bool) -> ProcessResult:
    """The child's work: the first training's peak, then the leak check (see the module)."""
    from kbench import data as kdata
    from kbench import memory, training, workflows

    spec = workflows.get_workflow(workflow, epochs=1, dataset=settings.dataset)
    dataset = kdata.load_dataset(settings.dataset, n_train=settings.examples,
                                 n_test=min(settings.examples, 256), seed=spec.seed)

    def call():
        return training.train(spec, dataset=dataset).model

    peak, model = memory.measure_peak(call, device=settings.device)
    del model
    if clear_session:
        import keras

        keras.backend.clear_session()
    leak = memory.leak_check(call, calls=settings.calls, warmup_calls=settings.warmup_calls,
                             clear_session=clear_session)
    return ProcessResult(clear_session, peak, leak)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings(args.dataset, args.examples, args.calls, args.warmup_calls, args.device)
    result = measure_in_this_process(args.workflow, settings, args.clear_session)
    sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
