"""Tests for kbench.report.summary: the end-of-session summary of the run a session
stores (grouping, ratios with CIs, diagnostics, harness overhead, overlap bounds)."""

import itertools
import re

import numpy as np
import pytest

from kbench import compare, report, testing
from kbench.report import COMPUTE_ONLY, INPUT_ONLY
from kbench.report import summary as summary_module

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


# Per-cycle drift that every variant of a cycle shares (up to 30%, as on this VM on a bad
# minute), written as its inverse so that mean seconds per sample are not changed by it.
DRIFT = 1 / np.array([0.8, 1.2, 0.7, 1.3, 0.9, 1.1, 0.75, 1.25])
# +-1 over the cycles, four of each: a per-cycle jitter whose log-mean is exactly 0, in
# no period of two (blocks of neighbouring cycles, as the paired bootstrap resamples
# them, must not cancel exactly).
ALTERNATING = np.array([1, 1, -1, -1, -1, 1, -1, 1])


def lockstep_group(comparison, baseline, variants, *, lockstep=True, per_variant=None,
                   **fields):
    """A comparison group's records as kbench.interleaved writes them.

    ``variants`` maps each variant to its throughput over 1000 samples/s: a factor, or
    (factor, jitter) for a per-cycle ratio of factor * exp(+-jitter). Every cycle shares
    DRIFT; the records carry the lockstep id ``comparison`` unless ``lockstep`` is False.
    """
    records = []
    for variant, value in variants.items():
        factor, jitter = value if isinstance(value, tuple) else (value, 0.0)
        rates = 1000 * factor * DRIFT * np.exp(jitter * ALTERNATING)
        records.append(testing.fake_record(
            next(_KEYS), rates, comparison=comparison, variant=variant, baseline=baseline,
            lockstep=comparison if lockstep else None,
            **{**fields, **(per_variant or {}).get(variant, {})}))
    return records


def prefetch_group(seconds_per_k, *, suite="prefetch", **options):
    """A prefetch suite's lockstep group: ``{variant: seconds per 1k samples}``."""
    return lockstep_group("prefetch fit b64 /CPU:0", "prefetch=off map=off",
                          {v: 1 / s for v, s in seconds_per_k.items()}, suite=suite, **options)


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


def test_mixed_precision_far_slower_despite_native_flags_is_called_out_with_the_flags():
    fp = {"cpu": {"native_low_precision": {"fp16": True, "bf16": True},
                  "flags": ["avx512_fp16", "avx512f", "amx_bf16"]}}
    group = [record("float32", 30_000, baseline="float32"),
             record("mixed_float16", 640, baseline="float32"),
             record("mixed_bfloat16", 29_000, baseline="float32")]
    text = "\n".join(summary(group, fp))
    assert "mixed_float16 runs at 0.02x of float32 although this CPU reports native fp16 " \
           "(AVX512_FP16)" in text
    assert "mixed_bfloat16 runs at" not in text  # 0.97x: casts, not a missing kernel
    assert "no native" not in text


def test_overlap_bounds_and_achieved_gain():
    # input 0.5 s per 1k samples, compute 1.0 s: serial 1.5 s, ideal overlap 1.0 s.
    records = prefetch_group({INPUT_ONLY: 0.5, COMPUTE_ONLY: 1.0, "prefetch=off map=off": 1.45,
                              "prefetch=autotune map=off": 1.25, "prefetch=1 map=8": 1.05})
    lines = summary(records)
    assert ("  bounds per 1k samples: input 0.500 s, compute 1.000 s, serial 1.500 s, "
            "ideal overlap 1.000 s") in lines
    settings = [li for li in lines if " s per 1k samples:" in li]
    assert [li.split()[0] for li in settings] == [
        "prefetch=off", "prefetch=autotune", "prefetch=1"]  # the bounds have no line of their own
    off, autotune, parallel = settings
    # The drift is common to every variant of a cycle: each resample has the same gain.
    gain = "of the possible overlap gain"
    assert f"1.450 s per 1k samples: 10% [10%, 10%] {gain}; serial:" in off
    assert f"1.250 s per 1k samples: 50% [50%, 50%] {gain}; serial:" in autotune
    assert f"1.050 s per 1k samples: 90% [90%, 90%] {gain}; compute-bound" in parallel
    assert "input-bound" not in "\n".join(lines)


