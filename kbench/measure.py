"""Timing training honestly: startup apart, device synced, per-round and per-step samples.

A measurement runs ONE model through the engine in :mod:`kbench.training`
(``fit`` or the custom loop) over a repeated input pipeline:

- startup: a first run of two short epochs on the model. The first traces
  and compiles (tracing, XLA compilation, first steps: ``startup_s``); the
  second times ``steps_per_round`` steps to calibrate how many steps a round
  needs to last ``profile.min_round_s``.
- the gated run, on the same model and compiled step, in *rounds* of that
  many steps (Keras epochs with ``steps_per_epoch=K``): ``warmup_rounds``
  unmeasured, then the measured rounds. Each round ends with a device sync
  (``tf.test.experimental.sync_devices``) before the clock is read, so
  asynchronous GPU work is inside the round it belongs to.

The run lives in a worker thread and waits at each round boundary until the
caller asks for the next round (:meth:`SteadyStateRun.next_round`). That lets
pytest-benchmark time rounds of one continuous run, instead of calling
``model.fit`` once per round (which would restart the input pipeline and
re-create Keras's epoch iterator each time, and time that too).

Measurement never formats: summaries and tables live in kbench.report.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from kbench import _format, models, stats, telemetry, training
from kbench._validate import check_positive_int
from kbench.distribute import sync_devices
from kbench.flops import training_flops_per_sample
from kbench.profiles import Profile
from kbench.record import BenchmarkRecord, Latencies
from kbench.workflows import WorkflowSpec

# How long a round may take before the harness gives up on the worker: far
# above any profile's round (seconds), far below CI's limit.
ROUND_TIMEOUT_S = 600.0


# The learning check: the training loss must fall by at least this share from
# the first measured round to the last. Measured here (mnist_5k, batch 64, seeds
# 0-1, fit and custom, smoke- and default-shaped rounds): learning MLPs and CNNs
# dropped 20-42%; the same models with learning rate 0 moved -1.6% to +1.8%
# (batch-to-batch noise of the round means). 5% sits 2.8x above the frozen
# models' largest move and 4x below the learning models' smallest drop.
LEARNING_MIN_DROP = 0.05


class MeasurementError(RuntimeError):
    """A measurement could not be taken as asked."""


# A round never grows beyond this many steps, whatever the calibration says.
MAX_STEPS_PER_ROUND = 5000


def calibrated_steps(step_s: float, profile: Profile, multiple: int = 1) -> int:
    """Steps per round for a step time: at least the profile's minimum and its round time,
    rounded up to a ``multiple`` (the spec's steps_per_execution: whole executions)."""
    if not step_s > 0:
        raise MeasurementError(f"a calibration step must take time, got {step_s!r} s")
    # Rounded first so float noise (0.5 / 0.01 = 50.000000000000004) adds no step.
    wanted = math.ceil(round(profile.min_round_s / step_s, 9))
    steps = min(MAX_STEPS_PER_ROUND, max(profile.steps_per_round, wanted))
    return _whole_executions(steps, multiple)


def _whole_executions(steps: int, multiple: int) -> int:
    return -(-steps // multiple) * multiple


# --------------------------------------------------------------------------- the run


class _RoundProbe(keras.callbacks.Callback):
    """Gates rounds (epochs) on the caller and timestamps every step's completion.

    One callback does both, so its clock reads sit right after the gate opens
    and right before it is signalled.

    ``async_safe``: Keras then runs ``on_train_batch_end`` in its callback
    thread pool instead of blocking the training loop on it, exactly as a
    plain ``model.fit`` with no batch-level callback runs (a blocking callback
    costs ~30% of a small model's throughput on CPU). There, fetching the loss
    waits for that step alone; the round's end waits for all of them.
    """

    async_safe = True

    def __init__(self, timer: Callable[[], float], timeout_s: float,
                 stopwatch: telemetry.Stopwatch | None = None):
        super().__init__()
        self.timer, self.timeout_s = timer, timeout_s
        self.stopwatch = stopwatch or telemetry.Stopwatch()
        self.go = threading.Semaphore(0)
        self.finished: queue.SimpleQueue = queue.SimpleQueue()
        self.run_start = None
        self.rounds: list[dict] = []

    def on_epoch_begin(self, epoch, logs=None):
        if not self.go.acquire(timeout=self.timeout_s):
            raise MeasurementError(f"no round was requested within {self.timeout_s} s")
        watch = self.stopwatch.start()
        self.rounds.append({"start": self.timer(), "steps": {}, "watch": watch})

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])  # waits for this step's loss
        self.rounds[-1]["steps"][batch] = (self.timer(), loss)

    def on_epoch_end(self, epoch, logs=None):
        sync_devices()
        self.rounds[-1]["end"] = self.timer()
        self.rounds[-1]["noise"] = self.stopwatch.stop(self.rounds[-1]["watch"])
        self.finished.put(("round", len(self.rounds)))

    @staticmethod
    def step_ends(round_: dict) -> list[float]:
        # Sorted as times: callback threads may record neighbouring steps out of order.
        return sorted(t for t, _ in round_["steps"].values())

    @staticmethod
    def round_loss(round_: dict) -> float:
        """The round's mean loss: Keras reports the epoch's running mean, so its last step's."""
        return round_["steps"][max(round_["steps"])][1]


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What a steady-state measurement of one workflow produced.

    Attributes:
        spec: the workflow measured.
        device: the TF device it ran on.
        batch_size, steps_per_round: the round shape.
        startup_s: from the start of the run to the end of its first step
            (Keras setup, tracing, XLA compilation, first step).
        warmup_s: duration of the unmeasured warm-up rounds.
        round_s: duration of each measured round, device synced.
        step_s: duration of every measured step.
        round_loss: the mean training loss of each measured round.
        round_noise: each measured round's telemetry (process CPU time, steal).
        flops_per_sample: approximate training FLOPs per example.
    """

    spec: WorkflowSpec
    device: str
    batch_size: int
    steps_per_round: int
    startup_s: float
    warmup_s: float
    round_s: tuple[float, ...]
    step_s: tuple[float, ...]
    round_loss: tuple[float, ...]
    round_noise: tuple[telemetry.RoundNoise, ...]
    flops_per_sample: int

    @property
    def samples_per_s(self) -> tuple[float, ...]:
        samples = self.batch_size * self.steps_per_round
        return tuple(samples / s for s in self.round_s)

    @property
    def loss_drop(self) -> float:
        """How much the loss fell from the first measured round to the last, as a share."""
        return 1 - self.round_loss[-1] / self.round_loss[0]

    def learning_failure(self, min_drop: float = LEARNING_MIN_DROP) -> str | None:
        """Why the model did not learn while timed (None if it did): a benchmark of a model
        whose weights do not change would time something other than training."""
        if len(self.round_loss) >= 2 and self.loss_drop >= min_drop:
            return None
        first, last = self.round_loss[0], self.round_loss[-1]
        return (f"{self.spec.name} did not learn while timed: its loss went from {first:.4f} "
                f"(first measured round) to {last:.4f} (last), a drop of "
                f"{_format.share(self.loss_drop)}; a learning model drops >= "
                f"{_format.share(min_drop, 0)} (LEARNING_MIN_DROP)")

    def record(self, *, peak_flops: float | None = None, profile: str | None = None,
               suite: str | None = None, comparison: str | None = None,
               variant: str | None = None, baseline: str | None = None,
               extras: Mapping[str, Any] | None = None) -> BenchmarkRecord:
        """The typed record of this measurement, with the suite's labels."""
        return BenchmarkRecord(
            samples_per_s=self.samples_per_s, batch_size=self.batch_size, spec=self.spec,
            device=self.device, steps_per_round=self.steps_per_round, round_s=self.round_s,
            startup_s=self.startup_s, warmup_s=self.warmup_s,
            step_latency_s=Latencies(**stats.percentiles(self.step_s, (50, 90, 99))),
            round_loss=self.round_loss, round_noise=self.round_noise,
            invalid=self.learning_failure(),
            flops_per_sample=self.flops_per_sample, peak_flops=peak_flops, profile=profile,
            suite=suite, comparison=comparison, variant=variant, baseline=baseline,
            extras=extras or {})


