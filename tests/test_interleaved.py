"""Tests for kbench.interleaved: groups declared as data, measured in lockstep, replayed."""

import math
import time

import pytest

from kbench import compare, inputs, interleaved, measure, profiles, testing
from kbench.interleaved import BareFit, Group, GroupError, InputOnly, Training
from kbench.workflows import WorkflowSpec


def profile(rounds=3, group_s=60.0, target_ci=0.5, max_cycles=50, steps=4, order="abba"):
    return profiles.Profile("test", rounds=rounds, steps_per_round=steps, min_round_s=0.0,
                            warmup_rounds=1, batch_sizes=(64,), families=("mlp",),
                            group_s=group_s, target_ci=target_ci, max_cycles=max_cycles,
                            order=order)


# --------------------------------------------------------------------------- declaring a group


def test_a_group_needs_variants_unique_names_and_its_baseline():
    a, b = testing.FakeVariant("a", [1.0]), testing.FakeVariant("b", [1.0])
    with pytest.raises(GroupError, match="'g' has no variants"):
        Group("g", (), "a")
    with pytest.raises(GroupError, match=r"variant names must be unique, got \['a'\] more than once"):
        Group("g", (a, testing.FakeVariant("a", [1.0])), "a")
    with pytest.raises(GroupError, match=r"baseline 'c' is not one of its variants \['a', 'b'\]"):
        Group("g", (a, b), "c")
    with pytest.raises(GroupError, match="target_ci"):
        Group("g", (a, b), "a", target_ci=1.5)


# --------------------------------------------------------------------------- when to stop


def test_precise_enough_asks_every_ratio_to_reach_the_target():
    steady = [1.0, 1.01, 0.99] * 10
    noisy = [1.0, 1.5, 0.6] * 10
    assert interleaved.precise_enough({"base": steady, "a": steady}, "base", 0.01)
    assert not interleaved.precise_enough({"base": steady, "a": steady, "b": noisy}, "base", 0.05)
    assert interleaved.precise_enough({"base": steady, "b": noisy}, "base", 0.5)
    # Fewer than three cycles have no spread to judge.
    assert not interleaved.precise_enough({"base": [1.0, 1.0], "a": [1.0, 1.0]}, "base", 0.5)


def test_precise_enough_uses_the_t_half_width_of_the_log_ratios():
    base = [1.0] * 4
    other = [math.exp(x) for x in (0.1, -0.1, 0.1, -0.1)]
    half_width = 3.182446 * 0.1154700538 / 2  # t(0.975, 3 df) * sd(ddof=1) / sqrt(4)
    assert interleaved.precise_enough({"base": base, "a": other}, "base", half_width + 1e-6)
    assert not interleaved.precise_enough({"base": base, "a": other}, "base", half_width - 1e-6)


# --------------------------------------------------------------------------- measuring a group


def test_measure_group_runs_every_variant_once_per_cycle_and_labels_the_records():
    events = []
    fast = testing.FakeVariant("fast", [0.5], events=events)
    slow = testing.FakeVariant("slow", [1.0], events=events)
    group = Group("g1", (slow, fast), "slow", suite="s")
    records = interleaved.measure_group(group, profile(rounds=4, target_ci=0.01, max_cycles=4),
                                        peak_flops=1e9)
    assert set(records) == {"slow", "fast"}
    for name, rec in records.items():
        assert rec.lockstep == "g1" and rec.comparison == "g1" and rec.variant == name
        assert rec.baseline == "slow" and rec.suite == "s" and rec.profile == "test"
        assert len(rec.samples_per_s) == 4
    assert compare.paired(records["fast"], records["slow"])
    assert compare.in_run_ratio(records["fast"], records["slow"])[0] == pytest.approx(2.0)
    # Opened in the group's order, closed in reverse, every round between.
    assert events[:2] == [("open", "slow"), ("open", "fast")]
    assert events[-2:] == [("close", "fast"), ("close", "slow")]
    assert sum(e[0] == "round" for e in events) == 8


