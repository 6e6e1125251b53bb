"""Tests for kbench.models: parameter counts, cross-style equivalence, precision, saving."""

import json
import re

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbench import data, models, training, workflows
from kbench.data import NUM_CLASSES
from kbench.models import FAMILIES, STYLES, KBenchModel, build_model

BATCH = 4
SEED = 1234

# Parameter counts worked out by hand from the tutorials' layer stacks.
MLP_PARAMS = (
    28 * 28 * 128 + 128  # dense_hidden: 784 inputs -> 128 units, + bias
    + 128 * 10 + 10  # logits: 128 -> 10, + bias
)
CNN_PARAMS = (
    3 * 3 * 1 * 32 + 32  # conv_1: 3x3 kernel, 1 -> 32 channels, + bias = 320
    + 3 * 3 * 32 * 64 + 64  # conv_2: 32 -> 64 channels = 18,496
    + 3 * 3 * 64 * 64 + 64  # conv_3: 64 -> 64 channels = 36,928
    # Spatial size: 28 -conv-> 26 -pool-> 13 -conv-> 11 -pool-> 5 -conv-> 3,
    # so flatten gives 3 * 3 * 64 = 576 features.
    + 3 * 3 * 64 * 128 + 128  # dense_hidden: 576 -> 128 = 73,856
    + 128 * 10 + 10  # logits = 1,290
)
assert (MLP_PARAMS, CNN_PARAMS) == (101_770, 130_890)

# Hidden layers whose compute dtype a mixed policy must lower.
HIDDEN_WEIGHTED_LAYERS = {
    "mlp": ("dense_hidden",),
    "cnn": ("conv_1", "conv_2", "conv_3", "dense_hidden"),
}


def expected_params(family, hidden_units=128, num_classes=NUM_CLASSES):
    """Return the hand-derived parameter count for a family's head size."""
    features = {"mlp": 28 * 28, "cnn": 3 * 3 * 64}[family]
    conv_params = {"mlp": 0, "cnn": 320 + 18_496 + 36_928}[family]
    head = features * hidden_units + hidden_units + hidden_units * num_classes + num_classes
    return conv_params + head


def random_batch(family, input_shape=None, seed=SEED):
    """Return a float32 batch of BATCH random images for ``family``."""
    shape = input_shape or models.input_shape_for(family)
    return np.random.default_rng(seed).random((BATCH, *shape), dtype=np.float32)


def build_all_styles(family, **kwargs):
    """Return {style: model} for every style, built with the same arguments."""
    return {style: build_model(family, style, **kwargs) for style in STYLES}


def predict(model, x, training=False):
    """Return the model's output on ``x`` as a NumPy array."""
    return keras.ops.convert_to_numpy(model(x, training=training))


def assert_same_outputs_across_styles(models_by_style, x):
    """Copy the first style's weights into the others; assert bitwise-equal outputs.

    Every style runs the same layers with the same weights in the same order,
    so on CPU the float ops are identical and no tolerance is needed.
    """
    reference, *others = models_by_style.values()
    expected = predict(reference, x)
    for model in others:
        model.set_weights(reference.get_weights())
        np.testing.assert_array_equal(predict(model, x), expected, err_msg=model.name)


@pytest.fixture
def global_policy(request):
    """Run the test under the global dtype policy ``request.param``."""
    with training.precision_policy(request.param):
        yield request.param


# --- vocabulary ------------------------------------------------------------


def test_vocabulary_comes_from_workflows_and_data():
    assert models.FAMILIES is workflows.FAMILIES and models.STYLES is workflows.STYLES
    assert models.input_shape_for("mlp") == data.IMAGE_SHAPE
    assert models.input_shape_for("cnn") == (*data.IMAGE_SHAPE, data.IMAGE_CHANNELS)


# --- shape helpers ---------------------------------------------------------


@pytest.mark.parametrize(
    "family, shape, channel_axis", [("mlp", (28, 28), False), ("cnn", (28, 28, 1), True)]
)
def test_input_shape_and_channel_axis(family, shape, channel_axis):
    assert models.input_shape_for(family) == shape
    assert models.needs_channel_axis(family) is channel_axis


# --- parameter counts ------------------------------------------------------


@pytest.mark.parametrize("family, expected", [("mlp", MLP_PARAMS), ("cnn", CNN_PARAMS)])
def test_param_count_matches_hand_count_in_every_style(family, expected):
    counts = {style: models.count_params(m) for style, m in build_all_styles(family).items()}
    assert counts == dict.fromkeys(STYLES, expected)


@settings(max_examples=8, deadline=None)
@given(
    family=st.sampled_from(FAMILIES),
    hidden_units=st.integers(1, 64),
    num_classes=st.integers(2, 20),
    dropout=st.floats(0, 0.9),
)
def test_param_count_is_style_independent(family, hidden_units, num_classes, dropout):
    built = build_all_styles(
        family, hidden_units=hidden_units, num_classes=num_classes, dropout=dropout
    )
    counts = {models.count_params(m) for m in built.values()}
    assert counts == {expected_params(family, hidden_units, num_classes)}


