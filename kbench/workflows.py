"""Workflow specs: every training variant kbench knows, as frozen data.

A :class:`WorkflowSpec` names one way of training one model: which family and
build style, which loop (``model.fit`` or a custom ``tf.GradientTape`` loop),
how it executes (eagerly, under ``tf.function``, or XLA-compiled) and in which
precision. Tests, benchmarks and the CLI all read the registry in this module,
so a variant is added in one place.

Naming scheme (``WorkflowSpec.name``)::

    <family>-<style>-<loop>-<execution>-<precision tag>
    e.g.  mlp-functional-custom-xla-fp32,  cnn-sequential-fit-function-bf16

Precision tags: ``fp32`` = float32, ``fp16`` = mixed_float16, ``bf16`` =
mixed_bfloat16. Dataset, batch size, epochs, optimizer, learning rate and seed
are settings of a named workflow, not part of its name.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from kbench import _validate

FAMILIES = ("mlp", "cnn")
STYLES = ("sequential", "functional", "subclassed")
LOOPS = ("fit", "custom")
EXECUTIONS = ("eager", "function", "xla")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DATASETS = ("mnist_5k", "mnist", "fashion_mnist", "synthetic")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
# tf.distribute strategies, built by kbench.distribute.make_strategy.
STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
# What fit is given: a tf.data pipeline, or NumPy arrays (fit batches and
# shuffles them itself), as the tutorials do about equally often.
INPUT_KINDS = ("tfdata", "numpy")
# Integer labels with sparse categorical cross-entropy, or one-hot labels with
# categorical cross-entropy.
LABELS = ("sparse", "onehot")
# The model's last layer: logits (the loss has from_logits=True) or softmax.
OUTPUTS = ("logits", "softmax")
# Keras callbacks a workflow trains with, by name (built by kbench.callbacks).
CALLBACKS = ("checkpoint", "early_stopping", "reduce_lr", "tensorboard",
             "tensorboard_histograms")

PRECISION_TAGS = MappingProxyType(
    {"float32": "fp32", "mixed_float16": "fp16", "mixed_bfloat16": "bf16"}
)
PRECISION_BY_TAG = MappingProxyType({tag: p for p, tag in PRECISION_TAGS.items()})

# The fields that make up a workflow's name, in name order.
NAME_FIELDS = ("family", "style", "loop", "execution", "precision")

_CHOICES = MappingProxyType(
    {
        "family": FAMILIES,
        "style": STYLES,
        "loop": LOOPS,
        "execution": EXECUTIONS,
        "precision": PRECISIONS,
        "dataset": DATASETS,
        "optimizer": OPTIMIZERS,
        "strategy": STRATEGIES,
        "input_kind": INPUT_KINDS,
        "labels": LABELS,
        "output": OUTPUTS,
    }
)

# Tuple fields: JSON gives them back as lists (from_dict turns them into tuples).
_TUPLE_FIELDS = ("hidden_units", "callbacks")


class WorkflowError(ValueError):
    """A workflow spec or name that kbench cannot accept."""


class VariantUnavailableError(RuntimeError):
    """TensorFlow/Keras would not run the variant asked for (e.g. silently dropped XLA)."""


class UpstreamBugError(RuntimeError):
    """A spec that hits a known TensorFlow/Keras bug; kbench refuses it up front."""

    def __init__(self, spec: "WorkflowSpec", issue: "KnownIssue"):
        self.spec = spec
        self.issue = issue
        super().__init__(
            f"workflow {spec.name!r} hits a known upstream bug ({issue.reference}): "
            f"{issue.summary} It fails with: {issue.error_name}: "
            f"{issue.error_match!r}. Workaround: {issue.workaround}"
        )


@dataclasses.dataclass(frozen=True)
class WorkflowSpec:
    """One training variant. Validated on construction; immutable.

    Args:
        family: model family, one of ``FAMILIES``.
        style: how the model is built, one of ``STYLES``.
        loop: ``fit`` (Keras ``model.fit``) or ``custom`` (GradientTape loop).
        execution: ``eager``, ``function`` (``tf.function``) or ``xla``.
        precision: a Keras dtype policy name, one of ``PRECISIONS``.
        dataset: dataset name understood by ``kbench.data.load_dataset``.
        batch_size: examples per training step.
        epochs: passes over the training split.
        optimizer: optimizer name, one of ``OPTIMIZERS``.
        learning_rate: the optimizer's initial learning rate.
        seed: seeds weights, dropout and the data shuffle.
        deterministic: also enable TF op determinism, so that two runs give
            bitwise-identical weights on CPU (slower; Keras then refuses XLA).
        strategy: the tf.distribute strategy, one of ``STRATEGIES`` (see
            kbench.distribute). ``batch_size`` is the global batch, split
            across replicas.
        replicas: how many replicas ``mirrored`` uses (None: every GPU, or
            every logical CPU); for ``multi_worker_mirrored`` the number the
            cluster must have (None: any). ``default`` runs one.
        steps_per_execution: training steps run by one call of the compiled
            train function (Keras's compile argument for ``fit``; N steps in
            one ``tf.function`` for the custom loop). Callbacks see one batch
            per execution, as in ``fit``.
        input_kind: ``tfdata`` (a tf.data pipeline, kbench.data.make_pipeline)
            or ``numpy`` (arrays handed to ``fit``, which batches and shuffles
            them; ``fit`` only: a GradientTape loop iterates a dataset).
        labels: ``sparse`` (integer labels, sparse categorical cross-entropy)
            or ``onehot`` (one-hot labels, categorical cross-entropy).
        output: the model's last layer, ``logits`` or ``softmax``; the loss
            takes ``from_logits`` to match.
        hidden_units: the hidden Dense layers' widths (Dropout follows the first).
        dropout: the Dropout rate, in [0, 1).
        validation_split: the share of the training split held out, from its
            end and before shuffling as ``fit(validation_split=)`` does, to
            validate on after each epoch (0: validate on the test split).
        callbacks: Keras callbacks trained with, by name (``CALLBACKS``; see
            kbench.callbacks for their settings, which are the tutorials').
        cache: ``tfdata``: cache the preprocessed split in memory (the
            reference workflows do; the tutorials' MNIST pipeline does not).
        shuffle_buffer: ``tfdata``: the shuffle buffer's size (None: the
            whole split, a perfect shuffle).
        preset: the named workflow (``TUTORIAL_WORKFLOWS``) this spec is,
            which is then its name; None for a spec named by its fields.
    """

    family: str = "mlp"
    style: str = "functional"
    loop: str = "fit"
    execution: str = "function"
    precision: str = "float32"
    dataset: str = "mnist_5k"
    batch_size: int = 64
    epochs: int = 5
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    seed: int = 0
    deterministic: bool = False
    strategy: str = "default"
    replicas: int | None = None
    steps_per_execution: int = 1
    input_kind: str = "tfdata"
    labels: str = "sparse"
    output: str = "logits"
    hidden_units: tuple[int, ...] = (128,)
    dropout: float = 0.2
    validation_split: float = 0.0
    callbacks: tuple[str, ...] = ()
    cache: bool = True
    shuffle_buffer: int | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        for field, choices in _CHOICES.items():
            _validate.check_choice(field, getattr(self, field), choices, error=WorkflowError)
        _validate.check_positive_int("batch_size", self.batch_size, error=WorkflowError)
        _validate.check_positive_int("epochs", self.epochs, error=WorkflowError)
        _validate.check_int("seed", self.seed, minimum=0, error=WorkflowError)
        _validate.check_bool("deterministic", self.deterministic, error=WorkflowError)
        _validate.check_positive_int("steps_per_execution", self.steps_per_execution,
                                     error=WorkflowError)
        self._check_replicas()
        _validate.check_number("learning_rate", self.learning_rate, low=0, low_open=True,
                               error=WorkflowError)
        self._check_head()
        self._check_callbacks()
        self._check_input()
        if self.preset is not None:
            _validate.check_str("preset", self.preset, error=WorkflowError)

    def _check_input(self) -> None:
        _validate.check_bool("cache", self.cache, error=WorkflowError)
        if self.shuffle_buffer is not None:
            _validate.check_positive_int("shuffle_buffer", self.shuffle_buffer,
                                         error=WorkflowError)
        if self.input_kind != "numpy":
            return
        if self.loop != "fit":
            raise WorkflowError(f"input_kind='numpy' hands arrays to model.fit, so it needs "
                                f"loop='fit', got loop={self.loop!r}; the custom loop reads "
                                "input_kind='tfdata'")
        if self.shuffle_buffer is not None:
            raise WorkflowError(f"fit shuffles NumPy input whole: shuffle_buffer="
                                f"{self.shuffle_buffer!r} needs input_kind='tfdata'")

    def _check_head(self) -> None:
        hidden = self.hidden_units
        if (not isinstance(hidden, tuple) or not hidden
                or not all(_validate.is_int(w) and w >= 1 for w in hidden)):
            raise WorkflowError(f"hidden_units must be a non-empty tuple of positive ints, "
                                f"got {hidden!r}")
        _validate.check_number("dropout", self.dropout, low=0, high=1, high_open=True,
                               error=WorkflowError)
        _validate.check_number("validation_split", self.validation_split, low=0, high=1,
                               high_open=True, error=WorkflowError)

    def _check_callbacks(self) -> None:
        if not isinstance(self.callbacks, tuple):
            raise WorkflowError(f"callbacks must be a tuple of names from {CALLBACKS}, "
                                f"got {self.callbacks!r}")
        for name in self.callbacks:
            _validate.check_choice("callback", name, CALLBACKS, error=WorkflowError)
        repeated = sorted({name for name in self.callbacks if self.callbacks.count(name) > 1})
        if repeated:
            raise WorkflowError(f"callbacks {repeated} are named more than once in "
                                f"{self.callbacks!r}")
        if {"tensorboard", "tensorboard_histograms"} <= set(self.callbacks):
            raise WorkflowError(f"callbacks {self.callbacks!r} name two TensorBoard loggers "
                                "writing one log folder; keep one")

    def _check_replicas(self) -> None:
        if self.replicas is None:
            return
        _validate.check_positive_int("replicas", self.replicas, error=WorkflowError)
        if self.strategy == "default" and self.replicas != 1:
            raise WorkflowError(f"strategy='default' runs one replica, got replicas="
                                f"{self.replicas!r}; use strategy='mirrored'")
        if self.batch_size % self.replicas:
            raise WorkflowError(f"batch_size {self.batch_size} does not split evenly over "
                                f"replicas={self.replicas}")

    @property
    def name(self) -> str:
        """The workflow's name: its preset's, or the documented naming scheme's."""
        if self.preset is not None:
            return self.preset
        parts = [getattr(self, f) for f in NAME_FIELDS[:-1]]
        return "-".join([*parts, PRECISION_TAGS[self.precision]])

    @property
    def known_issue(self) -> "KnownIssue | None":
        """The known upstream bug this spec hits on a machine without GPUs, if any."""
        return known_issue_for(self, gpu_visible=False)

    def replace(self, **changes) -> "WorkflowSpec":
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise WorkflowError(f"unknown WorkflowSpec field(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain fields plus the name, for result records and JSON."""
        return {"name": self.name, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, fields: Mapping) -> "WorkflowSpec":
        """The spec :meth:`to_dict` wrote; fields it lacks take their defaults.

        Older records lack fields added since (``strategy``, ``replicas``, the
        tutorials' ``input_kind`` ... ``callbacks``); a
        ``name`` that disagrees with the fields, or an unknown field, is refused.

        Raises:
            WorkflowError: naming the bad field or value.
        """
        if not isinstance(fields, Mapping):
            raise WorkflowError(f"a spec must be a mapping of fields, got {fields!r:.80}")
        values = {k: v for k, v in fields.items() if k != "name"}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise WorkflowError(f"unknown WorkflowSpec field(s) {unknown} in {dict(fields)!r:.200}")
        for field in _TUPLE_FIELDS:
            if isinstance(values.get(field), list):
                values[field] = tuple(values[field])
        spec = cls(**values)
        if "name" in fields and fields["name"] != spec.name:
            raise WorkflowError(f"spec name {fields['name']!r} does not match its fields, "
                                f"which name {spec.name!r}")
        return spec


@dataclasses.dataclass(frozen=True)
class KnownIssue:
    """A combination that fails because of a TensorFlow/Keras bug or limitation.

    kbench refuses a spec that matches ``when`` (see :func:`check_supported`);
    the tests still run the real combination as a strict xfail expecting
    ``error_type`` with a message matching ``error_match``, so a release that
    fixes the bug turns the suite red until the entry is removed.
    ``error_type`` is an exception class, or the dotted name of one in a
    package kbench does not import here (e.g. "tensorflow.errors.InvalidArgumentError").
    ``without_gpu``: the bug bites only where no GPU is visible.
    """

    reference: str
    summary: str
    when: Mapping[str, str]
    error_type: type[BaseException] | str
    error_match: str
    workaround: str
    without_gpu: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.when) - {f.name for f in dataclasses.fields(WorkflowSpec)})
        if unknown:
            raise WorkflowError(f"KnownIssue {self.reference}: unknown spec field(s) {unknown}")
        re.compile(self.error_match)

    @property
    def error_name(self) -> str:
        """The exception's class name, e.g. 'ValueError'."""
        if isinstance(self.error_type, str):
            return self.error_type.rsplit(".", 1)[-1]
        return self.error_type.__name__

    def error_class(self) -> type[BaseException]:
        """The exception class (imported if given by name)."""
        if not isinstance(self.error_type, str):
            return self.error_type
        module, _, name = self.error_type.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def example(self, **settings) -> WorkflowSpec:
        """The first spec of the full matrix that hits this issue (``settings`` for the rest)."""
        extra = {k: v for k, v in self.when.items() if k not in NAME_FIELDS}
        return next(spec for spec in full_matrix(**extra, **settings) if self.applies_to(spec))

    def applies_to(self, spec: WorkflowSpec, *, gpu_visible: bool = False) -> bool:
        if self.without_gpu and gpu_visible:
            return False
        return all(getattr(spec, k) == v for k, v in self.when.items())