def test_each_setting_is_bounded_by_the_input_only_variant_its_record_names():
    parallel_input = f"{INPUT_ONLY} map=autotune"
    parallel = {"extras": {report.INPUT_BOUND: parallel_input}}
    records = prefetch_group({INPUT_ONLY: 1.0, parallel_input: 0.4, COMPUTE_ONLY: 0.5,
                              "prefetch=off map=off": 1.5, "prefetch=off map=autotune": 0.7},
                             per_variant={"prefetch=off map=autotune": parallel})
    lines = summary(records)
    assert ("  bounds per 1k samples: input 1.000 s, compute 0.500 s, serial 1.500 s, "
            "ideal overlap 1.000 s") in lines
    assert (f"  bounds per 1k samples ({parallel_input}): input 0.400 s, compute 0.500 s, "
            "serial 0.900 s, ideal overlap 0.500 s") in lines
    # Against its own bound the parallel map achieved (0.9 - 0.7) / (0.9 - 0.5) = 50%;
    # against the sequential input-only it would read (1.5 - 0.7) / 0.5 = 160%.
    [line] = [li for li in lines
              if li.startswith("  prefetch=off map=autotune") and "per 1k" in li]
    assert "0.700 s per 1k samples: 50% [50%, 50%] of the possible overlap gain" in line
    assert lines.index(line) > lines.index(
        f"  bounds per 1k samples ({parallel_input}): input 0.400 s, compute 0.500 s, "
        "serial 0.900 s, ideal overlap 0.500 s")


def test_the_cpu_work_line_adds_both_sides_core_seconds_over_the_machines_cores():
    from kbench.telemetry import RoundNoise

    def cores(n):
        return {"round_noise": (RoundNoise(1.0, n, 0.0),) * len(DRIFT)}

    records = prefetch_group({INPUT_ONLY: 0.5, COMPUTE_ONLY: 1.0, "prefetch=off map=off": 1.4},
                             per_variant={INPUT_ONLY: cores(1.6), COMPUTE_ONLY: cores(1.2)})
    # input 0.5 s x 1.6 cores = 0.8 core-s, compute 1.2: 2.0 core-s, at least 1.0 s on 2.
    assert ("  CPU work per 1k samples: input 0.800 core-s, compute 1.200 core-s: at least "
            "1.000 s on 2 cores") in summary(records, testing.fake_fingerprint())


def test_input_bound_pipeline_is_called_out():
    records = prefetch_group({INPUT_ONLY: 1.0, COMPUTE_ONLY: 0.5, "prefetch=off map=off": 1.5,
                              "prefetch=autotune map=off": 1.05})
    lines = summary(records)
    [off] = [li for li in lines if li.startswith("  prefetch=off") and "per 1k" in li]
    [autotune] = [li for li in lines if li.startswith("  prefetch=autotune") and "per 1k" in li]
    assert "input-bound: the pipeline alone is this slow" in autotune
    assert "serial: input and compute take turns" in off


def test_a_setting_whose_process_keeps_every_core_busy_is_called_cores_shared():
    from kbench.telemetry import RoundNoise

    busy = {"round_noise": (RoundNoise(1.0, 1.9, 0.0),) * len(DRIFT)}  # 1.9 of 2 usable cores
    records = prefetch_group({INPUT_ONLY: 0.5, COMPUTE_ONLY: 1.0, "prefetch=off map=off": 1.4},
                             per_variant={"prefetch=off map=off": busy})
    assert testing.fake_fingerprint()["cpu"]["usable_cores"] == 2
    [line] = [li for li in summary(records) if " s per 1k samples:" in li]
    assert "cores shared: the process keeps every core busy" in line


def test_overlap_without_equal_cycles_has_no_ci_and_says_so():
    records = prefetch_group({COMPUTE_ONLY: 1.0, "prefetch=autotune map=off": 1.25})
    records.append(testing.fake_record(next(_KEYS), [2000.0] * 5, suite="prefetch",
                                       comparison=records[0].comparison, variant=INPUT_ONLY,
                                       baseline=records[0].baseline, lockstep=records[0].lockstep))
    lines = summary(records)
    assert any(li.startswith("  bounds per 1k samples: input 0.500 s") and
               li.endswith("(not paired: no CI)") for li in lines)
    [line] = [li for li in lines if " s per 1k samples:" in li]
    assert "1.250 s per 1k samples: 50% of the possible overlap gain" in line


def test_no_overlap_lines_without_both_bounds_or_outside_the_prefetch_suite():
    no_input = prefetch_group({COMPUTE_ONLY: 1.0, "prefetch=off map=off": 1.5})
    assert not any("per 1k samples" in li for li in summary(no_input))
    other_suite = prefetch_group({INPUT_ONLY: 0.5, COMPUTE_ONLY: 1.0,
                                  "prefetch=off map=off": 1.5}, suite="loops")
    assert not any("per 1k samples" in li for li in summary(other_suite))


