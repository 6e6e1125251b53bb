"""Tests for kbench.inputs: the pipelines benchmarks feed and the input-only runner."""

import dataclasses

import pytest

from kbench import inputs, profiles, telemetry, testing
from kbench.measure import MeasurementError
from kbench.workflows import WorkflowSpec


@pytest.fixture(scope="module")
def tiny():
    return testing.tiny_dataset()


def _input(spec, tiny):
    return inputs.training_input(spec, tiny)


def profile(min_round_s):
    return profiles.Profile("test", rounds=3, steps_per_round=4, min_round_s=min_round_s,
                            warmup_rounds=1, batch_sizes=(32,), families=("mlp",))


def test_the_training_input_is_endless_with_full_batches(tiny):
    spec = WorkflowSpec(batch_size=64)
    sizes = [int(x.shape[0]) for x, _ in _input(spec, tiny).take(3 * len(tiny.x_train) // 64)]
    assert set(sizes) == {64}  # three epochs' worth, no partial batch at an epoch boundary


def test_compute_only_input_repeats_the_same_batches(tiny):
    spec = WorkflowSpec(batch_size=64)
    cached = inputs.compute_only_input(_input(spec, tiny), steps=2)
    labels = [y.numpy().tolist() for _, y in cached.take(6)]
    assert labels[0:2] == labels[2:4] == labels[4:6]
    assert labels[0] != labels[1]


def test_input_only_run_calibrates_rounds_then_times_them(tiny, monkeypatch):
    monkeypatch.setattr(telemetry, "wait_quiet", lambda clock: clock())  # one reading each
    spec = WorkflowSpec(batch_size=32)
    # The calibration pass (after an untimed warm-up): 4 steps in 0.04 s, 0.01 s a step.
    readings = iter([10.0, 10.04, 30.0, 32.0, 40.0, 43.0])
    with inputs.InputOnlyRun(spec, _input(spec, tiny), profile(min_round_s=0.5),
                             timer=lambda: next(readings),
                             stopwatch=telemetry.Stopwatch(clock=lambda: 0.0)) as run:
        run.warm_up()  # and one untimed warm-up round
        assert run.steps_per_round == 50
        assert [run.next_round(), run.next_round()] == [2.0, 3.0]
    rec = run.record(variant="input-only")
    assert rec.device == "host" and rec.variant == "input-only" and rec.round_s == (2.0, 3.0)
    assert rec.samples_per_s == (32 * 50 / 2.0, 32 * 50 / 3.0)
    assert len(rec.round_noise) == 2


def test_input_only_rounds_pull_their_lead_untimed_first(tiny):
    spec = WorkflowSpec(batch_size=32)
    prof = dataclasses.replace(profile(min_round_s=0.0), lead_steps=3)
    run = inputs.InputOnlyRun(spec, _input(spec, tiny), prof)
    run.warm_up()
    pulls = []
    run._pull_n = lambda steps, pull=run._pull_n: (pulls.append(steps), pull(steps))
    run.next_round()
    assert run.lead_steps == 3 and pulls == [3, run.steps_per_round]


def test_input_only_rounds_are_timed_from_a_quiet_process_to_a_quiet_process(tiny, monkeypatch):
    """The timed pulls sit between two quiet waits: the buffers refilled after the lead,
    and refilled again after the round (so a prefetch buffer's output is not free)."""
    spec = WorkflowSpec(batch_size=32)
    prof = dataclasses.replace(profile(min_round_s=0.0), lead_steps=3)
    run = inputs.InputOnlyRun(spec, _input(spec, tiny), prof)
    run.warm_up()
    events, quiet_at = [], iter([100.0, 107.5])
    run._pull_n = lambda steps, pull=run._pull_n: (events.append(("pull", steps)), pull(steps))
    monkeypatch.setattr(telemetry, "wait_quiet",
                        lambda clock: (events.append(("quiet",)), next(quiet_at))[1])
    assert run.next_round() == 7.5
    assert events == [("pull", 3), ("quiet",), ("pull", run.steps_per_round), ("quiet",)]


def test_input_only_run_pulls_batches_inside_one_tf_function(tiny):
    spec = WorkflowSpec(batch_size=32)
    run = inputs.InputOnlyRun(spec, _input(spec, tiny), profile(min_round_s=0.0))
    run.warm_up()
    run.next_round()
    # One concrete function, traced once: every pull is a call of the same graph.
    assert run._pull.experimental_get_tracing_count() == 1


def test_input_only_run_refuses_rounds_before_its_warm_up_and_records_before_rounds(tiny):
    spec = WorkflowSpec(batch_size=32)
    run = inputs.InputOnlyRun(spec, _input(spec, tiny), profile(min_round_s=0.0))
    with pytest.raises(MeasurementError, match="warm_up"):
        run.next_round()
    run.warm_up()
    with pytest.raises(MeasurementError, match="no measured round"):
        run.record()
