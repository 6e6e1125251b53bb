"""Lockstep A/B across interpreters: is the candidate slower than the baseline, and how much?

Each side (baseline, candidate: e.g. two virtualenvs with different TensorFlow
versions) runs ``design.workers`` persistent worker processes per workflow
(:class:`kbench.remote.RemoteRun`): each builds the workflow, pays its startup
(tracing, compiling) and warm-up untimed, and then runs one round per request.
The conductor here runs the two sides' rounds next to each other, a pair at a
time, in a fresh random order per pair (so neither side always goes first),
and takes the per-pair throughput ratio candidate / baseline. Drift of the
machine that hits both rounds of a pair cancels in it. What does not cancel is
each process's own lasting speed offset (1.3% sd on this VM): hence several
workers a side, and a CI that counts them (:mod:`kbench.sequential`).

A sequential test (:mod:`kbench.sequential`) looks at the pairs at most
``design.looks`` times within the time budget and stops at the first look
that decides ``slower``, ``faster`` or ``same``; a budget that runs out first
gives ``inconclusive``.

The idle side does not take CPU from the running one: every round ends only
once its process is quiet (:func:`kbench.telemetry.wait_quiet`), and each
worker reports its CPU time at every request and answer, so the CPU it used
while the other side ran is measured (``idle_cpu_share``).

An injected slowdown (``Side.slowdown``, see
:class:`kbench.measure.SteadyStateRun`) makes a side's throughput exactly ``1 -
slowdown`` of what it ran at: the power self-test (:func:`power`) uses it to
show what the gate can detect on this machine within its budget.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as _dt
import math
import random
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as _scipy_stats

from kbench import _validate, remote, sequential
from kbench import results as kresults
from kbench.compare import EXIT_PASS, EXIT_REGRESSION
from kbench.profiles import Profile
from kbench.record import BenchmarkRecord, ab_lockstep_id
from kbench.workflows import WorkflowSpec, get_workflow

BASELINE, CANDIDATE = "baseline", "candidate"
SIDES = (BASELINE, CANDIDATE)
# Rounds a worker may be asked for: far more than any budget here needs (a pair
# takes ~0.25 s on this machine at the ab profile's 0.1 s rounds).
MAX_PAIRS = 20_000
# Exit code of `kbench ab` when a verdict is inconclusive (0 same/faster, 1
# slower, 2 bad input); --inconclusive-fails turns it into 1.
EXIT_INCONCLUSIVE = 3


class ABError(RuntimeError):
    """A lockstep A/B that could not run; the message names the side and workflow."""


@dataclasses.dataclass(frozen=True)
class Side:
    """One side of an A/B.

    Attributes:
        name: ``baseline`` or ``candidate``.
        python: the interpreter its workers run (a virtualenv's bin/python).
        slowdown: an injected slowdown (a share; 0 for none).
    """

    name: str
    python: str
    slowdown: float = 0.0

    def __post_init__(self):
        _validate.check_choice("side", self.name, SIDES, error=ABError)
        _validate.check_str("python", self.python, error=ABError)
        _validate.check_number("slowdown", self.slowdown, low=0, high=1, high_open=True,
                               error=ABError, where=f"the {self.name} side")


@dataclasses.dataclass(frozen=True)
class WorkflowResult:
    """What a lockstep A/B of one workflow found.

    Attributes:
        workflow: the workflow's name.
        verdict: one of kbench.sequential.VERDICTS.
        ratio, low, high: candidate / baseline throughput at the last look,
            with that look's CI (``confidence``).
        pairs: pairs run; pairs_s: the seconds they took (startups excluded).
        startup_s: each side's startup (its workers' starts, builds and
            warm-ups), as the conductor waited for them (a lane's two workers
            start side by side: half of the lane's wait is each side's).
        precursor_s: the precursor worker's startup (it calibrates the steps).
        workers: worker processes per side (lanes: pair i in lane ``i % workers``).
        looks: every look taken.
        round_s: each side's round seconds, pair by pair.
        steps_per_round: each side's timed steps per round.
        first: per pair, the side that ran first.
        start_order: the order the workers started in, as side and lane
            (``baseline0``, ``candidate0``, ``candidate1``, ...).
        idle_cpu_share: each side's workers' median CPU use (cores) between their rounds.
        tf_versions, injected: each side's TensorFlow version and injected slowdown.
        fingerprints: each side's machine fingerprint, as its worker saw it.
        device: the device both sides trained on.
        seed: the seed of the start and pair orders (``run_workflow(seed=...)``
            repeats them).
    """

    workflow: str
    verdict: str
    ratio: float
    low: float
    high: float
    confidence: float
    pairs: int
    pairs_s: float
    startup_s: Mapping[str, float]
    precursor_s: float
    workers: int
    looks: tuple[sequential.Look, ...]
    round_s: Mapping[str, tuple[float, ...]]
    steps_per_round: Mapping[str, int]
    first: tuple[str, ...]
    start_order: tuple[str, ...]
    idle_cpu_share: Mapping[str, float | None]
    tf_versions: Mapping[str, str]
    injected: Mapping[str, float]
    batch_size: int
    fingerprints: Mapping[str, Mapping] = dataclasses.field(default_factory=dict)
    device: str = "/CPU:0"
    seed: int | None = None

    @property
    def log_ratios(self) -> np.ndarray:
        return pair_log_ratios(self.round_s, self.steps_per_round)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["looks"] = [look.to_dict() for look in self.looks]
        return out


def pair_log_ratios(round_s: Mapping[str, Sequence[float]],
                    steps_per_round: Mapping[str, int]) -> np.ndarray:
    """Per pair, log(candidate samples/s / baseline samples/s)."""
    base = np.asarray(round_s[BASELINE], dtype=float)
    cand = np.asarray(round_s[CANDIDATE], dtype=float)
    n = min(base.size, cand.size)
    return (np.log(steps_per_round[CANDIDATE] / cand[:n])
            - np.log(steps_per_round[BASELINE] / base[:n]))


# Seconds an interpreter may take to import kbench's worker module in the check.
IMPORT_CHECK_TIMEOUT_S = 120.0


def check_worker_python(side: Side, run: Callable[..., Any] = subprocess.run) -> None:
    """Refuse, before any worker starts, an interpreter that cannot run kbench's worker.

    Raises:
        ABError: naming the side, the interpreter and what the import said.
    """
    try:
        done = run([side.python, "-c", "import kbench.remote"], capture_output=True, text=True,
                   timeout=IMPORT_CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ABError(f"the {side.name} side's interpreter {side.python!r} cannot be run: "
                      f"{err}") from err
    if done.returncode != 0:
        said = (done.stderr or "").strip().splitlines()
        raise ABError(f"the {side.name} side's interpreter {side.python!r} cannot import "
                      f"kbench (install kbench into it): {said[-1] if said else done.returncode}")


def worker_request(spec: WorkflowSpec, profile: Profile, side: Side, *,
                   device: str = "/CPU:0", steps_per_round: int | None = None) -> dict:
    """What a side's worker builds (kbench.remote's open request); ``steps_per_round``
    fixes its round's steps instead of calibrating them."""
    request = {"spec": spec.to_dict(), "pipeline": {},
               "profile": remote.profile_to_dict(profile), "device": device,
               "rounds": MAX_PAIRS, "slowdown": side.slowdown}
    if steps_per_round is not None:
        request["steps_per_round"] = steps_per_round
    return request