@pytest.mark.parametrize("style", STYLES)
def test_numpy_scalar_hyper_parameters_are_accepted(style):
    model = build_model(
        "mlp", style, num_classes=np.int64(5), hidden_units=np.int32(8), dropout=np.float32(0.25)
    )
    assert models.count_params(model) == expected_params("mlp", hidden_units=8, num_classes=5)
    json.dumps(model.get_config())  # raises TypeError if a NumPy scalar leaked in


# --- cross-style equivalence -----------------------------------------------


@pytest.mark.parametrize(
    "family, input_shape", [("mlp", None), ("mlp", (28, 28, 1)), ("cnn", None)]
)
def test_styles_give_identical_outputs_with_same_weights(family, input_shape):
    built = build_all_styles(family, input_shape=input_shape)
    assert_same_outputs_across_styles(built, random_batch(family, input_shape))


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_align_by_name_and_shape_across_styles(family):
    def layout(model):
        # Keep "<layer>/<variable>": functional models omit the model-name
        # prefix that sequential and subclassed ones put in front.
        return [("/".join(w.path.split("/")[-2:]), tuple(w.shape)) for w in model.weights]

    layouts = [layout(m) for m in build_all_styles(family).values()]
    assert layouts[0] == layouts[1] == layouts[2]


def test_each_build_gets_fresh_layers():
    first, second = build_model("mlp", "sequential"), build_model("mlp", "sequential")
    assert not np.array_equal(first.get_weights()[0], second.get_weights()[0])


# --- outputs and dropout ---------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("family, num_classes", [("mlp", NUM_CLASSES), ("cnn", 3)])
def test_output_shape_is_batch_by_classes(family, style, num_classes):
    model = build_model(family, style, num_classes=num_classes)
    assert predict(model, random_batch(family)).shape == (BATCH, num_classes)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("family", FAMILIES)
def test_dropout_is_active_only_in_training(family, style):
    model = build_model(family, style, dropout=0.5)
    x = random_batch(family)
    assert not np.array_equal(predict(model, x, training=True), predict(model, x))


@pytest.mark.parametrize("style", STYLES)
def test_zero_dropout_makes_training_output_deterministic(style):
    model = build_model("mlp", style, dropout=0.0)
    x = random_batch("mlp")
    np.testing.assert_array_equal(predict(model, x, training=True), predict(model, x))


@pytest.mark.parametrize("style", STYLES)
def test_default_and_explicit_model_name(style):
    assert build_model("mlp", style).name == f"mlp_{style}"
    assert build_model("mlp", style, name="custom").name == "custom"


# --- mixed precision -------------------------------------------------------


def assert_mixed_precision_layout(model, family, compute_dtype):
    """Assert hidden layers compute in ``compute_dtype`` and logits/variables in float32."""
    for name in HIDDEN_WEIGHTED_LAYERS[family]:
        layer = model.get_layer(name)
        assert (layer.compute_dtype, layer.variable_dtype) == (compute_dtype, "float32"), name
    assert model.get_layer("logits").compute_dtype == "float32"
    assert {w.dtype for w in model.weights} == {"float32"}


