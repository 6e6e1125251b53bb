"""The inputs benchmarks feed: endless training pipelines, cached compute-only batches,
and the pipeline alone (input-only), pulled as training pulls it."""

from __future__ import annotations

import time
from collections.abc import Callable

import tensorflow as tf

from kbench import data as kdata
from kbench import telemetry, training
from kbench.data.pipelines import ArrayInput, make_array_input
from kbench.measure import MeasurementError, calibrated_steps, lead_steps
from kbench.profiles import Profile
from kbench.record import BenchmarkRecord
from kbench.workflows import WorkflowSpec


def training_input(spec: WorkflowSpec, dataset: kdata.Dataset | None = None,
                   **pipeline_overrides) -> tf.data.Dataset | ArrayInput:
    """The spec's training input as a benchmark feeds it.

    ``tfdata``: the pipeline, endless, in full batches: repeated before the
    shuffle, so no round pays an epoch boundary's shuffle buffer refill and
    every batch has ``batch_size`` examples. ``numpy``: the arrays ``fit``
    batches and shuffles itself (a steady-state run cuts them to whole rounds:
    :meth:`~kbench.data.pipelines.ArrayInput.whole_epochs`).

    Raises:
        ValueError: pipeline options given for NumPy input, naming them.
    """
    dataset = dataset if dataset is not None else kdata.load_dataset(spec.dataset, seed=spec.seed)
    if spec.input_kind == "numpy":
        if pipeline_overrides:
            raise ValueError(f"NumPy input to fit takes no pipeline options, got "
                             f"{sorted(pipeline_overrides)}; use input_kind='tfdata'")
        return make_array_input(dataset.x_train, dataset.y_train,
                                training.pipeline_options(spec))
    options = training.pipeline_options(spec, repeat=True, drop_remainder=True,
                                        **pipeline_overrides)
    return kdata.make_pipeline(dataset.x_train, dataset.y_train, options)


def compute_only_input(train_data: tf.data.Dataset, steps: int) -> tf.data.Dataset:
    """``steps`` batches of ``train_data`` cached in memory and repeated: no input cost.

    The first pass (the warm-up round) fills the cache.
    """
    return train_data.take(steps).cache().repeat()


class InputOnlyRun:
    """The input pipeline alone, pulled the way ``fit`` pulls it: one ``tf.function``
    call per step with the iterator's ``get_next`` inside (no Python ``next()``,
    which costs more per batch than training's own iteration and would make the
    "bound" slower than training itself).

    A lockstep runner (``warm_up()``, ``next_round() -> seconds``), like
    :class:`kbench.measure.SteadyStateRun`: the warm-up traces the pull, fills
    the pipeline's buffers, calibrates the steps per round to last
    ``profile.min_round_s`` and runs the profile's warm-up rounds. Each round
    pulls its lead (:func:`kbench.measure.lead_steps`) untimed first.
    """

    def __init__(self, spec: WorkflowSpec, pipeline: tf.data.Dataset, profile: Profile, *,
                 timer: Callable[[], float] = time.perf_counter,
                 stopwatch: telemetry.Stopwatch | None = None):
        self.spec, self.profile, self.timer = spec, profile, timer
        self.stopwatch = stopwatch or telemetry.Stopwatch()
        self.iterator = iter(pipeline)
        self.steps_per_round: int | None = None
        self.lead_steps = 0
        self.round_s: list[float] = []
        self.round_noise: list[telemetry.RoundNoise] = []
        self._warm = False

        @tf.function
        def pull(iterator):
            _, y = next(iterator)
            return tf.size(y)  # a tiny output; get_next is stateful and never pruned

        self._pull = pull

    def __enter__(self) -> "InputOnlyRun":
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def _pull_n(self, steps: int) -> None:
        for _ in range(steps):
            self._pull(self.iterator)

    def _steps(self, steps: int) -> float:
        start = self.timer()
        self._pull_n(steps)
        return self.timer() - start

    def warm_up(self) -> None:
        self._pull_n(self.profile.steps_per_round)  # traces the pull, fills the buffers
        step_s = self._steps(self.profile.steps_per_round) / self.profile.steps_per_round
        self.steps_per_round = calibrated_steps(step_s, self.profile)
        self.lead_steps = lead_steps(step_s, self.profile)
        self._pull_n(self.profile.warmup_rounds * (self.lead_steps + self.steps_per_round))
        self._warm = True

    def next_round(self) -> float:
        if not self._warm:
            raise MeasurementError("warm_up() the input-only run before its rounds")
        token = self.stopwatch.start()
        self._pull_n(self.lead_steps)  # untimed, as a training round's lead
        # Timed as a training round is: from a quiet process (the buffers refilled
        # after the lead) to a quiet process (refilled after the round).
        start = telemetry.wait_quiet(self.timer)
        self._pull_n(self.steps_per_round)
        seconds = telemetry.wait_quiet(self.timer) - start
        self.round_noise.append(self.stopwatch.stop(token))
        self.round_s.append(seconds)
        return seconds

    def record(self, **labels) -> BenchmarkRecord:
        """The measured rounds as a record (device "host": tf.data runs there)."""
        if not self.round_s:
            raise MeasurementError("no measured round of the input-only run has run yet")
        samples = self.spec.batch_size * self.steps_per_round
        return BenchmarkRecord(
            samples_per_s=tuple(samples / s for s in self.round_s),
            batch_size=self.spec.batch_size, spec=self.spec, device="host",
            steps_per_round=self.steps_per_round, round_s=tuple(self.round_s),
            round_noise=tuple(self.round_noise), **labels)
