"""Tests for kbench.compare: run matrices, the regression gate, policies, in-run ratio checks.

Runs are built in memory from seeded numpy draws; no TensorFlow is imported
(the fingerprint comes from kbench.fingerprint with a fake TF module).
"""

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kbench import compare, record, sequential, stats, testing
from kbench.compare import ComparisonError, Policy, PolicyError, PolicyRule, RatioCheck
from kbench.results import Run

BASE_THROUGHPUT = 10_000.0  # samples/s, about the MLP's at batch 64 on this machine
ROUNDS = 7  # the default profile's
NOISE = 0.02  # per-round relative spread of a steady benchmark
KEYS = ("test_a[cpu-b64]", "test_b[cpu-b64]", "test_b[gpu-b64]")


# --------------------------------------------------------------------------- builders


def make_fingerprint(tf_version: str = "2.21.0") -> dict:
    return testing.fake_fingerprint(tf_version)


FINGERPRINT = make_fingerprint()


def draw(seed: int, scale: float = 1.0, n: int = ROUNDS, noise: float = NOISE) -> np.ndarray:
    """Per-round samples/s around ``scale * BASE_THROUGHPUT`` with relative spread ``noise``."""
    rng = np.random.default_rng(seed)
    return scale * BASE_THROUGHPUT * (1 + noise * rng.standard_normal(n))


def make_run(samples: dict, *, fp=FINGERPRINT, batch_size=64, extra=None, source="",
             sessions=True) -> Run:
    """A Run of ``{key: samples/s}``; ``extra`` maps key -> record fields. With
    ``sessions`` each sample is one session's median, pooled as kbench ab --sessions
    pools them (the design the Mann-Whitney test supports); else they are the rounds
    of one session."""
    extra = {key: dict((extra or {}).get(key, {})) for key in samples}
    if sessions:
        for key, values in samples.items():
            extra[key].setdefault("pooling", record.Pooling(
                sources=tuple(f"session {i}" for i in range(len(values))), unit="session"))
    return testing.fake_run(samples, fingerprint=fp, source=source, per_key=extra,
                            spec={"batch_size": batch_size})


def scaled_runs(scales: dict, *, n=ROUNDS, noise=NOISE, seed=0) -> tuple[Run, Run]:
    """(baseline, candidate) over KEYS; candidate key k is drawn around ``scales.get(k, 1)``x."""
    base = make_run({k: draw(seed + 2 * i, n=n, noise=noise) for i, k in enumerate(KEYS)})
    cand = make_run({k: draw(seed + 2 * i + 1, scales.get(k, 1.0), n=n, noise=noise)
                     for i, k in enumerate(KEYS)})
    return base, cand


def assert_error_names(error_type, fn, *quoted):
    """``fn()`` raises ``error_type`` whose message contains every string in ``quoted``."""
    with pytest.raises(error_type) as info:
        fn()
    for text in quoted:
        assert text in str(info.value), f"{text!r} not in {str(info.value)!r}"
    return info.value


# --------------------------------------------------------------------------- compare_runs


def test_identical_distributions_are_the_same_everywhere():
    matrix = compare.compare_runs(scaled_runs({}))
    assert matrix.keys == KEYS
    for key in KEYS:
        assert matrix.cell(key, 0).comparison is None
        comparison = matrix.cell(key, 1).comparison
        assert comparison.verdict == "same"
        assert comparison.ratio == pytest.approx(1.0, abs=0.03)  # 2% noise, 7 rounds
    assert matrix.geomean[0] is None
    assert matrix.geomean[1] == pytest.approx(1.0, abs=0.03)
    assert matrix.warnings == ()
    assert dict(matrix.fingerprint_diffs[0]) == dict(matrix.fingerprint_diffs[1]) == {}


def test_cells_hold_the_summary_of_their_own_samples():
    base, cand = scaled_runs({KEYS[0]: 0.8})
    matrix = compare.compare_runs([base, cand])
    cell = matrix.cell(KEYS[0], 1)
    assert (cell.key, cell.run_index) == (KEYS[0], 1)
    assert cell.summary.median == pytest.approx(np.median(cand.results[KEYS[0]].samples_per_s))
    assert cell.summary.ci_low <= cell.summary.median <= cell.summary.ci_high
    assert cell.summary.n == ROUNDS


def test_twenty_percent_slowdown_over_seven_rounds_is_slower_and_fails_the_gate():
    base, cand = scaled_runs({KEYS[1]: 0.8})
    matrix = compare.compare_runs([base, cand])
    comparison = matrix.cell(KEYS[1], 1).comparison
    assert comparison.verdict == "slower"
    assert comparison.ratio == pytest.approx(0.8, abs=0.03)
    assert comparison.p_value < stats.DEFAULT_ALPHA
    assert [matrix.cell(k, 1).comparison.verdict for k in (KEYS[0], KEYS[2])] == ["same", "same"]
    # One of three benchmarks at 0.8x: the geometric mean is about 0.8 ** (1/3).
    assert matrix.geomean[1] == pytest.approx(0.8 ** (1 / 3), abs=0.02)

    result = compare.gate(base, cand)
    assert result.exit_code == 1 and not result.passed
    (failure,) = result.failures
    assert failure.key == KEYS[1]
    assert failure.ratio == pytest.approx(comparison.ratio)
    assert failure.ci_low <= failure.ratio <= failure.ci_high < 0.9
    assert failure.p_value < stats.DEFAULT_ALPHA
    assert failure.allowed_slowdown == compare.DEFAULT_MAX_SLOWDOWN
    assert KEYS[1] in str(failure) and "allowed slowdown 10%" in str(failure)


def _with_startups(run, seconds: dict) -> Run:
    return dataclasses.replace(run, results={
        k: r.replace(startup_s=seconds.get(k, 1.0)) for k, r in run.results.items()})


