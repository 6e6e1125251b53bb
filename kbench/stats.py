"""Summaries, confidence intervals and significance tests for benchmark samples.

Pure numpy/scipy: nothing here imports TensorFlow. A *sample* is a 1-D sequence
of positive measurements of one benchmark, typically per-round throughputs
(examples/s, higher is better) or per-step latencies (seconds, lower is
better).

Two samples are compared the way asv does it: a change is reported only when
it is both statistically significant (two-sided Mann-Whitney U test, p below
``alpha``) and large (the ratio of medians beyond ``min_factor``). Neither
alone is enough: with many rounds a 1% drift is "significant" but not worth a
red build, and with few rounds a large-looking ratio can be noise.

Small samples cannot be significant at all: the smallest two-sided exact
Mann-Whitney p-value for two groups of ``n`` is ``2 / C(2n, n)``, e.g. 0.1 for
3 vs 3 and 0.029 for 4 vs 4, so at ``alpha=0.01`` at least 5 rounds per side
are needed. :func:`min_samples_for` computes this so callers can warn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as _scipy_stats

from kbench import _format, _validate

# Significance level of the gating policy: a false "slower" fails a build, so
# we accept 1 false alarm in 100 comparisons of identical code rather than the
# textbook 1 in 20 (a suite of ~50 benchmarks would then cry wolf every run).
DEFAULT_ALPHA = 0.01

# Smallest ratio of medians worth reporting: |change| must exceed 5%. asv uses
# 10% by default for noisy, unpinned machines; kbench runs repeated rounds and
# compares medians, so we ask for half that. A policy choice, not a measured
# noise floor: raise it on machines whose per-round CV is above a few percent.
DEFAULT_MIN_FACTOR = 1.05

# Bootstrap resamples per CI. Percentile-interval endpoints need >= 1000
# resamples to be stable (Efron & Tibshirani 1993, ch. 13); 2000 keeps the
# Monte Carlo error of a 95% endpoint near 0.5 percentile points and costs a
# few milliseconds for samples of tens to hundreds of rounds.
DEFAULT_BOOTSTRAP_RESAMPLES = 2000

DEFAULT_CONFIDENCE = 0.95

# Resampled values held in memory at once (float64: 8 MB), so that bootstrapping
# thousands of per-step latencies does not allocate n_resamples * n at once.
_BOOTSTRAP_CHUNK_ELEMENTS = 1_000_000

# "untested": the samples' design cannot support a significance test (the
# rounds of one session a side), so only the ratio is given.
UNTESTED = "untested"
VERDICTS = ("faster", "slower", "same", UNTESTED)
# How a comparison's samples were drawn, which decides what they can support:
# "sessions": one sample per session, several sessions a side (independent:
# Mann-Whitney); "paired": rounds run pair by pair in lockstep (kbench ab: the
# paired CI with the workers' process term); "single": the rounds of one
# session a side (not independent samples of a side: untested).
DESIGNS = ("sessions", "paired", "single")


# --------------------------------------------------------------------------- validation


def _as_sample(samples, name: str = "samples", *, positive: bool = False) -> np.ndarray:
    """``samples`` as a 1-D float array; ValueError quoting the first bad value."""
    try:
        x = np.asarray(samples, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {samples!r}") from None
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got {samples!r}")
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name} must be finite, got {float(x[i])!r} at index {i}")
    if positive:
        bad = np.flatnonzero(x <= 0)
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name} must be positive, got {float(x[i])!r} at index {i}")
    return x


def _check_open_unit(name: str, value) -> None:
    _validate.check_fraction(name, value)


def _check_min_factor(value) -> None:
    _validate.check_number("min_factor", value, low=1)


# --------------------------------------------------------------------------- summaries


@dataclasses.dataclass(frozen=True)
class Summary:
    """Descriptive statistics of one sample, with a bootstrap CI of its median.

    Validated on construction. ``stdev`` is the sample standard deviation
    (ddof=1), 0.0 for a single value; ``cv`` is ``stdev / mean``.
    """

    n: int
    mean: float
    median: float
    stdev: float
    cv: float
    min: float
    max: float
    ci_low: float
    ci_high: float
    confidence: float

    def __post_init__(self) -> None:
        _validate.check_positive_int("n", self.n)
        for field in dataclasses.fields(self)[1:]:
            _validate.check_number(f"Summary.{field.name}", getattr(self, field.name))
        _check_open_unit("confidence", self.confidence)
        if self.stdev < 0 or self.cv < 0:
            raise ValueError(f"stdev and cv must be >= 0, got stdev={self.stdev!r} cv={self.cv!r}")
        if not self.min <= self.median <= self.max:
            raise ValueError(
                f"need min <= median <= max, got {self.min!r}, {self.median!r}, {self.max!r}"
            )
        if not self.ci_low <= self.ci_high:
            raise ValueError(f"need ci_low <= ci_high, got [{self.ci_low!r}, {self.ci_high!r}]")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def summarize(
    samples,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed=0,
) -> Summary:
    """Summary of a sample of positive measurements (throughputs, latencies)."""
    x = _as_sample(samples, positive=True)
    low, high = bootstrap_ci(x, np.median, confidence=confidence, n_resamples=n_resamples,
                             seed=seed)
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        # np.mean/np.std of equal values can be off by an ulp; state the exact answer.
        mean, stdev = lo, 0.0
    else:
        mean, stdev = float(np.mean(x)), float(np.std(x, ddof=1))
    return Summary(
        n=int(x.size), mean=mean, median=float(np.median(x)), stdev=stdev, cv=stdev / mean,
        min=lo, max=hi, ci_low=low, ci_high=high, confidence=float(confidence),
    )


def percentiles(samples, qs: Sequence[float] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50": .., "p90": .., "p99": ..}`` of e.g. per-step latencies (linear interpolation)."""
    x = _as_sample(samples)
    for q in qs:
        _validate.check_number("a percentile", q, low=0, high=100, where=f"percentiles {qs!r}")
    values = np.percentile(x, list(qs))
    return {f"p{q:g}": float(v) for q, v in zip(qs, values)}