class _StartupClock(keras.callbacks.Callback):
    """Times the startup run: its first step, and each epoch (synced)."""

    async_safe = True

    def __init__(self, timer: Callable[[], float]):
        super().__init__()
        self.timer = timer
        self.first_step_end = None
        self.epoch_s: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.timer()

    def on_train_batch_end(self, batch, logs=None):
        if self.first_step_end is None:  # the run's first step (or execution of steps)
            float(logs["loss"])  # waits for it
            self.first_step_end = self.timer()

    def on_epoch_end(self, epoch, logs=None):
        sync_devices()
        self.epoch_s.append(self.timer() - self._epoch_start)


class SteadyStateRun:
    """One training run, advanced a round at a time by the caller.

    In the worker thread: a startup run of two short epochs (the first traces
    and compiles, the second times a step to calibrate the round length), then
    the gated run of warm-up and measured rounds, on the same model and
    compiled step. Use as a context manager::

        with SteadyStateRun(spec, train_data, profile) as run:
            run.warm_up()
            for _ in range(profile.rounds):
                run.next_round()      # time this from outside, or read run.measurement()
    """

    def __init__(self, spec: WorkflowSpec, train_data: tf.data.Dataset, profile: Profile, *,
                 device: str = "/CPU:0", timer: Callable[[], float] = time.perf_counter,
                 timeout_s: float = ROUND_TIMEOUT_S):
        self.engine = training.prepare(spec, device=device)
        self.model, self.loop = self.engine.model, self.engine.loop
        self.spec, self.profile, self.device = spec, profile, device
        self.timeout_s = timeout_s
        self.timer = timer
        self.probe = _RoundProbe(timer, timeout_s)
        self.startup = _StartupClock(timer)
        self.steps_per_round: int | None = None  # set by the calibration
        self._per_execution = spec.steps_per_execution  # the probe sees one batch per execution
        self._train_data = train_data
        self._thread: threading.Thread | None = None
        self._requested = 0
        self.flops_per_sample = training_flops_per_sample(
            self.model, models.input_shape_for(spec.family))

    @property
    def total_rounds(self) -> int:
        return self.profile.warmup_rounds + self.profile.rounds

    def __enter__(self) -> "SteadyStateRun":
        self._thread = threading.Thread(target=self._work, name=f"kbench-{self.spec.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        # Release any round the worker still waits for, so it can finish.
        for _ in range(self.total_rounds - self._requested):
            self.probe.go.release()
        self._thread.join(self.timeout_s)

    def _work(self) -> None:
        try:
            with self.engine.settings():
                self.run_start = self.timer()
                calibration = _whole_executions(self.profile.steps_per_round, self._per_execution)
                self.loop.run(self._train_data, epochs=2, callbacks=[self.startup],
                              steps_per_epoch=calibration)
                step_s = self.startup.epoch_s[-1] / calibration
                self.steps_per_round = calibrated_steps(step_s, self.profile,
                                                        self._per_execution)
                self.loop.run(self._train_data, epochs=self.total_rounds,
                              steps_per_epoch=self.steps_per_round, callbacks=[self.probe])
            self.probe.finished.put(("done", None))
        except BaseException as err:  # handed to the caller's thread
            self.probe.finished.put(("error", err))

    def next_round(self) -> None:
        """Let the run do one more round of steps and wait until it is done (synced)."""
        self._requested += 1
        self.probe.go.release()
        try:
            kind, value = self.probe.finished.get(timeout=self.timeout_s)
        except queue.Empty:
            raise MeasurementError(f"{self.spec.name}: a round took over {self.timeout_s} s") from None
        if kind == "error":
            raise MeasurementError(f"{self.spec.name} failed during round {self._requested}: "
                                   f"{type(value).__name__}: {value}") from value
        executions = self.steps_per_round // self._per_execution
        if kind == "done" or len(self.probe.rounds[-1]["steps"]) != executions:
            raise MeasurementError(f"{self.spec.name}: the input ran out in round "
                                   f"{self._requested}; repeat() the training data")

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
            startup_s=self.startup.first_step_end - self.run_start,
            warmup_s=sum(r["end"] - r["start"] for r in probe.rounds[:warm]),
            round_s=tuple(r["end"] - r["start"] for r in measured),
            # One reading per execution: its mean step time.
            step_s=tuple(s / self._per_execution for r in measured
                         for s in np.diff([r["start"], *probe.step_ends(r)])),
            round_loss=tuple(float(probe.round_loss(r)) for r in measured),
            round_noise=tuple(r["noise"] for r in measured),
            flops_per_sample=self.flops_per_sample,
        )