def test_a_startup_beyond_the_allowed_factor_fails_the_gate_and_one_within_passes():
    base, cand = scaled_runs({})
    base = _with_startups(base, {KEYS[0]: 0.4, KEYS[1]: 0.4})
    cand = _with_startups(cand, {KEYS[0]: 1.3, KEYS[1]: 1.1})  # 3.25x and 2.75x
    result = compare.gate(base, cand)
    assert result.failures == () and not result.passed and result.exit_code == 1
    (failure,) = result.startup_failures
    assert (failure.key, failure.baseline_s, failure.candidate_s) == (KEYS[0], 0.4, 1.3)
    assert str(failure) == (f"{KEYS[0]}: startup 1.30 s against 400 ms, 3.25x (allowed 3x: "
                            "--max-startup-factor)")
    assert compare.gate(base, cand, max_startup_factor=4.0).passed
    assert compare.gate(base, cand, max_startup_factor=None).passed
    assert_error_names(ComparisonError, lambda: compare.gate(base, cand, max_startup_factor=1),
                       "max_startup_factor", "got 1")


def test_twenty_percent_speedup_is_faster_and_passes_the_gate():
    base, cand = scaled_runs({KEYS[0]: 1.2})
    assert compare.compare_runs([base, cand]).cell(KEYS[0], 1).comparison.verdict == "faster"
    assert compare.gate(base, cand).exit_code == 0


def test_three_percent_change_is_same_even_when_significant():
    # 0.5% noise makes a 3% shift significant; it is below the 5% minimum factor.
    base, cand = scaled_runs({KEYS[0]: 0.97}, noise=0.005)
    comparison = compare.compare_runs([base, cand]).cell(KEYS[0], 1).comparison
    assert comparison.p_value < stats.DEFAULT_ALPHA
    assert comparison.ratio == pytest.approx(0.97, abs=0.01)
    assert comparison.verdict == "same"
    assert compare.gate(base, cand).exit_code == 0


def test_three_rounds_are_never_significant_and_say_so():
    base, cand = scaled_runs({KEYS[0]: 0.5}, n=3)
    matrix = compare.compare_runs([base, cand])
    comparison = matrix.cell(KEYS[0], 1).comparison
    assert comparison.ratio == pytest.approx(0.5, abs=0.05)
    assert comparison.verdict == "same" and comparison.p_value >= stats.DEFAULT_ALPHA
    need = stats.min_samples_for(stats.DEFAULT_ALPHA)
    assert len(matrix.warnings) == 2  # one per run
    assert all(f"fewer than {need} sessions" in w and "fewest 3" in w for w in matrix.warnings)
    result = compare.gate(base, cand)
    assert result.exit_code == 0
    assert result.matrix.warnings == matrix.warnings


def test_one_session_a_side_is_untested_with_a_note_on_session_drift():
    base = make_run({k: draw(2 * i) for i, k in enumerate(KEYS)}, sessions=False)
    cand = make_run({k: draw(2 * i + 1, 0.8 if k == KEYS[1] else 1.0)
                     for i, k in enumerate(KEYS)}, sessions=False)
    matrix = compare.compare_runs([base, cand])
    comparison = matrix.cell(KEYS[1], 1).comparison
    assert comparison.verdict == stats.UNTESTED and not comparison.significant
    assert comparison.design == "single" and comparison.ratio == pytest.approx(0.8, abs=0.03)
    assert "untested (one session a side)" in str(comparison)
    [note] = [w for w in matrix.warnings if "one session a side" in w]
    assert "3 of 3 benchmark(s)" in note and "2.0% sd" in note and "kbench ab" in note
    assert not any("fewer than" in w for w in matrix.warnings)  # nothing was to be tested


def test_a_gate_on_one_session_a_side_fails_on_the_ratio_alone_and_says_untested():
    samples = [1e4 * (1 + 0.002 * i) for i in range(3)]  # 3 rounds: never significant
    base = make_run({"t": samples}, sessions=False)
    slow = make_run({"t": [0.7 * v for v in samples]}, sessions=False)
    result = compare.gate(base, slow)
    (failure,) = result.failures
    assert result.exit_code == 1 and not failure.tested
    assert "one session a side: untested" in str(failure)
    within = make_run({"t": [0.95 * v for v in samples]}, sessions=False)
    assert compare.gate(base, within).exit_code == 0


def lockstep_runs(ratio: float, *, workers: int = 4, pairs: int = 400, seed: int = 0):
    """kbench ab's two stored runs: rounds paired by a lockstep id, ``workers`` lanes."""
    rng = np.random.default_rng(seed)
    drift = BASE_THROUGHPUT * np.exp(0.1 * rng.standard_normal(pairs))
    noise = np.exp(0.1 * rng.standard_normal((2, pairs)))
    fields = {"lockstep": record.ab_lockstep_id("2026-01-01T00:00:00", "w"),
              "extras": {"workers": workers}}
    base = make_run({"t": drift * noise[0]}, extra={"t": fields}, sessions=False)
    cand = make_run({"t": ratio * drift * noise[1]}, extra={"t": fields}, sessions=False)
    return base, cand


def test_two_sessions_of_one_lockstep_group_are_not_paired_across_runs():
    """A benchmark session names a lockstep group by its comparison label, the same in
    every session: two sessions' records of it ran apart, so their ratio is untested,
    however tight their rounds."""
    base, cand = lockstep_runs(0.85)
    group = {"t": {"lockstep": "execution mlp fit b64 /CPU:0"}}
    base = make_run({"t": base.results["t"].samples_per_s}, extra=group, sessions=False)
    cand = make_run({"t": cand.results["t"].samples_per_s}, extra=group, sessions=False)
    assert compare.paired(base.results["t"], cand.results["t"])  # within a run it would pair
    assert not compare.paired_across_runs(base.results["t"], cand.results["t"])
    comparison = compare.compare_runs([base, cand]).cell("t", 1).comparison
    assert comparison.design == "single" and comparison.verdict == stats.UNTESTED


