"""Timing training honestly: startup apart, device synced, per-round and per-step samples.

A measurement runs ONE model through the engine in :mod:`kbench.training`
(``fit`` or the custom loop) over a repeated input pipeline:

- startup: short epochs on the model. The first, of one execution, traces
  and compiles (tracing, XLA compilation, first steps: ``startup_s``); a
  second gives a rough step time; the median of the next CALIBRATION_EPOCHS,
  each about a round long (:func:`calibrated_steps`), gives the step time
  that calibrates how many steps a round needs to last ``profile.min_round_s``.
- the gated run, on the same model and compiled step, in *rounds* (Keras
  epochs with ``steps_per_epoch``): ``warmup_rounds`` unmeasured, then the
  measured rounds. A round is a few untimed *lead* steps (:func:`lead_steps`)
  and then the timed ones. Both ends of its clock come after a device sync
  (``tf.test.experimental.sync_devices``), so asynchronous GPU work is inside
  the round it belongs to, and once the process is quiet
  (:func:`kbench.telemetry.wait_quiet`): the clock starts when the lead's
  steps are done and the input has refilled what they drained, and stops
  when the last step is done and the input has refilled again. A prefetching
  pipeline is so timed from full buffers to full buffers (what it produced in
  the round is what the round consumed), and no background work a round
  leaves behind is charged to the next round, of this run or another.

The run lives in a worker thread and waits at each round boundary until the
caller asks for the next round (:meth:`SteadyStateRun.next_round`). That lets
the caller interleave the rounds of several runs (kbench.lockstep) within one
continuous run each, instead of calling ``model.fit`` once per round (which
would restart the input pipeline and re-create Keras's epoch iterator each
time, and time that too).

Measurement never formats: summaries and tables live in kbench.report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kbench import _format, counters, models, stats, telemetry, training
from kbench._validate import check_number, check_positive_int
from kbench.data.pipelines import ArrayInput
from kbench.distribute import sync_devices
from kbench.flops import training_flops_per_sample
from kbench.profiles import Profile
from kbench.record import BenchmarkRecord, Latencies, StartupSplit
from kbench.workflows import WorkflowSpec

# How long a round may take before the harness gives up on the worker: far
# above any profile's round (seconds), far below CI's limit.
ROUND_TIMEOUT_S = 600.0


# The learning check has two parts. (1) The trainable weights must change over
# the timed rounds (exact: a digest of their bytes before the first measured
# round against after the last): a model frozen while timed fails however its
# loss moves. (2) The training loss must have fallen by at least this share from
# the run's first step (the untrained model's loss) to the last measured round.
# An earlier rule asked for a 5% drop from the first measured round to the last:
# it held on mnist_5k, but on the full Fashion-MNIST a learning MLP in the smoke
# prefetch suite dropped only 3.2-3.9% there (two runs), near its plateau.
# Measured here from the first step (SteadyStateRun runs: MLP and CNN, fit and custom,
# seeds 0-1, smoke and default rounds, batch 64; 64 runs): learning models
# dropped 86-95% on mnist_5k and 64-79% on Fashion-MNIST; the same models with
# learning rate 0 moved -3.8% to +3.8% (one first batch against round means),
# and their weights never changed. 15% sits 4x above the frozen models' largest
# move and 4x below the learning models' smallest drop.
LEARNING_MIN_DROP = 0.15


class MeasurementError(RuntimeError):
    """A measurement could not be taken as asked."""


# A round never grows beyond this many steps, whatever the calibration says.
MAX_STEPS_PER_ROUND = 5000


# The profile's minimum steps a round never make it last longer than this. On
# this machine (Intel Xeon, AVX512_FP16 and AMX reported) the CNN's
# mixed_float16 step took 1.3 s at batch 64: ten steps a round made its
# precision group take 4 minutes. At 1.0 s the MLP's 0.1 s mixed_float16 step
# still made 1 s rounds, and its group's 9 s ran out at the minimum 8 cycles
# (CIs +-5.1-5.6%); per-cycle noise hardly depends on round length here
# (kbench.profiles), so 0.5 s. A 0.07 s eager CNN step keeps its ten.
SLOW_ROUND_S = 0.5


def calibrated_steps(step_s: float, profile: Profile, multiple: int = 1) -> int:
    """Steps per round for a step time: at least the profile's round time and its
    minimum steps (as many of those as fit SLOW_ROUND_S, at least one), rounded up to
    a ``multiple`` (the spec's steps_per_execution: whole executions)."""
    if not step_s > 0:
        raise MeasurementError(f"a calibration step must take time, got {step_s!r} s")
    # Rounded first so float noise (0.5 / 0.01 = 50.000000000000004) adds no step.
    wanted = math.ceil(round(profile.min_round_s / step_s, 9))
    floor = max(1, min(profile.steps_per_round, math.floor(round(SLOW_ROUND_S / step_s, 9))))
    steps = min(MAX_STEPS_PER_ROUND, max(floor, wanted))
    return _whole_executions(steps, multiple)


def _whole_executions(steps: int, multiple: int) -> int:
    return -(-steps // multiple) * multiple


# A round's lead (untimed steps before its clock starts) never lasts longer than
# this: enough for a fast model to drain what its input pipeline buffered while
# the round waited, without making a slow model's rounds (eager) much longer.
# Measured here (the prefetch suite's costly pipeline, batch 64): after 0.3 s or
# 1 s idle, the next 3-8 pulls came from the buffer, at ~4-5 ms a batch in
# steady state: 8 steps (the default profile's lead_steps) of ~5 ms is 40 ms.
LEAD_MAX_S = 0.05
# Epochs the startup times to calibrate the round length (their median step time).
CALIBRATION_EPOCHS = 3


def lead_steps(step_s: float, profile: Profile, multiple: int = 1) -> int:
    """Untimed steps at the start of each round: ``profile.lead_steps``, at most
    LEAD_MAX_S long, in whole executions (0 when the profile asks for none).

    Each round starts after a wait: in a lockstep group the other variants ran
    meanwhile. The input pipeline's prefetch buffers filled up during it and
    the first steps consume them faster than steady state; the first step also
    pays for waking the thread pools. Timing from the end of the lead's last
    step on measures the steady state every variant of a group shares.
    """
    if profile.lead_steps == 0:
        return 0
    steps = min(profile.lead_steps, max(1, math.ceil(LEAD_MAX_S / step_s)))
    return _whole_executions(steps, multiple)


# --------------------------------------------------------------------------- the run


class _Closed(Exception):
    """The caller closed the run: the worker stops at the next round boundary."""


def _wait_until(timer: Callable[[], float], target: float) -> float:
    """Sleep until ``timer`` reads ``target`` or later (in short naps, so an overshoot is
    at most one nap's); the reading then."""
    while (now := timer()) < target:
        time.sleep(min(target - now, 0.001))
    return now


class _RoundGate(keras.callbacks.Callback):
    """Gates rounds (epochs) on the caller and times each round, synced.

    Epoch hooks only: with it, ``fit`` runs every step exactly as a plain
    ``model.fit`` does (no batch-level kbench code at all). The reference of
    the harness-overhead check.
    """

    async_safe = True
    per_step = False

    def __init__(self, timer: Callable[[], float], timeout_s: float,
                 stopwatch: telemetry.Stopwatch | None = None):
        super().__init__()
        self.timer, self.timeout_s = timer, timeout_s
        self.stopwatch = stopwatch or telemetry.Stopwatch()
        self.go = threading.Semaphore(0)
        self.finished: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = False
        self.rounds: list[dict] = []
        # The step index (as the loops number batches) that ends a round's lead; None: no lead.
        self.lead_end_step: int | None = None
        # An injected slowdown: each round waits this many times its timed seconds at its end.
        self.stretch = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        # The one step-level hook of the gate, called in the training loop's own
        # thread before each step: the lead has ended when the first timed step
        # is about to begin. Its clock starts once the device is synced and the
        # process is quiet (what the lead drained from the input's buffers has
        # been refilled).
        if self.lead_end_step is not None and batch == self.lead_end_step + 1:
            sync_devices()
            self.rounds[-1]["lead"] = telemetry.wait_quiet(self.timer)

    def on_epoch_begin(self, epoch, logs=None):
        if not self.go.acquire(timeout=self.timeout_s):
            raise MeasurementError(f"no round was requested within {self.timeout_s} s")
        if self.closed:
            raise _Closed
        watch = self.stopwatch.start()
        self.rounds.append({"start": self.timer(), "steps": {}, "watch": watch})

    def on_epoch_end(self, epoch, logs=None):
        sync_devices()
        round_ = self.rounds[-1]
        # Ends once the process is quiet: a buffering input has refilled what the
        # round drained, and nothing the round started runs on into the next.
        round_["end"] = telemetry.wait_quiet(self.timer)
        if self.stretch:
            round_["end"] = _wait_until(self.timer, round_["end"] + self.stretch
                                        * (round_["end"] - round_.get("lead", round_["start"])))
        round_["noise"] = self.stopwatch.stop(round_["watch"])
        # The epoch's mean training loss (Keras and the custom loop report it).
        round_["loss"] = float((logs or {}).get("loss", math.nan))
        self.finished.put(("round", len(self.rounds)))

    @staticmethod
    def timed_s(round_: dict) -> float:
        """The round's timed part: from the end of its lead (or its start) to its synced end."""
        return round_["end"] - round_.get("lead", round_["start"])

    def timed_step_ends(self, round_: dict) -> list[float]:
        """The end times of the round's timed steps (after its lead), in time order."""
        lead = -1 if self.lead_end_step is None else self.lead_end_step
        # Sorted as times: callback threads may record neighbouring steps out of order.
        return sorted(t for step, (t, _) in round_["steps"].items() if step > lead)


class _RoundProbe(_RoundGate):
    """The gate, and a timestamp at every step's completion.

    One callback does both, so its clock reads sit right after the gate opens
    and right before it is signalled.

    ``async_safe``: Keras then runs ``on_train_batch_end`` in its callback
    thread pool instead of blocking the training loop on it, exactly as a
    plain ``model.fit`` with no batch-level callback runs (a blocking callback
    costs ~30% of a small model's throughput on CPU). There, fetching the loss
    waits for that step alone; the round's end waits for all of them.
    """

    per_step = True

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])  # waits for this step's loss
        now = self.timer()
        self.rounds[-1]["steps"][batch] = (now, loss)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What a steady-state measurement of one workflow produced.

    Attributes:
        spec: the workflow measured.
        device: the TF device it ran on.
        batch_size, steps_per_round: the round shape.
        startup_s: from the start of the run to the end of its first step
            (Keras setup, tracing, XLA compilation, first step).
        startup_split: its parts (kbench.record.StartupSplit), or None.
        warmup_s: duration of the unmeasured warm-up rounds.
        round_s: duration of each measured round, device synced.
        step_s: duration of every measured step.
        round_loss: the mean training loss of each measured round.
        round_noise: each measured round's telemetry (process CPU time, steal).
        flops_per_sample: approximate training FLOPs per example.
        first_loss: the loss of the run's first step (its untrained model).
        weights_changed: whether the trainable weights changed from the first
            measured round to the last (None: not known).
        counters: the compiled step's exact counters (kbench.counters): traces
            in all and while timed, graph sizes; None where not known.
    """

    spec: WorkflowSpec
    device: str
    batch_size: int
    steps_per_round: int
    startup_s: float
    startup_split: StartupSplit | None
    warmup_s: float
    round_s: tuple[float, ...]
    step_s: tuple[float, ...]
    round_loss: tuple[float, ...]
    round_noise: tuple[telemetry.RoundNoise, ...]
    flops_per_sample: int
    first_loss: float | None = None
    weights_changed: bool | None = None
    counters: counters.Counters | None = None

    @property
    def samples_per_s(self) -> tuple[float, ...]:
        samples = self.batch_size * self.steps_per_round
        return tuple(samples / s for s in self.round_s)

    @property
    def loss_drop(self) -> float:
        """How much the loss fell from the run's first step (or, where that is not known,
        the first measured round) to the last measured round, as a share."""
        first = self.round_loss[0] if self.first_loss is None else self.first_loss
        return 1 - self.round_loss[-1] / first

    def learning_failure(self, min_drop: float = LEARNING_MIN_DROP) -> str | None:
        """Why the model did not learn while timed (None if it did): a benchmark of a model
        whose weights do not change would time something other than training."""
        if self.weights_changed is False:
            return (f"{self.spec.name} did not learn while timed: its trainable weights did "
                    f"not change from the first measured round to the last")
        if not all(math.isfinite(loss) for loss in self.round_loss):
            return f"{self.spec.name} did not learn while timed: its loss {self.round_loss}"
        if len(self.round_loss) >= 2 and self.loss_drop >= min_drop:
            return None
        start = ("first measured round" if self.first_loss is None else "its first step")
        first = self.round_loss[0] if self.first_loss is None else self.first_loss
        return (f"{self.spec.name} did not learn while timed: its loss went from {first:.4f} "
                f"({start}) to {self.round_loss[-1]:.4f} (last measured round), a drop of "
                f"{_format.share(self.loss_drop)}; a learning model drops >= "
                f"{_format.share(min_drop, 0)} (LEARNING_MIN_DROP)")

    def failure(self) -> str | None:
        """Why this measurement does not count (None if it does): a compiled step that
        retraced while timed, or a model that did not learn."""
        retraced = self.counters.failure(self.spec.name) if self.counters else None
        return retraced or self.learning_failure()

    def record(self, *, peak_flops: float | None = None, profile: str | None = None,
               suite: str | None = None, comparison: str | None = None,
               variant: str | None = None, baseline: str | None = None,
               extras: Mapping[str, Any] | None = None) -> BenchmarkRecord:
        """The typed record of this measurement, with the suite's labels."""
        return BenchmarkRecord(
            samples_per_s=self.samples_per_s, batch_size=self.batch_size, spec=self.spec,
            device=self.device, steps_per_round=self.steps_per_round, round_s=self.round_s,
            startup_s=self.startup_s, startup_split=self.startup_split,
            warmup_s=self.warmup_s,
            step_latency_s=(Latencies(**stats.percentiles(self.step_s, (50, 90, 99)))
                            if self.step_s else None),
            round_loss=self.round_loss, round_noise=self.round_noise,
            invalid=self.failure(), counters=self.counters,
            flops_per_sample=self.flops_per_sample, peak_flops=peak_flops, profile=profile,
            suite=suite, comparison=comparison, variant=variant, baseline=baseline,
            extras=extras or {})


