"""Tests for kbench.measure: the steady-state run, its record, inputs, the bare-fit reference."""

import dataclasses
import itertools

import numpy as np
import pytest
import tensorflow as tf

from kbench import distribute, inputs, measure, profiles, testing
from kbench.data.pipelines import ArrayInput
from kbench.record import StartupSplit
from kbench.workflows import LOOPS, UpstreamBugError, WorkflowSpec

from test_flops import MLP_FORWARD_FLOPS


@pytest.fixture(scope="module")
def tiny():
    return testing.tiny_dataset()


def _input(spec, tiny):
    return inputs.training_input(spec, tiny)


@pytest.fixture(autouse=True)
def ticks_are_fast_steps(monkeypatch):
    """The counting timers here tick once a read, so a step "takes" about a tick: no
    step counts as slow (measure.SLOW_ROUND_S), except where a test sets it back."""
    monkeypatch.setattr(measure, "SLOW_ROUND_S", 1e9)


def profile(rounds=3, steps=4, min_round_s=0.0, warmup=1):
    return profiles.Profile("test", rounds=rounds, steps_per_round=steps, min_round_s=min_round_s,
                           warmup_rounds=warmup, batch_sizes=(32,), families=("mlp",))


def _run_rounds(spec, train_data, prof, **kwargs):
    with measure.SteadyStateRun(spec, train_data, prof, **kwargs) as run:
        run.warm_up()
        for _ in range(prof.rounds):
            run.next_round()
        return run.measurement()


@pytest.mark.parametrize("loop", LOOPS)
def test_every_round_ends_with_a_device_sync_before_its_clock_read(loop, tiny, monkeypatch):
    """Asynchronous device work must be inside the round it belongs to."""
    events, ticks = [], itertools.count()

    def clock():
        events.append(("clock", next(ticks)))
        return float(events[-1][1])

    monkeypatch.setattr(measure, "sync_devices", lambda: events.append(("sync",)))
    spec = WorkflowSpec(loop=loop, batch_size=32)
    with measure.SteadyStateRun(spec, _input(spec, tiny), profile(), timer=clock) as run:
        run.warm_up()
        for _ in range(3):
            run.next_round()
    ends = [r["end"] for r in run.probe.rounds]
    assert len(ends) == 4  # the warm-up round and three measured ones
    for end in ends:
        at = events.index(("clock", int(end)))
        # The end is the quiet wait's first reading (kbench.telemetry.wait_quiet),
        # right after the sync.
        assert events[at - 1] == ("sync",), f"round end read at tick {end} without a sync first"


@pytest.mark.parametrize("loop", LOOPS)
def test_steady_state_run_times_rounds_and_steps(loop, tiny):
    spec = WorkflowSpec(loop=loop, batch_size=32)
    result = _run_rounds(spec, _input(spec, tiny), profile(), timer=testing.counting_timer())
    # Startup run: start 0, epoch begin 1, first step begins 2 and ends 3, epoch end 4.
    assert result.startup_s == 3.0
    # Setup 0 -> 2, the first execution 2 -> 3; a steady step is a tick (the calibration).
    assert result.startup_split == StartupSplit(setup_s=2.0, first_execution_s=1.0,
                                                execution_s=result.startup_split.execution_s,
                                                tracing_s=result.startup_split.tracing_s)
    assert result.startup_split.trace_compile_s == pytest.approx(
        max(0.0, 1.0 - result.startup_split.execution_s))
    # Clock reads per round: begin, one per step, end -> a round spans 4 + 1 ticks.
    assert result.round_s == (5.0, 5.0, 5.0)
    assert result.warmup_s == 5.0
    assert result.samples_per_s == (32 * 4 / 5.0,) * 3
    assert result.step_s == (1.0,) * 12
    assert result.flops_per_sample == 3 * MLP_FORWARD_FLOPS
    assert len(result.round_loss) == 3 and np.all(np.isfinite(result.round_loss))