def _idle_share(marks: Sequence[tuple[float, float]], walls: Sequence[tuple[float, float]]
                ) -> list[float]:
    """A worker's CPU use (cores) between its rounds: ``marks`` are its CPU times at each
    request and answer, ``walls`` the conductor's clock at the same moments."""
    shares = []
    for (prev, nxt), (wall_prev, wall_next) in zip(
            zip(marks, marks[1:]), zip(walls, walls[1:])):
        wall = wall_next[0] - wall_prev[1]
        cpu = nxt[0] - prev[1]
        if wall > 0 and math.isfinite(cpu):
            shares.append(max(0.0, cpu) / wall)
    return shares


def start_order(first: str, workers: int) -> tuple[tuple[str, int], ...]:
    """The order the sides' workers start in: (side, lane), lane by lane, the side that
    starts a lane alternating (A B, B A, A B, ...), so neither side's workers are
    systematically the earlier ones."""
    other = CANDIDATE if first == BASELINE else BASELINE
    return tuple((name, lane) for lane in range(workers)
                 for name in ((first, other) if lane % 2 == 0 else (other, first)))


def _start(stack: contextlib.ExitStack, open_worker: Callable[..., Any], spec: WorkflowSpec,
           profile: Profile, device: str, sides: Sequence[tuple[str, Side]],
           steps_per_round: int | None = None) -> list:
    """Start one worker per (name, side) at once, each in its own thread, and warm them
    up; each is stopped when ``stack`` closes, whatever state it got to (a Ctrl-C
    here included).

    Raises:
        ABError: naming the first side that failed.
    """
    workers = [open_worker(worker_request(spec, profile, side, device=device,
                                          steps_per_round=steps_per_round),
                           python=side.python) for _, side in sides]
    for worker in workers:
        stack.callback(worker.kill)

    def start(name, worker):
        _side_call(name, spec, worker.__enter__)
        stack.push(worker.__exit__)  # a graceful close, before the kill
        _side_call(name, spec, worker.warm_up)
        return worker

    pool = concurrent.futures.ThreadPoolExecutor(len(workers))
    try:
        futures = [pool.submit(start, name, worker)
                   for (name, _), worker in zip(sides, workers)]
        return [future.result() for future in futures]
    except BaseException:  # a failure or a Ctrl-C: the other starts need not finish
        for worker in workers:
            worker.kill()
        raise
    finally:
        pool.shutdown(wait=True)


