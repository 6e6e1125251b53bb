"""The one training engine: every workflow variant runs through here.

A variant is data (a :class:`~kbench.workflows.WorkflowSpec`), never a copy of
the loop. :func:`prepare` is the one place a run is set up, for training,
resumable training (:mod:`kbench.resume`), measurement (:mod:`kbench.measure`)
and worker processes (:mod:`kbench.cluster`) alike: it refuses a known
upstream bug, seeds, builds and compiles the model and wraps it in its loop.
The returned :class:`Engine` says what must stay in effect while it trains
(:meth:`Engine.settings`). The spec's fields are read through tables:

- ``loop`` and ``execution``: :data:`kbench.loops.LOOPS` and
  :data:`kbench.loops.STEP_COMPILERS`; ``fit`` gets the execution through
  ``compile(run_eagerly=..., jit_compile=...)``.
- ``precision``: a Keras dtype policy, active while the model is built and
  trains and restored afterwards even on error (:func:`precision_policy`).
  Loss scaling for ``mixed_float16`` comes from the optimizer Keras wraps in
  ``LossScaleOptimizer`` at ``compile``.
- ``deterministic``: TF op determinism, on while the model is built and trains.
- ``strategy``: the tf.distribute strategy (:mod:`kbench.distribute`); the
  model and its optimizer are created in ``strategy.scope()``.

:func:`train` runs an engine over the spec's dataset and returns a
:class:`TrainResult` whose steps are counted as they ran.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

import keras
import tensorflow as tf

from kbench import callbacks as kcallbacks
from kbench import data as kdata
from kbench import distribute, fingerprint, models
from kbench import workflows
from kbench.data.pipelines import make_array_input, validation_holdout
from kbench.loops import CustomLoop, FitLoop, make_loop, make_loss
from kbench.workflows import WorkflowSpec


def check_supported(spec: WorkflowSpec) -> None:
    """Raise UpstreamBugError if ``spec`` hits a known upstream bug on this machine."""
    workflows.check_supported(spec, gpu_visible=bool(distribute.gpu_devices()))


_OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}


def make_optimizer(spec: WorkflowSpec) -> keras.optimizers.Optimizer:
    """A fresh optimizer of the spec's kind and learning rate."""
    return _OPTIMIZERS[spec.optimizer](learning_rate=spec.learning_rate)


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Set Keras's global dtype policy; restore the previous one on exit, even on error."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@contextlib.contextmanager
def op_determinism(enabled: bool = True) -> Iterator[None]:
    """Turn TF op determinism on (or off) inside the block; restore it on exit."""
    from tensorflow.python.framework import config as tf_config  # no public disable

    previous = fingerprint.op_determinism_enabled(tf)
    (tf_config.enable_op_determinism if enabled else tf_config.disable_op_determinism)()
    try:
        yield
    finally:
        (tf_config.enable_op_determinism if previous else tf_config.disable_op_determinism)()


@contextlib.contextmanager
def run_settings(spec: WorkflowSpec, device: str | None = None) -> Iterator[None]:
    """The spec's precision policy and op determinism (and ``tf.device(device)``); restored
    on exit."""
    with contextlib.ExitStack() as stack:
        if device is not None:
            stack.enter_context(tf.device(device))
        stack.enter_context(precision_policy(spec.precision))
        stack.enter_context(op_determinism(spec.deterministic))
        yield


def build_compiled_model(spec: WorkflowSpec, model: keras.Model | None = None,
                         strategy: tf.distribute.Strategy | None = None) -> keras.Model:
    """Build the spec's model under its precision policy and compile it for its loop.

    Both loops compile: ``fit`` needs it, and the custom loop uses the compiled
    optimizer (with Keras's loss scaling under mixed_float16) so that callbacks
    such as ReduceLROnPlateau find ``model.optimizer`` as they do in ``fit``.

    Args:
        spec: the workflow.
        model: a model to compile instead of building the spec's (it must have
            been built under the spec's precision policy and strategy).
        strategy: the strategy to build in; default: a new one from the spec
            (:func:`kbench.distribute.make_strategy`).
    """
    strategy = strategy or distribute.make_strategy(spec)
    with precision_policy(spec.precision), strategy.scope():
        if model is None:
            model = models.build_model(spec.family, spec.style, hidden_units=spec.hidden_units,
                                       dropout=spec.dropout, output=spec.output)
        model.compile(
            optimizer=make_optimizer(spec),
            loss=make_loss(spec),
            metrics=["accuracy"],
            run_eagerly=spec.execution == "eager",
            jit_compile=spec.execution == "xla",
            steps_per_execution=spec.steps_per_execution,
        )
    return model


