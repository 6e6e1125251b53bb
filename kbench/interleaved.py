"""Comparison groups measured in lockstep; each variant still its own benchmark entry.

A benchmark suite names a comparison group's variants (:class:`Training`,
:class:`BareFit`, :class:`InputOnly`, :class:`Remote`); :func:`measure_group` builds every
variant once, runs them round by round in a balanced order
(:func:`kbench.lockstep.run_lockstep`) and returns one
:class:`~kbench.record.BenchmarkRecord` per variant. Each record carries the
group's ``lockstep`` id: round i of every member ran in cycle i, next to the
others' round i, so in-run ratios are computed pair by pair
(:func:`kbench.compare.in_run_ratio`).

pytest-benchmark keeps one entry per test. Each variant's test hands its
record's rounds to its own ``benchmark`` fixture (:func:`replay_rounds`), so
the stored JSON has one entry per variant with the rounds it ran, readable by
``pytest-benchmark compare``; the kbench record sits in its ``extra_info``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf

from kbench import _validate, lockstep, stats
from kbench.data.pipelines import ArrayInput
from kbench.inputs import InputOnlyRun
from kbench.measure import SteadyStateRun, write_record
from kbench.profiles import Profile
from kbench.record import BenchmarkRecord
from kbench.workflows import WorkflowSpec


class GroupError(ValueError):
    """A comparison group that cannot be measured as declared."""


class GroupFailure(RuntimeError):
    """A comparison group whose measurement failed; every member's test reports it."""


@dataclasses.dataclass(frozen=True)
class Training:
    """A variant that trains ``spec`` on ``train_data`` under kbench's probe (step latencies)."""

    name: str
    spec: WorkflowSpec
    train_data: tf.data.Dataset | ArrayInput = dataclasses.field(repr=False)
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    per_step = True

    def open(self, profile: Profile, device: str, rounds: int) -> SteadyStateRun:
        return SteadyStateRun(self.spec, self.train_data, profile, device=device, rounds=rounds,
                              per_step=self.per_step)

    def record(self, runner: SteadyStateRun, **labels) -> BenchmarkRecord:
        return runner.measurement().record(**labels, extras=dict(self.extras))


@dataclasses.dataclass(frozen=True)
class BareFit(Training):
    """A variant that runs ``fit`` with no batch-level kbench code: only an epoch-boundary
    gate, as a plain ``model.fit`` runs (the harness-overhead reference; no step latencies)."""

    per_step = False


@dataclasses.dataclass(frozen=True)
class InputOnly:
    """A variant that pulls ``pipeline`` alone, as training pulls it (input-only bound)."""

    name: str
    spec: WorkflowSpec
    pipeline: tf.data.Dataset = dataclasses.field(repr=False)
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def open(self, profile: Profile, device: str, rounds: int) -> InputOnlyRun:
        return InputOnlyRun(self.spec, self.pipeline, profile)

    def record(self, runner: InputOnlyRun, *, peak_flops=None, **labels) -> BenchmarkRecord:
        return runner.record(**labels, extras=dict(self.extras))


@dataclasses.dataclass(frozen=True)
class Remote:
    """A variant that trains ``spec`` in a child process (:mod:`kbench.remote`), for settings
    fixed once per process: e.g. ``intra_op_threads=1`` leaves the input pipeline a core.

    ``pipeline`` holds the training input's pipeline options
    (:func:`kbench.inputs.training_input` keyword arguments, JSON values); the
    child loads ``spec.dataset`` itself. ``python`` runs the child (default:
    this interpreter).
    """

    name: str
    spec: WorkflowSpec
    pipeline: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    intra_op_threads: int | None = None
    python: str | None = None
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def open(self, profile: Profile, device: str, rounds: int):
        from kbench import remote

        request = {"spec": self.spec.to_dict(), "pipeline": dict(self.pipeline),
                   "profile": remote.profile_to_dict(profile), "device": device,
                   "rounds": rounds, "intra_op_threads": self.intra_op_threads}
        return remote.RemoteRun(request, python=self.python)

    def record(self, runner, **labels) -> BenchmarkRecord:
        return runner.record(**labels, extras=dict(self.extras))


Variant = Training | BareFit | InputOnly | Remote