def test_measure_group_stops_once_every_ratio_is_precise_enough():
    steady = [1.0, 1.001, 0.999]
    group = Group("g", (testing.FakeVariant("a", steady), testing.FakeVariant("b", steady[::-1])),
                  "a")
    records = interleaved.measure_group(group, profile(rounds=3, target_ci=0.05, max_cycles=50))
    assert len(records["a"].samples_per_s) == 3  # precise after the minimum


def test_a_noisy_group_runs_to_its_most_cycles():
    group = Group("g", (testing.FakeVariant("a", [1.0]),
                        testing.FakeVariant("b", [1.0, 2.0, 0.5, 1.5])), "a")
    records = interleaved.measure_group(group, profile(rounds=3, target_ci=0.01, max_cycles=12))
    assert len(records["b"].samples_per_s) == 12


def test_the_groups_own_target_tightens_the_profiles():
    wobbly = [1.0, 1.1, 0.9]
    loose = Group("g", (testing.FakeVariant("a", [1.0]), testing.FakeVariant("b", wobbly)), "a")
    tight = Group("g", loose.variants, "a", target_ci=0.01)
    prof = profile(rounds=3, target_ci=0.5, max_cycles=9)
    assert len(interleaved.measure_group(loose, prof)["a"].samples_per_s) == 3
    assert len(interleaved.measure_group(tight, prof)["a"].samples_per_s) == 9


def test_a_variant_that_fails_closes_every_runner_and_names_itself():
    events = []
    a = testing.FakeVariant("a", [1.0], events=events)
    b = testing.FakeVariant("b", [1.0], events=events, fail_in_round=2)
    with pytest.raises(Exception, match="variant 'b' failed in its round 2.*b broke in round 2"):
        interleaved.measure_group(Group("g", (a, b), "a"), profile())
    assert a.closed == b.closed == 1


# --------------------------------------------------------------------------- real variants


@pytest.fixture(scope="module")
def tiny():
    return testing.tiny_dataset()


def test_training_bare_fit_and_input_only_variants_run_in_one_group(tiny):
    spec = WorkflowSpec(batch_size=32)
    data = inputs.training_input(spec, tiny)
    group = Group("harness-like", (Training("kbench", spec, data, extras={"k": 1}),
                                   BareFit("bare fit", spec, inputs.training_input(spec, tiny)),
                                   InputOnly("input-only", spec, inputs.training_input(spec, tiny))),
                  "bare fit")
    records = interleaved.measure_group(group, profile(rounds=3, max_cycles=3))
    kbench, bare, pipeline = records["kbench"], records["bare fit"], records["input-only"]
    assert len(kbench.samples_per_s) == len(bare.samples_per_s) == len(pipeline.samples_per_s) == 3
    assert kbench.step_latency_s is not None and dict(kbench.extras) == {"k": 1}
    assert bare.step_latency_s is None  # no batch-level kbench code ran
    assert len(bare.round_loss) == 3 and all(math.isfinite(v) for v in bare.round_loss)
    assert pipeline.device == "host" and pipeline.round_loss == ()
    assert all(r.lockstep == "harness-like" for r in records.values())


def test_a_slowed_kbench_probe_fails_the_harness_check(tiny, monkeypatch):
    """The harness benchmark's assertion can fail: kbench's per-step callback made 3 ms
    slower per step loses far more than 3% against bare fit's ~1 ms steps."""
    probe_step = measure._RoundProbe.on_train_batch_end

    def slowed(self, batch, logs=None):
        time.sleep(0.003)
        probe_step(self, batch, logs)

    monkeypatch.setattr(measure._RoundProbe, "on_train_batch_end", slowed)
    monkeypatch.setattr(measure._RoundProbe, "async_safe", False)  # the sleep blocks the loop
    spec = WorkflowSpec(batch_size=32)
    group = Group("harness b32 /CPU:0", (
        Training("kbench", spec, inputs.training_input(spec, tiny)),
        BareFit("bare fit", spec, inputs.training_input(spec, tiny))), "bare fit")
    records = interleaved.measure_group(group, profile(rounds=5, max_cycles=5, steps=8))
    verdict = compare.check_pair(compare.HARNESS_CHECK, records["kbench"], records["bare fit"])
    assert verdict.status == "failed", str(verdict)
    assert verdict.ci_high < 0.97
