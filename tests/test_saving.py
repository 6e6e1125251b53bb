"""Tests for kbench.saving: every format round-trips every model, saves never lose data,
bad files are clear errors, known upstream bugs (strict xfail). Resumable training from
checkpoints: tests/test_resume.py."""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbench import data, loops, models, saving, testing, training
from kbench import workflows as wf
from kbench.saving import FORMATS, LoadError, SaveCase, SaveError
from kbench.testing import assert_weights_equal
from kbench.workflows import WorkflowSpec

MATRIX = saving.save_matrix()
# Not a matrix cell: a model compiled with loss="mse" (the upstream .h5 bug).
MSE_CASE = SaveCase("h5", loss="mse")
# Outputs are compared on the first test images, one batch.
FIXED_BATCH = 32
# Random architectures per property test: each example builds, saves and loads
# three small models (~0.5 s on this 2-core CPU); 12 keep the test near 6 s.
PROPERTY_EXAMPLES = 12


def _spec(case: SaveCase, **changes) -> WorkflowSpec:
    return WorkflowSpec(family=case.family, style=case.style, precision=case.precision,
                        epochs=1, dataset="synthetic", **changes)


def _images(dataset, family):
    """(x_train, y_train, x_test) shaped for the family."""
    x_train, y_train, x_test, _ = data.to_arrays(
        dataset, channel_axis=models.needs_channel_axis(family))
    return x_train, y_train, x_test


def _as_json(config):
    """A config as its saved JSON reads back (tuples become lists)."""
    return json.loads(json.dumps(config))


def _outputs(loaded, x):
    if isinstance(loaded, keras.Model):
        return loaded.predict(x, batch_size=len(x), verbose=0)
    return loaded.serve(tf.constant(x)).numpy()  # a SavedModel's serving endpoint


def _same_values(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(np.asarray(u), np.asarray(v))
                                    for u, v in zip(a, b))


@pytest.fixture(scope="module")
def tiny():
    """Learnable synthetic data: 4 steps an epoch at batch 64."""
    return testing.tiny_dataset(seed=0)


def _train(case: SaveCase, dataset) -> keras.Model:
    """The case's model after one epoch, so that the optimizer has state to lose."""
    spec = _spec(case)
    if case.loss == saving.KBENCH_LOSS:
        return training.train(spec, dataset=dataset, validation=False).model
    keras.utils.set_random_seed(spec.seed)
    with training.precision_policy(case.precision):
        model = models.build_model(case.family, case.style)
        model.compile(optimizer=training.make_optimizer(spec), loss=case.loss)
    x, y, _ = _images(dataset, case.family)
    model.fit(x, _targets(case, y), batch_size=spec.batch_size, verbose=0)
    return model


def _targets(case: SaveCase, labels):
    return labels if case.loss == saving.KBENCH_LOSS else keras.utils.to_categorical(labels, 10)


@pytest.fixture(scope="module")
def trained(tiny):
    """The trained model of a case; trained once per module, shared by the formats (read only)."""
    cache = {}

    def get(case: SaveCase) -> keras.Model:
        key = (case.family, case.style, case.precision, case.loss)
        if key not in cache:
            cache[key] = _train(case, tiny)
        return cache[key]

    return get


def _fresh_model(case: SaveCase, like: keras.Model, x) -> keras.Model:
    """A compiled model of the case's spec with other weights, to load weights/a checkpoint into."""
    keras.utils.set_random_seed(1)
    with training.precision_policy(case.precision):
        model = models.build_model(case.family, case.style)
    model = training.build_compiled_model(_spec(case), model)
    assert not np.array_equal(_outputs(model, x), _outputs(like, x)), "the load must do the work"
    return model


def assert_same_precision(loaded, case: SaveCase, x):
    """Hidden layers compute in the case's precision, logits in float32."""
    compute = "float16" if case.precision == "mixed_float16" else "float32"
    if isinstance(loaded, keras.Model):
        dtypes = {layer.name: layer.compute_dtype for layer in loaded.layers}
        assert dtypes["dense_hidden"] == compute and dtypes["logits"] == "float32", dtypes
        assert _outputs(loaded, x).dtype == np.float32
        return
    assert loaded.serve(tf.constant(x)).dtype == tf.float32
    graph = str(loaded.signatures["serving_default"].graph.as_graph_def())
    assert ("DT_HALF" in graph) == (compute == "float16")