# Known upstream bugs and limitations, found by running the full matrix.
# Keep each entry until the strict xfail in tests/test_training.py fails.
KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue(
        reference="keras-team/keras#20315 (tensorflow/tensorflow#69417)",
        summary=(
            "With TF op determinism on, Keras 3 compile() turns jit_compile=True off "
            "(with only a warning) because some ops have no deterministic XLA kernel, "
            "so fit would run without XLA under an XLA label."
        ),
        when={"loop": "fit", "execution": "xla", "deterministic": True},
        error_type=VariantUnavailableError,
        error_match="Keras set jit_compile=False",
        workaround=(
            "use loop='custom' (tf.function(jit_compile=True) is honoured), or "
            "deterministic=False, or execution='function'."
        ),
    ),
    KnownIssue(
        reference="keras-team/keras#20585 (tensorflow/tensorflow#72388)",
        summary=(
            "Keras 3 model.fit under MultiWorkerMirroredStrategy fails in its first "
            "step: the multi-worker iterator hands fit per-replica values it cannot "
            "convert to tensors."
        ),
        when={"loop": "fit", "strategy": "multi_worker_mirrored"},
        error_type=ValueError,
        error_match=r"Attempt to convert a value \(PerReplica",
        workaround=(
            "use loop='custom' (strategy.run with tf.nn.compute_average_loss), which "
            "trains under MultiWorkerMirroredStrategy."
        ),
    ),
    KnownIssue(
        reference="XLA known issue 'tf.Variable on a different device' "
                  "(tensorflow.org/xla/known_issues)",
        summary=(
            "XLA compiles for one CPU device per process, so it cannot update the "
            "mirrored copies MirroredStrategy keeps on the other logical CPUs; both "
            "fit and the custom loop fail in their first step. (On GPUs each replica "
            "compiles on its own device.)"
        ),
        when={"execution": "xla", "strategy": "mirrored"},
        error_type="tensorflow.errors.InvalidArgumentError",
        error_match="Trying to access resource .* located in device .*CPU:1 from device .*CPU:0",
        workaround="use execution='function' on CPUs, or run on GPUs.",
        without_gpu=True,
    ),
)