def test_lockstep_runs_are_tested_on_the_paired_estimate_with_the_workers_term():
    base, cand = lockstep_runs(0.85)
    comparison = compare.compare_runs([base, cand]).cell("t", 1).comparison
    assert comparison.design == "paired" and comparison.verdict == "slower"
    assert comparison.ratio == pytest.approx(0.85, rel=0.02)
    # The CI is at least as wide as 4 workers' process offsets make it.
    least = 1.96 * math.sqrt(2 * sequential.DEFAULT_PROCESS_SD ** 2 / 4)
    assert math.log(comparison.ci_high / comparison.ci_low) >= 2 * least
    assert compare.gate(base, cand).exit_code == 1
    same_base, same_cand = lockstep_runs(1.0, seed=1)
    same = compare.compare_runs([same_base, same_cand]).cell("t", 1).comparison
    assert same.verdict == "same" and same.ci_low < 1 < same.ci_high


def test_a_comparison_whose_verdict_contradicts_its_design_is_refused():
    fields = dict(ratio=1.0, ci_low=0.9, ci_high=1.1, p_value=0.5, significant=False,
                  alpha=0.01, min_factor=1.05)
    with pytest.raises(ValueError, match="untested"):
        stats.Comparison(verdict="untested", design="sessions", **fields)
    with pytest.raises(ValueError, match="'single'"):
        stats.Comparison(verdict="same", design="single", **fields)
    with pytest.raises(ValueError, match="'rounds'"):
        stats.Comparison(verdict="same", design="rounds", **fields)


def test_baseline_column_can_be_any_run():
    base, cand = scaled_runs({KEYS[0]: 0.8})
    matrix = compare.compare_runs([base, cand], baseline=1)
    assert matrix.cell(KEYS[0], 1).comparison is None
    assert matrix.cell(KEYS[0], 0).comparison.verdict == "faster"
    assert matrix.geomean[1] is None and matrix.geomean[0] > 1


def test_three_runs_compare_each_with_the_baseline():
    base, slow = scaled_runs({KEYS[2]: 0.8})
    _, fast = scaled_runs({KEYS[2]: 1.25}, seed=10)
    matrix = compare.compare_runs([base, slow, fast])
    assert [matrix.cell(KEYS[2], i).comparison.verdict for i in (1, 2)] == ["slower", "faster"]
    assert matrix.geomean[1] < 1 < matrix.geomean[2]


def test_mismatched_benchmark_sets_are_refused_naming_the_keys():
    base = make_run({"test_a[x]": draw(0), "test_b[x]": draw(1)}, source="base.json")
    cand = make_run({"test_a[x]": draw(2), "test_c[x]": draw(3)}, source="cand.json")
    assert_error_names(ComparisonError, lambda: compare.compare_runs([base, cand]),
                       "different benchmark sets", "cand.json", "lacks ['test_b[x]']",
                       "has extra ['test_c[x]']")
    assert_error_names(ComparisonError, lambda: compare.gate(base, cand), "test_c[x]")


def test_long_key_differences_are_listed_with_a_count():
    base = make_run({f"test_{i}": draw(i) for i in range(8)})
    cand = make_run({"test_0": draw(9)})
    assert_error_names(ComparisonError, lambda: compare.compare_runs([base, cand]),
                       "'test_1'", "... and 2 more")


def test_mismatched_batch_sizes_are_refused_naming_them():
    base, _ = scaled_runs({})
    cand = make_run({k: draw(i) for i, k in enumerate(KEYS)}, batch_size=256)
    assert_error_names(ComparisonError, lambda: compare.compare_runs([base, cand]),
                       "batch size", repr(KEYS[0]), "64 in run 0", "256 in run 1")


def test_fingerprint_differences_are_part_of_the_matrix():
    base, _ = scaled_runs({})
    cand = make_run({k: draw(i) for i, k in enumerate(KEYS)}, fp=make_fingerprint("2.20.0"))
    matrix = compare.compare_runs([base, cand])
    assert matrix.fingerprint_diffs[0] == {}
    assert matrix.fingerprint_diffs[1]["software.tensorflow"] == ("2.21.0", "2.20.0")
    assert matrix.fingerprint_diffs[1]["software.tensorflow_git"] == ("v2.21.0-fake",
                                                                      "v2.20.0-fake")


def test_runs_from_other_machines_or_profiles_are_warned_about():
    other = copy.deepcopy(FINGERPRINT)
    other["machine_key"] = "cpu-some-other-part-8c"
    base, _ = scaled_runs({})
    cand = make_run({k: draw(i) for i, k in enumerate(KEYS)}, fp=other,
                    extra={KEYS[0]: {"profile": "smoke"}})
    warnings = compare.compare_runs([base, cand]).warnings
    assert any("cpu-some-other-part-8c" in w and FINGERPRINT["machine_key"] in w
               for w in warnings)
    assert any("'smoke'" in w and "profile" in w for w in warnings)


@pytest.mark.parametrize("runs, baseline, quoted", [
    ([], 0, "non-empty sequence"),
    ("runs", 0, "'runs'"),
    ([{"not": "a run"}], 0, "runs[0] must be a kbench.results.Run"),
    (None, 0, "None"),
])
def test_bad_runs_are_refused(runs, baseline, quoted):
    assert_error_names(ComparisonError, lambda: compare.compare_runs(runs, baseline), quoted)


@pytest.mark.parametrize("baseline", [2, -1, True, 0.0])
def test_bad_baseline_index_is_refused(baseline):
    runs = list(scaled_runs({}))
    assert_error_names(ComparisonError, lambda: compare.compare_runs(runs, baseline),
                       f"got {baseline!r}")


