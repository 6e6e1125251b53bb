"""Verdicts from paired rounds looked at as they come in: four outcomes, false alarms held.

A lockstep A/B (:mod:`kbench.lockstep_ab`) gets one throughput ratio per pair
of rounds (candidate over baseline, run next to each other) and wants to stop
as soon as the pairs decide. Looking at a 95% CI after every few pairs and
stopping at the first one that excludes 1.0 inflates false alarms: the more
looks, the likelier one of them strays (ten looks give about 20% instead of
5%). So a test here looks at most ``looks`` times, at fixed shares of its
time budget, and every look uses a ``1 - alpha / looks`` CI (Bonferroni
alpha spending): the chance that any look of an A/A calls a difference is at
most ``alpha``, whatever the looks see, and however the pairs are spread in
time (a union bound, so it needs no assumption about the looks' spacing,
which a time budget makes unpredictable).

Four outcomes, as asv calls a change on its data but with a paired CI:

- ``slower``: the CI lies below 1.0 AND the estimate is below ``1 -
  max_slowdown`` (significant, and beyond what is allowed);
- ``faster``: the mirror image, above 1.0 and above ``1 / (1 -
  max_slowdown)``;
- ``same``: the whole CI lies within ``[1 - max_slowdown, 1 / (1 -
  max_slowdown)]``, an equivalence claim (two one-sided tests);
- ``inconclusive``: the budget ran out before any of these held.

A CI is built from two parts. The rounds' noise: the pairs' spread over their
number (each pair is two adjacent rounds, so the machine's drift between pairs
cancels within each). And the workers' own speeds: two processes of one
interpreter running one workflow differ by a per-process offset that lasts
their whole life (the sd of that offset, ``process_sd``, is 2.0% on this VM:
``DEFAULT_PROCESS_SD``), which no number of pairs averages away. So each side
runs ``workers`` processes (lanes: lane j pairs the sides' j-th workers), and
the variance of the mean log ratio is ``pair_var / pairs + 2 * process_sd**2
/ workers``, with the process term the larger of the measured one (the lanes'
spread beyond what their pairs explain, once there are 2 lanes or more) and
``process_sd`` (a lane spread from 2-3 lanes is too rough to trust alone). The
interval is normal: the pairs are hundreds, and the process term is taken as
known. Pure numpy/scipy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _scipy_stats

from kbench import _validate

SLOWER, FASTER, SAME, INCONCLUSIVE = "slower", "faster", "same", "inconclusive"
VERDICTS = (SLOWER, FASTER, SAME, INCONCLUSIVE)

# The chance that a test of two identical sides calls any difference, over all
# its looks. 0.05, not kbench's 0.01 (kbench.stats): the max_slowdown rule (the
# estimate must also be beyond the allowed slowdown) keeps false "slower"
# verdicts far below alpha / 2 here, and 0.01 costs a third of the power.
# Simulated (tests/test_sequential.py's model: per-pair sd 0.15,
# process sd 2%, 480 pairs, 4 workers, 4 looks, 3% threshold): A/A "slower"
# 0.3% at 0.05 and 0% at 0.01; a 5% slowdown "slower" 70% and 50%.
DEFAULT_ALPHA = 0.05
# Looks per test at most. More looks stop sooner on a clear change but make
# every look's CI wider (at 4 looks and alpha 0.05 each is a 98.75% CI, 1.3
# times as wide as a 95% one). A 10% slowdown is decided at the first or second
# look; the process term, which more pairs do not shrink, leaves later looks
# little to gain, so few looks lose little.
DEFAULT_LOOKS = 4
# Pairs before the first look may decide: a spread estimate from fewer pairs
# is itself too noisy to trust (and on this machine a pair takes ~0.25 s, so 20
# pairs are 5 s).
DEFAULT_MIN_PAIRS = 20
# The sd of a worker process's lasting speed offset (in log throughput),
# measured on this 2-core VM: six workers of one interpreter running the MLP
# (fit, tf.function, b64), all rounds interleaved for 60 s after an untimed
# precursor worker (kbench.lockstep_ab); the per-worker offsets' spread beyond
# their rounds' noise came out 1.28%, 3.27% (one worker 5.8% slow) and 0.0% in
# three runs: 2.0% pooled. One worker a side leaves the ratio's estimate an sd
# of 2.8% however long it runs.
DEFAULT_PROCESS_SD = 0.02
# Workers per side: the process term's variance falls as 1 / workers. 4 (9
# worker startups with the precursor, two at a time: ~1 min here) take that
# term's sd from 2.8% to 1.4%.
DEFAULT_WORKERS = 4


class SequentialError(ValueError):
    """A design or data the test cannot run on; the message quotes the value."""


@dataclasses.dataclass(frozen=True)
class Look:
    """What the pairs said at one look.

    Attributes:
        pairs: pairs so far.
        ratio: the geometric mean of the per-pair ratios (candidate / baseline
            throughput: below 1 is slower).
        low, high: the look's CI (``confidence``).
        confidence: the CI's level (``1 - alpha / looks``).
        verdict: ``slower``, ``faster`` or ``same`` once decided, else None.
    """

    pairs: int
    ratio: float
    low: float
    high: float
    confidence: float
    verdict: str | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def verdict_for(ratio: float, low: float, high: float, max_slowdown: float) -> str | None:
    """The outcome a ratio and its CI decide (see the module docstring), or None."""
    slow_limit = 1.0 - max_slowdown
    fast_limit = 1.0 / slow_limit
    if high < 1.0 and ratio < slow_limit:
        return SLOWER
    if low > 1.0 and ratio > fast_limit:
        return FASTER
    if low >= slow_limit and high <= fast_limit:
        return SAME
    return None


def _checked(log_ratios: Sequence[float]) -> np.ndarray:
    x = np.asarray(log_ratios, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise SequentialError(f"a CI needs at least 2 paired ratios, got {x.size}")
    if not np.all(np.isfinite(x)):
        bad = x[~np.isfinite(x)][0]
        raise SequentialError(f"paired log ratios must be finite, got {bad!r}")
    return x


def process_var(log_ratios: Sequence[float], lanes: int) -> float | None:
    """The variance the lanes' workers add to one lane's mean log ratio (``2 *
    process_sd**2``), measured: the lane means' spread beyond what their pairs'
    noise explains (0 if none); None with fewer than 2 lanes or 2 pairs a lane.
    Pair i belongs to lane ``i % lanes``."""
    x = _checked(log_ratios)
    cycles = x.size // lanes
    if lanes < 2 or cycles < 2:
        return None
    by_lane = x[:cycles * lanes].reshape(cycles, lanes)
    within = float(np.mean(np.var(by_lane, axis=0, ddof=1)))
    return max(0.0, float(np.var(by_lane.mean(axis=0), ddof=1)) - within / cycles)


def lane_estimate(log_ratios: Sequence[float], lanes: int, process_sd: float
                  ) -> tuple[float, float]:
    """The mean log ratio of per-pair log ratios of ``lanes`` worker pairs (pair i in
    lane ``i % lanes``) and its standard error, the workers' process offsets included
    (see the module docstring)."""
    x = _checked(log_ratios)
    measured = process_var(x, lanes)
    between = max(2 * process_sd ** 2, measured or 0.0)
    return float(np.mean(x)), math.sqrt(float(np.var(x, ddof=1)) / x.size + between / lanes)


def lane_ci(log_ratios: Sequence[float], lanes: int, confidence: float,
            process_sd: float) -> tuple[float, float, float]:
    """The geometric-mean ratio and its normal CI from :func:`lane_estimate`."""
    mean, se = lane_estimate(log_ratios, lanes, process_sd)
    half = float(_scipy_stats.norm.ppf(0.5 + confidence / 2)) * se
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


@dataclasses.dataclass(frozen=True)
class Design:
    """How a sequential A/B decides.

    Attributes:
        max_slowdown: the allowed slowdown (a share, e.g. 0.03).
        alpha: the chance of calling any difference between identical sides,
            over all looks.
        looks: looks at most, at ``budget_s * k / looks`` for k = 1..looks.
        min_pairs: pairs before a look may decide (earlier looks are spent).
        workers: worker processes a side runs (the lanes of pairs).
        process_sd: the least sd of a worker's lasting speed offset the CI
            allows for (log throughput; DEFAULT_PROCESS_SD).
    """

    max_slowdown: float
    alpha: float = DEFAULT_ALPHA
    looks: int = DEFAULT_LOOKS
    min_pairs: int = DEFAULT_MIN_PAIRS
    workers: int = DEFAULT_WORKERS
    process_sd: float = DEFAULT_PROCESS_SD

    def __post_init__(self):
        _validate.check_number("max_slowdown", self.max_slowdown, low=0, high=1,
                               low_open=True, high_open=True, error=SequentialError)
        _validate.check_number("alpha", self.alpha, low=0, high=1, low_open=True,
                               high_open=True, error=SequentialError)
        _validate.check_positive_int("looks", self.looks, error=SequentialError)
        _validate.check_int("min_pairs", self.min_pairs, minimum=2, error=SequentialError)
        _validate.check_positive_int("workers", self.workers, error=SequentialError)
        _validate.check_number("process_sd", self.process_sd, low=0, high=1, high_open=True,
                               error=SequentialError)

    @property
    def look_confidence(self) -> float:
        """Every look's CI level: the Bonferroni share of alpha."""
        return 1.0 - self.alpha / self.looks

    def look_times(self, budget_s: float) -> tuple[float, ...]:
        """When the looks fall due, in seconds of pairs: equal shares of the budget."""
        _validate.check_number("budget_s", budget_s, low=0, low_open=True,
                               error=SequentialError)
        return tuple(budget_s * k / self.looks for k in range(1, self.looks + 1))