def pipeline_options(spec: WorkflowSpec, **overrides) -> kdata.PipelineOptions:
    """The tutorials' input for a spec: for ``tfdata``, a pipeline that caches, shuffles
    (seeded), batches and prefetches; for ``numpy``, arrays fit batches and shuffles.
    Labels are one-hot when the spec's are."""
    settings = {
        "batch_size": spec.batch_size,
        "channel_axis": models.needs_channel_axis(spec.family),
        "shuffle": True,
        "shuffle_seed": spec.seed,
        "one_hot": spec.labels == "onehot",
    }
    if spec.input_kind == "tfdata":
        settings.update(cache=spec.cache, shuffle_buffer=spec.shuffle_buffer,
                        prefetch=kdata.AUTOTUNE)
    settings.update(overrides)
    return kdata.PipelineOptions(**settings)


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What one run trains, validates and tests on, in the spec's input kind.

    Attributes:
        train: the training input (a tf.data pipeline or an ArrayInput).
        validation: what the run validates on after each epoch: the held-out
            end of the training split when the spec has a ``validation_split``,
            else the test split.
        test: the test split, evaluated after training.
        examples: training examples in one epoch.
    """

    train: object
    validation: object
    test: object
    examples: int


def make_inputs(spec: WorkflowSpec, dataset: kdata.Dataset,
                options: kdata.PipelineOptions) -> Inputs:
    """The spec's inputs over ``dataset``: a pipeline per split or arrays for fit, and the
    validation split held out as ``fit(validation_split=)`` holds it out."""
    make = make_array_input if spec.input_kind == "numpy" else kdata.make_pipeline
    unshuffled = dataclasses.replace(options, shuffle=False)
    x_train, y_train = dataset.x_train, dataset.y_train
    test = make(dataset.x_test, dataset.y_test, unshuffled, split="test")
    if spec.validation_split:
        x_train, y_train, x_val, y_val = validation_holdout(x_train, y_train,
                                                            spec.validation_split)
        validation = make(x_val, y_val, unshuffled, split="validation")
    else:
        validation = test
    return Inputs(train=make(x_train, y_train, options, split="train"), validation=validation,
                  test=test, examples=len(x_train))


# --------------------------------------------------------------------------- the seam


@dataclasses.dataclass(frozen=True)
class Engine:
    """A spec's compiled model in its loop, ready to train.

    Train inside :meth:`settings`, in whatever thread: it puts back the
    precision policy, op determinism and device the model was built under.
    """

    spec: WorkflowSpec
    model: keras.Model = dataclasses.field(repr=False)
    loop: FitLoop | CustomLoop = dataclasses.field(repr=False)
    device: str | None = None

    @property
    def strategy(self) -> tf.distribute.Strategy:
        return self.model.distribute_strategy

    def settings(self) -> contextlib.AbstractContextManager:
        """What must be in effect while the engine trains (:func:`run_settings`)."""
        return run_settings(self.spec, self.device)

    def result(self, counter: "RunCounter", history: dict[str, list[float]], test_data, *,
               wall_time_s: float, resumed_from: int) -> "TrainResult":
        """The record of a finished run: ``counter``'s counts, and the test split evaluated now."""
        test = self.loop.evaluate(test_data)
        return TrainResult(
            spec=self.spec, history=history, test_loss=test["loss"],
            test_accuracy=test["accuracy"], epochs_run=len(counter.steps),
            steps=sum(counter.steps), samples_seen=counter.samples_seen,
            wall_time_s=wall_time_s, resumed_from=resumed_from, model=self.model)


def prepare(spec: WorkflowSpec, *, model: keras.Model | None = None, device: str | None = None,
            allow_known_issue: bool = False) -> Engine:
    """Set a run up: refuse a known upstream bug, seed, build and compile the model in the
    spec's strategy, precision and determinism, and wrap it in the spec's loop.

    Args:
        spec: the workflow.
        model: a model to train instead of building the spec's; the engine
            compiles it (build it under the spec's precision policy).
        device: build (and, in :meth:`Engine.settings`, train) under ``tf.device(device)``.
        allow_known_issue: set up a spec that hits a known upstream bug anyway
            (the tests use it to see whether the bug is still there).

    Raises:
        UpstreamBugError: the spec hits a known bug and ``allow_known_issue`` is False.
    """
    if not allow_known_issue:
        check_supported(spec)
    with run_settings(spec, device):
        keras.utils.set_random_seed(spec.seed)
        model = build_compiled_model(spec, model, distribute.make_strategy(spec))
        return Engine(spec=spec, model=model, loop=make_loop(model, spec), device=device)


# --------------------------------------------------------------------------- results


