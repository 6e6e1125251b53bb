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

A CI is Student's t interval of the mean log ratio: pairs are independent
enough (each is two adjacent rounds; the machine's drift between pairs
cancels within each), and t is exact for normal log ratios, which the per-pair
log ratios here are close to (sd 0.15, symmetric). Pure numpy/scipy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _scipy_stats

from kbench import _validate, stats

SLOWER, FASTER, SAME, INCONCLUSIVE = "slower", "faster", "same", "inconclusive"
VERDICTS = (SLOWER, FASTER, SAME, INCONCLUSIVE)

# The chance that a test of two identical sides calls any difference, over all
# its looks: kbench's gating alpha (a false "slower" fails a build; see
# kbench.stats). Simulated (tests/test_sequential.py, per-pair sd 0.15, 300
# pairs, 8 looks): 0.05 gave 1.9% false calls, 0.8% of them "slower", so 20
# A/A runs would see one about every seventh time; 0.01 makes it rarer still.
# The max_slowdown rule (the estimate must also be beyond the allowed
# slowdown) only helps once the CI is narrower than the threshold.
DEFAULT_ALPHA = stats.DEFAULT_ALPHA
# Looks per test at most. More looks stop sooner on a clear change but make
# every look's CI wider: at 8 looks and alpha 0.01 each is a 99.875% CI, 1.6
# times as wide as a 95% one, so "same" needs about 2.6 times the pairs a
# single 95% look at the end would.
DEFAULT_LOOKS = 8
# Pairs before the first look may decide: a t interval's spread estimate from
# fewer pairs is itself too noisy to trust (and on this machine a pair takes
# ~0.25 s, so 20 pairs are 5 s).
DEFAULT_MIN_PAIRS = 20


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


def log_ratio_ci(log_ratios: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """The geometric-mean ratio and its Student-t CI from per-pair log ratios."""
    x = np.asarray(log_ratios, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise SequentialError(f"a CI needs at least 2 paired ratios, got {x.size}")
    if not np.all(np.isfinite(x)):
        bad = x[~np.isfinite(x)][0]
        raise SequentialError(f"paired log ratios must be finite, got {bad!r}")
    mean = float(np.mean(x))
    half = (float(_scipy_stats.t.ppf(0.5 + confidence / 2, df=x.size - 1))
            * float(np.std(x, ddof=1)) / math.sqrt(x.size))
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
    """

    max_slowdown: float
    alpha: float = DEFAULT_ALPHA
    looks: int = DEFAULT_LOOKS
    min_pairs: int = DEFAULT_MIN_PAIRS

    def __post_init__(self):
        _validate.check_number("max_slowdown", self.max_slowdown, low=0, high=1,
                               low_open=True, high_open=True, error=SequentialError)
        _validate.check_number("alpha", self.alpha, low=0, high=1, low_open=True,
                               high_open=True, error=SequentialError)
        _validate.check_positive_int("looks", self.looks, error=SequentialError)
        _validate.check_int("min_pairs", self.min_pairs, minimum=2, error=SequentialError)

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
            ratio, low, high = (log_ratio_ci(log_ratios, confidence) if pairs >= 2
                                else (math.nan, math.nan, math.nan))
            decided = verdict_for(ratio, low, high, self.design.max_slowdown) if enough else None
            self.looks.append(Look(pairs, ratio, low, high, confidence, decided))
        return self.over