def assert_same_optimizer_state(loaded: keras.Model, model: keras.Model):
    assert type(loaded.optimizer) is type(model.optimizer)
    assert int(model.optimizer.iterations) > 0, "the optimizer must have state to lose"
    assert _same_values(loaded.optimizer.variables, model.optimizer.variables)


def assert_round_trip(case: SaveCase, model: keras.Model, folder: Path, x):
    """Save through kbench and load back: bitwise outputs, precision, config, optimizer state."""
    fmt = FORMATS[case.format]
    path = saving.save(model, folder / f"model{fmt.suffix}")
    into = None if fmt.whole_model else _fresh_model(case, model, x)
    loaded = saving.load(path, model=into)
    np.testing.assert_array_equal(_outputs(loaded, x), _outputs(model, x))
    assert_same_precision(loaded, case, x)
    if not isinstance(loaded, keras.Model):
        return  # a SavedModel is a serving graph: no config, no optimizer
    if fmt.whole_model:
        assert _as_json(loaded.get_config()) == _as_json(model.get_config())
    if fmt.restores_optimizer:
        assert_same_optimizer_state(loaded, model)
    # Only checkpoints carry the dropout random state (keras-team/keras#19796).
    assert _same_values(saving.rng_state(loaded), saving.rng_state(model)) == fmt.restores_rng


# --------------------------------------------------------------------------- the matrix


def test_matrix_is_every_format_family_style_and_precision():
    assert len(MATRIX) == len(FORMATS) * 2 * 3 * 2 == 60
    assert len({case.name for case in MATRIX}) == len(MATRIX)


@pytest.mark.parametrize("case", MATRIX, ids=lambda case: case.name)
def test_round_trip(case, trained, tiny, tmp_path):
    x = _images(tiny, case.family)[2][:FIXED_BATCH]
    assert_round_trip(case, trained(case), tmp_path, x)


def _continue_one_epoch(model, spec, dataset):
    """One more epoch through the engine, on a fresh pipeline (so the same data order)."""
    train_ds, _ = data.make_splits(dataset, training.pipeline_options(spec))
    loops.make_loop(model, spec).run(train_ds, epochs=1)


@pytest.mark.parametrize("precision", saving.MATRIX_PRECISIONS)
@pytest.mark.parametrize("fmt", [f for f in FORMATS.values() if f.restores_optimizer],
                         ids=lambda f: f.name)
def test_training_continued_after_loading_matches_training_continued_without(
        fmt, precision, tiny, tmp_path):
    case = SaveCase(fmt.name, precision=precision)
    spec = _spec(case, deterministic=True)
    x = _images(tiny, case.family)[2][:FIXED_BATCH]
    with training.op_determinism(True):
        model = training.train(spec, dataset=tiny, validation=False).model
        path = saving.save(model, tmp_path / f"model{fmt.suffix}")
        loaded = saving.load(path, model=None if fmt.whole_model else _fresh_model(case, model, x))
        if not fmt.restores_rng:  # keras-team/keras#19796: the file has no dropout random state
            for mine, theirs in zip(saving.rng_state(loaded), saving.rng_state(model)):
                mine.assign(theirs)
        before = model.get_weights()
        with training.precision_policy(precision):
            for m in (model, loaded):
                _continue_one_epoch(m, spec, tiny)
    assert_weights_equal(loaded.get_weights(), model.get_weights())
    assert not _same_values(model.get_weights(), before), "the extra epoch must move the weights"


def test_the_custom_loop_keeps_a_loaded_models_loss_scale_state(trained, tmp_path):
    case = SaveCase("keras", precision="mixed_float16")
    loaded = saving.load(saving.save(trained(case), tmp_path / "model.keras"))
    state = [np.asarray(v) for v in loaded.optimizer.variables]
    loops.make_loop(loaded, _spec(case, loop="custom"))
    assert _same_values(loaded.optimizer.variables, state)


# --------------------------------------------------------------------------- known upstream bugs


def _plain_model_file(case, model, path, x, y):
    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(path)
    lost = [w.message for w in caught if "Skipping variable loading" in str(w.message)]
    if lost:
        raise lost[0]  # Keras only warns that it dropped the optimizer state
    loaded.predict(x, verbose=0)
    loaded.train_on_batch(x, y)


def _plain_export(case, model, path, x, y):
    model.export(str(path), verbose=False)
    tf.saved_model.load(str(path)).serve(tf.constant(x))


