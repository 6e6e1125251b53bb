"""The engine's two training loops, one interface: ``run`` epochs with callbacks, ``evaluate``.

:data:`LOOPS` maps a spec's ``loop`` to its class. :class:`FitLoop` is Keras's
``model.fit``/``evaluate``; :class:`CustomLoop` is a ``tf.GradientTape`` loop that
drives a ``keras.callbacks.CallbackList`` with the hooks ``fit`` calls, so
ModelCheckpoint, EarlyStopping (``restore_best_weights``), ReduceLROnPlateau and
TensorBoard behave the same in both. :data:`STEP_COMPILERS` maps ``execution``
to how the custom loop compiles its step (eager, ``tf.function``,
``tf.function(jit_compile=True)``); ``fit`` gets the same choice through
``compile(run_eagerly=..., jit_compile=...)`` (:func:`kbench.training.build_compiled_model`).

Under a tf.distribute strategy the custom loop runs its step on every replica
with ``strategy.run``, averages the loss over the global batch
(``tf.nn.compute_average_loss``) and lets the optimizer all-reduce the
gradients, as TF's custom-training tutorial does. Under ``mixed_float16`` it
calls the compiled ``LossScaleOptimizer``'s ``scale_loss``/``apply_gradients``
exactly as ``fit``'s train step does.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
import tensorflow as tf

from kbench import counters
from kbench.data.pipelines import ArrayInput
from kbench.workflows import VariantUnavailableError, WorkflowSpec


class TrainingError(RuntimeError):
    """Training could not run as the spec asked."""


# The cross-entropy for each labels kind, and the accuracy that reads those labels.
_LOSSES = {"sparse": keras.losses.SparseCategoricalCrossentropy,
           "onehot": keras.losses.CategoricalCrossentropy}
_ACCURACIES = {"sparse": keras.metrics.SparseCategoricalAccuracy,
               "onehot": keras.metrics.CategoricalAccuracy}


def make_loss(spec: WorkflowSpec | None = None) -> keras.losses.Loss:
    """The loss a workflow minimises: cross-entropy on its labels (sparse integers or
    one-hot) and its model's output (``from_logits`` unless the model ends in softmax).

    Args:
        spec: the workflow; None for the default one (sparse labels, logits).
    """
    spec = spec or WorkflowSpec()
    return _LOSSES[spec.labels](from_logits=spec.output == "logits")


def _to_floats(logs) -> dict[str, float]:
    return {k: float(v) for k, v in (logs or {}).items()}


class FitLoop:
    """Training through Keras ``model.fit`` and ``model.evaluate``."""

    def __init__(self, model: keras.Model, execution: str, steps_per_execution: int = 1,
                 spec: WorkflowSpec | None = None):
        """Wrap a compiled model; ``execution`` and ``steps_per_execution`` were fixed by
        ``compile``, and so were the loss and metrics of ``spec`` (unused here).

        Raises:
            VariantUnavailableError: Keras silently fell back from XLA (it does
                so when op determinism is on); a run must not be labelled XLA then.
            TrainingError: the model was compiled for another steps_per_execution.
        """
        if model.steps_per_execution != steps_per_execution:
            raise TrainingError(f"asked for steps_per_execution={steps_per_execution!r} but "
                                f"the model was compiled with {model.steps_per_execution!r}")
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
        """``fit`` on a tf.data pipeline (which shuffles, seeded: fit cannot shuffle one)
        or on an :class:`~kbench.data.pipelines.ArrayInput` (fit batches and shuffles it)."""
        if isinstance(validation_data, ArrayInput):
            validation_data = (validation_data.x, validation_data.y)
        history = self.model.fit(
            **_fit_input(train_data), epochs=epochs, steps_per_epoch=steps_per_epoch,
            initial_epoch=initial_epoch, validation_data=validation_data,
            callbacks=list(callbacks), verbose=0,
        )
        return {k: [float(v) for v in vs] for k, vs in history.history.items()}

    def compiled_train_functions(self) -> dict[str, Any]:
        """The ``tf.function`` objects fit's training step runs, by name (none before the
        first fit, and none for an eager run): see kbench.counters."""
        return counters.compiled_functions(self.model.train_function)

    def evaluate(self, data) -> dict[str, float]:
        inputs = _fit_input(data)
        inputs.pop("shuffle")
        return _to_floats(self.model.evaluate(**inputs, return_dict=True, verbose=0))


def _fit_input(data) -> dict:
    """The arguments that hand ``data`` (a dataset or an ArrayInput) to fit / evaluate."""
    if isinstance(data, ArrayInput):
        return {"x": data.x, "y": data.y, "batch_size": data.batch_size, "shuffle": data.shuffle}
    return {"x": data, "shuffle": False}


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
    replicas, so the result is over the global batch. ``labels`` is the
    spec's: the accuracy reads integer or one-hot labels.
    """

    def __init__(self, labels: str = "sparse"):
        self.loss = keras.metrics.Mean(name="loss")
        self.accuracy = _ACCURACIES[labels](name="accuracy")

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

    def __init__(self, model: keras.Model, execution: str, steps_per_execution: int = 1,
                 spec: WorkflowSpec | None = None):
        """``spec`` gives the loss and the labels' accuracy (None: the defaults')."""
        self.model = model
        self.strategy = model.distribute_strategy
        self.steps_per_execution = steps_per_execution
        self.per_example_loss = make_loss(spec)
        self.per_example_loss.reduction = None
        labels = (spec or WorkflowSpec()).labels
        with self.strategy.scope():  # metric variables sum over every replica when read
            self.train_metrics = _Metrics(labels)
            self.eval_metrics = _Metrics(labels)
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
        self.train_steps = compiler.outer(self._train_steps)
        self.eval_step = compiler.outer(self._eval_step)

    def compiled_train_functions(self) -> dict[str, Any]:
        """The ``tf.function`` objects of the training step, by name (none when eager):
        the step, the multi-step call and, under XLA, the replica's jit-compiled body."""
        return counters.compiled_functions(self.train_step, self.train_steps,
                                           self._replica_train)

    def _train_step(self, x, y):
        self.strategy.run(self._replica_train, args=(x, y))
        return self.train_metrics.results()

    def _train_steps(self, iterator, steps):
        """``steps`` training steps on the next batches of ``iterator``, in one call (one
        graph execution under tf.function: a while loop, not ``steps`` copies of the step)."""
        for _ in tf.range(steps):
            x, y = next(iterator)
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
        epoch_batches = (_epoch_batches(train_data, steps_per_epoch, self.strategy)
                         if self.steps_per_execution == 1
                         else _epoch_iterators(train_data, steps_per_epoch, self.strategy))
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

    def _train_epoch(self, batches, callback_list) -> dict[str, float]:
        self.train_metrics.reset()
        logs = None
        for begin, end, run in self._executions(batches):
            callback_list.on_train_batch_begin(begin)
            try:
                logs = run()
            except (StopIteration, tf.errors.OutOfRangeError):
                break  # a finite input ran out inside an execution: the epoch ends, as in fit
            callback_list.on_train_batch_end(end, logs)
        if logs is None:
            raise TrainingError("the training data yielded no batches in this epoch")
        return _to_floats(logs)

    def _executions(self, batches):
        """(first step, last step, call) per execution of the epoch: one step per batch,
        or ``steps_per_execution`` steps a call on ``batches = (iterator, epoch steps)``."""
        if self.steps_per_execution == 1:
            for step, (x, y) in enumerate(batches):
                yield step, step, functools.partial(self.train_step, x, y)
            return
        iterator, epoch_steps = batches
        for begin in range(0, epoch_steps, self.steps_per_execution):
            n = min(self.steps_per_execution, epoch_steps - begin)
            yield begin, begin + n - 1, functools.partial(self.train_steps, iterator,
                                                          tf.constant(n))

    def evaluate(self, data) -> dict[str, float]:
        if isinstance(data, ArrayInput):
            raise TrainingError("the custom loop reads a tf.data dataset, got NumPy arrays "
                                "(input_kind='numpy' is for loop='fit')")
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


def _epoch_iterators(dataset, steps_per_epoch: int | None,
                     strategy: tf.distribute.Strategy) -> Callable[[], tuple]:
    """Per epoch: (an iterator, the epoch's steps) for multi-step executions: a fresh
    pass over ``dataset``, or (like fit) the next N batches of one iterator."""
    steps = steps_per_epoch or _cardinality(dataset)
    if steps is None:
        raise TrainingError("steps_per_execution > 1 needs steps_per_epoch or a dataset of "
                            f"known length; got {dataset!r:.80} of unknown cardinality")
    dataset = _distribute(dataset, strategy)
    if steps_per_epoch is not None:
        iterator = iter(dataset)
        return lambda: (iterator, steps)
    return lambda: (iter(dataset), steps)


LOOPS: dict[str, type] = {"fit": FitLoop, "custom": CustomLoop}


def make_loop(model: keras.Model, spec: WorkflowSpec) -> FitLoop | CustomLoop:
    """The spec's loop around an already compiled ``model``."""
    return LOOPS[spec.loop](model, spec.execution, spec.steps_per_execution, spec)