def known_issue_for(spec: WorkflowSpec, *, gpu_visible: bool) -> KnownIssue | None:
    """The first known upstream bug ``spec`` hits on a machine with or without GPUs."""
    return next((issue for issue in KNOWN_ISSUES
                 if issue.applies_to(spec, gpu_visible=gpu_visible)), None)


def check_supported(spec: WorkflowSpec, *, gpu_visible: bool = False) -> None:
    """Raise UpstreamBugError if ``spec`` hits a known upstream bug here.

    kbench.training.check_supported asks TensorFlow whether a GPU is visible.
    """
    issue = known_issue_for(spec, gpu_visible=gpu_visible)
    if issue is not None:
        raise UpstreamBugError(spec, issue)


def parse_name(name: str, **settings) -> WorkflowSpec:
    """The spec for a workflow name; ``settings`` override the non-name fields.

    Raises:
        WorkflowError: naming the part of ``name`` that is not understood.
    """
    if not isinstance(name, str):
        raise WorkflowError(f"workflow name must be a str, got {name!r}")
    parts = name.split("-")
    if len(parts) != len(NAME_FIELDS):
        raise WorkflowError(
            f"workflow name must have {len(NAME_FIELDS)} parts "
            f"<{'>-<'.join(NAME_FIELDS)}>, e.g. 'mlp-functional-custom-xla-fp32'; got {name!r}"
        )
    fields = dict(zip(NAME_FIELDS, parts))
    tag = fields["precision"]
    if tag not in PRECISION_BY_TAG:
        raise WorkflowError(
            f"precision tag must be one of {tuple(PRECISION_BY_TAG)}, got {tag!r} in {name!r}"
        )
    fields["precision"] = PRECISION_BY_TAG[tag]
    clash = sorted(set(settings) & set(NAME_FIELDS))
    if clash:
        raise WorkflowError(f"fields {clash} come from the name {name!r}; do not pass them")
    try:
        return WorkflowSpec(**fields, **settings)
    except TypeError as err:  # an unknown keyword in settings
        raise WorkflowError(f"bad settings for {name!r}: {err}") from None


