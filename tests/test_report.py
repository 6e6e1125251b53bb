"""Tests for kbench.report: grouping, ratios with CIs, diagnostics, overlap bounds."""

import numpy as np
import pytest

from kbench import report

RNG = np.random.default_rng(0)


def samples(median, n=7, spread=0.005):
    """Per-round throughputs around ``median`` with a small relative spread."""
    return list(median * (1 + spread * RNG.standard_normal(n)))


def record(variant, median, *, comparison="execution mlp fit b64 /CPU:0", baseline="function",
           spread=0.005, **extra):
    return {"comparison": comparison, "variant": variant, "baseline": baseline,
            "device": "/CPU:0", "batch_size": 64, "samples_per_s": samples(median, spread=spread),
            **extra}


CPU_WITHOUT_LOW_PRECISION = {"cpu": {"native_low_precision": {"fp16": False, "bf16": False}}}
CPU_WITH_AMX = {"cpu": {"native_low_precision": {"fp16": True, "bf16": True}}}


def test_compare_group_gives_ratios_to_the_baseline():
    rows = report.compare_group([record("function", 10_000), record("xla", 5_000)])
    assert rows[0].ratio is None
    point, low, high = rows[1].ratio
    assert point == pytest.approx(0.5, rel=0.02)
    assert low <= point <= high


def test_summary_lines_name_each_group_and_ratio():
    lines = report.summary_lines([record("function", 10_000), record("xla", 5_000)])
    text = "\n".join(lines)
    assert "execution mlp fit b64 /CPU:0" in lines[0]
    assert "(baseline)" in text
    assert "xla/function 0.50x" in text
    assert "XLA is slower than tf.function" in text


def test_no_diagnostic_when_xla_is_not_slower():
    text = "\n".join(report.summary_lines([record("function", 10_000), record("xla", 12_000)]))
    assert "XLA is slower" not in text


@pytest.mark.parametrize("fp, expected", [(CPU_WITHOUT_LOW_PRECISION, True), (CPU_WITH_AMX, False)])
def test_mixed_precision_diagnostic_depends_on_native_support(fp, expected):
    group = [record("float32", 10_000, baseline="float32"),
             record("mixed_bfloat16", 3_000, baseline="float32")]
    text = "\n".join(report.summary_lines(group, fp))
    assert ("no native bf16" in text) is expected


def test_high_spread_is_called_out():
    noisy = record("xla", 10_000)
    noisy["samples_per_s"] = samples(10_000, spread=0.2)
    text = "\n".join(report.summary_lines([record("function", 10_000), noisy]))
    assert "xla: spread across rounds" in text


def test_overlap_bounds_and_achieved_gain():
    # input 1000/s-equivalents: input 0.5 s per 1k samples, compute 1.0 s per 1k.
    group = dict(comparison="prefetch fit b64 /CPU:0", baseline="prefetch=off map=off",
                 suite="prefetch", spread=0.0)
    records = [
        record("prefetch=off map=off", 1000 / 1.5, **group),       # fully serial: 1.5 s
        record("prefetch=autotune map=off", 1000 / 1.25, **group),  # half the possible gain
        record("compute-only", 1000 / 1.0, **group),
        {"suite": "prefetch", "variant": "input-only", "batch_size": 64,
         "samples_per_s": samples(1000 / 0.5, spread=0.0)},
    ]
    text = "\n".join(report.summary_lines(records))
    assert "input 0.500 s, compute 1.000 s, serial 1.500 s, ideal overlap 1.000 s" in text
    assert "prefetch=off map=off" in text and "0% of the possible" in text
    assert "50% of the possible overlap gain" in text
    assert "input-bound" not in text


def test_input_bound_pipeline_is_called_out():
    group = dict(comparison="prefetch custom b64 /CPU:0", baseline="prefetch=off map=off",
                 suite="prefetch")
    records = [record("prefetch=off map=off", 400, **group), record("compute-only", 2000, **group),
               {"suite": "prefetch", "variant": "input-only", "batch_size": 64,
                "samples_per_s": samples(500)}]
    assert "input-bound" in "\n".join(report.summary_lines(records))


def test_records_without_samples_or_group_are_ignored():
    assert report.summary_lines([{"variant": "x"}, {"comparison": "c", "samples_per_s": []}]) == []


@pytest.mark.parametrize("bare, verdict", [
    (10_100, "within the 3% target"),
    (9_800, "within the 3% target"),
    (11_000, "OUTSIDE the 3% target: kbench's rounds cost throughput"),
    (9_000, "OUTSIDE the 3% target: the bare reference ran slower"),
])
def test_harness_overhead_line(bare, verdict):
    rec = record("kbench", 10_000, comparison="harness b64 /CPU:0", baseline="kbench", spread=0.0,
                 bare_fit_samples_per_s=bare)
    text = "\n".join(report.summary_lines([rec]))
    assert f"= {10_000 / bare:.3f}x ({verdict}" in text
