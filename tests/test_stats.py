"""Tests for kbench.stats: summaries, bootstrap CIs, significance verdicts, validation."""

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from kbench import stats
from kbench.stats import Comparison, Summary

# Hypothesis runs that bootstrap: few examples, no per-example deadline (the
# machine is shared, so timing is noisy), and small resample counts.
FAST = settings(max_examples=25, deadline=None)
FAST_RESAMPLES = 200

# Per-round throughputs of a steady benchmark: positive, within ~10% of each other.
narrow_throughputs = st.lists(st.floats(100.0, 110.0), min_size=20, max_size=60)
any_sample = st.lists(st.floats(1e-3, 1e6), min_size=2, max_size=30)


def assert_value_error_quotes(fn, quoted: str, *args, **kwargs):
    """``fn`` raises ValueError whose message contains ``quoted`` (the bad value)."""
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    assert quoted in str(info.value), f"{quoted!r} not in {str(info.value)!r}"


# --------------------------------------------------------------------------- hand-checked values


def test_summary_of_small_array_matches_hand_computation():
    s = stats.summarize([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], n_resamples=FAST_RESAMPLES)
    # mean 40/8 = 5; squared deviations sum to 32; sample variance 32/7.
    assert s.n == 8
    assert s.mean == pytest.approx(5.0)
    assert s.median == pytest.approx(4.5)
    assert s.stdev == pytest.approx(math.sqrt(32 / 7))
    assert s.cv == pytest.approx(math.sqrt(32 / 7) / 5)
    assert (s.min, s.max) == (2.0, 9.0)
    assert s.confidence == 0.95


def test_single_sample_summary_has_zero_spread_and_degenerate_ci():
    s = stats.summarize([42.0])
    assert (s.n, s.stdev, s.cv, s.ci_low, s.ci_high) == (1, 0.0, 0.0, 42.0, 42.0)


def test_summary_to_dict_has_every_field():
    d = stats.summarize([1.0, 2.0, 3.0], n_resamples=FAST_RESAMPLES).to_dict()
    assert set(d) == {"n", "mean", "median", "stdev", "cv", "min", "max", "ci_low",
                      "ci_high", "confidence"}
    assert d["median"] == 2.0


def test_percentiles_of_1_to_100_use_linear_interpolation():
    p = stats.percentiles(np.arange(1, 101))
    # Linear interpolation at rank q/100 * 99: p50 = 50.5, p90 = 90.1, p99 = 99.01.
    assert p == pytest.approx({"p50": 50.5, "p90": 90.1, "p99": 99.01})
    assert list(stats.percentiles([1, 2, 3], qs=(0, 99.9, 100))) == ["p0", "p99.9", "p100"]


def test_geometric_mean_hand_values():
    assert stats.geometric_mean([1, 4]) == pytest.approx(2.0, rel=1e-12)
    assert stats.geometric_mean([2, 8, 4]) == pytest.approx(4.0, rel=1e-12)


def test_mann_whitney_p_matches_exact_value_and_scipy():
    # Completely separated groups of 5: exact two-sided p = 2 / C(10, 5) = 2/252.
    result = stats.compare_samples([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], n_resamples=FAST_RESAMPLES)
    assert result.p_value == pytest.approx(2 / 252, rel=1e-12)
    baseline = [10.1, 9.7, 10.4, 10.0, 9.9, 10.2, 9.8, 10.6, 9.5, 10.3]
    candidate = [10.5, 10.9, 10.2, 11.0, 10.8, 10.4, 11.2, 10.7, 10.6, 11.1]
    expected = scipy.stats.mannwhitneyu(baseline, candidate, alternative="two-sided").pvalue
    got = stats.compare_samples(baseline, candidate, n_resamples=FAST_RESAMPLES).p_value
    assert got == pytest.approx(expected, rel=1e-12)
    assert 0 < got < 0.05


def test_ratio_ci_point_estimate_is_ratio_of_medians():
    ratio, low, high = stats.ratio_ci([3.0, 4.0, 100.0], [1.0, 2.0, 3.0],
                                      n_resamples=FAST_RESAMPLES)
    assert ratio == pytest.approx(2.0)
    assert low <= ratio <= high


# --------------------------------------------------------------------------- min_samples_for