def full_matrix(**settings) -> tuple[WorkflowSpec, ...]:
    """Every combination of the name fields, with ``settings`` for the rest."""
    return tuple(
        parse_name("-".join(combo), **settings)
        for combo in itertools.product(
            FAMILIES, STYLES, LOOPS, EXECUTIONS, tuple(PRECISION_BY_TAG)
        )
    )


def select(specs: Iterable[WorkflowSpec], **filters) -> tuple[WorkflowSpec, ...]:
    """The specs whose fields equal every filter (a value or a tuple of values)."""
    fields = {f.name for f in dataclasses.fields(WorkflowSpec)}
    unknown = sorted(set(filters) - fields)
    if unknown:
        raise WorkflowError(f"cannot filter on unknown field(s) {unknown}")
    wanted = {k: v if isinstance(v, tuple) else (v,) for k, v in filters.items()}
    return tuple(s for s in specs if all(getattr(s, k) in v for k, v in wanted.items()))


# Reference workflows: the ones the accuracy suite trains to a threshold on
# mnist_5k, and the benchmarks time. Chosen to cover, within the test budget:
# every loop x execution x style for the MLP in float32; fit and the custom
# tf.function loop for the CNN; both mixed-precision policies for the MLP
# (fit and custom); a short mixed-precision check for the CNN.
#
# Keras eager costs ~35 ms a step on a 2-core CPU (5 epochs: ~20 s per run,
# x6 runs), and runs the same arithmetic as tf.function (bitwise, see
# tests/test_training.py), so eager references train for 2 epochs.
EAGER_REFERENCE_EPOCHS = 2
# The CNN in mixed precision is 2-5x slower than float32 on a CPU without
# native fp16/bf16 (~10-20 s an epoch here), so its check is one epoch.
CNN_MIXED_REFERENCE_EPOCHS = 1