def measure(spec: WorkflowSpec, train_data: tf.data.Dataset, profile: Profile, *,
            device: str = "/CPU:0", round_runner: Callable[[Callable[[], None], int], None] | None = None
            ) -> Measurement:
    """Measure ``spec`` on ``train_data`` under ``profile``.

    Args:
        round_runner: calls ``next_round`` ``rounds`` times; pytest-benchmark's
            ``pedantic`` in the benchmarks, a plain loop by default.
    """
    runner = round_runner or (lambda fn, n: [fn() for _ in range(n)])
    with SteadyStateRun(spec, train_data, profile, device=device) as run:
        run.warm_up()
        runner(run.next_round, profile.rounds)
        return run.measurement()


def benchmark_training(benchmark, spec: WorkflowSpec, train_data: tf.data.Dataset,
                       profile: Profile, *, device: str = "/CPU:0",
                       peak_flops: float | None = None, **labels) -> Measurement:
    """Time ``spec`` with pytest-benchmark: one pedantic round per training round.

    The measurement's :class:`~kbench.record.BenchmarkRecord` (rounds, startup,
    step latencies, FLOPs and MFU, ``labels``: suite, comparison, variant,
    baseline, extras) goes into ``benchmark.extra_info``.
    """
    if labels.get("comparison"):
        benchmark.group = labels["comparison"]  # read when pedantic starts
    with SteadyStateRun(spec, train_data, profile, device=device) as run:
        run.warm_up()
        benchmark.pedantic(run.next_round, rounds=profile.rounds, iterations=1)
        result = run.measurement()
    write_record(benchmark, result.record(peak_flops=peak_flops, profile=profile.name, **labels))
    return result


