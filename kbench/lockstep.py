"""Lockstep: the variants of one comparison group advanced round by round, interleaved.

On a shared machine throughput drifts by tens of percent within minutes, far
more than most differences worth finding. Variants measured one after the
other mix their difference with that drift. In lockstep every variant is built
once, warmed up, and then they take turns: one round each per *cycle*, in a
balanced order, so that each variant's round i ran next to every other
variant's round i. The ratio of two variants is then computed pair by pair
(:func:`kbench.stats.paired_ratio_ci`), and drift that hits both rounds of a
cycle cancels.

A runner is anything with ``warm_up()`` and ``next_round() -> float`` (the
seconds its measured steps took in that round): a training run
(:class:`kbench.measure.SteadyStateRun`), a bare ``model.fit`` reference, an
input pipeline alone. Each round is also watched for noise
(:mod:`kbench.telemetry`): wall and process CPU time, and CPU steal.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from kbench import _validate
from kbench.telemetry import RoundNoise, Stopwatch

# How the variants of a cycle are ordered. "abba": forward in even cycles,
# backward in odd ones (A B, B A, A B, ...), so each variant goes first as
# often as it goes last and a linear drift over two cycles cancels. "random":
# a fresh permutation per cycle, seeded.
ORDERS = ("abba", "random")


class LockstepError(RuntimeError):
    """A lockstep group that cannot run as asked; the message says which variant and why."""


class Runner(Protocol):
    def warm_up(self) -> None: ...

    def next_round(self) -> float: ...


def cycle_order(n_variants: int, cycle: int, *, order: str = "abba",
                rng: random.Random | None = None) -> list[int]:
    """The variants' indices in the order cycle ``cycle`` runs them."""
    _validate.check_positive_int("n_variants", n_variants)
    _validate.check_choice("order", order, ORDERS)
    forward = list(range(n_variants))
    if order == "random":
        (rng or random.Random(cycle)).shuffle(forward)
        return forward
    return forward if cycle % 2 == 0 else forward[::-1]


@dataclasses.dataclass(frozen=True)
class Rounds:
    """What a lockstep group measured.

    Attributes:
        variants: the variants' names, in the group's order.
        orders: per cycle, the variants' indices in the order they ran.
        seconds: per variant, each cycle's round time (its measured steps).
        noise: per variant, each cycle's round telemetry (around the whole round).
        wall_s: the whole measurement, warm-up excluded.
    """

    variants: tuple[str, ...]
    orders: tuple[tuple[int, ...], ...]
    seconds: Mapping[str, tuple[float, ...]]
    noise: Mapping[str, tuple[RoundNoise, ...]]
    wall_s: float

    @property
    def cycles(self) -> int:
        return len(self.orders)


def run_lockstep(runners: Mapping[str, Runner], cycles: int, *, order: str = "abba",
                 seed: int = 0, budget_s: float | None = None, min_cycles: int = 2,
                 stopwatch: Stopwatch | None = None,
                 done: Callable[[Mapping[str, list[float]]], bool] | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 on_cycle: Callable[[int], None] | None = None) -> Rounds:
    """Warm every runner up, then run ``cycles`` cycles of one round per runner.

    Args:
        runners: variant name -> runner, in the group's order (the first is
            usually the baseline).
        cycles: how many cycles at most.
        order: see ORDERS; ``seed`` seeds "random".
        budget_s: stop after the first cycle that ends past this many seconds,
            once ``min_cycles`` cycles have run (at least two, so that a spread
            exists).
        done: called after each cycle from ``min_cycles`` on with every
            variant's round seconds so far; True stops (e.g. precise enough).
        on_cycle: called with the cycle index after each cycle (progress).

    Raises:
        LockstepError: naming the variant whose warm-up or round failed.
    """
    if not runners:
        raise LockstepError("a lockstep group needs at least one runner, got none")
    _validate.check_positive_int("cycles", cycles, error=LockstepError)
    _validate.check_positive_int("min_cycles", min_cycles, error=LockstepError)
    if min_cycles > cycles:
        raise LockstepError(f"min_cycles ({min_cycles}) exceeds cycles ({cycles})")
    if budget_s is not None:
        _validate.check_number("budget_s", budget_s, low=0, low_open=True, error=LockstepError)
    names = tuple(runners)
    watch = stopwatch or Stopwatch()
    for name in names:
        _call(name, "warm-up", runners[name].warm_up)
    rng = random.Random(seed)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    noise: dict[str, list[RoundNoise]] = {name: [] for name in names}
    orders = []
    start = clock()
    for cycle in range(cycles):
        indices = cycle_order(len(names), cycle, order=order, rng=rng)
        for i in indices:
            name = names[i]
            token = watch.start()
            seconds[name].append(_call(name, f"round {cycle + 1}", runners[name].next_round))
            noise[name].append(watch.stop(token))
        orders.append(tuple(indices))
        if on_cycle is not None:
            on_cycle(cycle)
        if cycle + 1 >= max(2, min_cycles):
            if budget_s is not None and clock() - start > budget_s:
                break
            if done is not None and done(seconds):
                break
    return Rounds(variants=names, orders=tuple(orders),
                  seconds={n: tuple(v) for n, v in seconds.items()},
                  noise={n: tuple(v) for n, v in noise.items()}, wall_s=clock() - start)


def _call(name: str, what: str, fn: Callable):
    try:
        return fn()
    except Exception as err:
        raise LockstepError(f"variant {name!r} failed in its {what}: "
                            f"{type(err).__name__}: {err}") from err