def test_records_outside_any_group_only_count_towards_the_spread():
    lines = summary([testing.fake_record("alone", samples(1000), variant="x")])
    assert len(lines) == 1
    assert lines[0].startswith("spread across rounds (cv): median 0.")
    assert lines[0].endswith(" over 1 benchmarks")
    assert summary([]) == []


@pytest.mark.parametrize("serial, ideal, measured, gain", [
    (1.5, 1.0, 1.5, 0.0), (1.5, 1.0, 1.0, 1.0), (1.5, 1.0, 1.25, 0.5), (2.0, 1.0, 2.5, -0.5)])
def test_overlap_gain_arithmetic(serial, ideal, measured, gain):
    assert report.overlap_gain(serial, ideal, measured) == pytest.approx(gain)


# --------------------------------------------------------------------------- overlap_gain_ci

# Per-cycle rates of a 1.0 s (input) and a 0.5 s (compute) bound per 1k samples.
INPUT_RATE, COMPUTE_RATE = 1000 / 1.0, 1000 / 0.5


def noisy(rate, seed, noise=0.002, n=20):
    """``n`` cycles of ``rate`` samples/s, each with its own small relative noise."""
    return testing.draw_samples(rate, n, seed=seed, noise=noise)


@pytest.mark.parametrize("setting_s, gain", [(1.0, 1.0), (1.5, 0.0), (1.25, 0.5)])
def test_overlap_gain_ci_on_synthetic_cycles(setting_s, gain):
    estimate, low, high = report.overlap_gain_ci(noisy(INPUT_RATE, 1), noisy(COMPUTE_RATE, 2),
                                                 noisy(1000 / setting_s, 3))
    assert estimate == pytest.approx(gain, abs=0.02)
    assert low <= estimate <= high
    assert high - low < 0.05  # 0.2% noise per round: the gain is known to a few points


def test_overlap_gain_ci_between_the_bounds_stays_within_zero_and_one():
    estimate, low, high = report.overlap_gain_ci(noisy(INPUT_RATE, 4), noisy(COMPUTE_RATE, 5),
                                                 noisy(1000 / 1.25, 6))
    assert 0 < low < estimate < high < 1
    assert estimate == pytest.approx(0.5, abs=0.02)


def test_overlap_gain_ci_resamples_cycles_jointly_so_common_drift_cancels():
    # 30% drift that every variant of a cycle shares: the gain of every resample is the same.
    drift = DRIFT / DRIFT.mean()
    estimate, low, high = report.overlap_gain_ci(INPUT_RATE * drift, COMPUTE_RATE * drift,
                                                 1000 / 1.25 * drift)
    assert (estimate, low, high) == pytest.approx((0.5, 0.5, 0.5), abs=1e-9)
    # The same drift, not aligned across the variants' cycles, does not cancel:
    misaligned = report.overlap_gain_ci(INPUT_RATE * drift, COMPUTE_RATE * drift[::-1],
                                         1000 / 1.25 * np.roll(drift, 3))
    assert misaligned[2] - misaligned[1] > 0.1


def test_overlap_gain_ci_refuses_cycles_of_unequal_length():
    with pytest.raises(ValueError, match=re.escape("got lengths [3, 3, 2]")):
        report.overlap_gain_ci([1000.0] * 3, [2000.0] * 3, [800.0] * 2)


# --------------------------------------------------------------------------- bounding_resource

MARGIN, SATURATED = summary_module.BOUND_MARGIN, summary_module.CORES_SATURATED


@pytest.mark.parametrize("t, t_in, t_c, cores_used, machine_cores, bound", [
    (1.05, 1.0, 0.5, None, 2, "input"),               # near the slower bound, the input
    (0.55, 0.3, 0.5, None, 2, "compute"),             # near the slower bound, the compute
    (1.0 * (1 + MARGIN), 1.0, 0.5, 1.9, 2, "input"),  # the margin is inclusive
    (0.9, 1.0, 0.5, None, 2, "input"),                # faster than the bound: still bound by it
    (1.4, 1.0, 0.5, 1.9, 2, "cores shared"),
    (1.4, 1.0, 0.5, SATURATED * 2, 2, "cores shared"),  # the saturation share is inclusive
    (1.4, 1.0, 0.5, 1.2, 2, "serial"),                # cores to spare
    (1.4, 1.0, 0.5, None, 2, "serial"),               # cores used unknown (no telemetry)
    (1.4, 1.0, 0.5, 1.9, None, "serial"),             # the machine's cores unknown
    (1.4, 1.0, 0.5, 1.9, 0, "serial"),
])
def test_bounding_resource(t, t_in, t_c, cores_used, machine_cores, bound):
    assert report.bounding_resource(t, t_in, t_c, cores_used, machine_cores) == bound