def weights_digest(model: keras.Model) -> str:
    """A digest of the bytes of ``model``'s trainable weights: equal digests, equal weights."""
    digest = hashlib.blake2b(digest_size=16)
    for variable in model.trainable_variables:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    return digest.hexdigest()


class _StartupClock(keras.callbacks.Callback):
    """Times the startup run: its first step, and each epoch (synced)."""

    async_safe = True

    def __init__(self, timer: Callable[[], float],
                 tracing: Callable[[], float] | None = None):
        super().__init__()
        self.timer = timer
        self.tracing = tracing  # TensorFlow's clock of tracing (kbench.counters.tracing_clock)
        self.first_step_start = None
        self.first_step_end = None
        self.first_tracing_s: float | None = None  # its advance over the first step
        self.first_loss: float | None = None
        self.epoch_s: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.timer()

    def on_train_batch_begin(self, batch, logs=None):
        if self.first_step_start is None:
            if self.tracing is not None:
                self.first_tracing_s = -self.tracing()
            self.first_step_start = self.timer()

    def on_train_batch_end(self, batch, logs=None):
        if self.first_step_end is None:  # the run's first step (or execution of steps)
            self.first_loss = float(logs["loss"])  # waits for it
            self.first_step_end = self.timer()
            if self.first_tracing_s is not None:
                self.first_tracing_s += self.tracing()

    def on_epoch_end(self, epoch, logs=None):
        sync_devices()
        self.epoch_s.append(self.timer() - self._epoch_start)