def test_numpy_input_runs_every_round_in_full_whatever_the_arrays_length(tiny):
    """fit on arrays stops an epoch short where a pass runs out: the run hands fit
    whole epochs of them, so no round is short (the tiny set holds 8 batches of 32,
    a round 5 steps: unaligned, the second round would end after 3)."""
    spec = WorkflowSpec(batch_size=32, input_kind="numpy")
    arrays = _input(spec, tiny)
    assert isinstance(arrays, ArrayInput) and len(arrays) % (5 * 32)
    result = _run_rounds(spec, arrays, profile(rounds=5, steps=5))
    assert result.steps_per_round == 5 and len(result.round_s) == 5
    assert len(result.step_s) == 5 * 5


def test_a_benchmarks_numpy_input_refuses_pipeline_options(tiny):
    spec = WorkflowSpec(input_kind="numpy")
    with pytest.raises(ValueError, match=r"no pipeline options, got \['prefetch'\]"):
        inputs.training_input(spec, tiny, prefetch=1)


@pytest.mark.parametrize("execution", ["function", "xla"])
def test_the_startup_split_puts_tracing_and_compilation_in_the_first_execution(execution, tiny):
    """Real clocks: the first call of a compiled step traces (and under XLA compiles),
    so it takes far longer than a steady one."""
    spec = WorkflowSpec(execution=execution, batch_size=32)
    result = _run_rounds(spec, _input(spec, tiny), profile(rounds=2, steps=4))
    split = result.startup_split
    assert split.setup_s > 0 and split.execution_s > 0
    assert split.first_execution_s > 5 * split.execution_s
    assert split.setup_s + split.first_execution_s == pytest.approx(result.startup_s)
    # TensorFlow's clock of tracing splits the excess: the step traced inside its
    # first call, and what is left is compilation and the first run.
    assert 0 < split.tracing_s < split.first_execution_s
    assert split.tracing_s + split.compile_s == pytest.approx(split.trace_compile_s)
    assert result.record().startup_split == split


def test_an_eager_run_spends_no_time_tracing(tiny):
    spec = WorkflowSpec(execution="eager", batch_size=32)
    split = _run_rounds(spec, _input(spec, tiny), profile(rounds=2, steps=4)).startup_split
    assert split.tracing_s == 0.0
    assert split.compile_s == split.trace_compile_s



def test_rounds_are_lengthened_to_the_profile_round_time(tiny):
    spec = WorkflowSpec(batch_size=32)
    # The calibration epoch takes 1 tick for 4 steps: 0.25 a step, so 2.0 needs 8 steps.
    result = _run_rounds(spec, _input(spec, tiny), profile(min_round_s=2.0),
                         timer=testing.counting_timer())
    assert result.steps_per_round == 8
    assert result.round_s == (9.0, 9.0, 9.0)


@pytest.mark.parametrize("step_s, expected", [(0.01, 50), (1.0, 4), (1e-9, measure.MAX_STEPS_PER_ROUND)])
def test_calibrated_steps(step_s, expected):
    assert measure.calibrated_steps(step_s, profile(min_round_s=0.5)) == expected


@pytest.mark.parametrize("step_s, expected", [
    (1.3, 1),    # the CNN's mixed_float16 step here: one step a round, not four
    (0.3, 3),    # as many of the minimum steps as fit SLOW_ROUND_S (1.0 in this test)
    (0.2, 4),    # all four fit
])
def test_a_slow_step_gets_fewer_than_the_minimum_steps(monkeypatch, step_s, expected):
    monkeypatch.setattr(measure, "SLOW_ROUND_S", 1.0)
    assert measure.calibrated_steps(step_s, profile(min_round_s=0.1)) == expected


def test_the_calibration_epochs_last_about_a_round_however_slow_the_step(tiny, monkeypatch):
    """A rough step time from one execution sizes the calibration epochs."""
    monkeypatch.setattr(measure, "SLOW_ROUND_S", 1.0)
    spec = WorkflowSpec(batch_size=32)
    # Each step reads the clock once: a tick a step, every step "slow" (1 tick >= 1.0).
    with measure.SteadyStateRun(spec, _input(spec, tiny), profile(min_round_s=0.1),
                                timer=testing.counting_timer()) as run:
        pass
    assert run.steps_per_round == 1
    assert len(run.startup.epoch_s) == 2 + measure.CALIBRATION_EPOCHS