# What a Keras user does without kbench, per format: save, load under the
# default float32 policy, predict, and (for models) take one training step;
# a lost-optimizer-state warning counts as the failure it is.
PLAIN_ROUTES = {"keras": _plain_model_file, "h5": _plain_model_file, "savedmodel": _plain_export}


def _known_issue_cases():
    for case in (*MATRIX, MSE_CASE):
        issue = case.known_issue
        if issue is not None:
            yield pytest.param(case, id=case.name, marks=pytest.mark.xfail(
                strict=True, raises=issue.error_type,
                reason=f"known upstream bug {issue.reference}; an XPASS means it is fixed: "
                       "remove the entry from kbench.saving.KNOWN_SAVE_ISSUES and its workaround"))


@pytest.mark.parametrize("case", list(_known_issue_cases()))
def test_known_upstream_bug_still_breaks_plain_keras(case, trained, tiny, tmp_path):
    """Runs the real combination through plain Keras; a release that fixes it turns this red."""
    issue = case.known_issue
    x_train, y_train, _ = _images(tiny, case.family)
    x, y = x_train[:FIXED_BATCH], _targets(case, y_train[:FIXED_BATCH])
    path = tmp_path / f"plain{FORMATS[case.format].suffix}"
    try:
        PLAIN_ROUTES[case.format](case, trained(case), path, x, y)
    except issue.error_type as err:
        assert re.search(issue.error_match, str(err)), f"failed differently: {err}"
        raise


def test_every_known_issue_covers_a_tested_case():
    issues = [case.known_issue for case in (*MATRIX, MSE_CASE)]
    assert all(any(issue is seen for seen in issues) for issue in saving.KNOWN_SAVE_ISSUES)


def test_kbench_loads_legacy_h5_compiled_with_a_loss_alias(trained, tiny, tmp_path):
    model = trained(MSE_CASE)
    x_train, y_train, _ = _images(tiny, "mlp")
    path = saving.save(model, tmp_path / "model.h5")
    for compile_ in (True, False):
        loaded = saving.load(path, compile=compile_)
        np.testing.assert_array_equal(_outputs(loaded, x_train[:FIXED_BATCH]),
                                      _outputs(model, x_train[:FIXED_BATCH]))
    assert getattr(loaded, "optimizer", None) is None  # compile=False
    loaded = saving.load(path)
    assert loaded.loss == "mse"
    assert_same_optimizer_state(loaded, model)
    loaded.train_on_batch(x_train[:FIXED_BATCH], _targets(MSE_CASE, y_train[:FIXED_BATCH]))
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) + 1


def test_saved_policy_reads_the_mixed_policy_from_layer_configs():
    with training.precision_policy("mixed_float16"):
        mixed = models.build_model("mlp", "functional")
    assert saving.saved_policy(_as_json(mixed.get_config())) == "mixed_float16"
    float32 = models.build_model("mlp", "sequential")
    assert saving.saved_policy(_as_json(float32.get_config())) == "float32"
    assert saving.saved_policy({"class_name": "Dense", "config": {"units": 3}}) is None


# --------------------------------------------------------------------------- callbacks (tutorials)


@pytest.fixture(scope="module")
def plateau():
    """Synthetic data whose val_accuracy reaches its maximum before epoch 5 and
    then stalls (measured: fit 0.72, 0.99, 0.99, 1.0, 1.0; custom 0.72, 0.96, 1.0, 1.0, 1.0)."""
    return data.load_dataset("synthetic", n_train=1024, n_test=128, seed=0)


def _train_keeping_epoch_weights(loop, dataset, callback, epochs=5):
    """Train with ``callback``; also return a copy of the weights after every epoch."""
    spec = WorkflowSpec(loop=loop, epochs=epochs, deterministic=True, dataset="synthetic")
    keras.utils.set_random_seed(spec.seed)
    model = models.build_model(spec.family, spec.style)
    snapshots = []
    # First in the list: it must see each epoch's weights before EarlyStopping restores others.
    keep = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights()))
    result = training.train(spec, dataset=dataset, model=model, callbacks=[keep, callback])
    return result, snapshots


def _best_epoch(history) -> int:
    """The epoch whose val_accuracy Keras keeps: the first maximum (a tie is no improvement)."""
    return int(np.argmax(history["val_accuracy"]))