@pytest.mark.parametrize("kwargs, quoted", [
    ({"alpha": 0}, "alpha"), ({"alpha": 1.5}, "1.5"), ({"min_factor": 0.9}, "0.9"),
    ({"min_factor": float("inf")}, "inf"),
])
def test_bad_significance_rule_is_refused(kwargs, quoted):
    runs = list(scaled_runs({}))
    assert_error_names(ComparisonError, lambda: compare.compare_runs(runs, **kwargs), quoted)


def test_empty_baseline_run_is_refused():
    assert_error_names(ComparisonError, lambda: compare.compare_runs([make_run({})]),
                       "no kbench benchmarks")


def test_matrix_validates_on_construction():
    matrix = compare.compare_runs(scaled_runs({}))
    assert_error_names(ComparisonError, lambda: dataclasses.replace(matrix, baseline=2),
                       "got 2")
    assert_error_names(ComparisonError, lambda: dataclasses.replace(matrix, geomean=(None,)),
                       "geomean", "got 1")
    assert_error_names(ComparisonError,
                       lambda: dataclasses.replace(matrix, keys=matrix.keys + ("test_new",)),
                       "'test_new'")
    cell = matrix.cell(KEYS[0], 0)
    assert_error_names(ComparisonError, lambda: dataclasses.replace(cell, summary=1.0),
                       "stats.Summary", "1.0")


def test_unknown_cell_names_the_key():
    matrix = compare.compare_runs(scaled_runs({}))
    assert_error_names(KeyError, lambda: matrix.cell("test_zzz", 1), "test_zzz")
    assert_error_names(KeyError, lambda: matrix.cell(KEYS[0], 5), "run 5")


# --------------------------------------------------------------------------- gate


@pytest.mark.parametrize("max_slowdown", [0, 1, 1.5, -0.1, True, "0.1", None])
def test_max_slowdown_outside_zero_one_is_refused(max_slowdown):
    base, cand = scaled_runs({})
    assert_error_names(ComparisonError,
                       lambda: compare.gate(base, cand, max_slowdown=max_slowdown),
                       "max_slowdown", repr(max_slowdown))


def test_larger_allowed_slowdown_lets_a_twenty_percent_slowdown_pass():
    base, cand = scaled_runs({KEYS[1]: 0.8})
    assert compare.gate(base, cand, max_slowdown=0.25).exit_code == 0
    assert compare.gate(base, cand, max_slowdown=0.15).exit_code == 1


def test_gate_refuses_what_is_not_a_policy():
    base, cand = scaled_runs({})
    assert_error_names(ComparisonError, lambda: compare.gate(base, cand, policy={"x": 1}),
                       "Policy", "{'x': 1}")


def test_policy_rule_for_one_benchmark_overrides_the_default():
    base, cand = scaled_runs({KEYS[0]: 0.8, KEYS[1]: 0.8})
    policy = Policy(rules=(PolicyRule(KEYS[0], 0.25),))
    result = compare.gate(base, cand, policy=policy)
    assert [f.key for f in result.failures] == [KEYS[1]]
    assert result.allowed == {KEYS[0]: 0.25, KEYS[1]: 0.10, KEYS[2]: 0.10}


def test_policy_glob_covers_every_matching_benchmark_with_literal_brackets():
    base, cand = scaled_runs({KEYS[1]: 0.8, KEYS[2]: 0.8})
    # "[" would open a character class in plain fnmatch; here it is literal.
    result = compare.gate(base, cand, policy=Policy(rules=(PolicyRule("test_b[*]", 0.25),)))
    assert result.exit_code == 0
    gpu_only = compare.gate(base, cand, policy=Policy(rules=(PolicyRule("test_?[gpu-*]", 0.25),)))
    assert [f.key for f in gpu_only.failures] == [KEYS[1]]


def test_exact_rule_beats_glob_and_first_glob_wins():
    policy = Policy(rules=(PolicyRule("test_b*", 0.2), PolicyRule("test_*", 0.3),
                           PolicyRule(KEYS[2], 0.4)))
    assert policy.allowed_slowdown(KEYS[1], 0.1) == 0.2  # first glob in file order
    assert policy.allowed_slowdown(KEYS[0], 0.1) == 0.3  # only the second glob matches
    assert policy.allowed_slowdown(KEYS[2], 0.1) == 0.4  # exact name, though listed last
    assert Policy(rules=(PolicyRule("test_b*", 0.2),)).allowed_slowdown(KEYS[0], 0.1) == 0.1


def test_policy_default_overrides_the_gate_argument():
    base, cand = scaled_runs({KEYS[0]: 0.8})
    result = compare.gate(base, cand, max_slowdown=0.05, policy=Policy(max_slowdown=0.3))
    assert result.exit_code == 0
    assert set(result.allowed.values()) == {0.3}


@pytest.mark.parametrize("pattern", ["test_a[cpu-b46]", "test_q*"])
def test_policy_naming_an_unknown_benchmark_is_refused(pattern):
    base, cand = scaled_runs({})
    policy = Policy(rules=(PolicyRule(pattern, 0.2),), source="gate.toml")
    error = assert_error_names(PolicyError, lambda: compare.gate(base, cand, policy=policy),
                               "gate.toml", repr(pattern), "matches no benchmark")
    if pattern == "test_a[cpu-b46]":
        assert "did you mean ['test_a[cpu-b64]'" in str(error)


def test_gate_failure_needs_significance_as_well_as_the_ratio():
    # Identical medians of 0.7x would fail, but 3 rounds cannot be significant.
    base, cand = scaled_runs({k: 0.7 for k in KEYS}, n=3)
    result = compare.gate(base, cand)
    assert all(result.matrix.cell(k, 1).comparison.ratio < 0.9 for k in KEYS)
    assert result.exit_code == 0


# Steady benchmarks: a center and per-round jitter of at most 2%, 5-12 rounds, so
# that a scaled copy is fully separated from the baseline (p < alpha) and the
# allowed-slowdown bound, not the significance test, decides.
steady_samples = st.builds(
    lambda center, jitter: [center * (1 + j) for j in jitter],
    st.floats(100.0, 1e5), st.lists(st.floats(0.0, 0.02), min_size=5, max_size=12))