class SteadyStateRun:
    """One training run, advanced a round at a time by the caller.

    Entering starts a worker thread and waits for its startup: a run of two
    short epochs (the first traces and compiles, the second times a step to
    calibrate the round length). Startups are thus never concurrent: several
    runs of one lockstep group each start up alone. The worker then waits at
    every round boundary of the gated run (warm-up and measured rounds, same
    model and compiled step) until the caller asks for a round. Use as a
    context manager::

        with SteadyStateRun(spec, train_data, profile) as run:
            run.warm_up()
            for _ in range(profile.rounds):
                seconds = run.next_round()
            result = run.measurement()

    Args:
        rounds: the most measured rounds the caller may ask for (default:
            the profile's); leaving earlier is fine.
        per_step: timestamp every step (the probe: step latencies). False
            runs ``fit`` with only an epoch-boundary gate, as a plain
            ``model.fit`` runs: the harness-overhead reference.
        slowdown: an injected slowdown (a share, 0 for none), for testing
            what an A/B can detect (kbench.lockstep_ab's power self-test):
            every round, once its last step is done, waits ``slowdown / (1 -
            slowdown)`` times its own timed seconds before its clock stops,
            so its throughput is exactly ``1 - slowdown`` times what it ran
            at, however noisy the round. A wait, not work: it takes no CPU
            from anything else.
    """

    def __init__(self, spec: WorkflowSpec, train_data: tf.data.Dataset | ArrayInput, profile: Profile, *,
                 device: str = "/CPU:0", timer: Callable[[], float] = time.perf_counter,
                 timeout_s: float = ROUND_TIMEOUT_S, rounds: int | None = None,
                 per_step: bool = True, slowdown: float = 0.0,
                 steps_per_round: int | None = None):
        self.engine = training.prepare(spec, device=device)
        self.model, self.loop = self.engine.model, self.engine.loop
        self.spec, self.profile, self.device = spec, profile, device
        self.rounds = profile.rounds if rounds is None else check_positive_int("rounds", rounds)
        self.timeout_s = timeout_s
        self.timer = timer
        self.probe = (_RoundProbe if per_step else _RoundGate)(timer, timeout_s)
        self.probe.stretch = check_number("slowdown", slowdown, low=0, high=1,
                                          high_open=True) / (1 - slowdown) if slowdown else 0.0
        self.startup = _StartupClock(timer, counters.tracing_clock())
        self.steps_per_round: int | None = None  # timed steps a round, set by the calibration
        # ... unless given: two runs compared round for round do the same work a round
        # (a round's fixed cost, ~15 ms here, would favour the one with more steps).
        self._fixed_steps = None if steps_per_round is None else check_positive_int(
            "steps_per_round", steps_per_round)
        if self._fixed_steps is not None and self._fixed_steps % spec.steps_per_execution:
            raise MeasurementError(
                f"steps_per_round must be a multiple of the spec's steps_per_execution "
                f"({spec.steps_per_execution}), got {steps_per_round!r}")
        self.lead_steps = 0  # untimed steps before them (see lead_steps), set with them
        self._per_execution = spec.steps_per_execution  # the probe sees one batch per execution
        self._train_data = train_data
        self._thread: threading.Thread | None = None
        self._requested = 0
        self._step_s: float | None = None  # a steady step's seconds, from the calibration
        self._weights_before: str | None = None  # digest before the first measured round
        self._traces_before: dict[str, int] = {}  # trace counts then
        self.flops_per_sample = training_flops_per_sample(
            self.model, models.input_shape_for(spec.family))

    @property
    def startup_s(self) -> float:
        """From the start of the run to the end of its first step (tracing, compiling)."""
        return self.startup.first_step_end - self.run_start

    @property
    def startup_split(self) -> StartupSplit | None:
        """The startup's setup, first execution and a steady execution (None before the
        calibration, or where no step started)."""
        clock = self.startup
        if self._step_s is None or clock.first_step_start is None:
            return None
        return StartupSplit(setup_s=clock.first_step_start - self.run_start,
                            first_execution_s=clock.first_step_end - clock.first_step_start,
                            execution_s=self._step_s * self._per_execution,
                            tracing_s=clock.first_tracing_s)

    @property
    def total_rounds(self) -> int:
        return self.profile.warmup_rounds + self.rounds

    def __enter__(self) -> "SteadyStateRun":
        self._thread = threading.Thread(target=self._work, name=f"kbench-{self.spec.name}",
                                        daemon=True)
        self._thread.start()
        try:
            self._wait("startup", expect="ready")
        except BaseException:
            self._thread.join(self.timeout_s)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        """Stop the worker at its next round boundary and wait for it (settings restored)."""
        self.probe.closed = True
        self.probe.go.release()
        self._thread.join(self.timeout_s)

    def _work(self) -> None:
        try:
            with self.engine.settings():
                self.run_start = self.timer()
                multiple = self._per_execution
                # One execution traces (startup_s), one more gives a rough step time,
                # so that the calibration epochs last about a round, however slow
                # the step (a fixed count of slow steps would take minutes).
                self.loop.run(self._epochs_of(multiple), epochs=2, callbacks=[self.startup],
                              steps_per_epoch=multiple)
                calibration = calibrated_steps(self.startup.epoch_s[1] / multiple,
                                               self.profile, multiple)
                self.loop.run(self._epochs_of(calibration), epochs=CALIBRATION_EPOCHS,
                              callbacks=[self.startup], steps_per_epoch=calibration)
                # Their median is the step time.
                step_s = float(np.median(self.startup.epoch_s[2:])) / calibration
                self._step_s = step_s
                self.steps_per_round = (self._fixed_steps or
                                        calibrated_steps(step_s, self.profile, multiple))
                self.lead_steps = lead_steps(step_s, self.profile, multiple)
                if self.lead_steps:
                    self.probe.lead_end_step = self.lead_steps - 1
                self.probe.finished.put(("ready", None))
                self.loop.run(self._epochs_of(self.lead_steps + self.steps_per_round),
                              epochs=self.total_rounds,
                              steps_per_epoch=self.lead_steps + self.steps_per_round,
                              callbacks=[self.probe])
            self.probe.finished.put(("done", None))
        except _Closed:
            self.probe.finished.put(("closed", None))
        except BaseException as err:  # handed to the caller's thread
            self.probe.finished.put(("error", err))

    def _epochs_of(self, steps: int):
        """The training input for epochs of ``steps`` steps: a pipeline as it is (it
        repeats); arrays cut to whole epochs (fit would stop an epoch short where a
        pass over them ran out)."""
        if isinstance(self._train_data, ArrayInput):
            return self._train_data.whole_epochs(steps)
        return self._train_data

    def _wait(self, what: str, expect: str) -> None:
        try:
            kind, value = self.probe.finished.get(timeout=self.timeout_s)
        except queue.Empty:
            raise MeasurementError(f"{self.spec.name}: its {what} took over "
                                   f"{self.timeout_s} s") from None
        if kind == "error":
            raise MeasurementError(f"{self.spec.name} failed during its {what}: "
                                   f"{type(value).__name__}: {value}") from value
        if kind != expect:
            raise MeasurementError(f"{self.spec.name}: the input ran out in its {what}; "
                                   "repeat() the training data")

    def next_round(self) -> float:
        """Let the run do one more round of steps, wait until it is done (synced), and
        return its seconds."""
        if self._requested >= self.total_rounds:
            raise MeasurementError(f"{self.spec.name}: all {self.total_rounds} rounds "
                                   f"({self.profile.warmup_rounds} warm-up + {self.rounds}) "
                                   "have run; ask for more with rounds=")
        if self._requested == self.profile.warmup_rounds:  # the first measured round
            # Read while its thread waits at go: the weights, and how often each
            # compiled step has traced so far.
            self._weights_before = weights_digest(self.model)
            self._traces_before = counters.tracing_counts(self.loop.compiled_train_functions())
        self._requested += 1
        self.probe.go.release()
        self._wait(f"round {self._requested}", expect="round")
        round_ = self.probe.rounds[-1]
        executions = (self.lead_steps + self.steps_per_round) // self._per_execution
        short = (len(round_["steps"]) != executions if self.probe.per_step
                 else self.lead_steps and "lead" not in round_)
        if short:
            raise MeasurementError(f"{self.spec.name}: the input ran out in round "
                                   f"{self._requested}; repeat() the training data")
        return self.probe.timed_s(round_)

    def warm_up(self) -> None:
        """Run the unmeasured warm-up rounds."""
        for _ in range(self.profile.warmup_rounds):
            self.next_round()

    def measurement(self) -> Measurement:
        """The record of the rounds run so far (all warm-up rounds must be done)."""
        probe, warm = self.probe, self.profile.warmup_rounds
        measured = probe.rounds[warm:]
        if not measured:
            raise MeasurementError("no measured round has run yet")
        return Measurement(
            spec=self.spec, device=self.device, batch_size=self.spec.batch_size,
            steps_per_round=self.steps_per_round,
            startup_s=self.startup_s,
            startup_split=self.startup_split,
            warmup_s=sum(r["end"] - r["start"] for r in probe.rounds[:warm]),
            round_s=tuple(probe.timed_s(r) for r in measured),
            # One reading per execution: its mean step time (none without the probe).
            step_s=tuple(s / self._per_execution for r in measured if r["steps"]
                         for s in np.diff([r.get("lead", r["start"]),
                                           *probe.timed_step_ends(r)])),
            round_loss=tuple(r["loss"] for r in measured),
            round_noise=tuple(r["noise"] for r in measured),
            flops_per_sample=self.flops_per_sample,
            first_loss=self.startup.first_loss,
            # Read while the worker waits between rounds (or has finished).
            weights_changed=weights_digest(self.model) != self._weights_before,
            counters=counters.Counters.between(self.loop.compiled_train_functions(),
                                               self._traces_before),
        )


def measure(spec: WorkflowSpec, train_data: tf.data.Dataset | ArrayInput, profile: Profile, *,
            device: str = "/CPU:0") -> Measurement:
    """Measure ``spec`` alone on ``train_data``: the profile's warm-up and measured rounds.

    (The benchmark suites measure variants interleaved instead: kbench.interleaved.)
    """
    with SteadyStateRun(spec, train_data, profile, device=device) as run:
        run.warm_up()
        for _ in range(profile.rounds):
            run.next_round()
        return run.measurement()


def write_record(benchmark, record: BenchmarkRecord) -> None:
    """Put ``record`` into pytest-benchmark's ``extra_info``, replacing what was there."""
    benchmark.extra_info.clear()
    benchmark.extra_info.update(record.to_extra_info())