@pytest.mark.parametrize("alpha, n", [(0.5, 2), (0.11, 3), (0.05, 4), (0.01, 5)])
def test_min_samples_for_matches_exact_minimum_p(alpha, n):
    # The exact minimum two-sided p for n vs n is 2 / C(2n, n): 0.333, 0.1, 0.029, 0.0079.
    assert stats.min_samples_for(alpha) == n
    assert 2 / math.comb(2 * n, n) < alpha <= 2 / math.comb(2 * n - 2, n - 1)


def test_groups_below_min_samples_cannot_be_significant():
    n = stats.min_samples_for(stats.DEFAULT_ALPHA)
    small = stats.compare_samples(range(1, n), range(100, 100 + n - 1),
                                  n_resamples=FAST_RESAMPLES)
    assert small.p_value >= stats.DEFAULT_ALPHA and small.verdict == "same"
    enough = stats.compare_samples(range(1, n + 1), range(100, 100 + n),
                                   n_resamples=FAST_RESAMPLES)
    assert enough.significant and enough.verdict == "faster"


# --------------------------------------------------------------------------- properties


@FAST
@given(any_sample)
def test_identical_samples_are_never_significant(x):
    result = stats.compare_samples(x, x, n_resamples=FAST_RESAMPLES)
    assert result.verdict == "same"
    assert not result.significant
    assert result.ratio == 1.0


@FAST
@given(narrow_throughputs)
def test_large_factor_shift_is_significant_in_the_right_direction(baseline):
    slower = stats.compare_samples(baseline, [v * 0.8 for v in baseline],
                                   n_resamples=FAST_RESAMPLES)
    assert (slower.significant, slower.verdict) == (True, "slower")
    assert slower.ratio == pytest.approx(0.8)
    faster = stats.compare_samples(baseline, [v * 1.25 for v in baseline],
                                   n_resamples=FAST_RESAMPLES)
    assert (faster.significant, faster.verdict) == (True, "faster")


@FAST
@given(narrow_throughputs)
def test_latency_direction_is_reversed(baseline):
    # For times, a candidate taking 1.25x as long is slower.
    result = stats.compare_samples(baseline, [v * 1.25 for v in baseline],
                                   higher_is_better=False, n_resamples=FAST_RESAMPLES)
    assert result.verdict == "slower" and result.ratio == pytest.approx(1.25)


@FAST
@given(st.sampled_from([0.97, 0.99, 1.01, 1.03]), st.integers(0, 2**32 - 1))
def test_shift_below_min_factor_is_never_significant_even_with_huge_n(factor, seed):
    baseline = np.random.default_rng(seed).uniform(100.0, 110.0, size=2000)
    result = stats.compare_samples(baseline, baseline * factor, n_resamples=FAST_RESAMPLES)
    # The shift is real (p tiny) but smaller than DEFAULT_MIN_FACTOR.
    assert result.p_value < stats.DEFAULT_ALPHA
    assert result.verdict == "same" and not result.significant


@FAST
@given(any_sample, any_sample, st.integers(0, 1000))
def test_ratio_ci_contains_point_estimate(num, den, seed):
    ratio, low, high = stats.ratio_ci(num, den, n_resamples=FAST_RESAMPLES, seed=seed)
    assert low <= ratio <= high


@FAST
@given(st.lists(st.floats(1e-3, 1e6), min_size=1, max_size=30), st.integers(0, 1000))
def test_summary_orders_min_median_max_and_ci(x, seed):
    s = stats.summarize(x, n_resamples=FAST_RESAMPLES, seed=seed)
    assert s.min <= s.median <= s.max
    assert s.ci_low <= s.median <= s.ci_high
    assert s.min <= s.ci_low and s.ci_high <= s.max


@FAST
@given(st.floats(1e-3, 1e6), st.integers(1, 50))
def test_cv_of_constant_samples_is_zero(value, n):
    s = stats.summarize([value] * n, n_resamples=FAST_RESAMPLES)
    assert (s.stdev, s.cv, s.mean, s.ci_low, s.ci_high) == (0.0, 0.0, value, value, value)


@FAST
@given(any_sample, st.integers(0, 2**32 - 1))
def test_bootstrap_is_deterministic_for_a_fixed_seed(x, seed):
    first = stats.bootstrap_ci(x, seed=seed, n_resamples=FAST_RESAMPLES)
    assert stats.bootstrap_ci(x, seed=seed, n_resamples=FAST_RESAMPLES) == first
    assert (stats.ratio_ci(x, x[::-1], seed=seed, n_resamples=FAST_RESAMPLES)
            == stats.ratio_ci(x, x[::-1], seed=seed, n_resamples=FAST_RESAMPLES))