def test_calibration_refuses_a_step_that_took_no_time():
    with pytest.raises(measure.MeasurementError, match="must take time, got 0.0"):
        measure.calibrated_steps(0.0, profile(min_round_s=0.5))


def test_measurement_record_has_every_field(tiny):
    spec = WorkflowSpec(batch_size=32)
    result = measure.measure(spec, _input(spec, tiny), profile(steps=3))
    rec = result.record(peak_flops=1e9, profile="test", comparison="c", variant="v",
                        baseline="v")
    assert rec.spec == spec and rec.workflow == spec.name and len(rec.samples_per_s) == 3
    assert rec.samples_per_s == result.samples_per_s and rec.round_s == result.round_s
    assert rec.step_latency_s.p50 <= rec.step_latency_s.p90 <= rec.step_latency_s.p99
    assert rec.step_latency_s.p99 <= max(result.step_s)
    assert rec.throughput.n == 3
    assert rec.mfu == pytest.approx(rec.achieved_flops / 1e9)
    assert rec.achieved_flops == pytest.approx(rec.throughput.median * 3 * MLP_FORWARD_FLOPS)
    assert (rec.comparison, rec.variant, rec.profile) == ("c", "v", "test")
    assert len(rec.round_noise) == 3 and all(n.wall_s > 0 for n in rec.round_noise)
    assert all(n.steal is None or 0 <= n.steal <= 1 for n in rec.round_noise)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_learning_model_passes_the_learning_check(loop, tiny):
    spec = WorkflowSpec(loop=loop, batch_size=32)
    result = measure.measure(spec, _input(spec, tiny), profile(rounds=4, steps=8))
    assert result.loss_drop >= measure.LEARNING_MIN_DROP
    assert result.learning_failure() is None and result.record().invalid is None


@pytest.mark.parametrize("loop", LOOPS)
def test_a_frozen_model_fails_the_learning_check_and_its_record_says_so(loop, tiny):
    spec = WorkflowSpec(loop=loop, batch_size=32)
    run = measure.SteadyStateRun(spec, _input(spec, tiny), profile(rounds=4, steps=8))
    run.model.optimizer.learning_rate.assign(0.0)  # before the run's thread starts
    with run:
        run.warm_up()
        for _ in range(4):
            run.next_round()
    result = run.measurement()
    assert abs(result.loss_drop) < measure.LEARNING_MIN_DROP
    assert result.weights_changed is False
    failure = result.learning_failure()
    assert failure == (f"{spec.name} did not learn while timed: its trainable weights did not "
                       "change from the first measured round to the last")
    assert result.record().invalid == failure


def _measurement(round_loss, first_loss=2.3, weights_changed=True):
    return measure.Measurement(
        spec=WorkflowSpec(), device="/CPU:0", batch_size=64, steps_per_round=10,
        startup_s=1.0, startup_split=None, warmup_s=0.1, round_s=(0.1,) * len(round_loss),
        step_s=(),
        round_loss=tuple(round_loss), round_noise=(), flops_per_sample=1,
        first_loss=first_loss, weights_changed=weights_changed)


def test_the_loss_drop_counts_from_the_first_step_so_a_plateau_still_learns():
    """Near its plateau a learning model's rounds barely differ (full Fashion-MNIST:
    3.2-3.9% in smoke rounds); from its untrained first step the drop is large."""
    plateau = _measurement((0.7784, 0.7537))
    assert plateau.loss_drop == pytest.approx(1 - 0.7537 / 2.3)
    assert plateau.learning_failure() is None