def run_workflow(spec: WorkflowSpec, baseline: Side, candidate: Side, profile: Profile,
                 design: sequential.Design, budget_s: float, *, device: str = "/CPU:0",
                 seed: int | None = None, open_worker: Callable[..., Any] = remote.RemoteRun,
                 clock: Callable[[], float] = time.perf_counter,
                 on_pair: Callable[[int, sequential.SequentialTest, float], None] | None = None
                 ) -> WorkflowResult:
    """A/B ``spec`` between the two sides in lockstep until the test decides or
    ``budget_s`` seconds of pairs are spent.

    First an untimed precursor worker (the baseline's interpreter) starts and
    calibrates the round's steps: on this VM the first worker a conductor
    started ran 0.3-3.6% slower than the second, for its whole life (4 A/As of
    4), and after a precursor the second/first ratio read 0.974, 1.009 and
    1.002 (reports/README.md). Then each side starts ``design.workers``
    workers, all running the precursor's steps a round (a round's fixed cost
    would otherwise favour the side with more steps), in the balanced order of
    :func:`start_order` from a side drawn at random. Lane j pairs the sides'
    j-th workers. A cycle runs every lane once, lanes in random order, each
    lane's pair in random order; the pairs are kept lane by lane (pair i in
    lane ``i % workers``), as the test's CI expects.

    ``seed`` seeds those draws (None: a fresh seed, kept in the result so the
    orders can be repeated).
    ``open_worker(request, python=...)`` makes a worker (a context manager with
    ``warm_up()``, ``next_round()``, ``info`` and ``cpu_marks``); tests pass a
    fake. ``on_pair(pairs, test, elapsed_s)`` reports progress after every
    cycle.

    Raises:
        ABError: naming the side whose worker failed, and why.
    """
    sides = {BASELINE: baseline, CANDIDATE: candidate}
    if baseline.name != BASELINE or candidate.name != CANDIDATE:
        raise ABError(f"sides must be (baseline, candidate), got ({baseline.name!r}, "
                      f"{candidate.name!r})")
    test = sequential.SequentialTest(design, budget_s)
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    lanes = design.workers
    order = start_order(rng.choice(SIDES), lanes)
    round_s: dict[str, list[float]] = {s: [] for s in SIDES}
    walls: dict[tuple[str, int], list[tuple[float, float]]] = {w: [] for w in order}
    first: list[str] = []
    startup_s = dict.fromkeys(SIDES, 0.0)
    with contextlib.ExitStack() as stack:
        started = clock()
        precursor, = _start(stack, open_worker, spec, profile, device,
                            [(BASELINE, Side(BASELINE, baseline.python))])
        precursor_s = clock() - started
        steps_per_round = int(precursor.info["steps_per_round"])
        workers = {}
        for lane in range(lanes):
            # A lane's two workers start side by side (their startups are untimed, and
            # an import of TensorFlow takes ~10 s of one core here).
            names = [name for name, at in order if at == lane]
            started = clock()
            for name, worker in zip(names, _start(
                    stack, open_worker, spec, profile, device,
                    [(name, sides[name]) for name in names], steps_per_round)):
                workers[name, lane] = worker
            for name in names:
                startup_s[name] += (clock() - started) / len(names)
        steps = {s: int(workers[s, 0].info["steps_per_round"]) for s in SIDES}
        start_time = clock()
        while len(first) < MAX_PAIRS:
            cycle = {}
            for lane in rng.sample(range(lanes), lanes):
                pair = list(SIDES) if rng.random() < 0.5 else list(reversed(SIDES))
                for name in pair:
                    before = clock()
                    seconds = _side_call(name, spec, workers[name, lane].next_round)
                    walls[name, lane].append((before, clock()))
                    cycle[name, lane] = seconds
                cycle["first", lane] = pair[0]
            for lane in range(lanes):
                for name in SIDES:
                    round_s[name].append(cycle[name, lane])
                first.append(cycle["first", lane])
            elapsed = clock() - start_time
            done = test.update(pair_log_ratios(round_s, steps), elapsed)
            if on_pair is not None:
                on_pair(len(first), test, elapsed)
            if done:
                break
        pairs_s = clock() - start_time
        infos = {s: dict(workers[s, 0].info) for s in SIDES}
        idle = {}
        for name in SIDES:
            shares = [share for (side, lane), worker in workers.items() if side == name
                      for share in _idle_share(worker.cpu_marks, walls[side, lane])]
            idle[name] = float(np.median(shares)) if shares else None
    last = test.looks[-1] if test.looks else None
    return WorkflowResult(
        workflow=spec.name, verdict=test.verdict,
        ratio=last.ratio if last else math.nan, low=last.low if last else math.nan,
        high=last.high if last else math.nan,
        confidence=design.look_confidence, pairs=len(first), pairs_s=pairs_s,
        startup_s=startup_s, precursor_s=precursor_s, workers=lanes, looks=tuple(test.looks),
        round_s={s: tuple(v) for s, v in round_s.items()}, steps_per_round=steps,
        first=tuple(first), start_order=tuple(f"{name}{lane}" for name, lane in order),
        idle_cpu_share=idle,
        tf_versions={s: str(infos[s].get("tf_version", "?")) for s in SIDES},
        injected={s: sides[s].slowdown for s in SIDES}, batch_size=spec.batch_size,
        fingerprints={s: infos[s]["fingerprint"] for s in SIDES if "fingerprint" in infos[s]},
        device=device, seed=seed)


