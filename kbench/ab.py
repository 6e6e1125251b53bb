"""Same-job A/B benchmarking: two interpreters, run alternately, samples pooled.

CI runners differ by 10-30% in speed from one job to the next, while one job
on one runner is stable. Comparing a stored run from an earlier job with
today's therefore mixes the runner's difference into the TensorFlow change.
A/B mode runs the benchmark suite with a baseline interpreter (A) and a
candidate interpreter (B), e.g. two virtualenvs with different TF versions,
alternately in one job (A B A B ...), so that slow drifts of the machine hit
both sides alike. Each invocation stores its run in the kbench store; the
per-round samples of all A runs and of all B runs are then pooled into one
:class:`~kbench.results.Run` per side for ``kbench.compare``.

:func:`run_suite` (one invocation, returning the run file it stored) is also
what ``kbench bench`` runs. The subprocess runner is a parameter
(``runner=subprocess.run``) so that tests can pass a fake that writes small
result files instead of running TensorFlow. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from kbench import _validate, record, results

SIDES = ("A", "B")  # A = baseline, B = candidate

# Pairs of invocations by default. A/B gates on one sample per session (each
# invocation's median, see pool_runs), and a Mann-Whitney test needs >= 5
# samples per side before anything can be significant at alpha=0.01
# (stats.min_samples_for(0.01)), so 5 pairs: 10 invocations, about 10 x 1 min
# for the smoke profile on 2 cores.
DEFAULT_PAIRS = 5

# Seconds one invocation of the suite may take before it is stopped: three
# times the default profile's budget (<= 10 min on a 2-core CPU, README), so a
# slow runner is not cut off but a hung TensorFlow run does not hold a CI job
# until the CI timeout.
DEFAULT_INVOCATION_TIMEOUT_S = 1800.0

# Lines of a failed invocation's output kept for the error report: enough for
# pytest's short test summary and a traceback's last frames.
OUTPUT_TAIL_LINES = 30

# What `kbench bench` and A/B mode run: the benchmark suite, benchmarks only.
BENCHMARK_DIR = "benchmarks"


class SuiteError(RuntimeError):
    """A run of the suite that could not finish; the message says which (side) and why.

    Attributes:
        output_tail: the last lines of the failed invocation's output, if any.
    """

    def __init__(self, message: str, output_tail: str = ""):
        super().__init__(message)
        self.output_tail = output_tail


@dataclasses.dataclass(frozen=True)
class Invocation:
    """One run of the suite in A/B mode: which side, which pair, what it stored."""

    side: str
    pair: int
    python: str
    path: Path

    def __post_init__(self) -> None:
        _validate.check_choice("side", self.side, SIDES)


@dataclasses.dataclass(frozen=True)
class ABResult:
    """The invocations in the order they ran, and each side's pooled run."""

    invocations: tuple[Invocation, ...]
    baseline: results.Run
    candidate: results.Run

    def paths(self, side: str) -> list[Path]:
        """The stored run files of one side, in the order they ran."""
        return [inv.path for inv in self.invocations if inv.side == side]


# --------------------------------------------------------------------------- one invocation


def suite_command(python: str | os.PathLike, *, profile: str, store: str | os.PathLike,
                  keyword: str | None = None) -> list[str]:
    """The command line that runs the benchmark suite once and stores its run in ``store``."""
    command = [str(python), "-m", "pytest", BENCHMARK_DIR, "--benchmark-only",
               "--kbench-profile", profile, "--kbench-store", str(store)]
    if keyword:
        command += ["-k", keyword]
    return command


def _stored_files(store: Path) -> set[Path]:
    return set(store.rglob("*.json")) if store.is_dir() else set()


