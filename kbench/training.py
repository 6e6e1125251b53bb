"""The one training engine: every workflow variant runs through here.

A variant is data (a :class:`~kbench.workflows.WorkflowSpec`), never a copy of
the loop. The engine reads three of its fields through tables:

- ``loop``: :data:`LOOPS` maps ``fit`` and ``custom`` to a loop class with the
  same interface (``run`` epochs with callbacks, ``evaluate``).
- ``execution``: :data:`STEP_COMPILERS` wraps the custom loop's step functions
  (eager, ``tf.function``, ``tf.function(jit_compile=True)``); ``fit`` gets the
  same choice through ``compile(run_eagerly=..., jit_compile=...)``.
- ``precision``: a Keras dtype policy, active while the model is built and
  restored afterwards even on error (:func:`precision_policy`). Loss scaling
  for ``mixed_float16`` comes from the optimizer Keras wraps in
  ``LossScaleOptimizer`` at ``compile``; the custom loop calls its
  ``scale_loss``/``apply_gradients`` exactly as ``fit``'s train step does.
- ``strategy``: the tf.distribute strategy (:mod:`kbench.distribute`). The
  model and its optimizer are created in ``strategy.scope()``; ``fit``
  distributes itself, and the custom loop runs its step on every replica with
  ``strategy.run``, averages the loss over the global batch
  (``tf.nn.compute_average_loss``) and lets the optimizer all-reduce the
  gradients, as TF's custom-training tutorial does.

The custom loop drives a ``keras.callbacks.CallbackList`` with the same hooks
``fit`` calls, so ModelCheckpoint, EarlyStopping (``restore_best_weights``),
ReduceLROnPlateau and TensorBoard behave the same in both loops.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import keras
import tensorflow as tf

from kbench import data as kdata
from kbench import distribute, models
from kbench import workflows
from kbench.workflows import VariantUnavailableError, WorkflowSpec


class TrainingError(RuntimeError):
    """Training could not run as the spec asked."""


def check_supported(spec: WorkflowSpec) -> None:
    """Raise UpstreamBugError if ``spec`` hits a known upstream bug on this machine."""
    workflows.check_supported(spec, gpu_visible=bool(distribute.gpu_devices()))


def make_loss() -> keras.losses.Loss:
    """The loss every workflow minimises: cross-entropy on integer labels and logits."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


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


def _determinism_enabled() -> bool:
    from tensorflow.python.framework import config as tf_config  # no public getter

    return tf_config.is_op_determinism_enabled()


@contextlib.contextmanager
def op_determinism(enabled: bool = True) -> Iterator[None]:
    """Turn TF op determinism on (or off) inside the block; restore it on exit."""
    from tensorflow.python.framework import config as tf_config  # no public disable

    previous = _determinism_enabled()
    (tf_config.enable_op_determinism if enabled else tf_config.disable_op_determinism)()
    try:
        yield
    finally:
        (tf_config.enable_op_determinism if previous else tf_config.disable_op_determinism)()


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
            model = models.build_model(spec.family, spec.style)
        model.compile(
            optimizer=make_optimizer(spec),
            loss=make_loss(),
            metrics=["accuracy"],
            run_eagerly=spec.execution == "eager",
            jit_compile=spec.execution == "xla",
        )
    return model


def pipeline_options(spec: WorkflowSpec, **overrides) -> kdata.PipelineOptions:
    """The tutorials' input pipeline for a spec: cache, seeded shuffle, batch, prefetch."""
    settings = {
        "batch_size": spec.batch_size,
        "channel_axis": models.needs_channel_axis(spec.family),
        "shuffle": True,
        "shuffle_seed": spec.seed,
        "cache": True,
        "prefetch": kdata.AUTOTUNE,
    }
    settings.update(overrides)
    return kdata.PipelineOptions(**settings)


def _to_floats(logs) -> dict[str, float]:
    return {k: float(v) for k, v in (logs or {}).items()}