def test_bootstrap_depends_on_the_seed():
    # Guards the determinism test against an implementation that ignores the seed.
    x = np.random.default_rng(0).lognormal(size=15)
    intervals = {stats.bootstrap_ci(x, seed=s, n_resamples=FAST_RESAMPLES) for s in range(5)}
    assert len(intervals) > 1


def test_bootstrap_ci_of_mean_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small = stats.bootstrap_ci(rng.normal(10, 1, 10), np.mean)
    large = stats.bootstrap_ci(rng.normal(10, 1, 1000), np.mean)
    # Width scales like 1/sqrt(n): ~1.2 for n=10, ~0.12 for n=1000.
    assert large[1] - large[0] < (small[1] - small[0]) / 3
    assert large[0] < 10 < large[1]


def test_comparison_record_validates_and_prints():
    result = stats.compare_samples([100.0] * 6, [80.0] * 6, n_resamples=FAST_RESAMPLES)
    assert str(result).startswith("0.80x [0.80, 0.80] slower")
    assert result.to_dict()["verdict"] == "slower"
    fields = result.to_dict()
    with pytest.raises(ValueError, match="contradicts"):
        Comparison(**{**fields, "verdict": "same"})
    with pytest.raises(ValueError, match="'better'"):
        Comparison(**{**fields, "verdict": "better"})


def test_summary_record_validates():
    summary = stats.summarize([6.0, 1.0, 2.0], n_resamples=FAST_RESAMPLES)
    assert (summary.n, summary.median, summary.mean, summary.min, summary.max) == (3, 2, 3, 1, 6)
    assert summary.stdev == pytest.approx(np.std([6.0, 1.0, 2.0], ddof=1))
    assert summary.cv == pytest.approx(summary.stdev / 3)
    assert 1 <= summary.ci_low <= summary.median <= summary.ci_high <= 6
    good = summary.to_dict()
    assert Summary(**good) == summary  # the record round-trips through its dict
    assert_value_error_quotes(Summary, "7.0", **{**good, "median": 7.0})  # above max
    assert_value_error_quotes(Summary, "nan", **{**good, "mean": float("nan")})


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("fn", [stats.summarize, stats.bootstrap_ci, stats.percentiles,
                                stats.geometric_mean])
def test_empty_input_is_rejected(fn):
    assert_value_error_quotes(fn, "[]", [])


@pytest.mark.parametrize("bad, quoted", [(float("nan"), "nan at index 3"),
                                         (float("inf"), "inf at index 3")])
@pytest.mark.parametrize("fn", [stats.summarize, stats.bootstrap_ci, stats.percentiles,
                                stats.geometric_mean])
def test_non_finite_input_is_rejected_with_its_index(fn, bad, quoted):
    assert_value_error_quotes(fn, quoted, [1.0, 2.0, 3.0, bad])


def test_compare_and_ratio_reject_non_finite_groups_by_name():
    assert_value_error_quotes(stats.compare_samples, "candidate must be finite, got nan at index 1",
                              [1.0, 2.0], [1.0, float("nan")])
    assert_value_error_quotes(stats.compare_samples, "baseline must be positive, got 0.0",
                              [0.0, 2.0], [1.0, 2.0])
    assert_value_error_quotes(stats.ratio_ci, "denominator_samples must not be empty",
                              [1.0], [])


@pytest.mark.parametrize("values, quoted", [([1.0, 0.0], "0.0 at index 1"),
                                            ([2.0, 3.0, -1.5], "-1.5 at index 2")])
def test_geometric_mean_rejects_non_positive(values, quoted):
    assert_value_error_quotes(stats.geometric_mean, quoted, values)


@pytest.mark.parametrize("confidence", [0, 1, 1.5, -0.1, 95])
def test_confidence_outside_open_unit_interval_is_rejected(confidence):
    assert_value_error_quotes(stats.summarize, f"got {confidence!r}", [1.0, 2.0],
                              confidence=confidence)
    assert_value_error_quotes(stats.ratio_ci, f"got {confidence!r}", [1.0], [2.0],
                              confidence=confidence)