@pytest.mark.parametrize("loop", wf.LOOPS)
def test_model_checkpoint_tutorial_config_holds_the_best_epoch(loop, plateau, tmp_path):
    path = tmp_path / "best.weights.h5"
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(path), save_best_only=True, monitor="val_accuracy", mode="max", save_weights_only=True)
    result, snapshots = _train_keeping_epoch_weights(loop, plateau, checkpoint)
    best = _best_epoch(result.history)
    assert best < result.epochs_run - 1, f"needs a best epoch before the last: {result.history}"
    restored = saving.load(path, model=models.build_model("mlp", "functional"))
    assert_weights_equal(restored.get_weights(), snapshots[best])


@pytest.mark.parametrize("loop", wf.LOOPS)
def test_early_stopping_restores_the_best_epoch(loop, plateau):
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=1,
                                         restore_best_weights=True)
    result, snapshots = _train_keeping_epoch_weights(loop, plateau, stop)
    best = _best_epoch(result.history)
    assert result.epochs_run < 5 and best < result.epochs_run - 1, result.history
    assert_weights_equal(result.model.get_weights(), snapshots[best])


# --------------------------------------------------------------------------- never lose data


@pytest.fixture(scope="module")
def two_models():
    """Two mlp models with different weights: the saved one and the one whose save fails."""
    pair = []
    for seed in (10, 11):
        keras.utils.set_random_seed(seed)
        pair.append(models.build_model("mlp", "functional"))
    return pair


def _snapshot(path: Path) -> dict[str, bytes]:
    """Every byte under ``path`` (a file or a directory)."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _half_write(path: Path) -> None:
    """Damage a finished write as an interruption would: half a file, or no graph in a directory."""
    if path.is_dir():
        (path / "saved_model.pb").unlink()
    else:
        os.truncate(path, path.stat().st_size // 2)


def _failing_writer(fmt, error):
    def write(model, path):
        fmt.write(model, path)
        _half_write(path)
        raise error
    return write


def _load_outputs(path: Path, x):
    fmt = saving.format_for(path)
    into = None if fmt.whole_model else models.build_model("mlp", "functional")
    return _outputs(saving.load(path, model=into), x)


ATOMIC = [f for f in FORMATS.values() if f.kbench_atomic]


@pytest.mark.parametrize("fmt, error", [
    *((f, OSError("injected: disk full")) for f in ATOMIC),
    (FORMATS["keras"], KeyboardInterrupt("injected")),
], ids=lambda v: v.name if isinstance(v, saving.Format) else type(v).__name__)
def test_a_failed_save_leaves_the_previous_file_intact(fmt, error, two_models, tiny, tmp_path):
    old, new = two_models
    x = _images(tiny, "mlp")[2][:FIXED_BATCH]
    path = saving.save(old, tmp_path / f"model{fmt.suffix}")
    before = _snapshot(path)
    with pytest.raises(type(error), match="injected"):
        saving.save(new, path, writer=_failing_writer(fmt, error))
    assert _snapshot(path) == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary left behind"
    np.testing.assert_array_equal(_load_outputs(path, x), _outputs(old, x))


@pytest.mark.parametrize("fmt", ATOMIC, ids=lambda f: f.name)
def test_a_save_replaces_the_previous_file_and_leaves_nothing_else(fmt, two_models, tiny,
                                                                   tmp_path):
    old, new = two_models
    x = _images(tiny, "mlp")[2][:FIXED_BATCH]
    path = saving.save(old, tmp_path / f"model{fmt.suffix}")
    assert saving.save(new, path) == path
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    np.testing.assert_array_equal(_load_outputs(path, x), _outputs(new, x))


KILL_MID_SAVE = """
import os, signal, sys
from pathlib import Path
from kbench import models, saving