class FitLoop:
    """Training through Keras ``model.fit`` and ``model.evaluate``."""

    def __init__(self, model: keras.Model, execution: str):
        """Wrap a compiled model; ``execution`` was fixed by ``compile``.

        Raises:
            VariantUnavailableError: Keras silently fell back from XLA (it does
                so when op determinism is on); a run must not be labelled XLA then.
        """
        if bool(model.jit_compile) != (execution == "xla"):
            raise VariantUnavailableError(
                f"asked for execution={execution!r} but Keras set "
                f"jit_compile={model.jit_compile!r} (Keras turns XLA off when op "
                "determinism is enabled); refusing to mislabel the run"
            )
        self.model = model

    def run(self, train_data, *, epochs: int, steps_per_epoch: int | None = None,
            validation_data=None, callbacks: Sequence[keras.callbacks.Callback] = (),
            initial_epoch: int = 0):
        history = self.model.fit(
            train_data, epochs=epochs, steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
            validation_data=validation_data, callbacks=list(callbacks), verbose=0,
            shuffle=False,  # the pipeline shuffles (seeded); fit cannot shuffle a tf.data input
        )
        return {k: [float(v) for v in vs] for k, vs in history.history.items()}

    def evaluate(self, data) -> dict[str, float]:
        return _to_floats(self.model.evaluate(data, return_dict=True, verbose=0))


def _eager(fn: Callable) -> Callable:
    return fn


def _xla(fn: Callable) -> Callable:
    return tf.function(fn, jit_compile=True)


@dataclasses.dataclass(frozen=True)
class StepCompiler:
    """How the custom loop compiles a step: ``outer`` wraps the whole step (the
    ``strategy.run`` call and the metric reads), ``replica`` the per-replica body.

    XLA compiles the per-replica body, not the ``strategy.run`` around it: a
    jit-compiled function can only touch variables on its own device, and
    MirroredStrategy keeps one copy of each variable per replica device.
    """

    outer: Callable[[Callable], Callable]
    replica: Callable[[Callable], Callable]


STEP_COMPILERS: dict[str, StepCompiler] = {
    "eager": StepCompiler(outer=_eager, replica=_eager),
    "function": StepCompiler(outer=tf.function, replica=_eager),
    "xla": StepCompiler(outer=tf.function, replica=_xla),
}