@pytest.mark.parametrize("alpha", [0, 1, 1.01, -0.5])
def test_alpha_outside_open_unit_interval_is_rejected(alpha):
    assert_value_error_quotes(stats.compare_samples, f"got {alpha!r}", [1.0, 2.0], [1.0, 2.0],
                              alpha=alpha)
    assert_value_error_quotes(stats.min_samples_for, f"got {alpha!r}", alpha)


@pytest.mark.parametrize("min_factor", [0.99, 0.5, -1, float("inf")])
def test_min_factor_below_one_is_rejected(min_factor):
    assert_value_error_quotes(stats.compare_samples, f"got {min_factor!r}", [1.0, 2.0],
                              [1.0, 2.0], min_factor=min_factor)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentiles_reject_q_outside_0_100(q):
    assert_value_error_quotes(stats.percentiles, f"got {q!r}", [1.0, 2.0], qs=(50, q))


def test_n_resamples_must_be_positive_int():
    assert_value_error_quotes(stats.bootstrap_ci, "got 0", [1.0, 2.0], n_resamples=0)


def test_importing_stats_does_not_import_tensorflow():
    code = "import sys, kbench.stats; assert 'tensorflow' not in sys.modules, 'tf imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- paired ratios


def test_paired_ratio_cancels_drift_that_hits_both_sides_of_a_pair():
    rng = np.random.default_rng(3)
    drift = np.exp(np.linspace(0, 1, 40))  # the machine gets 2.7x faster over the session
    base = 1000 * drift * (1 + 0.01 * rng.standard_normal(40))
    cand = 1050 * drift * (1 + 0.01 * rng.standard_normal(40))
    paired = stats.paired_ratio_ci(cand, base, n_resamples=FAST_RESAMPLES)
    unpaired = stats.ratio_ci(cand, base, n_resamples=FAST_RESAMPLES)
    assert paired[1] <= paired[0] <= paired[2]
    assert paired[1] < 1.05 < paired[2] and paired[1] > 1.03  # within a percent or two
    assert (paired[2] - paired[1]) < (unpaired[2] - unpaired[1]) / 5


def test_paired_ratio_is_the_geometric_mean_of_pair_ratios():
    ratio, low, high = stats.paired_ratio_ci([2.0, 8.0], [1.0, 2.0], n_resamples=FAST_RESAMPLES)
    assert ratio == pytest.approx(np.sqrt(2.0 * 4.0))
    assert stats.paired_ratio_ci([3.0], [1.5]) == (2.0, 2.0, 2.0)


def test_paired_samples_must_pair():
    with pytest.raises(ValueError, match="same length, got 2 numerator and 3 denominator"):
        stats.paired_ratio_ci([1.0, 2.0], [1.0, 2.0, 3.0])
    assert_value_error_quotes(stats.paired_ratio_ci, "-1.0", [1.0, -1.0], [1.0, 1.0])


# --------------------------------------------------------------------------- paired statistics


def mean_ratio(a, b):
    """Ratio of column means, one value per row of the resampled (resamples, rows) arrays."""
    return np.mean(a, axis=-1) / np.mean(b, axis=-1)


def test_paired_statistic_estimate_is_the_statistic_of_the_columns_as_measured():
    a, b = [1.0, 2.0, 4.0, 9.0], [2.0, 2.0, 2.0, 2.0]
    estimate, low, high = stats.paired_statistic_ci([a, b], mean_ratio,
                                                    n_resamples=FAST_RESAMPLES)
    assert estimate == pytest.approx(4.0 / 2.0)  # mean 16/4 over mean 2, not a bootstrap mean
    assert low <= estimate <= high and low < high
    assert 1.0 / 2.0 <= low and high <= 9.0 / 2.0  # inside what any resample can give


@given(narrow_throughputs, st.integers(0, 2**32 - 1))
@FAST
def test_paired_statistic_ci_brackets_its_estimate(x, seed):
    y = [v * 1.1 for v in reversed(x)]
    estimate, low, high = stats.paired_statistic_ci([x, y], mean_ratio, seed=seed,
                                                    n_resamples=FAST_RESAMPLES)
    assert low <= estimate <= high