def write_record(benchmark, record: BenchmarkRecord) -> None:
    """Put ``record`` into pytest-benchmark's ``extra_info``, replacing what was there.

    (pytest-benchmark reads ``benchmark.group`` when ``pedantic`` starts: set it before.)
    """
    benchmark.extra_info.clear()
    benchmark.extra_info.update(record.to_extra_info())


def add_extras(benchmark, **extras) -> BenchmarkRecord:
    """Add a suite's own numbers (e.g. a reference throughput) to the record in ``benchmark``."""
    record = BenchmarkRecord.from_extra_info(benchmark.extra_info)
    record = record.replace(extras={**record.extras, **extras})
    write_record(benchmark, record)
    return record


def _timed_fit(model: keras.Model, train_data: tf.data.Dataset, steps: int,
               timer: Callable[[], float]) -> float:
    """Seconds for one plain ``model.fit`` of ``steps`` steps, device synced."""
    sync_devices()
    start = timer()
    model.fit(train_data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    sync_devices()
    return timer() - start


def bare_fit_throughput(spec: WorkflowSpec, train_data: tf.data.Dataset, *, steps: int,
                        warmup_steps: int, repeats: int = 3, device: str = "/CPU:0",
                        timer: Callable[[], float] = time.perf_counter) -> float:
    """Samples/s of plain, hand-timed ``model.fit`` calls (no kbench callback at all).

    One model: an untimed fit of ``warmup_steps`` traces the train function
    (Keras keeps it across fit calls), then ``repeats`` pairs of timed fits of
    1 and ``1 + steps`` steps. Each pair's difference is the time of ``steps``
    steady-state steps with the per-fit setup (epoch iterator, pipeline
    start-up) cancelled out; the median pair is returned. The reference for
    the harness-overhead check.
    """
    check_positive_int("repeats", repeats)
    engine = training.prepare(spec, device=device)
    model = engine.model
    with engine.settings():
        model.fit(train_data, steps_per_epoch=max(1, warmup_steps), epochs=1, verbose=0,
                  shuffle=False)
        differences = []
        for _ in range(repeats):
            short = _timed_fit(model, train_data, 1, timer)
            long = _timed_fit(model, train_data, 1 + steps, timer)
            differences.append(long - short)
    difference = float(np.median(differences))
    if difference <= 0:
        raise MeasurementError(f"bare fit of {steps} more steps took no time "
                               f"(pairs differ by {differences} s); use more steps")
    return steps * spec.batch_size / difference