# --------------------------------------------------------------------------- member lines


def member_line(lines, variant):
    [line] = [li for li in lines if li.startswith(f"  {variant} ")]
    return line


def test_members_of_one_lockstep_group_are_paired_over_their_cycles():
    records = lockstep_group("execution mlp fit b64 /CPU:0", "function",
                             {"function": 1.0, "xla": (0.5, 0.005)})
    line = member_line(summary(records), "xla")
    assert "xla/function 0.50x [0.50, 0.50] (paired over 8 cycles)" in line
    assert member_line(summary(records), "function").endswith("(baseline)")


@pytest.mark.parametrize("change", [
    "no lockstep", "other lockstep id", "unequal cycles"])
def test_members_not_run_in_one_lockstep_are_unpaired(change):
    function, xla = lockstep_group("execution mlp fit b64 /CPU:0", "function",
                                   {"function": 1.0, "xla": (0.5, 0.005)})
    if change == "no lockstep":
        function, xla = function.replace(lockstep=None), xla.replace(lockstep=None)
    elif change == "other lockstep id":
        xla = xla.replace(lockstep="another group")
    else:
        xla = xla.replace(samples_per_s=xla.samples_per_s[:-1], round_s=xla.round_s[:-1])
    line = member_line(summary([function, xla]), "xla")
    assert "(unpaired)" in line and "paired over" not in line


def test_a_ratio_whose_ci_contains_one_resolves_no_difference():
    paired = lockstep_group("execution mlp fit b64 /CPU:0", "function",
                            {"function": 1.0, "xla": (1.0, 0.05)})
    assert member_line(summary(paired), "xla").endswith(
        "(paired over 8 cycles; no difference resolved)")
    # The drift (30% a cycle) swamps a 10% slowdown unless the cycles are paired.
    slower = lockstep_group("execution mlp fit b64 /CPU:0", "function",
                            {"function": 1.0, "xla": (0.9, 0.005)})
    assert member_line(summary(slower), "xla").endswith("(paired over 8 cycles)")
    unpaired = [r.replace(lockstep=None) for r in slower]
    assert member_line(summary(unpaired), "xla").endswith("(unpaired; no difference resolved)")


# --------------------------------------------------------------------------- spread


def test_spread_line_gives_the_median_round_cv():
    # cv of [90, 110] is 14.1% (sd 14.14 over mean 100), of [99, 101] 1.4%, of [95, 105] 7.1%.
    run = testing.fake_run({"a": [90.0, 110.0], "b": [99.0, 101.0], "c": [95.0, 105.0]})
    assert summary_module.spread_lines(run) == [
        "spread across rounds (cv): median 7.1% over 3 benchmarks"]
    assert summary_module.spread_lines(testing.fake_run({})) == []


def test_spread_line_gives_the_per_cycle_spread_of_paired_ratios():
    # Per cycle xla/function is 0.5 * exp(+-0.01): log-ratio sd 0.01 * sqrt(8 / 7) = 1.07%.
    records = lockstep_group("execution mlp fit b64 /CPU:0", "function",
                             {"function": 1.0, "xla": (0.5, 0.01)})
    run = testing.fake_run({r.key: r for r in records})
    [line] = summary_module.spread_lines(run)
    cv = float(np.median([r.throughput.cv for r in records]))
    assert cv > 0.15  # the drift: single rounds spread widely ...
    assert line.startswith(f"spread across rounds (cv): median {cv:.1%} over 2 benchmarks; ")
    # ... and pairing leaves about 1% of it in the ratio.
    assert line.endswith("; per-cycle spread of paired ratios: median 1.1% over 1 ratios "
                         "(what interleaving leaves of the machine's noise)")
    assert line == summary(records)[-1]


def test_per_cycle_spread_counts_paired_ratios_only():
    paired = lockstep_group("execution mlp fit b64 /CPU:0", "function",
                            {"function": 1.0, "xla": (0.5, 0.01)})
    unpaired = lockstep_group("execution mlp custom b64 /CPU:0", "function",
                              {"function": 1.0, "xla": (0.5, 0.2)}, lockstep=False)
    [line] = summary_module.spread_lines(testing.fake_run({r.key: r for r in paired + unpaired}))
    assert "median 1.1% over 1 ratios" in line and "over 4 benchmarks" in line
    [alone] = summary_module.spread_lines(testing.fake_run({r.key: r for r in unpaired}))
    assert "per-cycle" not in alone