@dataclasses.dataclass(frozen=True)
class Group:
    """A comparison group as a suite declares it.

    Attributes:
        name: the comparison label (unique in a run), also the lockstep id.
        variants: the members, in the group's order; names unique.
        baseline: the variant the others are divided by.
        suite: the suite label, if any.
        target_ci: the CI half-width (share of the ratio) this group aims for
            when tighter than the profile's ``target_ci``.
    """

    name: str
    variants: tuple[Variant, ...]
    baseline: str
    suite: str | None = None
    target_ci: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "variants", tuple(self.variants))
        if not self.variants:
            raise GroupError(f"comparison group {self.name!r} has no variants")
        names = [v.name for v in self.variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise GroupError(f"comparison group {self.name!r}: variant names must be unique, "
                             f"got {repeated} more than once in {names}")
        if self.target_ci is not None:
            _validate.check_fraction("target_ci", self.target_ci, error=GroupError,
                                     where=f"comparison group {self.name!r}")
        if self.baseline not in names:
            raise GroupError(f"comparison group {self.name!r}: baseline {self.baseline!r} is "
                             f"not one of its variants {names}")


# A CI half-width shrinks with the square root of the cycles, so a group that
# asks for a target k times tighter than the profile's needs k^2 times the
# cycles; its time grows by that much, but at most this many times the
# profile's group_s (the default profile's +-3% loop group: (5/3)^2 = 2.8x).
TIGHT_GROUP_MAX_SCALE = 3.0


def measure_group(group: Group, profile: Profile, *, device: str = "/CPU:0",
                  peak_flops: float | None = None,
                  on_cycle: Callable[[int], None] | None = None) -> dict[str, BenchmarkRecord]:
    """Measure every variant of ``group`` in lockstep; variant name -> its record.

    Runs at least ``profile.rounds`` cycles, then more until every ratio to
    the baseline is known to the group's target (:func:`precise_enough`) or
    its time is spent (at most ``profile.max_cycles`` cycles). The variants are
    built (and their startups run) one after the other, all alive at once, and
    closed in reverse order.

    The time is ``profile.group_s``, scaled for a group that asks for a
    tighter target by the cycles that takes: (profile target / group
    target) squared, at most TIGHT_GROUP_MAX_SCALE times.
    """
    target = min(profile.target_ci, group.target_ci or 1.0)
    budget_s = profile.group_s * min(TIGHT_GROUP_MAX_SCALE, (profile.target_ci / target) ** 2)
    with contextlib.ExitStack() as stack:
        runners = {v.name: stack.enter_context(v.open(profile, device, profile.max_cycles))
                   for v in group.variants}
        lockstep.run_lockstep(
            runners, profile.max_cycles, min_cycles=profile.rounds, budget_s=budget_s,
            order=profile.order, on_cycle=on_cycle,
            done=lambda seconds: precise_enough(seconds, group.baseline, target))
        labels = dict(profile=profile.name, suite=group.suite, comparison=group.name,
                      baseline=group.baseline)
        return {v.name: v.record(runners[v.name], peak_flops=peak_flops, variant=v.name,
                                 **labels).replace(lockstep=group.name)
                for v in group.variants}


def precise_enough(seconds: Mapping[str, Sequence[float]], baseline: str, target: float) -> bool:
    """Whether every variant's ratio to ``baseline`` is known to +-``target`` (a share).

    Per cycle, log(variant's round time / baseline's): a round's steps are
    fixed per variant, so this is the log throughput ratio up to a constant.
    The half-width is Student's t interval's (the floor of the reported
    bootstrap CI, :func:`kbench.stats.paired_ratio_ci`), cheap enough to ask
    after every cycle. The test is on the spread only, never on the
    estimate, so stopping on it does not steer the ratio.
    """
    base = seconds[baseline]
    if len(base) < 3:
        return False
    for name, values in seconds.items():
        if name == baseline:
            continue
        logs = [math.log(v / b) for v, b in zip(values, base)]
        if stats.t_half_width(logs) > target:
            return False
    return True


class _ReplayClock:
    """A clock that, read before and after each call of :meth:`round`, shows exactly that
    round's seconds: 0.0 before, the seconds after (no running sum to round off)."""

    __name__ = "lockstep_replay"  # how pytest-benchmark's JSON names its timer

    def __init__(self, seconds: Sequence[float]):
        self._seconds = list(seconds)
        self._next = 0
        self._ended: float | None = None

    def __call__(self) -> float:
        ended, self._ended = self._ended, None
        return 0.0 if ended is None else ended

    def round(self) -> None:
        self._ended = self._seconds[self._next]
        self._next += 1


def replay_rounds(benchmark, record: BenchmarkRecord) -> None:
    """Hand ``record``'s rounds to pytest-benchmark's fixture as its own timed rounds,
    and the record to its ``extra_info``.

    pytest-benchmark times each pedantic round with its timer around the
    target; here the timer is a replay clock that reads each round's measured
    seconds after the target ran, so the entry's statistics are exactly the
    rounds the variant ran in lockstep.
    """
    clock = _ReplayClock(record.round_s)
    if record.comparison:
        benchmark.group = record.comparison  # read when pedantic starts
    # The fixture reads its timer when pedantic builds each round's runner.
    benchmark._timer = clock
    benchmark.pedantic(clock.round, rounds=len(record.round_s), iterations=1)
    write_record(benchmark, record)