@pytest.mark.parametrize("measurement, expected", [
    (_measurement((2.25, 2.24)), "its loss went from 2.3000 (its first step) to 2.2400 (last "
                                 "measured round), a drop of 2.6%"),
    (_measurement((1.0, 0.99), first_loss=None), "its loss went from 1.0000 (first measured "
                                                 "round) to 0.9900 (last measured round)"),
    (_measurement((0.5, float("nan"))), "its loss (0.5, nan)"),
    (_measurement((0.5, 0.3), weights_changed=False), "its trainable weights did not change"),
])
def test_the_learning_check_says_which_part_failed(measurement, expected):
    failure = measurement.learning_failure()
    assert failure.startswith("mlp-functional-fit-function-fp32 did not learn while timed: ")
    assert expected in failure


def test_weights_digest_tells_changed_weights_from_unchanged():
    spec = WorkflowSpec()
    run = measure.SteadyStateRun(spec, inputs.training_input(spec, testing.tiny_dataset()),
                                 profile())
    before = measure.weights_digest(run.model)
    assert measure.weights_digest(run.model) == before
    weights = run.model.get_weights()
    weights[0] = weights[0] + np.float32(1e-7)  # one ulp-scale nudge of one tensor
    run.model.set_weights(weights)
    assert measure.weights_digest(run.model) != before


@pytest.mark.parametrize("execution", ["eager", "function", "xla"])
@pytest.mark.parametrize("loop", LOOPS)
def test_a_warmed_up_step_never_retraces_while_timed_and_its_counters_say_so(loop, execution,
                                                                            tiny):
    spec = WorkflowSpec(loop=loop, execution=execution, batch_size=32)
    result = _run_rounds(spec, _input(spec, tiny), profile(rounds=3, steps=4))
    found = result.counters
    assert result.failure() is None and result.record().counters == found
    if execution == "eager":  # nothing is compiled
        assert dict(found.traces) == {} and found.xla_compilations is None
        return
    assert found.traces and all(n >= 1 for n in found.traces.values())
    assert set(found.retraces.values()) == {0}
    assert found.graph_nodes and all(n > 0 for n in found.graph_nodes.values())
    if execution == "xla":
        assert found.xla_functions and found.xla_compilations >= 1
    else:
        assert found.xla_functions == () and found.xla_compilations is None


def test_a_step_that_retraces_while_timed_fails_the_benchmark_naming_it(tiny):
    """A Python scalar argument that changes every step: one trace per step."""
    spec = WorkflowSpec(loop="custom", batch_size=32)
    run = measure.SteadyStateRun(spec, _input(spec, tiny), profile(rounds=2, steps=2))
    loop, calls = run.loop, itertools.count()

    @tf.function
    def step_with_a_python_counter(x, y, count):
        return loop._train_step(x, y)

    loop.train_step = lambda x, y: step_with_a_python_counter(x, y, next(calls))
    with run:
        run.warm_up()
        for _ in range(2):
            run.next_round()
    result = run.measurement()
    assert result.counters.retraces["step_with_a_python_counter"] == 2 * 2
    assert result.failure().startswith(
        f"{spec.name} retraced while timed: step_with_a_python_counter 4 time(s)")
    assert result.record().invalid == result.failure()


def test_running_out_of_input_is_an_error_not_a_short_round(tiny):
    spec = WorkflowSpec(batch_size=64)
    # 8 steps of startup run, then a fresh pass: rounds of 4, 4, then only 2.
    finite = inputs.training_input(spec, tiny).take(10)
    with measure.SteadyStateRun(spec, finite, profile(warmup=0)) as run:
        run.next_round()
        run.next_round()
        with pytest.raises(measure.MeasurementError, match="input ran out in round 3"):
            run.next_round()


def test_a_failure_in_training_reaches_the_caller(tiny):
    spec = WorkflowSpec(batch_size=64)
    wrong_shape = tf.data.Dataset.from_tensors(
        (tf.zeros((64, 5, 5)), tf.zeros((64,), tf.int32))).repeat()
    with pytest.raises(measure.MeasurementError, match="failed during its startup"):
        with measure.SteadyStateRun(spec, wrong_shape, profile()):
            pass  # the startup runs on entry