@settings(max_examples=60, deadline=None)
@given(samples=st.lists(steady_samples, min_size=1, max_size=3),
       max_slowdown=st.floats(0.01, 0.9), above=st.floats(0.0, 1.0))
# 0.88 * median / median rounds to 0.8799999999999999 < 1 - 0.12: the bound must hold anyway.
@example(samples=[[1e4 * (1 + 0.002 * i) for i in range(7)]], max_slowdown=0.12, above=0.0)
def test_gate_never_fails_within_the_allowed_slowdown(samples, max_slowdown, above):
    factor = (1 - max_slowdown) * (1 + above)
    keys = [f"test_{i}" for i in range(len(samples))]
    base = make_run(dict(zip(keys, samples)))
    cand = make_run({k: [factor * v for v in s] for k, s in zip(keys, samples)})
    result = compare.gate(base, cand, max_slowdown=max_slowdown)
    assert result.exit_code == 0, [str(f) for f in result.failures]


def test_gate_fails_just_beyond_the_allowed_slowdown():
    """The counterpart of the property above: the same steady samples 1% past the bound fail."""
    samples = [1e4 * (1 + 0.002 * i) for i in range(7)]
    base, cand = make_run({"t": samples}), make_run({"t": [0.88 * 0.99 * v for v in samples]})
    assert compare.gate(base, cand, max_slowdown=0.12).exit_code == 1


# --------------------------------------------------------------------------- policy files

VALID_TOML = """\
max_slowdown = 0.15
[benchmarks."test_prefetch_training[cpu-b64-fit-off-off]"]
max_slowdown = 0.25
[benchmarks."test_execution_throughput[*-xla]"]
max_slowdown = 0.3
"""

VALID_JSON = json.dumps({
    "max_slowdown": 0.15,
    "benchmarks": {"test_prefetch_training[cpu-b64-fit-off-off]": {"max_slowdown": 0.25},
                   "test_execution_throughput[*-xla]": {"max_slowdown": 0.3}},
})


