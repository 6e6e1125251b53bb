"""How kbench.saving works around what plain Keras 3.15 / TF 2.21 get wrong
(each bug is recorded in :data:`kbench.saving.KNOWN_SAVE_ISSUES`):

- ``.keras``: a Sequential/Functional model does not save its own dtype
  policy, so under another global policy its optimizer state is skipped;
  :func:`read_keras` loads under the policy recorded in the file's layer configs.
- legacy ``.h5``: loss aliases such as ``"mse"`` do not deserialize, the
  restored optimizer is built over no variables (training cannot continue),
  and a registered subclassed model is stored under its bare class name with
  no build config; :func:`read_h5` compiles from the file's training config
  itself and builds kbench's subclassed model.
- SavedModel: a subclassed model under ``mixed_float16`` gets a float16
  serving signature; :func:`serving_signature` gives it float32 inputs like the others.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import h5py
import keras
import numpy as np
import tensorflow as tf

from kbench import models, training


def serving_signature(model: keras.Model) -> list[tf.TensorSpec] | None:
    """Float32 inputs for a model without symbolic inputs; None lets Keras infer them.

    Keras infers a subclassed model's serving dtype from its compute dtype, so
    under mixed_float16 the endpoint would reject float32 images (KNOWN_SAVE_ISSUES).
    """
    if getattr(model, "inputs", None):
        return None
    image_shape = getattr(model, "image_shape", None)
    return None if image_shape is None else [tf.TensorSpec((None, *image_shape), tf.float32)]


def read_keras(path: Path, *, model, compile: bool, custom_objects) -> keras.Model:
    """A .keras model, loaded under the dtype policy it was saved in."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    with saved_policy_scope(config):
        return keras.saving.load_model(path, custom_objects=custom_objects, compile=compile)


def read_h5(path: Path, *, model, compile: bool, custom_objects) -> keras.Model:
    """A legacy .h5 model, compiled from its training config with its optimizer state."""
    with h5py.File(path, "r") as f:
        config = json.loads(_text(f.attrs["model_config"]))
        training_config, optimizer_values = _h5_training_state(f)
    objects = {**_LEGACY_H5_CLASSES, **(custom_objects or {})}
    with saved_policy_scope(config), keras.saving.custom_object_scope(objects):
        loaded = keras.saving.load_model(path, custom_objects=objects, compile=False)
        if compile and training_config is not None:
            _compile_like_saved(loaded, training_config, optimizer_values)
    return loaded


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _policy_names(config) -> Iterator[str]:
    """Every dtype-policy name in a saved Keras config."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy":
            yield config["config"]["name"]
        for value in config.values():
            yield from _policy_names(value)
    elif isinstance(config, list):
        for item in config:
            yield from _policy_names(item)


def saved_policy(config: Mapping) -> str | None:
    """The precision a model was saved in, from its config: a mixed policy if any layer
    has one, else float32 if a layer records it, else None (unknown)."""
    names = set(_policy_names(config))
    mixed = sorted(n for n in names if n.startswith("mixed_"))
    if mixed:
        return mixed[0]
    return "float32" if "float32" in names else None


def saved_policy_scope(config: Mapping):
    """Load under the saved policy: Sequential/Functional models do not save their own,
    and compile() wraps the optimizer in a LossScaleOptimizer only under mixed_float16."""
    policy = saved_policy(config)
    return training.precision_policy(policy) if policy else contextlib.nullcontext()


def _built_kbench_model(**config) -> models.KBenchModel:
    """A KBenchModel from a legacy .h5 config, built (legacy .h5 stores no build config)."""
    model = models.KBenchModel.from_config(config)
    model.build((None, *model.image_shape))
    return model


# Legacy .h5 stores a model's bare class name ("KBenchModel"), not its
# registered name ("kbench>KBenchModel"); see KNOWN_SAVE_ISSUES.
_LEGACY_H5_CLASSES = MappingProxyType({models.KBenchModel.__name__: _built_kbench_model})


def _h5_training_state(f: h5py.File) -> tuple[dict | None, list[np.ndarray]]:
    """The training config of a legacy .h5 file and its optimizer values, in saved order."""
    raw = f.attrs.get("training_config")
    if raw is None:
        return None, []
    group = f.get("optimizer_weights")
    names = [] if group is None else [_text(n) for n in group.attrs["weight_names"]]
    return json.loads(_text(raw)), [np.asarray(group[name]) for name in names]


def _compile_argument(get: Callable, config):
    """A saved loss/metrics structure as compile() takes it.

    Strings stay strings: compile() resolves aliases such as "mse" itself,
    where keras.losses.deserialize fails on them (KNOWN_SAVE_ISSUES).
    """
    if config is None or isinstance(config, str):
        return config
    if isinstance(config, dict) and "class_name" in config:
        return get(config)
    if isinstance(config, dict):
        return {key: _compile_argument(get, value) for key, value in config.items()}
    return [_compile_argument(get, item) for item in config]


def _assign(variables: Sequence, values: Sequence[np.ndarray]) -> None:
    if len(variables) != len(values):
        raise ValueError(f"the file holds {len(values)} optimizer values but the optimizer "
                         f"has {len(variables)} variables")
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"optimizer variable {variable.path} has shape "
                             f"{tuple(variable.shape)}, the file's value {value.shape}")
        variable.assign(value)


def _compile_like_saved(model: keras.Model, config: dict, optimizer_values: list) -> None:
    """Compile from a legacy .h5 training config and set the saved optimizer state.

    Keras's own route builds the optimizer over ``model._trainable_variables``
    (empty for a Model), dropping its state (KNOWN_SAVE_ISSUES); this builds it
    over the model's trainable variables, in the order the file lists them.
    """
    optimizer = keras.optimizers.deserialize(config["optimizer_config"])
    model.compile(
        optimizer=optimizer,
        loss=_compile_argument(keras.losses.get, config.get("loss")),
        metrics=_compile_argument(keras.metrics.get, config.get("metrics")),
        weighted_metrics=_compile_argument(keras.metrics.get, config.get("weighted_metrics")),
        loss_weights=config.get("loss_weights"),
    )
    if optimizer_values:
        optimizer.build(model.trainable_variables)
        _assign(optimizer.variables, optimizer_values)

