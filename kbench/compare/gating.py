"""Did the candidate regress? The CI gate over two stored runs, with a per-benchmark policy."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType

from kbench import _format, _validate, stats
from kbench.compare.matrix import (ComparisonError, Matrix, check_alpha, compare_runs,
                                   startup_factor)
from kbench.compare.policy import Policy, check_slowdown
from kbench.results import Run

# Allowed throughput loss before the gate fails: candidate/baseline median
# samples/s below 1 - 0.10 = 0.90. The default. It is twice
# stats.DEFAULT_MIN_FACTOR's 5% and above the typical per-round spread on this
# 2-core machine (median CV 5.7% over the 50 benchmarks of run 0012, default
# profile), so that a slowdown the gate reports is larger than round-to-round
# noise; the Mann-Whitney test guards against the noisier benchmarks (CV up
# to 20% there). Per-benchmark overrides go in a policy file.
DEFAULT_MAX_SLOWDOWN = 0.10

# The startup gate: a benchmark fails when its candidate startup_s (tracing, XLA
# compilation, the first step) is more than this many times the baseline's.
# Compile-time regressions are large (JAX #21250: 22 s -> 98 s, 4.5x), and
# startups are noisy: over 5 smoke sessions on this 2-core VM, run beside other
# work, a benchmark's slowest startup was 1.54x its fastest (median of 49),
# 2.18x at the 90th percentile and 2.54x at worst. 3x sits above that worst.
DEFAULT_MAX_STARTUP_FACTOR = 3.0

# GateResult.exit_code, and what the CLI returns for bad input.
EXIT_PASS = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2

# A ratio "at" the allowed bound passes. Medians of samples scaled by f differ
# from f * median by float rounding (~1e-16 relative); a slowdown threshold is a
# policy, not a measurement good to 9 digits, so closer than this counts as equal.
_BOUND_RTOL = 1e-9


def _below(value: float, bound: float) -> bool:
    """``value < bound``, with values within float rounding of the bound counting as equal."""
    return value < bound and not math.isclose(value, bound, rel_tol=_BOUND_RTOL)


@dataclasses.dataclass(frozen=True)
class GateFailure:
    """A benchmark significantly slower than its allowed slowdown."""

    key: str
    ratio: float  # candidate / baseline median samples/s
    ci_low: float
    ci_high: float
    p_value: float
    allowed_slowdown: float
    tested: bool = True  # False: one session a side, failed on the ratio alone

    def __str__(self) -> str:
        evidence = (f"p={self.p_value:.3g}" if self.tested else
                    "one session a side: untested, beyond the allowed slowdown by the ratio "
                    "alone")
        return (f"{self.key}: {_format.ratio(self.ratio, self.ci_low, self.ci_high)} "
                f"({evidence}), allowed slowdown {_format.share(self.allowed_slowdown, 0)}")


@dataclasses.dataclass(frozen=True)
class StartupFailure:
    """A benchmark whose startup grew beyond the allowed factor."""

    key: str
    baseline_s: float
    candidate_s: float
    allowed_factor: float

    def __str__(self) -> str:
        return (f"{self.key}: startup {_format.seconds(self.candidate_s)} against "
                f"{_format.seconds(self.baseline_s)}, {self.candidate_s / self.baseline_s:.2f}x "
                f"(allowed {self.allowed_factor:g}x: --max-startup-factor)")


@dataclasses.dataclass(frozen=True)
class GateResult:
    """The gate's answer: failures (empty when it passes) and the matrix behind it.

    Attributes:
        allowed: the allowed slowdown of every benchmark, after the policy.
        max_startup_factor: the startup gate's factor (None: startups not gated).
    """

    failures: tuple[GateFailure, ...]
    matrix: Matrix
    allowed: Mapping[str, float] = dataclasses.field(default_factory=dict, repr=False)
    alpha: float = stats.DEFAULT_ALPHA
    startup_failures: tuple[StartupFailure, ...] = ()
    max_startup_factor: float | None = DEFAULT_MAX_STARTUP_FACTOR

    def __post_init__(self) -> None:
        object.__setattr__(self, "failures", tuple(self.failures))
        object.__setattr__(self, "startup_failures", tuple(self.startup_failures))
        object.__setattr__(self, "allowed", MappingProxyType(dict(self.allowed)))

    @property
    def passed(self) -> bool:
        return not self.failures and not self.startup_failures

    @property
    def exit_code(self) -> int:
        """0 when no benchmark regressed, 1 otherwise."""
        return EXIT_PASS if self.passed else EXIT_REGRESSION


def _failure(key: str, comparison: stats.Comparison, allowed: float,
             alpha: float) -> GateFailure | None:
    tested = comparison.verdict != stats.UNTESTED
    if not _below(comparison.ratio, 1 - allowed):
        return None
    if tested and comparison.p_value >= alpha:
        return None
    return GateFailure(key=key, ratio=comparison.ratio, ci_low=comparison.ci_low,
                       ci_high=comparison.ci_high, p_value=comparison.p_value,
                       allowed_slowdown=allowed, tested=tested)


def gate(
    baseline: Run,
    candidate: Run,
    *,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    policy: Policy | None = None,
    alpha: float = stats.DEFAULT_ALPHA,
    max_startup_factor: float | None = DEFAULT_MAX_STARTUP_FACTOR,
) -> GateResult:
    """Fail when a benchmark of ``candidate`` is slower than in ``baseline`` beyond its allowance.

    A benchmark fails when candidate/baseline throughput is below ``1 -
    allowed slowdown`` (0.10: more than 10% fewer samples/s) AND, where the
    samples' design supports a test (several sessions a side, or lockstep
    pairs: :func:`kbench.compare.matrix.compare_records`), its p is below
    ``alpha``. With one session a side nothing is tested: the ratio alone
    fails it, and the failure says so (``tested`` False) — a coarse gate,
    whose allowed slowdown must stay above the sessions' drift. Its
    allowed slowdown is the policy's rule for it, else the policy file's
    ``max_slowdown``, else the ``max_slowdown`` argument. The matrix's
    verdicts use ``1 / (1 - that default)`` as their minimum factor, so they
    agree with the gate wherever no rule overrides the default.

    A benchmark also fails when its candidate ``startup_s`` is more than
    ``max_startup_factor`` times the baseline's (None: startups not gated).

    Raises:
        ComparisonError (PolicyError for the policy): mismatched runs,
        ``max_slowdown`` outside (0, 1), a bad ``alpha``, a policy that is not
        a Policy or names a benchmark neither run has.
    """
    check_slowdown("max_slowdown", max_slowdown)
    check_alpha(alpha)
    if max_startup_factor is not None:
        _validate.check_number("max_startup_factor", max_startup_factor, low=1,
                               low_open=True, error=ComparisonError)
    if policy is not None and not isinstance(policy, Policy):
        raise ComparisonError(f"policy must be a Policy (see load_policy), got {policy!r:.80}")
    default = max_slowdown
    if policy is not None and policy.max_slowdown is not None:
        default = policy.max_slowdown
    matrix = compare_runs([baseline, candidate], 0, alpha=alpha, min_factor=1 / (1 - default))
    if policy is not None:
        policy.check_keys(matrix.keys)
    allowed = {key: policy.allowed_slowdown(key, default) if policy is not None else default
               for key in matrix.keys}
    failures = []
    for key in matrix.keys:
        failure = _failure(key, matrix.cell(key, 1).comparison, allowed[key], alpha)
        if failure is not None:
            failures.append(failure)
    return GateResult(failures=tuple(failures), matrix=matrix, allowed=allowed,
                      alpha=float(alpha),
                      startup_failures=_startup_failures(baseline, candidate, matrix.keys,
                                                         max_startup_factor),
                      max_startup_factor=max_startup_factor)


def _startup_failures(baseline: Run, candidate: Run, keys, factor: float | None
                      ) -> tuple[StartupFailure, ...]:
    if factor is None:
        return ()
    failures = []
    for key in keys:
        base, cand = baseline.results.get(key), candidate.results.get(key)
        grown = startup_factor(base, cand)
        if grown is not None and grown > factor:
            failures.append(StartupFailure(key, base.startup_s, cand.startup_s, float(factor)))
    return tuple(failures)