def test_known_upstream_bug_is_refused_before_measuring(tiny):
    spec = WorkflowSpec(execution="xla", deterministic=True)
    with pytest.raises(UpstreamBugError, match="keras-team/keras#20315"):
        measure.SteadyStateRun(spec, _input(spec, tiny), profile())


def test_sync_devices_runs_on_cpu():
    distribute.sync_devices()  # must not raise where there is no GPU


def test_next_round_returns_the_rounds_seconds(tiny):
    spec = WorkflowSpec(batch_size=32)
    with measure.SteadyStateRun(spec, _input(spec, tiny), profile(),
                                timer=testing.counting_timer()) as run:
        run.warm_up()
        seconds = [run.next_round() for _ in range(3)]
        assert tuple(seconds) == run.measurement().round_s == (5.0, 5.0, 5.0)


def test_the_startup_runs_on_entry_so_runs_never_start_up_together(tiny):
    spec = WorkflowSpec(batch_size=32)
    run = measure.SteadyStateRun(spec, _input(spec, tiny), profile())
    assert run.steps_per_round is None
    with run:
        assert run.steps_per_round == 4  # calibrated before __enter__ returned
        assert run.startup.first_step_end is not None


def test_a_run_may_stop_before_its_last_round_and_its_worker_ends(tiny):
    spec = WorkflowSpec(batch_size=32)
    with measure.SteadyStateRun(spec, _input(spec, tiny), profile(), rounds=50) as run:
        run.warm_up()
        run.next_round()
    assert not run._thread.is_alive()
    assert len(run.measurement().round_s) == 1


def test_asking_for_more_rounds_than_the_run_has_is_an_error(tiny):
    spec = WorkflowSpec(batch_size=32)
    with measure.SteadyStateRun(spec, _input(spec, tiny), profile(warmup=1), rounds=2) as run:
        run.warm_up()
        run.next_round()
        run.next_round()
        with pytest.raises(measure.MeasurementError,
                           match=r"all 3 rounds \(1 warm-up \+ 2\) have run"):
            run.next_round()


@pytest.mark.parametrize("loop", LOOPS)
def test_without_the_per_step_probe_rounds_have_no_step_times_but_a_loss(loop, tiny):
    """The bare-fit reference: only the epoch gate runs, as in a plain model.fit."""
    spec = WorkflowSpec(loop=loop, batch_size=32)
    with measure.SteadyStateRun(spec, _input(spec, tiny), profile(), per_step=False) as run:
        assert not run.probe.per_step
        run.warm_up()
        for _ in range(3):
            run.next_round()
    result = run.measurement()
    assert result.step_s == () and len(result.round_s) == 3
    assert result.record().step_latency_s is None
    assert len(result.round_loss) == 3 and all(np.isfinite(result.round_loss))


@pytest.mark.parametrize("loop", LOOPS)
def test_rounds_are_whole_executions_of_steps_per_execution(loop, tiny):
    spec = WorkflowSpec(loop=loop, batch_size=32, steps_per_execution=3)
    result = _run_rounds(spec, _input(spec, tiny), profile(steps=4), timer=testing.counting_timer())
    assert result.steps_per_round == 6  # 4 rounded up to whole executions of 3
    assert len(result.step_s) == 3 * 2  # one reading per execution
    assert result.learning_failure() is None


def test_calibration_rounds_up_to_whole_executions():
    assert measure.calibrated_steps(0.01, profile(min_round_s=0.5), multiple=8) == 56


# --------------------------------------------------------------------------- the lead of a round


@pytest.mark.parametrize("step_s, lead, multiple, expected", [
    (0.001, 8, 1, 8),     # a fast step: the profile's lead
    (0.010, 8, 1, 5),     # 8 steps would last 80 ms: capped at LEAD_MAX_S (50 ms)
    (1.000, 8, 1, 1),     # a slow step: one, never none
    (0.001, 8, 3, 9),     # whole executions of 3 steps
    (0.001, 0, 1, 0),     # the profile asks for none
])
def test_lead_steps(step_s, lead, multiple, expected):
    prof = dataclasses.replace(profile(), lead_steps=lead)
    assert measure.lead_steps(step_s, prof, multiple) == expected