def geometric_mean(values) -> float:
    """Geometric mean of positive values (the mean of ratios across benchmarks)."""
    x = _as_sample(values, "values", positive=True)
    return float(np.exp(np.mean(np.log(x))))


# --------------------------------------------------------------------------- bootstrap


def _check_bootstrap_args(confidence, n_resamples) -> None:
    _check_open_unit("confidence", confidence)
    _validate.check_positive_int("n_resamples", n_resamples)


def _resampled_statistic(x: np.ndarray, statistic: Callable, n_resamples: int,
                         rng: np.random.Generator) -> np.ndarray:
    """``statistic`` of ``n_resamples`` resamples (with replacement) of ``x``."""
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // x.size)
    out = []
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        idx = rng.integers(0, x.size, size=(rows, x.size))
        out.append(np.asarray(statistic(x[idx], axis=1), dtype=float))
    return np.concatenate(out)


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_ci(
    samples,
    statistic: Callable = np.median,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed=0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic``; the same for the same ``seed``.

    Args:
        statistic: a numpy-style reduction that accepts ``axis=`` (np.median,
            np.mean, ...); it is applied to all resamples at once.
        seed: anything ``np.random.default_rng`` accepts.

    Returns:
        ``(low, high)``; ``(x, x)`` for a single value, which has no spread to
        resample (scipy.stats.bootstrap refuses n == 1; it is also BCa by
        default and slower, so kbench uses its own percentile bootstrap).
    """
    x = _as_sample(samples)
    _check_bootstrap_args(confidence, n_resamples)
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    return _percentile_interval(_resampled_statistic(x, statistic, n_resamples, rng), confidence)


def _ratio_samples(numerator_samples, denominator_samples, confidence, n_resamples
                   ) -> tuple[np.ndarray, np.ndarray]:
    num = _as_sample(numerator_samples, "numerator_samples", positive=True)
    den = _as_sample(denominator_samples, "denominator_samples", positive=True)
    _check_bootstrap_args(confidence, n_resamples)
    return num, den


def ratio_ci(
    numerator_samples,
    denominator_samples,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed=0,
) -> tuple[float, float, float]:
    """Ratio of medians and its bootstrap CI, resampling each group independently.

    Returns:
        ``(ratio, low, high)``, e.g. custom/fit throughput ``(1.02, 0.99, 1.05)``.
    """
    num, den = _ratio_samples(numerator_samples, denominator_samples, confidence, n_resamples)
    ratio = float(np.median(num) / np.median(den))
    rng = np.random.default_rng(seed)
    num_medians = _resampled_statistic(num, np.median, n_resamples, rng)
    den_medians = _resampled_statistic(den, np.median, n_resamples, rng)
    low, high = _percentile_interval(num_medians / den_medians, confidence)
    return ratio, low, high


def block_length(n: int) -> int:
    """The moving-block bootstrap's block length for ``n`` paired cycles: n^(1/3), at
    least 1 (the usual rate for a variance; 4 for 64 cycles)."""
    return max(1, round(n ** (1 / 3)))


def _block_resampled_means(x: np.ndarray, block: int, n_resamples: int,
                           rng: np.random.Generator) -> np.ndarray:
    """Means of moving-block bootstrap resamples of ``x``: blocks of ``block``
    consecutive values, drawn with replacement, concatenated to ``x.size``."""
    n = x.size
    starts_per_resample = -(-n // block)
    out = []
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // (starts_per_resample * block))
    offsets = np.arange(block)
    for start in range(0, n_resamples, chunk):
        rows = min(chunk, n_resamples - start)
        starts = rng.integers(0, n - block + 1, size=(rows, starts_per_resample))
        idx = (starts[:, :, None] + offsets).reshape(rows, -1)[:, :n]
        out.append(x[idx].mean(axis=1))
    return np.concatenate(out)


def paired_ratio_ci(
    numerator_samples,
    denominator_samples,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    block: int | None = None,
    seed=0,
) -> tuple[float, float, float]:
    """Geometric mean of per-pair ratios and its bootstrap CI, resampling pairs.

    For samples taken in pairs (round i of the numerator next to round i of the
    denominator, as interleaved rounds are): drift that hits both rounds of a
    pair cancels in their ratio, so the CI is that of the variants' difference,
    not of the machine's drift.

    Args:
        block: resample runs of this many consecutive pairs (a moving-block
            bootstrap), so that pairs whose ratios are correlated with their
            neighbours' (a slow disturbance spanning several cycles) widen the
            CI as they should; None (the default) picks :func:`block_length`;
            whatever the block, the CI is at least Student's t interval;
            1 resamples single pairs. On this VM the per-cycle ratios of 20
            A/A sessions had block-of-8 means varying up to 1.9x more than
            independent cycles would (several sessions above 1.5x).

    Returns:
        ``(ratio, low, high)``.
    """
    num, den = _ratio_samples(numerator_samples, denominator_samples, confidence, n_resamples)
    if num.size != den.size:
        raise ValueError(f"paired samples must have the same length, got {num.size} "
                         f"numerator and {den.size} denominator values")
    logs = np.log(num / den)
    ratio = float(np.exp(np.mean(logs)))
    if logs.size == 1:
        return ratio, ratio, ratio
    block = block_length(logs.size) if block is None else block
    _validate.check_positive_int("block", block)
    if block > logs.size:
        raise ValueError(f"block ({block}) exceeds the {logs.size} pairs")
    rng = np.random.default_rng(seed)
    means = (_resampled_statistic(logs, np.mean, n_resamples, rng) if block == 1
             else _block_resampled_means(logs, block, n_resamples, rng))
    low, high = _percentile_interval(means, confidence)
    # A percentile bootstrap of a mean undercovers with few pairs (it knows only
    # the spread it saw); Student's t interval is the floor of the CI's width.
    t_half = t_half_width(logs, confidence)
    mean = float(np.mean(logs))
    low, high = min(low, mean - t_half), max(high, mean + t_half)
    return ratio, float(np.exp(low)), float(np.exp(high))


def t_half_width(values, confidence: float = DEFAULT_CONFIDENCE) -> float:
    """Half-width of Student's t interval for the mean of ``values`` (n >= 2)."""
    x = _as_sample(values, "values")
    if x.size < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {x.size}")
    _check_open_unit("confidence", confidence)
    quantile = float(_scipy_stats.t.ppf(0.5 + confidence / 2, df=x.size - 1))
    return quantile * float(np.std(x, ddof=1)) / float(np.sqrt(x.size))


def paired_statistic_ci(
    columns: Sequence,
    statistic: Callable[..., np.ndarray],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed=0,
) -> tuple[float, float, float]:
    """A statistic of several paired samples and its bootstrap CI, resampling rows jointly.

    Row i of every column was measured together (cycle i of a lockstep group).
    ``statistic(*columns)`` gets one array per column, each of shape
    ``(resamples, rows)``, and returns one value per resample; the point
    estimate is the statistic of the columns as measured.

    Returns:
        ``(estimate, low, high)``.
    """
    data = [_as_sample(c, f"column {i}") for i, c in enumerate(columns)]
    if not data:
        raise ValueError("paired_statistic_ci needs at least one column, got none")
    sizes = {c.size for c in data}
    if len(sizes) != 1:
        raise ValueError(f"paired columns must have the same length, got lengths "
                         f"{[c.size for c in data]}")
    _check_bootstrap_args(confidence, n_resamples)
    n = data[0].size
    estimate = float(np.asarray(statistic(*(c[None, :] for c in data)))[0])
    if n == 1:
        return estimate, estimate, estimate
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    values = np.asarray(statistic(*(c[idx] for c in data)), dtype=float)
    if values.shape != (n_resamples,):
        raise ValueError(f"the statistic must return one value per resample "
                         f"({n_resamples}), got shape {values.shape}")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("the statistic was not finite on any resample")
    # A resample can be degenerate (e.g. a zero denominator); the CI is over the others.
    low, high = _percentile_interval(finite, confidence)
    return estimate, low, high


# --------------------------------------------------------------------------- comparisons


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Candidate vs baseline. Validated on construction.

    ``ratio`` is candidate median / baseline median, whatever the direction:
    for throughputs > 1 is faster, for latencies (``higher_is_better=False``
    in :func:`compare_samples`) > 1 is slower. ``verdict`` already accounts
    for the direction.
    """

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    verdict: str
    alpha: float
    min_factor: float
    design: str = "sessions"

    def __post_init__(self) -> None:
        _validate.check_choice("verdict", self.verdict, VERDICTS)
        _validate.check_choice("design", self.design, DESIGNS)
        if (self.verdict == UNTESTED) != (self.design == "single"):
            raise ValueError(f"verdict {self.verdict!r} contradicts design {self.design!r}: "
                             "exactly the single-session design is untested")
        _validate.check_number("ratio", self.ratio, low=0, low_open=True)
        if not self.ci_low <= self.ci_high:
            raise ValueError(f"need ci_low <= ci_high, got [{self.ci_low!r}, {self.ci_high!r}]")
        if not 0 <= self.p_value <= 1:
            raise ValueError(f"p_value must be in [0, 1], got {self.p_value!r}")
        _check_open_unit("alpha", self.alpha)
        _check_min_factor(self.min_factor)
        if self.significant != (self.verdict in ("faster", "slower")):
            raise ValueError(
                f"significant={self.significant!r} contradicts verdict={self.verdict!r}"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        if self.verdict == UNTESTED:
            return (f"{_format.ratio(self.ratio, self.ci_low, self.ci_high)} untested (one "
                    "session a side)")
        return (f"{_format.ratio(self.ratio, self.ci_low, self.ci_high)} "
                f"{self.verdict} (p={self.p_value:.3g})")


def mann_whitney_p(baseline, candidate) -> float:
    """Two-sided Mann-Whitney U p-value (scipy's ``method="auto"``)."""
    a = _as_sample(baseline, "baseline")
    b = _as_sample(candidate, "candidate")
    return float(_scipy_stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def verdict_of(ratio: float, p_value: float, alpha: float, min_factor: float,
               higher_is_better: bool = True) -> str:
    """asv's rule: faster or slower when p < alpha AND the ratio is beyond
    ``min_factor``; else the same."""
    gain = ratio if higher_is_better else 1 / ratio
    if p_value >= alpha:
        return "same"
    if gain > min_factor:
        return "faster"
    if gain < 1 / min_factor:
        return "slower"
    return "same"


def compare_samples(
    baseline,
    candidate,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_factor: float = DEFAULT_MIN_FACTOR,
    higher_is_better: bool = True,
    confidence: float = DEFAULT_CONFIDENCE,
    n_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
    seed=0,
) -> Comparison:
    """Is ``candidate`` faster, slower or the same as ``baseline``?

    Significant when the two-sided Mann-Whitney p < ``alpha`` AND the ratio
    of medians is beyond ``min_factor`` (above it, or below ``1/min_factor``).
    Groups smaller than ``min_samples_for(alpha)`` can never be significant.

    Args:
        higher_is_better: True for throughputs, False for latencies/times.
        confidence, n_resamples, seed: for the bootstrap CI of the ratio.
    """
    baseline = _as_sample(baseline, "baseline", positive=True)
    candidate = _as_sample(candidate, "candidate", positive=True)
    _check_open_unit("alpha", alpha)
    _check_min_factor(min_factor)
    ratio, low, high = ratio_ci(candidate, baseline, confidence=confidence,
                                n_resamples=n_resamples, seed=seed)
    p_value = mann_whitney_p(baseline, candidate)
    verdict = verdict_of(ratio, p_value, alpha, min_factor, higher_is_better)
    return Comparison(ratio=ratio, ci_low=low, ci_high=high, p_value=p_value,
                      significant=verdict != "same", verdict=verdict, alpha=float(alpha),
                      min_factor=float(min_factor))


def min_samples_for(alpha: float = DEFAULT_ALPHA) -> int:
    """Smallest equal group size whose best case reaches p < ``alpha``.

    The best case is two completely separated groups without ties, tested
    exactly as :func:`compare_samples` tests them (2 for alpha=0.5, 4 for
    0.05, 5 for 0.01). Ties between groups can change this a little either way.
    """
    _check_open_unit("alpha", alpha)
    n = 1
    while mann_whitney_p(np.arange(n), np.arange(n, 2 * n)) >= alpha:
        n += 1
    return n
