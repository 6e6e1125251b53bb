"""Tests for kbench._format: the one formatter for rates, ratios, shares and durations."""

import pytest

from kbench import _format, stats


@pytest.mark.parametrize("value, text", [(12345.4, "12,345"), (100.0, "100"), (99.94, "99.9"),
                                         (0.01234, "0.0123"), (float("nan"), "nan")])
def test_rates_are_whole_with_separators_from_100_else_three_digits(value, text):
    assert _format.rate(value) == text


def test_ratio_with_and_without_its_interval():
    assert _format.ratio(1.0213, 0.9871, 1.0502) == "1.02x [0.99, 1.05]"
    assert _format.ratio(0.5) == "0.50x"


def test_summary_reads_median_interval_and_spread():
    summary = stats.summarize([9_000.0, 10_000.0, 11_000.0], n_resamples=200)
    assert _format.summary(summary) == (
        f"10,000 [{_format.rate(summary.ci_low)}, {_format.rate(summary.ci_high)}] cv 10.0%")


@pytest.mark.parametrize("value, digits, text", [(0.057, 1, "5.7%"), (0.057, 0, "6%"),
                                                 (-0.4, 0, "-40%")])
def test_share_is_a_percentage(value, digits, text):
    assert _format.share(value, digits) == text


@pytest.mark.parametrize("value, text", [(1.234, "1.23 s"), (0.0456, "45.6 ms"),
                                         (0.000789, "789 us"), (0.0, "0.00 s")])
def test_seconds_pick_a_unit(value, text):
    assert _format.seconds(value) == text


@pytest.mark.parametrize("size_bytes, text", [(30_120_000, "30.1 MB"), (1_000_000, "1.0 MB"),
                                              (999_999, "1000.0 kB"), (1_234, "1.2 kB"),
                                              (0, "0.0 kB")])
def test_sizes_are_in_decimal_megabytes_from_a_megabyte_else_kilobytes(size_bytes, text):
    assert _format.size(size_bytes) == text


def test_counters_sum_the_compiled_functions_and_add_xla_compilations_for_xla_steps():
    from kbench.counters import Counters

    plain = Counters(traces={"a": 1, "b": 2}, retraces={"a": 0, "b": 0},
                     graph_nodes={"a": 300, "b": 700})
    assert _format.counters(plain) == "3 traces, 1000 nodes"
    xla = Counters(traces={"a": 2}, retraces={"a": 0}, graph_nodes={"a": 5}, xla_functions=("a",))
    assert _format.counters(xla) == "2 traces, 5 nodes, 2 XLA"
    assert _format.counters(None) == "n/a"