def write_half_then_die(model, tmp):
    saving.FORMATS["keras"].write(model, tmp)
    os.truncate(tmp, tmp.stat().st_size // 2)
    os.kill(os.getpid(), signal.SIGKILL)

saving.save(models.build_model("mlp", "functional"), Path(sys.argv[1]), writer=write_half_then_die)
"""


def test_a_save_killed_midway_leaves_the_previous_file_intact(two_models, tiny, tmp_path):
    old, _ = two_models
    x = _images(tiny, "mlp")[2][:FIXED_BATCH]
    path = saving.save(old, tmp_path / "model.keras")
    before = path.read_bytes()
    run = subprocess.run([sys.executable, "-c", KILL_MID_SAVE, str(path)], capture_output=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()[-2000:]
    assert path.read_bytes() == before
    strays = sorted(p.name for p in tmp_path.iterdir() if p != path)
    assert len(strays) == 1 and re.fullmatch(r"\.model\.tmp-[0-9a-f]{8}\.keras", strays[0]), strays
    np.testing.assert_array_equal(_load_outputs(path, x), _outputs(old, x))


@pytest.mark.parametrize("name, fmt, match", [
    ("model.pt", None, r"unknown suffix '\.pt'; known: \.keras \(keras\), \.h5 \(h5\)"),
    ("model.h5", "keras", r"format 'keras' needs a path ending in '\.keras'"),
    ("model.keras", "onnx", r"format must be one of .*got 'onnx'"),
])
def test_save_refuses_a_path_it_cannot_write_quoting_it(name, fmt, match, two_models, tmp_path):
    with pytest.raises(SaveError, match=match) as info:
        saving.save(two_models[0], tmp_path / name, format=fmt)
    assert str(tmp_path / name) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_to_replace_a_directory_with_a_file(two_models, tmp_path):
    (tmp_path / "model.keras").mkdir()
    with pytest.raises(SaveError, match="exists as a directory, but format 'keras' writes a file"):
        saving.save(two_models[0], tmp_path / "model.keras")


def test_format_is_inferred_from_the_suffix():
    assert saving.format_for("a/m.weights.h5").name == "weights"
    assert saving.format_for("a/m.h5").name == "h5"
    assert saving.format_for("a/m.keras").name == "keras"
    assert saving.format_for("runs/m.ckpt").name == "checkpoint"
    assert saving.format_for("export/1").name == "savedmodel"
    assert saving.format_for("m.pt") is None


# --------------------------------------------------------------------------- bad files


@pytest.fixture(scope="module")
def good_files(two_models, tmp_path_factory):
    """One good save per format, to damage copies of."""
    folder = tmp_path_factory.mktemp("good")
    return {f.name: saving.save(two_models[0], folder / f"model{f.suffix}")
            for f in FORMATS.values()}


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=lambda f: f.name)
def test_loading_a_missing_file_names_it(fmt, tmp_path):
    path = tmp_path / f"missing{fmt.suffix}"
    into = None if fmt.whole_model else models.build_model("mlp", "functional")
    with pytest.raises(saving.MissingFileError, match=r"no such (file|directory)") as info:
        saving.load(path, model=into)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, LoadError)
    assert repr(str(path)) in str(info.value)


def _truncate(raw: bytes) -> bytes:
    return raw[:len(raw) // 2]


def _zero_middle(raw: bytes) -> bytes:
    """Zero a quarter of the file in its middle (inside the weights)."""
    quarter = len(raw) // 4
    return raw[:quarter] + bytes(2 * quarter) + raw[3 * quarter:]


def _zero_after_header(raw: bytes) -> bytes:
    return raw[:16] + bytes(len(raw) - 16)


# (source format, name to write the damaged copy as, damage, expected cause)
BAD_FILES = [
    ("keras", "model.keras", _truncate, r"truncated or corrupted zip archive"),
    ("keras", "model.keras", _zero_middle, r"corrupted zip archive|fails its CRC check"),
    ("keras", "model.keras", lambda raw: b"", r"it is an empty file"),
    ("h5", "model.h5", _truncate, r"the HDF5 file is truncated"),
    ("h5", "model.h5", _zero_after_header, r"corrupted HDF5 file \(bad symbol table"),
    ("weights", "model.weights.h5", _truncate, r"the HDF5 file is truncated"),
    ("keras", "model.h5", None, r"holds an HDF5 file.* but it is a zip archive, as \.keras"),
    ("h5", "model.keras", None, r"holds a zip archive.* but it is an HDF5 file"),
    ("weights", "model.h5", None, r"no model config: weights only\? Name it \.weights\.h5"),
]


@pytest.mark.parametrize("source, name, damage, cause", BAD_FILES,
                         ids=[f"{s}-as-{n}-{getattr(d, '__name__', 'renamed')}"
                              for s, n, d, _ in BAD_FILES])
def test_loading_a_bad_file_names_it_and_the_cause(source, name, damage, cause, good_files,
                                                   tmp_path):
    raw = good_files[source].read_bytes()
    path = tmp_path / name
    path.write_bytes(damage(raw) if damage else raw)
    into = None if FORMATS[saving.format_for(path).name].whole_model else \
        models.build_model("mlp", "functional")
    with pytest.raises(LoadError, match=cause) as info:
        saving.load(path, model=into)
    assert str(info.value).startswith(f"cannot load {str(path)!r}: ")


def test_loading_a_damaged_savedmodel_names_it_and_the_cause(good_files, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    for part in good_files["savedmodel"].iterdir():
        if part.is_file():
            (export / part.name).write_bytes(part.read_bytes()[:100])
    with pytest.raises(LoadError, match=r"corrupted SavedModel \(saved_model\.pb\)"):
        saving.load(export)
    (export / "saved_model.pb").unlink()
    with pytest.raises(LoadError, match=r"'.*export': not a SavedModel directory"):
        saving.load(export)


def test_loading_a_checkpoint_directory_without_checkpoints_names_it(tmp_path):
    (tmp_path / "run.ckpt").mkdir()
    with pytest.raises(LoadError, match=r"run\.ckpt': no checkpoint in this directory"):
        saving.load(tmp_path / "run.ckpt", model=models.build_model("mlp", "functional"))


def test_loading_an_unknown_suffix_lists_the_known_ones(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"torch")
    with pytest.raises(LoadError, match=r"model\.pt': unknown suffix '\.pt'; known: \.keras"):
        saving.load(tmp_path / "model.pt")


class Unregistered(keras.Model):
    """A subclassed model nobody registered with Keras."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)

    def call(self, inputs):
        return self.dense(inputs)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_loading_an_unregistered_subclassed_model_says_register_it(suffix, tmp_path):
    model = Unregistered()
    model(np.zeros((1, 4), "float32"))
    path = saving.save(model, tmp_path / f"model{suffix}")
    with pytest.raises(LoadError, match=r"the class 'Unregistered' is not registered with Keras: "
                       r"decorate it with @keras\.saving\.register_keras_serializable"):
        saving.load(path)


def test_load_wants_a_model_exactly_for_the_formats_that_load_into_one(good_files):
    with pytest.raises(TypeError, match="loads into an existing model: pass model="):
        saving.load(good_files["weights"])
    with pytest.raises(TypeError, match="rebuilds the model from the file; do not pass model="):
        saving.load(good_files["keras"], model=models.build_model("mlp", "functional"))


# --------------------------------------------------------------------------- properties

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "linear")