def _reference_specs() -> Iterator[WorkflowSpec]:
    matrix = full_matrix()
    for spec in select(matrix, family="mlp", precision="float32"):
        yield spec.replace(epochs=EAGER_REFERENCE_EPOCHS) if spec.execution == "eager" else spec
    yield from select(matrix, family="cnn", style="functional", execution="function",
                      precision="float32")
    yield from select(matrix, family="mlp", style="functional", execution="function",
                      precision=("mixed_float16", "mixed_bfloat16"))
    for spec in select(matrix, family="cnn", style="functional", loop="custom",
                       execution="function", precision=("mixed_float16", "mixed_bfloat16")):
        yield spec.replace(epochs=CNN_MIXED_REFERENCE_EPOCHS)


REFERENCE_WORKFLOWS: Mapping[str, WorkflowSpec] = MappingProxyType(
    {spec.name: spec for spec in _reference_specs()}
)


# The TensorFlow/Keras tutorials kbench's users learned from, as named
# workflows: their models, data, labels, input kinds, batch sizes, epochs and
# callbacks (kbench.callbacks holds the callbacks' settings). The MNIST ones
# need the full MNIST, which has no offline source here; the tests run them on
# mnist_5k (`get_workflow(name, dataset="mnist_5k")`).
def _tutorial(preset: str, name: str, **settings) -> WorkflowSpec:
    return parse_name(name, preset=preset, **settings)