# --------------------------------------------------------------------------- storing


def benchmark_key(workflow: str) -> str:
    """The benchmark name a workflow's A/B has in each side's stored run."""
    return f"ab[{workflow}]"


def side_records(result: WorkflowResult, lockstep_id: str) -> dict[str, BenchmarkRecord]:
    """Each side's rounds of ``result`` as a record, paired with the other side's by
    ``lockstep_id`` (round i of both ran in pair i), so a report reads the pairs."""
    spec = get_workflow(result.workflow, batch_size=result.batch_size)
    records = {}
    for side in SIDES:
        steps = result.steps_per_round[side]
        records[side] = BenchmarkRecord(
            samples_per_s=tuple(steps * result.batch_size / s for s in result.round_s[side]),
            batch_size=result.batch_size, spec=spec, device=result.device, steps_per_round=steps,
            round_s=result.round_s[side], startup_s=result.startup_s[side], suite="ab",
            comparison=f"ab {result.workflow}", variant=side, baseline=BASELINE,
            lockstep=lockstep_id, key=benchmark_key(result.workflow),
            extras={"verdict": result.verdict, "ratio": result.ratio, "ci_low": result.low,
                    "ci_high": result.high, "confidence": result.confidence,
                    "injected_slowdown": result.injected[side],
                    "first_share": result.first.count(side) / max(1, result.pairs),
                    "workers": result.workers})
    return records


def store_results(results: Sequence[WorkflowResult], store=None, *,
                  now: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.timezone.utc)
                  ) -> dict[str, Path]:
    """Store each side's records of ``results`` as one run of the kbench store; the paths.

    Both runs hold the same benchmarks, each record carrying the A/B's lockstep id. The
    candidate's run is stamped a microsecond after the baseline's, so that the two runs
    of an A/A (same TensorFlow, same machine: the same store folder) get two files.

    Raises:
        ABError: a result without its side's fingerprint (a worker that did not send it).
    """
    start = now()
    when = start.isoformat()
    stamps = {BASELINE: when, CANDIDATE: (start + _dt.timedelta(microseconds=1)).isoformat()}
    by_side: dict[str, dict[str, BenchmarkRecord]] = {s: {} for s in SIDES}
    fingerprints = {}
    for result in results:
        for side, record in side_records(result, ab_lockstep_id(when, result.workflow)).items():
            by_side[side][record.key] = record
            if side not in result.fingerprints:
                raise ABError(f"the {side} side of {result.workflow} sent no fingerprint")
            fingerprints[side] = result.fingerprints[side]
    return {side: kresults.write_run(kresults.run_document(
                records, fingerprints[side], stamps[side], source="kbench ab"), store)
            for side, records in by_side.items()}