def _random_mlp(arch) -> keras.Model:
    """A small MLP: hidden (width, activation) layers each followed by dropout; float32 logits."""
    layers = []
    for width, activation in arch["hidden"]:
        layers += [keras.layers.Dense(width, activation=activation),
                   keras.layers.Dropout(arch["dropout"])]
    layers.append(keras.layers.Dense(arch["classes"], dtype="float32"))
    with training.precision_policy(arch["precision"]):
        inputs = keras.Input((arch["inputs"],))
        if not arch["functional"]:
            return keras.Sequential([inputs, *layers])
        x = inputs
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, x)


ARCHITECTURES = st.fixed_dictionaries({
    "inputs": st.integers(1, 12),
    "hidden": st.lists(st.tuples(st.integers(1, 16), st.sampled_from(ACTIVATIONS)), max_size=3),
    "dropout": st.floats(0.0, 0.5),
    "classes": st.integers(2, 5),
    "functional": st.booleans(),
    "precision": st.sampled_from(saving.MATRIX_PRECISIONS),
})


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(arch=ARCHITECTURES, seed=st.integers(0, 2**16))
def test_random_architectures_round_trip_through_keras_and_weights_only(arch, seed):
    keras.utils.set_random_seed(seed)
    model = _random_mlp(arch)
    x = np.random.default_rng(seed).normal(size=(8, arch["inputs"])).astype("float32")
    with tempfile.TemporaryDirectory() as folder:
        whole = saving.load(saving.save(model, Path(folder) / "m.keras"))
        keras.utils.set_random_seed(seed + 1)
        into = saving.load(saving.save(model, Path(folder) / "m.weights.h5"),
                           model=_random_mlp(arch))
    for loaded in (whole, into):
        np.testing.assert_array_equal(_outputs(loaded, x), _outputs(model, x))
    assert _as_json(whole.get_config()) == _as_json(model.get_config())