@pytest.mark.parametrize("loop", LOOPS)
def test_a_rounds_clock_starts_after_its_lead(loop, tiny, monkeypatch):
    monkeypatch.setattr(measure, "LEAD_MAX_S", 1e9)  # ticks, not seconds, here
    spec = WorkflowSpec(loop=loop, batch_size=32)
    prof = dataclasses.replace(profile(), lead_steps=2)
    with measure.SteadyStateRun(spec, _input(spec, tiny), prof,
                                timer=testing.counting_timer()) as run:
        run.warm_up()
        for _ in range(3):
            run.next_round()
    result = run.measurement()
    assert run.lead_steps == 2 and result.steps_per_round == 4
    assert all(len(r["steps"]) == 6 for r in run.probe.rounds)  # lead + timed steps ran
    # Clock reads: begin, 2 lead steps, the quiet wait before the timed steps (2 reads:
    # the clock starts at the first), 4 timed steps, the quiet wait at the end (it
    # ends at the first of its 2 reads): from the lead's end to the end is 6.
    assert result.round_s == (6.0, 6.0, 6.0)
    # The timed steps only; the first also spans the quiet wait's second read.
    assert result.step_s == (2.0, 1.0, 1.0, 1.0) * 3


def test_a_bare_rounds_clock_also_starts_after_its_lead(tiny, monkeypatch):
    monkeypatch.setattr(measure, "LEAD_MAX_S", 1e9)
    spec = WorkflowSpec(batch_size=32)
    prof = dataclasses.replace(profile(), lead_steps=2)
    with measure.SteadyStateRun(spec, _input(spec, tiny), prof, per_step=False,
                                timer=testing.counting_timer()) as run:
        run.warm_up()
        run.next_round()
    # Clock reads: begin, the quiet wait at the lead's end (its one step-level hook:
    # 2 reads, the clock starts at the first), the quiet wait at the end.
    assert run.measurement().round_s == (2.0,)


def test_an_injected_slowdown_stretches_every_round_to_exactly_its_share(tiny):
    """slowdown 0.5: each round waits as long again as it ran, so half the throughput."""
    spec = WorkflowSpec(batch_size=32)
    plain = _run_rounds(spec, _input(spec, tiny), profile(), timer=testing.counting_timer())
    slowed = _run_rounds(spec, _input(spec, tiny), profile(), timer=testing.counting_timer(),
                         slowdown=0.5)
    assert slowed.round_s == tuple(2 * s for s in plain.round_s)
    assert slowed.samples_per_s == tuple(r / 2 for r in plain.samples_per_s)


@pytest.mark.parametrize("slowdown", [1.0, -0.1, "5%"])
def test_an_injected_slowdown_outside_zero_to_one_is_refused(tiny, slowdown):
    spec = WorkflowSpec(batch_size=32)
    with pytest.raises((ValueError, TypeError), match="slowdown"):
        measure.SteadyStateRun(spec, _input(spec, tiny), profile(), slowdown=slowdown)


def test_fixed_steps_per_round_replace_the_calibrated_ones(tiny):
    """A run compared round for round with another runs the other's steps a round."""
    spec = WorkflowSpec(batch_size=32)
    fixed = _run_rounds(spec, _input(spec, tiny), profile(steps=4), steps_per_round=7)
    assert fixed.steps_per_round == 7
    calibrated = _run_rounds(spec, _input(spec, tiny), profile(steps=4))
    assert calibrated.steps_per_round == 4


@pytest.mark.parametrize("steps, match", [(0, "steps_per_round"), (2.5, "steps_per_round"),
                                           (3, "multiple of the spec's steps_per_execution")])
def test_bad_fixed_steps_per_round_are_refused_with_the_value(tiny, steps, match):
    spec = WorkflowSpec(batch_size=32, steps_per_execution=2)
    with pytest.raises((ValueError, TypeError, measure.MeasurementError), match=match):
        measure.SteadyStateRun(spec, _input(spec, tiny), profile(steps=4), steps_per_round=steps)