def test_per_cycle_spread_needs_two_cycles():
    one = [testing.fake_record(next(_KEYS), [rate], comparison="g", variant=v, baseline="a",
                               lockstep="g") for v, rate in (("a", 1000.0), ("b", 500.0))]
    [line] = summary_module.spread_lines(testing.fake_run({r.key: r for r in one}))
    assert "per-cycle" not in line and "nan" not in line


# --------------------------------------------------------------------------- A/A


AA_GROUP = f"{report.A_A_PREFIX}mlp fit b64 /CPU:0"
AA_LINE = "! the A/A ratio (one workflow against itself) excludes 1.00"


def test_an_a_a_ratio_that_excludes_one_is_called_out():
    records = lockstep_group(AA_GROUP, "A", {"A": 1.0, "B": (1.05, 0.005)})
    assert compare.run_groups(testing.fake_run({r.key: r for r in records}))[0] \
        .members[1].ratio[1] > 1
    assert AA_LINE in "\n".join(summary(records))


def test_an_a_a_ratio_that_contains_one_is_not_called_out():
    records = lockstep_group(AA_GROUP, "A", {"A": 1.0, "B": (1.0, 0.05)})
    text = "\n".join(summary(records))
    assert "no difference resolved" in text and "A/A ratio" not in text


def test_only_a_a_groups_get_the_a_a_line():
    records = lockstep_group("loop mlp b64 /CPU:0", "fit", {"fit": 1.0, "custom": (1.05, 0.005)})
    assert "A/A ratio" not in "\n".join(summary(records))


# --------------------------------------------------------------------------- harness overhead


HARNESS_GROUP = "harness b64 /CPU:0"


@pytest.mark.parametrize("ratio, jitter, overhead, verdict, status", [
    (0.99, 0.002, "1.0%", "within the 3% target", "passed"),
    (0.90, 0.002, "10.0%", "OVER the 3% target: its whole CI is above it", "failed"),
    # Inconclusive whichever side of the target the estimate is on: the CI decides.
    (0.965, 0.05, "3.5%", "inconclusive: its CI reaches past the 3% target", "passed"),
    (0.98, 0.05, "2.0%", "inconclusive: its CI reaches past the 3% target", "passed"),
])
def test_harness_overhead_line(ratio, jitter, overhead, verdict, status):
    bare, kbench = lockstep_group(HARNESS_GROUP, "bare fit",
                                  {"bare fit": 1.0, "kbench": (ratio, jitter)})
    lines = summary([bare, kbench])
    [line] = [li for li in lines if "harness overhead" in li]
    assert line.startswith(f"  harness overhead: {overhead} [")
    assert line.endswith(f"] of a plain model.fit's throughput ({verdict})")
    # The overhead's CI is the ratio's, turned around.
    low, high = (float(x.rstrip("%")) / 100 for x in line.split("[")[1].split("]")[0].split(", "))
    result = compare.check_pair(compare.HARNESS_CHECK, kbench, bare)
    assert (low, high) == pytest.approx((1 - result.ci_high, 1 - result.ci_low), abs=0.0005)
    assert result.status == status  # the summary and the in-run check agree


def test_no_harness_line_outside_a_harness_group_or_without_a_kbench_ratio():
    elsewhere = lockstep_group("loop mlp b64 /CPU:0", "bare fit",
                               {"bare fit": 1.0, "kbench": (0.9, 0.002)})
    assert not any("harness overhead" in li for li in summary(elsewhere))
    kbench_is_baseline = lockstep_group(HARNESS_GROUP, "kbench",
                                        {"kbench": 1.0, "bare fit": (1.1, 0.002)})
    assert not any("harness overhead" in li for li in summary(kbench_is_baseline))


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


def test_a_setting_beyond_the_ideal_overlap_is_called_out():
    beyond = "! prefetch=autotune map=off beat the ideal overlap"
    text = "\n".join(summary(prefetch_group({"prefetch=off map=off": 1.5,
                                             "prefetch=autotune map=off": 0.8,
                                             report.COMPUTE_ONLY: 0.5, report.INPUT_ONLY: 1.0})))
    assert "140% [140%, 140%] of the possible overlap gain" in text and beyond in text
    within = "\n".join(summary(prefetch_group({"prefetch=off map=off": 1.5,
                                              "prefetch=autotune map=off": 1.0,
                                              report.COMPUTE_ONLY: 0.5, report.INPUT_ONLY: 1.0})))
    assert "beat the ideal" not in within