TUTORIAL_WORKFLOWS: Mapping[str, WorkflowSpec] = MappingProxyType({spec.name: spec for spec in (
    # "Basic classification": Flatten -> Dense(128, relu) -> Dense(10) logits,
    # Adam, sparse labels, fit on NumPy arrays, batch 32, 10 epochs.
    _tutorial("tutorial-fashion-classifier", "mlp-sequential-fit-function-fp32",
              dataset="fashion_mnist", input_kind="numpy", hidden_units=(128,), dropout=0.0,
              batch_size=32, epochs=10),
    # The Fashion-MNIST MLP with callbacks: Dense 128 -> Dropout 0.3 -> Dense 64
    # -> softmax, one-hot labels with categorical cross-entropy, the best
    # val_accuracy checkpointed, early stopping on val_loss, TensorBoard; it
    # validates on a held-out 10% of the training split.
    _tutorial("tutorial-fashion-callbacks", "mlp-sequential-fit-function-fp32",
              dataset="fashion_mnist", input_kind="numpy", hidden_units=(128, 64), dropout=0.3,
              output="softmax", labels="onehot", batch_size=32, epochs=20,
              validation_split=0.1, callbacks=("checkpoint", "early_stopping", "tensorboard")),
    # "Convolutional Neural Network" on MNIST through tf.data: map ->
    # shuffle(1000) -> batch(32) -> prefetch(AUTOTUNE), no cache, sparse
    # labels, Dense(64) after the convolutions, 10 epochs.
    _tutorial("tutorial-mnist-cnn-tfdata", "cnn-sequential-fit-function-fp32",
              dataset="mnist", hidden_units=(64,), dropout=0.0, batch_size=32, epochs=10,
              cache=False, shuffle_buffer=1000),
    # The MNIST convnet with EarlyStopping, ReduceLROnPlateau, ModelCheckpoint
    # and TensorBoard(histogram_freq=1): one-hot labels, softmax, batch 128,
    # validation_split=0.1.
    _tutorial("tutorial-mnist-cnn-callbacks", "cnn-sequential-fit-function-fp32",
              dataset="mnist", input_kind="numpy", output="softmax", labels="onehot",
              batch_size=128, epochs=15, validation_split=0.1,
              callbacks=("early_stopping", "reduce_lr", "checkpoint", "tensorboard_histograms")),
)})


def get_workflow(name: str, **settings) -> WorkflowSpec:
    """A workflow by name: a tutorial's or the reference settings if it is one, else the
    defaults.

    ``settings`` override the non-name fields of any.
    """
    for named in (TUTORIAL_WORKFLOWS, REFERENCE_WORKFLOWS):
        if name in named:
            return named[name].replace(**settings)
    return parse_name(name, **settings)