class RunCounter(keras.callbacks.Callback):
    """Counts a run as it goes: the optimizer steps of each epoch, and their examples.

    A step is an advance of ``model.optimizer.iterations``, in both loops and
    under every strategy (it counts global steps). ``LossScaleOptimizer``
    (mixed_float16) reports its inner optimizer's count, which skips a step
    whose gradients overflowed: such a step updates nothing and is not counted.
    Put it last among the callbacks: it reads the count as each epoch begins,
    after a restore in ``on_train_begin`` (BackupAndRestore restores the count).

    Args:
        examples: the training examples in one epoch (one pass over the split).
        options: the pipeline that batches them.
    """

    def __init__(self, examples: int, options: kdata.PipelineOptions):
        super().__init__()
        self.examples, self.options = examples, options
        self.steps: list[int] = []
        self._start = 0

    def _iterations(self) -> int:
        return int(self.model.optimizer.iterations.numpy())  # int() refuses a MirroredVariable

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._iterations()

    def on_epoch_end(self, epoch, logs=None):
        self.steps.append(self._iterations() - self._start)

    @property
    def samples_seen(self) -> int:
        """Examples in the batches of the counted steps: each epoch takes its first
        ``steps`` batches of a pass (only the last batch may be partial)."""
        batch = self.options.batch_size
        full, rest = divmod(self.examples, batch)
        last = 0 if self.options.drop_remainder else rest
        return sum(min(k, full) * batch + (last if k > full else 0) for k in self.steps)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What one training run produced.

    Attributes:
        spec: the workflow that ran.
        history: per-epoch metrics (loss, accuracy, val_loss, val_accuracy, and
            whatever callbacks added, e.g. learning_rate) of the epochs this run trained.
        test_loss, test_accuracy: on the test split after training (after any
            weights restored by EarlyStopping).
        epochs_run: epochs this run trained (EarlyStopping may stop early).
        steps: optimizer steps taken, counted (:class:`RunCounter`).
        samples_seen: training examples in those steps' batches.
        wall_time_s: wall time of training (model build and test excluded).
        resumed_from: epochs done before this run started (0: a fresh run;
            more when a checkpoint or BackupAndRestore resumed it).
        model: the trained model.
    """

    spec: WorkflowSpec
    history: dict[str, list[float]]
    test_loss: float
    test_accuracy: float
    epochs_run: int
    steps: int
    samples_seen: int
    wall_time_s: float
    resumed_from: int
    model: keras.Model = dataclasses.field(repr=False, compare=False)

    @property
    def epochs_done(self) -> int:
        """Epochs done in total, before this run and in it."""
        return self.resumed_from + self.epochs_run

    def to_dict(self) -> dict:
        """Everything but the model, as plain JSON-able values."""
        record = dataclasses.asdict(dataclasses.replace(self, model=None))
        record.pop("model")
        record["spec"] = self.spec.to_dict()
        return record


def _check_dataset(dataset) -> None:
    if dataset is not None and not isinstance(dataset, kdata.Dataset):
        raise TypeError(f"dataset must be a kbench.data.Dataset, got {type(dataset).__name__}: "
                        f"{dataset!r:.80}")


def train(spec: WorkflowSpec, *, dataset: kdata.Dataset | None = None,
          callbacks: Sequence[keras.callbacks.Callback] = (), validation: bool = True,
          allow_known_issue: bool = False,
          pipeline: kdata.PipelineOptions | None = None, model: keras.Model | None = None,
          output_dir: str | os.PathLike | None = None,
          timer: Callable[[], float] = time.perf_counter) -> TrainResult:
    """Train the spec's model on its dataset and evaluate it on the test split.

    Args:
        spec: the workflow to run.
        dataset: data to use instead of loading ``spec.dataset``.
        callbacks: Keras callbacks, honoured by both loops, run before the
            spec's own (``spec.callbacks``, built by :mod:`kbench.callbacks`).
        validation: evaluate after every epoch (``val_*``) on the spec's
            validation split, or on the test split when it has none.
        allow_known_issue: run a spec that hits a known upstream bug anyway.
        pipeline: input options instead of :func:`pipeline_options`.
        model: a model to train instead of building the spec's (see :func:`prepare`).
        output_dir: where the spec's callbacks write checkpoints and logs;
            None: a temporary folder, removed after the run.
        timer: clock for ``wall_time_s``.

    Raises:
        UpstreamBugError: the spec hits a known bug and ``allow_known_issue`` is False.
        WorkflowError: the spec's callbacks watch validation metrics and
            ``validation`` is False.
    """
    _check_dataset(dataset)
    kcallbacks.check_callbacks(spec, validation=validation)  # refuse before building
    engine = prepare(spec, model=model, allow_known_issue=allow_known_issue)
    if dataset is None:
        dataset = kdata.load_dataset(spec.dataset, seed=spec.seed)
    options = pipeline or pipeline_options(spec)
    with contextlib.ExitStack() as stack, engine.settings():
        if output_dir is None and kcallbacks.needs_output_dir(spec):
            output_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="kbench-run-"))
        inputs = make_inputs(spec, dataset, options)
        counter = RunCounter(inputs.examples, options)
        spec_callbacks = kcallbacks.make_callbacks(spec, output_dir, validation=validation)
        start = timer()
        history = engine.loop.run(inputs.train, epochs=spec.epochs,
                                  callbacks=[*callbacks, *spec_callbacks, counter],
                                  validation_data=inputs.validation if validation else None)
        wall_time_s = timer() - start
        # Where the loop started: a callback (BackupAndRestore) may have moved it on.
        resumed_from = int(getattr(engine.model, "_initial_epoch", None) or 0)
        return engine.result(counter, history, inputs.test, wall_time_s=wall_time_s,
                             resumed_from=resumed_from)