class SequentialTest:
    """One sequential test over a time budget: call :meth:`update` after every pair.

    ``update(log_ratios, elapsed_s)`` looks when a look is due (the first
    update at or after each look time), and returns True once the test is
    over: decided, or the last look (at the budget's end) taken.
    """

    def __init__(self, design: Design, budget_s: float):
        self.design = design
        self._due = list(design.look_times(budget_s))
        self.looks: list[Look] = []

    @property
    def verdict(self) -> str:
        """The outcome so far: the decided one, else ``inconclusive``."""
        decided = self.looks[-1].verdict if self.looks else None
        return decided or INCONCLUSIVE

    @property
    def over(self) -> bool:
        return not self._due or (bool(self.looks) and self.looks[-1].verdict is not None)

    def update(self, log_ratios: Sequence[float], elapsed_s: float) -> bool:
        if self.over:
            return True
        if elapsed_s < self._due[0]:
            return False
        while self._due and elapsed_s >= self._due[0]:
            self._due.pop(0)  # every look due by now is spent, even if only one is taken
        pairs = len(log_ratios)
        enough = pairs >= self.design.min_pairs  # min_pairs >= 2: a CI exists
        if enough or not self._due:  # the last look records what there is, even if too few
            confidence = self.design.look_confidence
            ratio, low, high = (lane_ci(log_ratios, self.design.workers, confidence,
                                        self.design.process_sd) if pairs >= 2
                                else (math.nan, math.nan, math.nan))
            decided = verdict_for(ratio, low, high, self.design.max_slowdown) if enough else None
            self.looks.append(Look(pairs, ratio, low, high, confidence, decided))
        return self.over
