"""Tests for kbench.report.summary: the end-of-session summary of the run a session
stores (grouping, ratios with CIs, diagnostics, harness overhead, overlap bounds)."""

import itertools

import numpy as np
import pytest

from kbench import report, testing

RNG = np.random.default_rng(0)
_KEYS = (f"test_{i}" for i in itertools.count())


def samples(median, n=7, spread=0.005):
    """Per-round throughputs around ``median`` with a small relative spread."""
    return list(median * (1 + spread * RNG.standard_normal(n)))


def record(variant, median, *, comparison="execution mlp fit b64 /CPU:0", baseline="function",
           spread=0.005, **fields):
    """A benchmark record as a suite labels it."""
    return testing.fake_record(next(_KEYS), samples(median, spread=spread), comparison=comparison,
                               variant=variant, baseline=baseline, **fields)


def summary(records, fingerprint=None):
    """The summary of a session that stored ``records``."""
    run = testing.fake_run({r.key: r for r in records})
    return report.summary_lines(run, fingerprint)


CPU_WITHOUT_LOW_PRECISION = {"cpu": {"native_low_precision": {"fp16": False, "bf16": False}}}
CPU_WITH_AMX = {"cpu": {"native_low_precision": {"fp16": True, "bf16": True}}}


def test_summary_lines_name_each_group_and_ratio():
    lines = summary([record("function", 10_000), record("xla", 5_000)])
    text = "\n".join(lines)
    assert "execution mlp fit b64 /CPU:0" in lines[0]
    assert "(baseline)" in text
    assert "xla/function 0.50x" in text
    assert "XLA is slower than tf.function" in text


def test_no_diagnostic_when_xla_is_not_slower():
    text = "\n".join(summary([record("function", 10_000), record("xla", 12_000)]))
    assert "XLA is slower" not in text


@pytest.mark.parametrize("fp, expected", [(CPU_WITHOUT_LOW_PRECISION, True), (CPU_WITH_AMX, False)])
def test_mixed_precision_diagnostic_depends_on_native_support(fp, expected):
    group = [record("float32", 10_000, baseline="float32"),
             record("mixed_bfloat16", 3_000, baseline="float32")]
    text = "\n".join(summary(group, fp))
    assert ("no native bf16" in text) is expected


def test_high_spread_is_called_out():
    noisy = record("xla", 10_000, spread=0.2)
    text = "\n".join(summary([record("function", 10_000), noisy]))
    assert "xla: spread across rounds" in text


def test_overlap_bounds_and_achieved_gain():
    # input 1000/s-equivalents: input 0.5 s per 1k samples, compute 1.0 s per 1k.
    group = dict(comparison="prefetch fit b64 /CPU:0", baseline="prefetch=off map=off",
                 suite="prefetch", spread=0.0)
    records = [
        record("prefetch=off map=off", 1000 / 1.5, **group),       # fully serial: 1.5 s
        record("prefetch=autotune map=off", 1000 / 1.25, **group),  # half the possible gain
        record("compute-only", 1000 / 1.0, **group),
        testing.fake_record("input", samples(1000 / 0.5, spread=0.0), suite="prefetch",
                            variant="input-only", spec=None, device="host"),
    ]
    text = "\n".join(summary(records))
    assert "input 0.500 s, compute 1.000 s, serial 1.500 s, ideal overlap 1.000 s" in text
    assert "prefetch=off map=off" in text and "0% of the possible" in text
    assert "50% of the possible overlap gain" in text
    assert "input-bound" not in text


def test_input_bound_pipeline_is_called_out():
    group = dict(comparison="prefetch custom b64 /CPU:0", baseline="prefetch=off map=off",
                 suite="prefetch")
    records = [record("prefetch=off map=off", 400, **group), record("compute-only", 2000, **group),
               testing.fake_record("input", samples(500), suite="prefetch",
                                   variant="input-only", spec=None, device="host")]
    assert "input-bound" in "\n".join(summary(records))


def test_records_outside_any_group_only_count_towards_the_spread():
    lines = summary([testing.fake_record("alone", samples(1000), variant="x")])
    assert len(lines) == 1 and lines[0].startswith("median spread across rounds (cv): 0.")
    assert summary([]) == []


@pytest.mark.parametrize("serial, ideal, measured, gain", [
    (1.5, 1.0, 1.5, 0.0), (1.5, 1.0, 1.0, 1.0), (1.5, 1.0, 1.25, 0.5), (2.0, 1.0, 2.5, -0.5)])
def test_overlap_gain_arithmetic(serial, ideal, measured, gain):
    assert report.overlap_gain(serial, ideal, measured) == pytest.approx(gain)


@pytest.mark.parametrize("bare, verdict", [
    (10_100, "within the 3% target"),
    (9_800, "within the 3% target"),
    (11_000, "OUTSIDE the 3% target: kbench's rounds cost throughput"),
    (9_000, "OUTSIDE the 3% target: the bare reference ran slower"),
])
def test_harness_overhead_line(bare, verdict):
    rec = record("kbench", 10_000, comparison="harness b64 /CPU:0", baseline="kbench", spread=0.0,
                 extras={"bare_fit_samples_per_s": bare})
    text = "\n".join(summary([rec]))
    assert f"= {10_000 / bare:.3f}x ({verdict}" in text


def test_an_invalid_benchmark_is_called_out_with_its_reason():
    text = "\n".join(summary([record("function", 10_000),
                              record("xla", 9_000, invalid="xla did not learn while timed")]))
    assert "! INVALID, compare and gate refuse it: xla did not learn while timed" in text


def test_the_noise_line_gives_median_steal_and_names_disturbed_rounds():
    from kbench.telemetry import RoundNoise

    calm, stolen = RoundNoise(0.5, 0.9, 0.02), RoundNoise(0.6, 0.8, 0.30)
    records = [record("function", 10_000, round_noise=(calm,) * 6 + (stolen,)),
               record("xla", 5_000, round_noise=(calm,) * 7)]
    [line] = [li for li in summary(records) if li.startswith("machine noise")]
    assert "CPU steal 2.0% of each round (median, max 30.0%)" in line
    assert f"1 of 14 rounds disturbed (steal > 10%): {records[0].key} round 7 (30%)" in line
    assert "1.80 cores" in line


def test_without_steal_readings_the_noise_line_says_so():
    from kbench.telemetry import RoundNoise

    lines = summary([record("function", 10_000, round_noise=(RoundNoise(1.0, 1.0, None),) * 7)])
    assert any("CPU steal not readable here" in li for li in lines)