class _Metrics:
    """Batch-size-weighted mean loss and accuracy, as ``fit`` reports them.

    Updated on every replica; Keras metric variables aggregate by sum across
    replicas, so the result is over the global batch.
    """

    def __init__(self):
        self.loss = keras.metrics.Mean(name="loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def reset(self) -> None:
        self.loss.reset_state()
        self.accuracy.reset_state()

    def update(self, loss, y, logits) -> None:
        self.loss.update_state(loss, sample_weight=tf.shape(y)[0])
        self.accuracy.update_state(y, logits)

    def results(self) -> dict:
        return {"loss": self.loss.result(), "accuracy": self.accuracy.result()}


class CustomLoop:
    """A ``tf.GradientTape`` loop that drives Keras callbacks the way ``fit`` does.

    It runs under the strategy the model was built in (``model.distribute_strategy``).
    """

    def __init__(self, model: keras.Model, execution: str):
        self.model = model
        self.strategy = model.distribute_strategy
        self.per_example_loss = make_loss()
        self.per_example_loss.reduction = None
        with self.strategy.scope():  # metric variables sum over every replica when read
            self.train_metrics = _Metrics()
            self.eval_metrics = _Metrics()
        # Build optimizer state before tracing: an unbuilt LossScaleOptimizer
        # would bake its initial scale into the graph as a constant. Only if
        # unbuilt: LossScaleOptimizer.build() re-creates its loss scale and
        # step counter, which would reset a loaded model's optimizer state.
        if not model.optimizer.built:
            with self.strategy.scope():
                model.optimizer.build(model.trainable_variables)
        compiler = STEP_COMPILERS[execution]
        self._replica_train = compiler.replica(self._replica_train_step)
        self._replica_eval = compiler.replica(self._replica_eval_step)
        self.train_step = compiler.outer(self._train_step)
        self.eval_step = compiler.outer(self._eval_step)

    def _train_step(self, x, y):
        self.strategy.run(self._replica_train, args=(x, y))
        return self.train_metrics.results()

    def _eval_step(self, x, y):
        self.strategy.run(self._replica_eval, args=(x, y))
        return self.eval_metrics.results()

    def _replica_train_step(self, x, y):
        model, optimizer = self.model, self.model.optimizer
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            per_example = self.per_example_loss(y, logits)
            # The mean over the GLOBAL batch (exact for a partial last batch
            # too); the optimizer sums the replicas' gradients.
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=_global_batch(y))
            if model.losses:
                loss = loss + tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled_loss = optimizer.scale_loss(loss)
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))
        self.train_metrics.update(tf.reduce_mean(per_example), y, logits)

    def _replica_eval_step(self, x, y):
        logits = self.model(x, training=False)
        self.eval_metrics.update(tf.reduce_mean(self.per_example_loss(y, logits)), y, logits)

    def run(self, train_data, *, epochs: int, steps_per_epoch: int | None = None,
            validation_data=None, callbacks: Sequence[keras.callbacks.Callback] = (),
            initial_epoch: int = 0):
        """Epochs ``initial_epoch`` to ``epochs - 1``, as ``fit`` numbers them."""
        model = self.model
        callback_list = keras.callbacks.CallbackList(
            list(callbacks), add_history=True, model=model, epochs=epochs,
            steps=steps_per_epoch or _cardinality(train_data), verbose=0,
        )
        epoch_batches = _epoch_batches(train_data, steps_per_epoch, self.strategy)
        model.stop_training = False
        logs: dict[str, float] = {}
        callback_list.on_train_begin()
        # As fit does: a callback (BackupAndRestore) may set where to resume.
        initial_epoch = model._initial_epoch or initial_epoch
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            logs = self._train_epoch(epoch_batches(), callback_list)
            if validation_data is not None:
                callback_list.on_test_begin()
                val_logs = self.evaluate(validation_data)
                callback_list.on_test_end(val_logs)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callback_list.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        callback_list.on_train_end(logs)
        return {k: [float(v) for v in vs] for k, vs in model.history.history.items()}

    def _train_epoch(self, batches: Iterable, callback_list) -> dict[str, float]:
        self.train_metrics.reset()
        logs = None
        for step, (x, y) in enumerate(batches):
            callback_list.on_train_batch_begin(step)
            logs = self.train_step(x, y)
            callback_list.on_train_batch_end(step, logs)
        if logs is None:
            raise TrainingError("the training data yielded no batches in this epoch")
        return _to_floats(logs)

    def evaluate(self, data) -> dict[str, float]:
        self.eval_metrics.reset()
        logs = None
        for x, y in _distribute(data, self.strategy):
            logs = self.eval_step(x, y)
        if logs is None:
            raise TrainingError("the evaluation data yielded no batches")
        return _to_floats(logs)


def _global_batch(y) -> tf.Tensor:
    """Examples in this step across all replicas (the local batch under the default strategy)."""
    local = tf.cast(tf.shape(y)[0], tf.float32)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tf.cast(local, tf.int32)
    return tf.cast(context.all_reduce("SUM", local), tf.int32)


def _cardinality(dataset) -> int | None:
    n = int(tf.data.experimental.cardinality(dataset)) if isinstance(dataset, tf.data.Dataset) else -1
    return n if n >= 0 else None


def _distribute(dataset, strategy: tf.distribute.Strategy):
    """The dataset as ``strategy`` feeds it, exactly as ``fit`` does: each global
    batch split across the replicas.

    Iterating the distributed dataset (rather than the plain one) also gives
    the custom loop the same per-epoch shuffle order as ``fit``.
    """
    if isinstance(dataset, tf.data.Dataset):
        return strategy.experimental_distribute_dataset(dataset)
    return dataset