@pytest.mark.parametrize(
    "global_policy, compute_dtype",
    [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")],
    indirect=["global_policy"],
)
@pytest.mark.parametrize("family", FAMILIES)
def test_mixed_precision_hidden_low_logits_float32(global_policy, compute_dtype, family):
    built = build_all_styles(family)
    x = random_batch(family)
    for model in built.values():
        assert_mixed_precision_layout(model, family, compute_dtype)
        assert keras.backend.standardize_dtype(model(x).dtype) == "float32", model.name
    assert_same_outputs_across_styles(built, x)


@pytest.mark.parametrize("global_policy", ["mixed_float16"], indirect=True)
@pytest.mark.parametrize("style", STYLES)
def test_mixed_model_reloads_mixed_under_float32_policy(global_policy, style, tmp_path):
    model = build_model("mlp", style)
    path = tmp_path / "model.keras"
    model.save(path)
    keras.mixed_precision.set_global_policy("float32")  # the fixture restores it
    restored = keras.models.load_model(path)
    assert_mixed_precision_layout(restored, "mlp", "float16")


# --- serialisation ---------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_several_hidden_layers_and_a_softmax_output(style):
    """The tutorials' Dense 128 -> Dropout -> Dense 64 -> softmax head, in every style."""
    model = build_model("mlp", style, hidden_units=(16, 8), dropout=0.3, output="softmax")
    names = [layer.name for layer in getattr(model, "stack", model.layers)
             if not isinstance(layer, keras.layers.InputLayer)]
    assert names == ["flatten", "dense_hidden", "dropout", "dense_hidden_2", "softmax"]
    features = 28 * 28
    assert models.count_params(model) == (features * 16 + 16) + (16 * 8 + 8) + (8 * NUM_CLASSES
                                                                                 + NUM_CLASSES)
    probabilities = np.asarray(model(random_batch("mlp")))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (probabilities >= 0).all()


def test_several_hidden_layers_match_across_styles():
    built = build_all_styles("cnn", hidden_units=(12, 6), output="softmax")
    assert len({models.count_params(m) for m in built.values()}) == 1
    assert_same_outputs_across_styles(built, random_batch("cnn"))


def test_subclassed_config_keeps_several_layers_and_the_output():
    model = build_model("mlp", "subclassed", hidden_units=(16, 8), output="softmax")
    config = json.loads(json.dumps(model.get_config()))
    assert (config["hidden_units"], config["output"]) == ([16, 8], "softmax")
    clone = KBenchModel.from_config(config)
    clone.build((None, *models.input_shape_for("mlp")))
    assert clone.get_config() == model.get_config()


@pytest.mark.parametrize("family", FAMILIES)
def test_subclassed_config_round_trip(family):
    model = build_model(family, "subclassed", num_classes=7, dropout=0.3, hidden_units=16)
    config = json.loads(json.dumps(model.get_config()))  # must survive JSON
    assert config["family"] == family
    assert (config["num_classes"], config["dropout"], config["hidden_units"]) == (7, 0.3, 16)
    assert tuple(config["input_shape"]) == models.input_shape_for(family)
    assert config["name"] == model.name

    clone = KBenchModel.from_config(config)
    clone.build((None, *models.input_shape_for(family)))
    assert clone.get_config() == model.get_config()
    assert_same_outputs_across_styles({"original": model, "clone": clone}, random_batch(family))


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("family", FAMILIES)
def test_keras_file_round_trip(family, style, tmp_path):
    model = build_model(family, style)
    path = tmp_path / f"{family}_{style}.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    x = random_batch(family)
    np.testing.assert_array_equal(predict(restored, x), predict(model, x))


# --- validation ------------------------------------------------------------


@pytest.mark.parametrize(
    "family, style, kwargs, message",
    [
        ("rnn", "sequential", {}, "family must be one of ('mlp', 'cnn'), got 'rnn'"),
        (
            "mlp",
            "keras2",
            {},
            "style must be one of ('sequential', 'functional', 'subclassed'), got 'keras2'",
        ),
        ("mlp", "sequential", {"dropout": 1.5}, "dropout must be a number in [0, 1), got 1.5"),
        ("mlp", "functional", {"dropout": 1.0}, "dropout must be a number in [0, 1), got 1.0"),
        ("mlp", "subclassed", {"dropout": -0.1}, "dropout must be a number in [0, 1), got -0.1"),
        ("mlp", "subclassed", {"dropout": True}, "dropout must be a number in [0, 1), got True"),
        ("mlp", "sequential", {"num_classes": 1}, "num_classes must be an int >= 2, got 1"),
        ("mlp", "sequential", {"num_classes": 2.0}, "num_classes must be an int >= 2, got 2.0"),
        ("cnn", "sequential", {"hidden_units": 0}, "hidden_units must be a positive int, got 0"),
        (
            "cnn",
            "subclassed",
            {"hidden_units": "128"},
            "hidden_units must be a positive int or a sequence of them, got '128'",
        ),
        ("mlp", "sequential", {"hidden_units": ()},
         "hidden_units must name at least one layer, got ()"),
        ("mlp", "functional", {"hidden_units": (64, 0)},
         "hidden_units must be a positive int, got 0 in (64, 0)"),
        ("mlp", "sequential", {"output": "sigmoid"},
         "output must be one of ('logits', 'softmax'), got 'sigmoid'"),
        (
            "cnn",
            "sequential",
            {"input_shape": (28, 28)},
            "input_shape for 'cnn' must be 3-D with positive int dims, got (28, 28)",
        ),
        (
            "mlp",
            "functional",
            {"input_shape": (784,)},
            "input_shape for 'mlp' must be 2-D or 3-D with positive int dims, got (784,)",
        ),
        (
            "mlp",
            "sequential",
            {"input_shape": (28, -28)},
            "input_shape for 'mlp' must be 2-D or 3-D with positive int dims, got (28, -28)",
        ),
        ("mlp", "sequential", {"input_shape": "28x28"}, "got '28x28'"),
    ],
)
def test_bad_arguments_raise_and_quote_the_value(family, style, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_model(family, style, **kwargs)


@pytest.mark.parametrize(
    "make", [models.input_shape_for, models.needs_channel_axis, KBenchModel]
)
def test_family_helpers_reject_unknown_family(make):
    with pytest.raises(ValueError, match=re.escape("got 'rnn'")):
        make("rnn")
