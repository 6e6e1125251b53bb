"""Model families (mlp, cnn) from the TensorFlow tutorials, in three build styles.

Each family's layer stack is defined once, by a factory that returns fresh
layers; the sequential, functional and subclassed styles only differ in how
they assemble that same list. Layers carry fixed names and are created in the
same order in every style, so ``get_weights()`` lists line up and
``model_b.set_weights(model_a.get_weights())`` works across styles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras

from kbench._validate import check_choice, check_int, check_number, is_int
from kbench.data import IMAGE_CHANNELS, IMAGE_SHAPE, NUM_CLASSES
from kbench.workflows import FAMILIES, OUTPUTS, STYLES

DEFAULT_DROPOUT = 0.2
DEFAULT_HIDDEN_UNITS = 128
DEFAULT_OUTPUT = "logits"
# A classifier needs at least two classes; a Dense layer at least one unit.
MIN_NUM_CLASSES = 2
MIN_HIDDEN_UNITS = 1

# The TensorFlow "CNN" tutorial's convolution stack: three 3x3 convolutions
# with a 2x2 max-pool after each but the last.
CNN_FILTERS = (32, 64, 64)
CNN_KERNEL_SIZE = 3
CNN_POOL_SIZE = 2

# Logits stay float32 under a mixed-precision policy: softmax/cross-entropy in
# float16 loses precision and can overflow.
LOGITS_DTYPE = "float32"

# Input ranks each family accepts: the mlp flattens whatever it gets, the cnn
# needs (height, width, channels).
_ACCEPTED_RANKS = {"mlp": (2, 3), "cnn": (3,)}

# The data's images (kbench.data): the mlp takes them as they are, the cnn
# with their channel axis.
_DEFAULT_INPUT_SHAPES = {
    "mlp": IMAGE_SHAPE,
    "cnn": (*IMAGE_SHAPE, IMAGE_CHANNELS),
}


def _resolve_input_shape(family: str, input_shape) -> tuple[int, ...]:
    """Return ``input_shape`` as a tuple, or the family default when None.

    Raises:
        ValueError: if the rank is wrong for the family or a dim is not a
            positive int.
    """
    if input_shape is None:
        return _DEFAULT_INPUT_SHAPES[family]
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise ValueError(f"input_shape must be a tuple of ints, got {input_shape!r}")
    ranks = _ACCEPTED_RANKS[family]
    if len(input_shape) not in ranks or not all(
        is_int(dim) and dim >= 1 for dim in input_shape
    ):
        rank_text = " or ".join(f"{rank}-D" for rank in ranks)
        raise ValueError(
            f"input_shape for {family!r} must be {rank_text} with positive int "
            f"dims, got {input_shape!r}"
        )
    return tuple(int(dim) for dim in input_shape)


def hidden_widths(hidden_units) -> tuple[int, ...]:
    """The hidden Dense layers' widths: an int is one layer, a sequence one layer per item.

    Raises:
        ValueError: quoting ``hidden_units`` unless it is a positive int or a
            non-empty sequence of them.
    """
    if is_int(hidden_units):
        widths = (hidden_units,)
    elif isinstance(hidden_units, Sequence) and not isinstance(hidden_units, (str, bytes)):
        widths = tuple(hidden_units)
        if not widths:
            raise ValueError(f"hidden_units must name at least one layer, got {hidden_units!r}")
    else:
        raise ValueError(f"hidden_units must be a positive int or a sequence of them, "
                         f"got {hidden_units!r}")
    for width in widths:
        if not is_int(width) or width < MIN_HIDDEN_UNITS:
            where = "" if len(widths) == 1 and is_int(hidden_units) else f" in {hidden_units!r}"
            raise ValueError(f"hidden_units must be a positive int, got {width!r}{where}")
    # Keras layers reject NumPy integers (e.g. Dense(units=np.int32(8))).
    return tuple(int(width) for width in widths)


def _check_hparams(family, num_classes, dropout, hidden_units, input_shape,
                   output=DEFAULT_OUTPUT) -> tuple[int, ...]:
    """Validate the model hyper-parameters and return the resolved input shape."""
    check_choice("family", family, FAMILIES)
    check_int("num_classes", num_classes, minimum=MIN_NUM_CLASSES)
    check_number("dropout", dropout, low=0, high=1, high_open=True)
    hidden_widths(hidden_units)
    check_choice("output", output, OUTPUTS)
    return _resolve_input_shape(family, input_shape)


def input_shape_for(family: str) -> tuple[int, ...]:
    """Return the default per-example input shape of ``family`` (no batch axis)."""
    check_choice("family", family, FAMILIES)
    return _DEFAULT_INPUT_SHAPES[family]


def needs_channel_axis(family: str) -> bool:
    """Return True if ``family`` expects images with a trailing channel axis."""
    return len(input_shape_for(family)) == 3


# The output layer: logits (the loss applies the softmax, as the TensorFlow
# tutorials' `from_logits=True`), or the softmax itself (the tutorials that
# end in Dense(10, activation="softmax")). Float32 either way.
_OUTPUT_LAYERS = {
    "logits": lambda num_classes: keras.layers.Dense(num_classes, name="logits",
                                                     dtype=LOGITS_DTYPE),
    "softmax": lambda num_classes: keras.layers.Dense(num_classes, activation="softmax",
                                                      name="softmax", dtype=LOGITS_DTYPE),
}


def _head_layers(hidden: tuple[int, ...], dropout: float, num_classes: int, output: str,
                 dtype) -> list:
    """Return the classifier head shared by both families: the hidden Dense layers with
    Dropout after the first (the tutorials' Dense 128 -> Dropout -> Dense 64), then the output.

    The first hidden layer keeps the name ``dense_hidden`` (one hidden layer
    is the default model); the others are ``dense_hidden_2``, ...
    """
    layers = []
    for index, width in enumerate(hidden, start=1):
        name = "dense_hidden" if index == 1 else f"dense_hidden_{index}"
        layers.append(keras.layers.Dense(width, activation="relu", name=name, dtype=dtype))
        if index == 1:
            layers.append(keras.layers.Dropout(dropout, name="dropout", dtype=dtype))
    return [*layers, _OUTPUT_LAYERS[output](num_classes)]


def _mlp_layers(hidden: tuple[int, ...], dropout: float, num_classes: int, output: str,
                dtype) -> list:
    """Return fresh mlp layers: flatten, then the shared head."""
    return [
        keras.layers.Flatten(name="flatten", dtype=dtype),
        *_head_layers(hidden, dropout, num_classes, output, dtype),
    ]


def _cnn_layers(hidden: tuple[int, ...], dropout: float, num_classes: int, output: str,
                dtype) -> list:
    """Return fresh cnn layers: conv/pool stack, flatten, then the shared head."""
    layers = []
    for index, filters in enumerate(CNN_FILTERS, start=1):
        if index > 1:
            layers.append(
                keras.layers.MaxPooling2D(CNN_POOL_SIZE, name=f"pool_{index - 1}", dtype=dtype)
            )
        layers.append(
            keras.layers.Conv2D(
                filters, CNN_KERNEL_SIZE, activation="relu", name=f"conv_{index}", dtype=dtype
            )
        )
    layers.append(keras.layers.Flatten(name="flatten", dtype=dtype))
    return layers + _head_layers(hidden, dropout, num_classes, output, dtype)


_LAYER_FACTORIES: dict[str, Callable[..., list]] = {
    "mlp": _mlp_layers,
    "cnn": _cnn_layers,
}


def family_layers(
    family: str,
    *,
    num_classes: int = NUM_CLASSES,
    dropout: float = DEFAULT_DROPOUT,
    hidden_units: int | Sequence[int] = DEFAULT_HIDDEN_UNITS,
    output: str = DEFAULT_OUTPUT,
    dtype=None,
) -> list:
    """Return a fresh, unbuilt list of the layers that make up ``family``.

    Args:
        family: one of FAMILIES.
        num_classes: width of the output layer.
        dropout: rate of the Dropout layer after the first hidden Dense layer.
        hidden_units: width of the hidden Dense layer, or one width per hidden layer.
        output: ``logits`` or ``softmax`` (one of OUTPUTS).
        dtype: dtype policy for every layer but the output (which is always
            float32); None means the global policy.

    Returns:
        A list of new Keras layers, in call order.
    """
    _check_hparams(family, num_classes, dropout, hidden_units, None, output)
    factory = _LAYER_FACTORIES[family]
    return factory(hidden_widths(hidden_units), float(dropout), int(num_classes), output, dtype)


@keras.saving.register_keras_serializable(package="kbench")
class KBenchModel(keras.Model):
    """Subclassed model that applies a family's layer stack in turn."""

    def __init__(
        self,
        family: str,
        num_classes: int = NUM_CLASSES,
        dropout: float = DEFAULT_DROPOUT,
        hidden_units: int | Sequence[int] = DEFAULT_HIDDEN_UNITS,
        input_shape=None,
        output: str = DEFAULT_OUTPUT,
        **kwargs,
    ):
        """Create the model's layers; ``kwargs`` (name, dtype, ...) go to keras.Model."""
        resolved_shape = _check_hparams(family, num_classes, dropout, hidden_units, input_shape,
                                        output)
        super().__init__(**kwargs)
        # Plain Python numbers, so that get_config() is JSON-serialisable
        # even when the caller passed NumPy scalars.
        self.family = family
        self.num_classes = int(num_classes)
        self.dropout = float(dropout)
        # An int for one hidden layer (as saved before several were possible).
        widths = hidden_widths(hidden_units)
        self.hidden_units = widths[0] if len(widths) == 1 else list(widths)
        self.output_kind = output
        self.image_shape = resolved_shape
        # Hand the model's own policy to its layers so that a model saved under
        # a mixed policy reloads mixed, whatever the global policy is then.
        self.stack = family_layers(
            family,
            num_classes=num_classes,
            dropout=dropout,
            hidden_units=hidden_units,
            output=output,
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        """Build every layer in turn from the (batched) ``input_shape``."""
        shape = tuple(input_shape)
        for layer in self.stack:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=False):
        """Apply the layers in order; ``training`` switches Dropout on."""
        x = inputs
        for layer in self.stack:
            # Keras drops `training` for layers whose call() does not take it.
            x = layer(x, training=training)
        return x

    def get_config(self):
        """Return the constructor arguments plus the base config (name, dtype, ...)."""
        return {
            **super().get_config(),
            "family": self.family,
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "hidden_units": self.hidden_units,
            "input_shape": list(self.image_shape),
            "output": self.output_kind,
        }


def _build_sequential(
    family: str, input_shape: tuple[int, ...], name: str, **hparams
) -> keras.Model:
    """Assemble the family's layers as a keras.Sequential."""
    layers = family_layers(family, **hparams)
    return keras.Sequential([keras.Input(shape=input_shape), *layers], name=name)


def _build_functional(
    family: str, input_shape: tuple[int, ...], name: str, **hparams
) -> keras.Model:
    """Assemble the family's layers as a functional keras.Model."""
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for layer in family_layers(family, **hparams):
        x = layer(x)
    return keras.Model(inputs, x, name=name)


def _build_subclassed(
    family: str, input_shape: tuple[int, ...], name: str, **hparams
) -> keras.Model:
    """Create a KBenchModel and build it, so its weights exist."""
    model = KBenchModel(family, input_shape=input_shape, name=name, **hparams)
    model.build((None, *input_shape))
    return model


_BUILDERS = {
    "sequential": _build_sequential,
    "functional": _build_functional,
    "subclassed": _build_subclassed,
}


def build_model(
    family: str,
    style: str,
    *,
    num_classes: int = NUM_CLASSES,
    dropout: float = DEFAULT_DROPOUT,
    input_shape=None,
    hidden_units: int | Sequence[int] = DEFAULT_HIDDEN_UNITS,
    output: str = DEFAULT_OUTPUT,
    name: str | None = None,
) -> keras.Model:
    """Build ``family`` in ``style``; the model is built, so its weights exist.

    Args:
        family: one of FAMILIES.
        style: one of STYLES.
        num_classes: number of logits.
        dropout: Dropout rate before the logits, in [0, 1).
        input_shape: per-example shape without the batch axis; None for the
            family default (see input_shape_for). mlp takes 2-D or 3-D, cnn 3-D.
        hidden_units: width of the hidden Dense layer, or one width per hidden
            layer (Dropout follows the first).
        output: ``logits`` (default) or ``softmax`` probabilities (OUTPUTS).
        name: model name; defaults to "<family>_<style>".

    Returns:
        A built keras.Model whose outputs are float32 under any dtype policy.

    Raises:
        ValueError: on an unknown family or style or a bad hyper-parameter.
    """
    check_choice("style", style, STYLES)
    shape = _check_hparams(family, num_classes, dropout, hidden_units, input_shape, output)
    return _BUILDERS[style](
        family,
        shape,
        name or f"{family}_{style}",
        num_classes=num_classes,
        dropout=dropout,
        hidden_units=hidden_units,
        output=output,
    )


def count_params(model: keras.Model) -> int:
    """Return the total number of weights (trainable and not) of a built model."""
    return int(model.count_params())