def _epoch_batches(dataset, steps_per_epoch: int | None,
                   strategy: tf.distribute.Strategy) -> Callable[[], Iterable]:
    """Per epoch: a fresh pass over ``dataset``, or (like fit) the next N batches of one iterator."""
    dataset = _distribute(dataset, strategy)
    if steps_per_epoch is None:
        return lambda: dataset
    iterator = iter(dataset)

    def next_batches():
        for _ in range(steps_per_epoch):
            try:
                yield next(iterator)
            except StopIteration:
                return

    return next_batches


LOOPS: dict[str, type] = {"fit": FitLoop, "custom": CustomLoop}


def make_loop(model: keras.Model, spec: WorkflowSpec) -> FitLoop | CustomLoop:
    """The spec's loop around an already compiled ``model``."""
    return LOOPS[spec.loop](model, spec.execution)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What one training run produced.

    Attributes:
        spec: the workflow that ran.
        history: per-epoch metrics (loss, accuracy, val_loss, val_accuracy, and
            whatever callbacks added, e.g. learning_rate).
        test_loss, test_accuracy: on the test split after training (after any
            weights restored by EarlyStopping).
        epochs_run: epochs actually run (EarlyStopping may stop early).
        steps: optimizer steps taken.
        samples_seen: training examples processed.
        wall_time_s: wall time of training (model build and test excluded).
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
    model: keras.Model = dataclasses.field(repr=False, compare=False)

    def to_dict(self) -> dict:
        """Everything but the model, as plain JSON-able values."""
        record = dataclasses.asdict(dataclasses.replace(self, model=None))
        record.pop("model")
        record["spec"] = self.spec.to_dict()
        return record


def train(spec: WorkflowSpec, *, dataset: kdata.Dataset | None = None,
          callbacks: Sequence[keras.callbacks.Callback] = (), validation: bool = True,
          allow_known_issue: bool = False,
          pipeline: kdata.PipelineOptions | None = None, model: keras.Model | None = None,
          timer: Callable[[], float] = time.perf_counter) -> TrainResult:
    """Train the spec's model on its dataset and evaluate it on the test split.

    Args:
        spec: the workflow to run.
        dataset: data to use instead of loading ``spec.dataset``.
        callbacks: Keras callbacks, honoured by both loops.
        validation: evaluate on the test split after every epoch (``val_*``).
        allow_known_issue: run a spec that hits a known upstream bug anyway
            (the tests use it to see whether the bug is still there).
        pipeline: input pipeline options instead of :func:`pipeline_options`.
        model: a model to train instead of building the spec's; the engine
            compiles it (build it under the spec's precision policy).
        timer: clock for ``wall_time_s``.

    Raises:
        UpstreamBugError: the spec hits a known bug and ``allow_known_issue`` is False.
    """
    if not allow_known_issue:
        check_supported(spec)
    if dataset is None:
        dataset = kdata.load_dataset(spec.dataset, seed=spec.seed)
    if not isinstance(dataset, kdata.Dataset):
        raise TypeError(f"dataset must be a kbench.data.Dataset, got {type(dataset).__name__}: "
                        f"{dataset!r:.80}")
    options = pipeline or pipeline_options(spec)
    with precision_policy(spec.precision), op_determinism(spec.deterministic):
        keras.utils.set_random_seed(spec.seed)
        train_ds, test_ds = kdata.make_splits(dataset, options)
        model = build_compiled_model(spec, model, distribute.make_strategy(spec))
        loop = make_loop(model, spec)
        start = timer()
        history = loop.run(train_ds, epochs=spec.epochs, callbacks=callbacks,
                           validation_data=test_ds if validation else None)
        wall_time_s = timer() - start
        test = loop.evaluate(test_ds)
    epochs_run = len(history["loss"])
    n_train = len(dataset.x_train)
    steps_per_epoch = (n_train // options.batch_size if options.drop_remainder
                       else math.ceil(n_train / options.batch_size))
    return TrainResult(
        spec=spec, history=history, test_loss=test["loss"], test_accuracy=test["accuracy"],
        epochs_run=epochs_run, steps=epochs_run * steps_per_epoch,
        samples_seen=epochs_run * (steps_per_epoch * options.batch_size
                                   if options.drop_remainder else n_train),
        wall_time_s=wall_time_s, model=model,
    )