def test_paired_statistic_resamples_rows_jointly():
    # Row i of b is always row i of a plus 1: every joint resample keeps that difference,
    # while a, on its own, spreads over a factor of 100.
    a = np.geomspace(1.0, 100.0, 30)
    b = a + 1
    diff = stats.paired_statistic_ci([b, a],
                                     lambda u, v: np.mean(u - v, axis=-1), seed=1,
                                     n_resamples=FAST_RESAMPLES)
    assert diff == pytest.approx((1.0, 1.0, 1.0))
    alone = stats.paired_statistic_ci([b], lambda u: np.mean(u, axis=-1), seed=1,
                                      n_resamples=FAST_RESAMPLES)
    assert alone[2] - alone[1] > 10


def test_paired_statistic_is_deterministic_for_a_fixed_seed():
    rng = np.random.default_rng(5)
    columns = [rng.uniform(90, 110, 25), rng.uniform(90, 110, 25)]
    first = stats.paired_statistic_ci(columns, mean_ratio, seed=7, n_resamples=FAST_RESAMPLES)
    again = stats.paired_statistic_ci(columns, mean_ratio, seed=7, n_resamples=FAST_RESAMPLES)
    other = stats.paired_statistic_ci(columns, mean_ratio, seed=8, n_resamples=FAST_RESAMPLES)
    assert first == again
    assert first[0] == other[0] and first[1:] != other[1:]


def test_paired_statistic_of_a_single_row_has_a_degenerate_ci():
    assert stats.paired_statistic_ci([[3.0], [1.5]], mean_ratio) == (2.0, 2.0, 2.0)


def test_paired_statistic_refuses_columns_of_unequal_length_naming_them():
    assert_value_error_quotes(stats.paired_statistic_ci, "same length, got lengths [3, 2, 3]",
                              [[1.0, 2.0, 3.0], [1.0, 2.0], [4.0, 5.0, 6.0]], mean_ratio)


def test_paired_statistic_needs_a_column():
    assert_value_error_quotes(stats.paired_statistic_ci, "at least one column, got none",
                              [], mean_ratio)


def test_paired_statistic_refuses_bad_values_naming_the_column():
    assert_value_error_quotes(stats.paired_statistic_ci, "column 1 must be finite, got nan at "
                              "index 2", [[1.0, 2.0, 3.0], [1.0, 2.0, float("nan")]], mean_ratio)
    assert_value_error_quotes(stats.paired_statistic_ci, "confidence must be a number strictly "
                              "between 0 and 1, got 95", [[1.0, 2.0]], lambda a: a[:, 0],
                              confidence=95)


def test_paired_blocks_widen_the_ci_when_neighbouring_cycles_move_together():
    rng = np.random.default_rng(3)
    base = np.ones(128)
    runs_of_eight = np.exp(np.repeat(rng.normal(0, 0.2, 16), 8))  # 8 cycles share each draw
    single = stats.paired_ratio_ci(runs_of_eight, base, block=1, n_resamples=FAST_RESAMPLES)
    blocks = stats.paired_ratio_ci(runs_of_eight, base, block=8, n_resamples=FAST_RESAMPLES)
    assert single[0] == blocks[0]
    assert (blocks[2] - blocks[1]) > 1.5 * (single[2] - single[1])


def test_paired_block_length_follows_the_cube_root_and_is_checked():
    assert [stats.block_length(n) for n in (1, 8, 64, 200)] == [1, 2, 4, 6]
    with pytest.raises(ValueError, match=r"block \(5\) exceeds the 4 pairs"):
        stats.paired_ratio_ci([1.0, 2.0, 3.0, 4.0], [1.0] * 4, block=5)
    with pytest.raises(ValueError, match="block must be a positive int, got 0"):
        stats.paired_ratio_ci([1.0, 2.0], [1.0, 1.0], block=0)


def test_paired_ci_with_few_pairs_is_at_least_students_t_interval():
    """A bootstrap of 4 pairs knows only the spread it saw; t's interval is the floor."""
    num, den = [0.92, 0.94, 0.93, 0.95], [1.0, 1.0, 1.0, 1.0]
    ratio, low, high = stats.paired_ratio_ci(num, den, n_resamples=FAST_RESAMPLES)
    logs = np.log(num)
    half = stats.t_half_width(logs)
    assert half == pytest.approx(3.182446 * np.std(logs, ddof=1) / 2, rel=1e-6)
    assert low <= np.exp(logs.mean() - half) + 1e-12 and high >= np.exp(logs.mean() + half) - 1e-12
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        stats.t_half_width([1.0])