def _tail(text: str | bytes | None, lines: int = OUTPUT_TAIL_LINES) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def run_suite(python: str | os.PathLike, *, profile: str, store: str | os.PathLike,
              keyword: str | None = None, cwd: str | os.PathLike = ".",
              timeout: float | None = DEFAULT_INVOCATION_TIMEOUT_S, capture: bool = False,
              what: str = "the benchmark suite",
              runner: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Path:
    """Run the suite once with ``python`` and return the run file it stored.

    Args:
        python: the interpreter (kbench and pytest-benchmark installed).
        profile: a kbench benchmark profile name.
        store: the kbench store the run goes to (a relative path is taken from the
            working directory, as any path argument).
        keyword: pytest ``-k`` expression selecting benchmarks.
        cwd: the project folder holding ``benchmarks/``.
        timeout: seconds before the invocation is stopped; None for no limit.
        capture: capture the output (kept for the error) instead of showing it.
        what: how errors name this invocation, e.g. "side A (/venv-a/bin/python) run 2 of 3".
        runner: ``subprocess.run``-like.

    Raises:
        SuiteError: the invocation timed out, exited non-zero, or stored no run.
    """
    cwd = Path(cwd)
    store = Path(store).absolute()  # the suite runs in cwd: pass it an absolute store
    if not (cwd / BENCHMARK_DIR).is_dir():
        raise SuiteError(f"no {BENCHMARK_DIR}/ folder in {str(cwd.resolve())!r}: "
                      "run from the kbench project folder")
    before = _stored_files(store)
    command = suite_command(python, profile=profile, store=store, keyword=keyword)
    output = {"capture_output": True, "text": True} if capture else {}
    try:
        done = runner(command, cwd=str(cwd), timeout=timeout, check=False, **output)
    except subprocess.TimeoutExpired as err:
        raise SuiteError(f"{what} timed out after {timeout:g} s",
                      _tail(err.stdout) + "\n" + _tail(err.stderr)) from None
    except OSError as err:
        raise SuiteError(f"{what} could not start {str(python)!r}: {err}") from None
    if done.returncode != 0:
        raise SuiteError(f"{what} failed with exit code {done.returncode}",
                      _tail(getattr(done, "stdout", None)) + "\n"
                      + _tail(getattr(done, "stderr", None)))
    return _new_run_file(before, _stored_files(store), store, what)


def _new_run_file(before: set[Path], after: set[Path], store: Path, what: str) -> Path:
    new = sorted(after - before)
    if len(new) != 1:
        found = "no new run file" if not new else f"{len(new)} new files {[str(p) for p in new]}"
        raise SuiteError(f"{what} exited 0 but left {found} in the store {str(store)!r}; "
                      "expected exactly one (is kbench with --kbench-store installed there?)")
    return new[0]


# --------------------------------------------------------------------------- pooling


def _check_same_setup(runs: Sequence[results.Run]) -> None:
    for field in ("tf_version", "machine_key"):
        values = sorted({getattr(run, field) for run in runs})
        if len(values) > 1:
            raise results.ResultsError(f"cannot pool runs with different {field}: {values}")


# How pool_runs pools: "session" gives one sample per run (its median
# samples/s), "round" concatenates every run's rounds.
POOL_UNITS = record.POOL_UNITS


def pool_runs(runs: Sequence[results.Run], *, source: str = "",
              unit: str = "session") -> results.Run:
    """One Run holding ``runs``' samples per benchmark, one per session or every round.

    Why sessions are the unit by default: on a shared or virtual machine the
    throughput drifts between invocations by far more than between the rounds
    of one (measured: A/A on this 2-core VM, 5 interleaved pairs of the loop
    benchmarks, session medians of one benchmark 24k-34k samples/s while each
    session's rounds varied 4-17% cv). Rounds of one session are then not
    independent samples of the side: pooled rounds made an A/A comparison
    "significant" (0.81x, p=4e-5). The session medians are independent
    samples, so the Mann-Whitney test on them is honest; it needs >= 5
    sessions a side at alpha=0.01 (DEFAULT_PAIRS).

    The runs must hold the same benchmarks and come from the same TF version and
    machine. The pooled run keeps the first run's datetime and fingerprint; each
    benchmark keeps the first run's record (so per-run values such as
    startup_s and step_latency_s are the first run's), with ``round_s``
    concatenated, ``samples_per_s`` the session medians (by session) or every
    round (by round), ``pooling`` naming the sources, the unit and every
    pooled round, and ``invalid`` set if any pooled session's record was.

    Raises:
        ResultsError: no runs, or runs that cannot be pooled (naming the difference).
        ValueError: an unknown unit.
    """
    _validate.check_choice("unit", unit, POOL_UNITS)
    runs = list(runs)
    if not runs:
        raise results.ResultsError("cannot pool an empty list of runs")
    results.check_same_benchmarks(runs, action="pool")
    _check_same_setup(runs)
    sources = tuple(run.source or run.label for run in runs)
    pooled = {}
    for key, first in runs[0].results.items():
        records = [run.results[key] for run in runs]
        rounds = tuple(v for r in records for v in r.samples_per_s)
        samples = rounds if unit == "round" else tuple(
            statistics.median(r.samples_per_s) for r in records)
        pooled[key] = first.replace(
            samples_per_s=samples, round_s=tuple(v for r in records for v in r.round_s),
            invalid=next((f"{run.source or run.label}: {r.invalid}"
                          for run, r in zip(runs, records) if r.invalid), None),
            pooling=record.Pooling(sources=sources, unit=unit, round_samples_per_s=rounds))
    return results.Run(datetime=runs[0].datetime, fingerprint=runs[0].fingerprint,
                       results=pooled, source=source)


# --------------------------------------------------------------------------- A/B


def check_python(path: str | os.PathLike, side: str) -> str:
    """The interpreter at ``path`` (or found on PATH by a bare name) as an absolute path.

    Raises:
        ValueError: naming the side and the path, if it is not an executable file.
    """
    found = shutil.which(str(path)) if os.sep not in str(path) else str(path)
    p = Path(found or path)
    if not p.is_file():
        raise ValueError(f"side {side} interpreter {str(path)!r} does not exist or is not a file")
    if not os.access(p, os.X_OK):
        raise ValueError(f"side {side} interpreter {str(path)!r} is not executable")
    # absolute(), not resolve(): a virtualenv's python is a symlink to the base
    # interpreter, and following it would run outside the virtualenv.
    return str(p.absolute())


def schedule(pairs: int) -> list[tuple[str, int]]:
    """(side, pair) in the order they run: A B A B ... ``pairs`` times."""
    _validate.check_positive_int("pairs", pairs)
    return [(side, pair) for pair in range(1, pairs + 1) for side in SIDES]


def run_ab(baseline_python: str | os.PathLike, candidate_python: str | os.PathLike, *,
           pairs: int = DEFAULT_PAIRS, profile: str = "smoke", keyword: str | None = None,
           store: str | os.PathLike | None = None, cwd: str | os.PathLike = ".",
           timeout: float | None = DEFAULT_INVOCATION_TIMEOUT_S,
           on_invocation: Callable[[str, int], None] | None = None,
           runner: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> ABResult:
    """Run the suite with A and B alternately ``pairs`` times, then pool each side
    (one sample per run: its median; see :func:`pool_runs`).

    Args:
        baseline_python, candidate_python: the two interpreters (A and B).
        pairs: how many A B pairs to run.
        profile: the benchmark profile of every invocation.
        keyword: pytest ``-k`` expression selecting benchmarks.
        store: the kbench store (default :func:`kbench.results.store_dir`: $KBENCH_STORE,
            else reports/runs under ``cwd``).
        cwd: the project folder holding ``benchmarks/``.
        timeout: seconds per invocation.
        on_invocation: called with (side, pair) before each invocation (progress).
        runner: ``subprocess.run``-like.

    Raises:
        ValueError: a bad argument (interpreter missing, pairs not positive).
        SuiteError: an invocation failed (naming the side and its exit code), timed
            out, or stored no run.
        ResultsError: a stored run could not be read or pooled.
    """
    pythons = {"A": check_python(baseline_python, "A"), "B": check_python(candidate_python, "B")}
    order = schedule(pairs)
    store = results.store_dir(store, root=cwd)
    invocations = []
    for side, pair in order:
        if on_invocation is not None:
            on_invocation(side, pair)
        what = f"side {side} ({pythons[side]}) run {pair} of {pairs}"
        path = run_suite(pythons[side], profile=profile, store=store, keyword=keyword, cwd=cwd,
                         timeout=timeout, capture=True, what=what, runner=runner)
        invocations.append(Invocation(side=side, pair=pair, python=pythons[side], path=path))
    pooled = {}
    for side in SIDES:
        runs = [results.read_run(inv.path) for inv in invocations if inv.side == side]
        pooled[side] = pool_runs(runs, source=f"{side}: medians of {len(runs)} run(s) of "
                                              f"{pythons[side]}")
    return ABResult(invocations=tuple(invocations), baseline=pooled["A"], candidate=pooled["B"])