@pytest.mark.parametrize("name, text", [("gate.toml", VALID_TOML), ("gate.json", VALID_JSON)])
def test_policy_files_load_in_either_format(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    policy = compare.load_policy(path)
    assert policy.source == str(path)
    assert policy.max_slowdown == 0.15
    assert policy.rules == (PolicyRule("test_prefetch_training[cpu-b64-fit-off-off]", 0.25),
                            PolicyRule("test_execution_throughput[*-xla]", 0.3))
    assert policy.allowed_slowdown("test_execution_throughput[cpu-b64-mlp-fit-xla]", 0.1) == 0.3
    assert policy.allowed_slowdown("test_loop_throughput[cpu-b64-mlp-fit]", 0.1) == 0.15


def test_policy_without_rules_or_default_is_valid(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("schema_version = 1\n")
    policy = compare.load_policy(path)
    assert (policy.rules, policy.max_slowdown) == ((), None)


@pytest.mark.parametrize("name, text, quoted", [
    ("p.toml", "max_slowdown = \n", ["not valid TOML"]),
    ("p.json", "{\"max_slowdown\": 0.1", ["not valid JSON"]),
    ("p.json", "[0.1]", ["must be a table/object", "[0.1]"]),
    ("p.toml", "max_slowdown = 1.5\n", ["max_slowdown", "1.5"]),
    ("p.toml", "max_slowdown = \"10%\"\n", ["max_slowdown", "'10%'"]),
    ("p.toml", "max_slowdow = 0.1\n", ["unknown key", "'max_slowdow'"]),
    ("p.toml", "schema_version = 2\n", ["schema_version", "got 2"]),
    ("p.toml", "benchmarks = 3\n", ["benchmarks must be a table", "got 3"]),
    ("p.toml", "[benchmarks]\n\"test_a\" = 0.2\n", ["benchmarks.'test_a'", "got 0.2"]),
    ("p.toml", "[benchmarks.\"test_a\"]\nmax_slowdow = 0.2\n",
     ["benchmarks.'test_a'", "unknown key", "'max_slowdow'"]),
    ("p.toml", "[benchmarks.\"test_a\"]\n", ["benchmarks.'test_a'", "has no max_slowdown"]),
    ("p.toml", "[benchmarks.\"test_a\"]\nmax_slowdown = 0\n", ["benchmarks.'test_a'", "got 0"]),
    ("p.toml", "[benchmarks.\"\"]\nmax_slowdown = 0.2\n", ["benchmarks.''", "empty"]),
    ("p.json", "{\"benchmarks\": {\"t\": {\"max_slowdown\": 0.2}, \"t\": {\"max_slowdown\": 0.3}}}",
     ["not valid JSON", "'t' appears twice"]),
    ("p.yaml", "max_slowdown: 0.1\n", [".toml or .json", "'.yaml'"]),
])
def test_malformed_policy_errors_name_the_file_and_the_key(tmp_path, name, text, quoted):
    path = tmp_path / name
    path.write_text(text)
    assert_error_names(PolicyError, lambda: compare.load_policy(path), str(path), *quoted)


def test_missing_policy_file_is_named(tmp_path):
    path = tmp_path / "absent.toml"
    assert_error_names(PolicyError, lambda: compare.load_policy(path), str(path), "cannot read")


def test_policy_records_validate_on_construction():
    assert_error_names(PolicyError, lambda: PolicyRule("test_a", 1.0), "'test_a'", "got 1.0")
    assert_error_names(PolicyError, lambda: PolicyRule("", 0.1), "non-empty")
    assert_error_names(PolicyError, lambda: Policy(rules=(PolicyRule("t", 0.1),
                                                          PolicyRule("t", 0.2))), "twice", "'t'")
    assert_error_names(PolicyError, lambda: Policy(rules=(("t", 0.1),)), "PolicyRule")
    assert_error_names(PolicyError, lambda: Policy(max_slowdown=2), "got 2")


# --------------------------------------------------------------------------- in-run ratio checks


def execution_extra(family: str, loop: str, execution: str, device: str = "/CPU:0",
                    batch_size: int = 64) -> dict:
    """Record labels as benchmarks/test_execution.py writes them."""
    return {
        "comparison": f"execution {family} {loop} b{batch_size} {device}",
        "variant": execution, "baseline": "function", "device": device,
        "batch_size": batch_size,
        "spec": {"family": family, "style": "functional", "loop": loop,
                 "execution": execution, "precision": "float32", "batch_size": batch_size},
    }


def execution_run(scales: dict, *, noise=NOISE, others=None) -> Run:
    """A run of execution-suite benchmarks: ``{(family, loop, execution[, device]): scale}``."""
    samples, extra = {}, {}
    for i, (what, scale) in enumerate(scales.items()):
        family, loop, execution, *device = what
        key = f"test_execution_throughput[{'-'.join(what)}]"
        samples[key] = draw(i, scale, noise=noise)
        extra[key] = execution_extra(family, loop, execution, *device)
    for key, fields in (others or {}).items():
        samples[key] = draw(len(samples), noise=noise)
        extra[key] = fields
    return make_run(samples, extra=extra)


def check_named(name: str) -> RatioCheck:
    return next(check for check in compare.RATIO_CHECKS if check.name == name)


def test_default_checks_pass_on_ratios_like_the_measured_ones():
    run = execution_run({("mlp", loop, ex): scale for loop in ("fit", "custom")
                         for ex, scale in (("eager", 0.07), ("function", 1.0), ("xla", 0.4))})
    results = compare.run_checks(run, [check_named("function-vs-eager-mlp"),
                                       check_named("xla-vs-function-mlp")])
    assert [(r.check.name, r.status) for r in results] == [
        ("function-vs-eager-mlp", "passed"), ("function-vs-eager-mlp", "passed"),
        ("xla-vs-function-mlp", "passed"), ("xla-vs-function-mlp", "passed")]
    fit = results[0]
    assert fit.numerator_key == "test_execution_throughput[mlp-fit-function]"
    assert fit.denominator_key == "test_execution_throughput[mlp-fit-eager]"
    assert fit.ratio == pytest.approx(1 / 0.07, rel=0.05)
    assert fit.ci_low <= fit.ratio <= fit.ci_high
    assert "passed" in str(fit) and ">= 3x" in str(fit)


def test_function_barely_faster_than_eager_fails():
    run = execution_run({("mlp", "custom", "eager"): 0.8, ("mlp", "custom", "function"): 1.0})
    (result,) = compare.run_checks(run, [check_named("function-vs-eager-mlp")])
    assert result.status == "failed"
    assert result.ci_high < 3.0
    assert result.ratio == pytest.approx(1.25, rel=0.05)


def test_xla_far_slower_than_function_fails():
    run = execution_run({("mlp", "fit", "function"): 1.0, ("mlp", "fit", "xla"): 0.1})
    (result,) = compare.run_checks(run, [check_named("xla-vs-function-mlp")])
    assert result.status == "failed" and result.ci_high < 0.25


def test_check_fails_only_when_the_whole_ci_is_beyond_the_bound():
    # Median ratio 2.9 is below 3x, but the spread numerator's CI reaches past 3.
    num = [200.0, 280.0, 290.0, 400.0, 420.0]
    den = [100.0] * 5
    extra = {"n": execution_extra("mlp", "fit", "function"),
             "d": execution_extra("mlp", "fit", "eager")}
    run = make_run({"n": num, "d": den}, extra=extra)
    (result,) = compare.run_checks(run, [check_named("function-vs-eager-mlp")])
    assert result.ratio == pytest.approx(2.9)
    assert result.ci_high >= 3.0
    assert result.status == "passed"


def test_checks_without_their_benchmarks_are_not_applicable():
    run = make_run({"test_loop_throughput[cpu-b64-mlp-fit]": draw(0)})
    results = compare.run_checks(run)
    assert [r.check.name for r in results] == [c.name for c in compare.RATIO_CHECKS]
    assert all(r.status == "not-applicable" and r.ratio is None for r in results)
    assert all("no benchmark" in r.note for r in results)


def test_half_a_pair_is_not_applicable_and_named():
    run = execution_run({("mlp", "fit", "function"): 1.0})
    (result,) = compare.run_checks(run, [check_named("function-vs-eager-mlp")])
    assert result.status == "not-applicable"
    assert result.numerator_key == "test_execution_throughput[mlp-fit-function]"
    assert "has no denominator twin" in result.note and result.numerator_key in result.note


def test_checks_pair_twins_per_device_and_ignore_other_suites():
    scales = {("mlp", "custom", ex, dev): s for dev in ("/CPU:0", "/GPU:0")
              for ex, s in (("eager", 0.1), ("function", 1.0))}
    # The loop suite runs the same function workflow under another comparison label.
    loop_suite = {"comparison": "loop mlp b64 /CPU:0", "variant": "custom", "device": "/CPU:0",
                  "batch_size": 64, "spec": execution_extra("mlp", "custom", "function")["spec"]}
    run = execution_run(scales, others={"test_loop_throughput[cpu-b64-mlp-custom]": loop_suite})
    results = compare.run_checks(run, [check_named("function-vs-eager-mlp")])
    assert [(r.numerator_key, r.status) for r in results] == [
        ("test_execution_throughput[mlp-custom-function-/CPU:0]", "passed"),
        ("test_execution_throughput[mlp-custom-function-/GPU:0]", "passed")]


def test_ambiguous_selection_is_refused_naming_the_keys():
    loose = RatioCheck(name="loose", where=(("spec.family", "mlp"),),
                       numerator=(("spec.execution", "function"),),
                       denominator=(("spec.execution", "eager"),),
                       pair_by=("device",), min_ratio=3.0)
    run = execution_run({("mlp", "fit", "function"): 1.0, ("mlp", "custom", "function"): 1.0,
                         ("mlp", "fit", "eager"): 0.1})
    assert_error_names(ComparisonError, lambda: compare.run_checks(run, [loose]), "'loose'",
                       "test_execution_throughput[mlp-fit-function]",
                       "test_execution_throughput[mlp-custom-function]")


def test_upper_bound_fails_when_the_whole_ci_is_above_it():
    capped = RatioCheck(name="capped", where=(("comparison", "execution *"),),
                        numerator=(("variant", "eager"),), denominator=(("variant", "function"),),
                        pair_by=("spec.loop",), max_ratio=0.5)
    run = execution_run({("mlp", "fit", "eager"): 0.9, ("mlp", "fit", "function"): 1.0,
                         ("mlp", "custom", "eager"): 0.1, ("mlp", "custom", "function"): 1.0})
    assert [r.status for r in compare.run_checks(run, [capped])] == ["failed", "passed"]


def test_selector_values_that_are_not_strings_must_be_equal():
    exact = RatioCheck(name="b64", where=(("batch_size", 64), ("comparison", "execution *")),
                       numerator=(("variant", "function"),), denominator=(("variant", "eager"),),
                       pair_by=(), min_ratio=3.0)
    run = execution_run({("mlp", "fit", "function"): 1.0, ("mlp", "fit", "eager"): 0.1})
    assert compare.run_checks(run, [exact])[0].status == "passed"
    as_text = RatioCheck(**{**exact.__dict__, "where": (("batch_size", "6?"),)})
    assert compare.run_checks(run, [as_text])[0].status == "passed"  # "6?" fnmatches str(64)
    other = RatioCheck(**{**exact.__dict__, "where": (("batch_size", 256),)})
    assert compare.run_checks(run, [other])[0].status == "not-applicable"


@pytest.mark.parametrize("change, quoted", [
    ({"name": ""}, "name must be a non-empty str"),
    ({"where": (("spec.famly", "mlp"),)}, "'spec.famly' is not a BenchmarkRecord field"),
    ({"pair_by": ("devcie",)}, "'devcie'"),
    ({"min_ratio": None}, "needs min_ratio or max_ratio"),
    ({"min_ratio": -1.0}, "-1.0"),
    ({"min_ratio": 3.0, "max_ratio": 2.0}, "min_ratio 3.0 > max_ratio 2.0"),
    ({"numerator": ("spec.execution", "function")}, "numerator must be a tuple"),
    ({"pair_by": "device"}, "pair_by"),
])
def test_ratio_checks_validate_on_construction(change, quoted):
    fields = {**check_named("function-vs-eager-mlp").__dict__, **change}
    assert_error_names(ComparisonError, lambda: RatioCheck(**fields), quoted)


# Each declared check is scoped to one suite by its comparison label (other suites reuse
# the same workflows under their own labels).
SUITE_OF_CHECK = {"function-vs-eager-mlp": "execution *", "function-vs-eager-cnn": "execution *",
                  "xla-vs-function-mlp": "execution *", "harness-overhead": "harness *"}


def test_declared_checks_are_named_bounded_and_explained():
    names = [check.name for check in compare.RATIO_CHECKS]
    assert len(set(names)) == len(names)
    assert sorted(names) == sorted(SUITE_OF_CHECK)
    for check in compare.RATIO_CHECKS:
        assert check.why and check.bound_text()
        assert ("comparison", SUITE_OF_CHECK[check.name]) in check.where


def test_the_harness_check_is_declared_with_the_overhead_target():
    assert compare.HARNESS_CHECK in compare.RATIO_CHECKS
    assert compare.HARNESS_OVERHEAD_TARGET == 0.03
    assert compare.HARNESS_CHECK.min_ratio == pytest.approx(1 - compare.HARNESS_OVERHEAD_TARGET)
    assert compare.HARNESS_CHECK.max_ratio is None
    assert compare.HARNESS_CHECK.bound_text() == ">= 0.97x"


def test_run_checks_refuses_what_is_not_a_run_or_a_check():
    assert_error_names(ComparisonError, lambda: compare.run_checks({"a": 1}), "Run")
    run = make_run({"k": draw(0)})
    assert_error_names(ComparisonError, lambda: compare.run_checks(run, ["x"]), "'x'")


def test_check_result_status_is_validated():
    check = check_named("function-vs-eager-mlp")
    assert_error_names(ComparisonError,
                       lambda: compare.CheckResult(check, "ok", 1.0, 1.0, 1.0), "'ok'")
    assert_error_names(ComparisonError,
                       lambda: compare.CheckResult(check, "passed", None, None, None), "passed")


@pytest.mark.parametrize("side", [0, 1])
def test_an_invalid_benchmark_is_refused_as_baseline_or_candidate(side):
    runs = list(scaled_runs({}))
    reason = "mlp-functional-fit-function-fp32 did not learn while timed"
    runs[side] = make_run({k: draw(i) for i, k in enumerate(KEYS)}, source="frozen.json",
                          extra={KEYS[1]: {"invalid": reason}})
    for call in (lambda: compare.compare_runs(runs), lambda: compare.gate(*runs)):
        assert_error_names(ComparisonError, call, f"run {side} (frozen.json)",
                           "1 invalid benchmark(s)", "cannot be a baseline or a candidate",
                           f"{KEYS[1]!r}: {reason}")


def test_run_groups_divide_each_member_by_its_labelled_baseline():
    labels = {"f": {"comparison": "g", "variant": "fit", "baseline": "fit"},
              "c": {"comparison": "g", "variant": "custom", "baseline": "fit"},
              "x": {"comparison": "other", "variant": "x", "baseline": "y"}}
    run = make_run({"f": draw(0), "c": draw(1, 0.5), "x": draw(2)}, extra=labels)
    group, other = compare.run_groups(run)
    assert group.name == "g" and group.baseline is run.results["f"]
    assert [m.ratio is None for m in group.members] == [True, False]
    assert group.members[1].ratio[0] == pytest.approx(0.5, rel=0.05)
    assert other.baseline is None and other.members[0].ratio is None


# --------------------------------------------------------------------------- lockstep pairing

CYCLES = 20


def cycle_drift(seed: int = 0) -> np.ndarray:
    """Per-cycle throughput factors that every variant of a cycle shares: the machine's
    speed wanders by tens of percent from one cycle to the next."""
    return np.exp(0.25 * np.random.default_rng(seed).standard_normal(CYCLES))


def lockstep_pair(ratio: float, *, noise: float = 0.005, lockstep="g", seed: int = 0):
    """(numerator, denominator) records of one lockstep group: round i of both ran in
    cycle i and shares its drift; per cycle the numerator is ``ratio`` times faster, with
    its own relative ``noise``."""
    drift = BASE_THROUGHPUT * cycle_drift(seed)
    jitter = np.random.default_rng(seed + 1).standard_normal((2, CYCLES))
    num = testing.fake_record("num", ratio * drift * (1 + noise * jitter[0]), lockstep=lockstep)
    den = testing.fake_record("den", drift * (1 + noise * jitter[1]), lockstep=lockstep)
    return num, den


def test_records_of_one_lockstep_group_with_as_many_rounds_are_paired():
    num, den = lockstep_pair(1.0)
    assert compare.paired(num, den) and compare.paired(den, num)


@pytest.mark.parametrize("change", [
    {"lockstep": "h"},  # another group
    {"lockstep": None},  # measured on its own
    {"samples_per_s": (1.0,) * (CYCLES - 1), "round_s": ()},  # not one round a cycle
])
def test_records_of_other_groups_or_lengths_are_not_paired(change):
    num, den = lockstep_pair(1.0)
    assert not compare.paired(num.replace(**change), den)
    assert not compare.paired(den, num.replace(**change))


def test_records_without_a_lockstep_group_are_never_paired():
    num, den = lockstep_pair(1.0, lockstep=None)
    assert not compare.paired(num, den)


def test_in_run_ratio_of_paired_records_cancels_the_drift_they_share():
    num, den = lockstep_pair(1.10)
    paired = compare.in_run_ratio(num, den)
    assert paired == stats.paired_ratio_ci(num.samples_per_s, den.samples_per_s)
    unpaired = stats.ratio_ci(num.samples_per_s, den.samples_per_s)
    assert paired[1] <= paired[0] <= paired[2]
    assert paired[1] > 1.09 and paired[2] < 1.11  # 0.5% noise: the drift is gone
    assert unpaired[1] < 1.0 < 1.2 < unpaired[2]  # the drift of 25% a cycle is not
    assert paired[2] - paired[1] < (unpaired[2] - unpaired[1]) / 10


def test_in_run_ratio_of_unpaired_records_resamples_each_side():
    num, den = lockstep_pair(1.10, lockstep=None)
    assert compare.in_run_ratio(num, den) == stats.ratio_ci(num.samples_per_s, den.samples_per_s)
    other = den.replace(lockstep="h")
    assert compare.in_run_ratio(num.replace(lockstep="g"), other) == \
        stats.ratio_ci(num.samples_per_s, den.samples_per_s)


def harness_pair(ratio: float, noise: float = 0.005):
    """(kbench, bare fit) records as benchmarks/test_harness.py labels them."""
    kbench, bare = lockstep_pair(ratio, noise=noise, lockstep="harness b64 /CPU:0")
    labels = dict(comparison="harness b64 /CPU:0", baseline="bare fit")
    return (kbench.replace(key="test_harness[kbench]", variant="kbench", **labels),
            bare.replace(key="test_harness[bare fit]", variant="bare fit", **labels))


def test_harness_check_fails_when_kbench_is_slower_in_every_cycle():
    result = compare.check_pair(compare.HARNESS_CHECK, *harness_pair(0.90))
    assert result.status == "failed"
    assert result.ratio == pytest.approx(0.90, abs=0.005) and result.ci_high < 0.97
    assert (result.numerator_key, result.denominator_key) == (
        "test_harness[kbench]", "test_harness[bare fit]")
    assert "harness-overhead" in str(result) and "failed" in str(result)


def test_harness_check_passes_when_kbench_costs_nothing():
    result = compare.check_pair(compare.HARNESS_CHECK, *harness_pair(1.0))
    assert result.status == "passed"
    assert result.ci_low > 0.97 and result.ci_low <= 1.0 <= result.ci_high


def test_harness_check_passes_when_its_ci_straddles_the_bound():
    kbench, bare = harness_pair(1.0)
    # Per cycle kbench/bare is 0.965 * exp(+-0.05): below the bound, but not surely.
    wobble = 0.965 * np.exp(0.05 * np.array([1, -1] * (CYCLES // 2)))
    kbench = kbench.replace(samples_per_s=tuple(np.multiply(bare.samples_per_s, wobble)),
                            round_s=())
    result = compare.check_pair(compare.HARNESS_CHECK, kbench, bare)
    assert result.ratio < 0.97 and result.ci_low < 0.97 < result.ci_high
    assert result.status == "passed"


def test_run_checks_finds_the_harness_pair_of_a_run():
    kbench, bare = harness_pair(0.90)
    run = testing.fake_run({kbench.key: kbench, bare.key: bare})
    (result,) = compare.run_checks(run, [compare.HARNESS_CHECK])
    assert result.status == "failed" and result.numerator_key == "test_harness[kbench]"
    assert result == compare.check_pair(compare.HARNESS_CHECK, kbench, bare)