def _side_call(side: str, spec: WorkflowSpec, fn: Callable):
    try:
        return fn()
    except remote.RemoteError as err:
        raise ABError(f"the {side} side failed on {spec.name}: {err}") from err


def overall_verdict(verdicts: Sequence[str]) -> str:
    """One verdict for several workflows: slower if any is; else inconclusive if any is;
    else faster if any is; else same."""
    for verdict in (sequential.SLOWER, sequential.INCONCLUSIVE, sequential.FASTER):
        if verdict in verdicts:
            return verdict
    return sequential.SAME


def exit_code(verdict: str, *, inconclusive_fails: bool = False) -> int:
    """``kbench ab``'s exit code for an overall verdict."""
    if verdict == sequential.SLOWER:
        return EXIT_REGRESSION
    if verdict == sequential.INCONCLUSIVE:
        return EXIT_REGRESSION if inconclusive_fails else EXIT_INCONCLUSIVE
    return EXIT_PASS


# --------------------------------------------------------------------------- power


@dataclasses.dataclass(frozen=True)
class Power:
    """What the gate can detect on this machine within a budget, from an A/A.

    Attributes:
        pair_sd: the spread (sd) of the A/A's per-pair log ratios.
        pairs_per_s: pairs the budget's time holds per second.
        pairs: pairs a budget holds.
        measured_process_sd: the sd of a worker process's speed offset the A/A's
            lanes showed (None with one worker a side).
        min_detectable: the smallest slowdown (a share) called ``slower`` with
            95% probability by the budget's last look.
    """

    pair_sd: float
    pairs_per_s: float
    pairs: int
    measured_process_sd: float | None
    min_detectable: float


# The probability of calling a slowdown of the minimum detectable size slower.
POWER = 0.95


def power(log_ratios: Sequence[float], pairs_s: float, budget_s: float,
          design: sequential.Design) -> Power:
    """The minimum detectable slowdown within ``budget_s``, from an A/A's pairs.

    The budget holds ``n = budget_s * pairs / pairs_s`` pairs; the last look's
    estimate of the log ratio then has the standard error the test's CI uses
    (:func:`kbench.sequential.lane_ci`): the pairs' spread over ``n`` and the
    workers' process term, the larger of the A/A's measured one and the
    design's ``process_sd``. A slowdown ``d`` (in log) is called slower with
    probability POWER when both halves of the rule hold that often: the CI
    excludes 1.0 (``d >= (z_look + z_power) * se``) and the estimate is beyond
    the allowed slowdown (``d >= log(1 / (1 - max_slowdown)) + z_power *
    se``). Earlier looks only add chances to decide; but a look's CI takes the
    lanes' measured process term where it exceeds the design's, which makes the
    rate a little lower than POWER (84% in tests/test_lockstep_ab.py's
    simulation at 4 workers a side; 1.5 times the estimate is called slower
    over 95% of the time).
    """
    x = np.asarray(log_ratios, dtype=float)
    if x.size < 3:
        raise ABError(f"a power estimate needs at least 3 A/A pairs, got {x.size}")
    _validate.check_number("pairs_s", pairs_s, low=0, low_open=True, error=ABError)
    sd = float(np.std(x, ddof=1))
    rate = x.size / pairs_s
    n = max(2, int(budget_s * rate))
    measured = sequential.process_var(x, design.workers)
    between = max(2 * design.process_sd ** 2, measured or 0.0)
    se = math.sqrt(sd ** 2 / n + between / design.workers)
    z_power = float(_scipy_stats.norm.ppf(POWER))
    z_look = float(_scipy_stats.norm.ppf(0.5 + design.look_confidence / 2))
    threshold = -math.log(1 - design.max_slowdown)
    d = max((z_look + z_power) * se, threshold + z_power * se)
    return Power(pair_sd=sd, pairs_per_s=rate, pairs=n,
                 measured_process_sd=None if measured is None else math.sqrt(measured / 2),
                 min_detectable=1 - math.exp(-d))
